-- KEYS: meta, posts, unpinned, pinned, events, idempotency, blogs_updated
-- ARGV: post_id, post_json, ms, pinned, updated_at, updated_ms, fingerprint ('' = no key), ttl,
--       history_max, channel, blog_json, history_bytes, max_posts (0 = no limit)
-- The post quota is checked after the idempotency replay: a retry of a post that was created is
-- answered with its first result even when the blog has filled up since.
if redis.call('EXISTS', KEYS[1]) == 0 then return {'unknown_blog'} end
if ARGV[7] ~= '' then
  local seen = redis.call('GET', KEYS[6])
  if seen then
    local first = string.find(seen, '\n', 1, true)
    local second = string.find(seen, '\n', first + 1, true)
    if string.sub(seen, 1, first - 1) ~= ARGV[7] then return {'idempotency_mismatch'} end
    return {'replayed', string.sub(seen, first + 1, second - 1), string.sub(seen, second + 1)}
  end
end
if redis.call('HGET', KEYS[1], 'status') == 'ended' then return {'ended'} end
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return {'id_taken'} end
local max_posts = tonumber(ARGV[13])
if max_posts > 0 and tonumber(redis.call('HGET', KEYS[1], 'count')) >= max_posts then return {'quota', max_posts} end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
if ARGV[4] == '1' then
  redis.call('ZADD', KEYS[4], ARGV[3], ARGV[1])
else
  redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
end
local count = redis.call('HINCRBY', KEYS[1], 'count', 1)
local updated = redis.call('HMGET', KEYS[1], 'updated_at', 'updated_ms')
local updated_at = updated[1]
if tonumber(ARGV[6]) > tonumber(updated[2]) then
  updated_at = ARGV[5]
  redis.call('HSET', KEYS[1], 'updated_at', ARGV[5], 'updated_ms', ARGV[6])
end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
local event = event_head('post.created', ARGV[11], seq, count, updated_at) .. ',"post":' .. ARGV[2] .. '}'
emit(KEYS[1], KEYS[5], seq, event, ARGV[9], ARGV[12], ARGV[10])
if ARGV[7] ~= '' then
  redis.call('SET', KEYS[6], ARGV[7] .. '\n' .. seq .. '\n' .. ARGV[2], 'EX', ARGV[8])
end
return {'ok', seq}
