-- KEYS: meta, posts, unpinned, pinned, events, blogs_updated
-- ARGV: expected_fields, expected_status, new_fields, new_status, now, now_ms, history_max, channel,
--       blog_json, blog_prefix (the new blog object up to and including created_at, without the closing brace),
--       history_bytes
-- Compare-and-set on the fields read by the caller, so concurrent edits never overwrite each other.
if redis.call('EXISTS', KEYS[1]) == 0 then return {'unknown_blog'} end
local fields = redis.call('HMGET', KEYS[1], 'fields', 'status')
if fields[1] ~= ARGV[1] or fields[2] ~= ARGV[2] then return {'retry'} end
redis.call('HSET', KEYS[1], 'fields', ARGV[3], 'status', ARGV[4], 'updated_at', ARGV[5], 'updated_ms', ARGV[6])
local count = redis.call('HGET', KEYS[1], 'count')
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
local epoch = redis.call('HGET', KEYS[1], 'epoch')
local blog = ARGV[10] .. ',"updated_at":"' .. ARGV[5] .. '","post_count":' .. count .. ',"seq":' .. seq ..
             ',"epoch":"' .. epoch .. '"}'
local event = '{"type":"blog.updated","blog":' .. blog .. ',"seq":' .. seq .. ',"post_count":' .. count ..
              ',"updated_at":"' .. ARGV[5] .. '"}'
emit(KEYS[1], KEYS[5], seq, event, ARGV[7], ARGV[11], ARGV[8])
return {'ok', seq, epoch, count}
