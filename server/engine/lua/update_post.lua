-- KEYS: meta, posts, unpinned, pinned, events, blogs_updated
-- ARGV: post_id, version_read, if_match ('' = none), new_json, new_ms, new_pinned, now, now_ms,
--       history_max, channel, blog_json, history_bytes
-- The caller merged the edit into the version it read; if the post moved on since, it retries
-- (or, with If-Match, the edit is stale).
if redis.call('EXISTS', KEYS[1]) == 0 then return {'unknown_blog'} end
local current = redis.call('HGET', KEYS[2], ARGV[1])
if not current then return {'unknown_post'} end
local version = cjson.decode(current)['version']
if ARGV[3] ~= '' and tonumber(ARGV[3]) ~= version then return {'stale', version} end
if tonumber(ARGV[2]) ~= version then return {'retry', version} end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[4])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
if ARGV[6] == '1' then
  redis.call('ZADD', KEYS[4], ARGV[5], ARGV[1])
else
  redis.call('ZADD', KEYS[3], ARGV[5], ARGV[1])
end
redis.call('HSET', KEYS[1], 'updated_at', ARGV[7], 'updated_ms', ARGV[8])
local count = redis.call('HGET', KEYS[1], 'count')
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
local event = event_head('post.updated', ARGV[11], seq, count, ARGV[7]) .. ',"post":' .. ARGV[4] .. '}'
emit(KEYS[1], KEYS[5], seq, event, ARGV[9], ARGV[12], ARGV[10])
return {'ok', seq}
