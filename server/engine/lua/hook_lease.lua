-- KEYS: lease, conf
-- ARGV: owner, ttl_ms
-- Take the endpoint's delivery lease, or renew it when the caller holds it already.
-- Returns 1 (held by the caller), 0 (another owner holds it) or -1 (the endpoint is gone or disabled).
if redis.call('EXISTS', KEYS[2]) == 0 or redis.call('HEXISTS', KEYS[2], 'disabled_reason') == 1 then
  if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
  return -1
end
local holder = redis.call('GET', KEYS[1])
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
