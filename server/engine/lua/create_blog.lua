-- KEYS: meta, posts, unpinned, pinned, events, blogs (set of every id), blog_ids (the same, a zset by id),
--       blogs_updated (the same, scored by updated_ms)
-- ARGV: fields_json, status, updated_at, updated_ms, epoch, blog_id, max_blogs (0 = no limit),
--       [post_id, post_json, ms, pinned]...
-- Creates the blog (seq 0, a fresh epoch) with the given posts and indexes it, unless it exists.
-- Returns {'ok'}, {'exists'} or {'quota', limit} when max_blogs blogs exist already.
if redis.call('EXISTS', KEYS[1]) == 1 then return {'exists'} end
local max_blogs = tonumber(ARGV[7])
if max_blogs > 0 and redis.call('SCARD', KEYS[6]) >= max_blogs and redis.call('SISMEMBER', KEYS[6], ARGV[6]) == 0 then
  return {'quota', max_blogs}
end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5])
local count = 0
for i = 8, #ARGV, 4 do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  if ARGV[i + 3] == '1' then
    redis.call('ZADD', KEYS[4], ARGV[i + 2], ARGV[i])
  else
    redis.call('ZADD', KEYS[3], ARGV[i + 2], ARGV[i])
  end
  count = count + 1
end
redis.call('HSET', KEYS[1], 'fields', ARGV[1], 'status', ARGV[2], 'updated_at', ARGV[3], 'updated_ms', ARGV[4],
           'seq', 0, 'count', count, 'epoch', ARGV[5], 'history_bytes', 0)
redis.call('SADD', KEYS[6], ARGV[6])
redis.call('ZADD', KEYS[7], 0, ARGV[6])
redis.call('ZADD', KEYS[8], ARGV[4], ARGV[6])
return {'ok'}
