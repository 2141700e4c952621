-- KEYS: meta, posts, unpinned, pinned, events, blogs_updated
-- ARGV: post_id, if_match ('' = none), now, now_ms, history_max, channel, blog_json, history_bytes
if redis.call('EXISTS', KEYS[1]) == 0 then return {'unknown_blog'} end
local current = redis.call('HGET', KEYS[2], ARGV[1])
if not current then return {'unknown_post'} end
local version = cjson.decode(current)['version']
if ARGV[2] ~= '' and tonumber(ARGV[2]) ~= version then return {'stale', version} end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('HSET', KEYS[1], 'updated_at', ARGV[3], 'updated_ms', ARGV[4])
local count = redis.call('HINCRBY', KEYS[1], 'count', -1)
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
local event = event_head('post.deleted', ARGV[7], seq, count, ARGV[3]) .. ',"post_id":"' .. ARGV[1] .. '"}'
emit(KEYS[1], KEYS[5], seq, event, ARGV[5], ARGV[8], ARGV[6])
return {'ok', seq}
