-- KEYS: lease, cursors, log
-- ARGV: owner, blog, seq, force ('1': set even if lower, when the blog's storage went back in time),
--       log_size, attempt_json...
-- Move one blog's cursor forward and log the attempt that earned it, in one round trip, fenced on
-- the lease: a process that lost the lease (it paused longer than the lease) must not move the
-- cursor of the one that took over. Returns 1, or 0 when the caller does not hold the lease.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local current = tonumber(redis.call('HGET', KEYS[2], ARGV[2]) or '0')
if ARGV[4] == '1' or tonumber(ARGV[3]) > current then redis.call('HSET', KEYS[2], ARGV[2], ARGV[3]) end
if #ARGV > 5 then
  for i = 6, #ARGV do redis.call('LPUSH', KEYS[3], ARGV[i]) end
  redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[5]) - 1)
end
return 1
