-- KEYS: meta, posts, unpinned, pinned, events
-- ARGV: fields_json, status, updated_at, updated_ms, epoch, [post_id, post_json, ms, pinned]...
-- Creates the blog (seq 0, a fresh epoch) with the given posts, unless it exists. Returns 1 or 0.
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5])
local count = 0
for i = 6, #ARGV, 4 do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  if ARGV[i + 3] == '1' then
    redis.call('ZADD', KEYS[4], ARGV[i + 2], ARGV[i])
  else
    redis.call('ZADD', KEYS[3], ARGV[i + 2], ARGV[i])
  end
  count = count + 1
end
redis.call('HSET', KEYS[1], 'fields', ARGV[1], 'status', ARGV[2], 'updated_at', ARGV[3], 'updated_ms', ARGV[4],
           'seq', 0, 'count', count, 'epoch', ARGV[5])
return 1
