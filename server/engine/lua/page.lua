-- KEYS: meta, posts, unpinned, pinned
-- ARGV: order ('newest'|'oldest'), limit, cursor_section (-1 none, 0 pinned, 1 unpinned), cursor_ms, cursor_id
-- One page in display order (pinned first, then by time, ties by id), read together with the blog's
-- meta so a snapshot is current at exactly one seq. Returns {meta_flat, has_more, post_json...}.
if redis.call('EXISTS', KEYS[1]) == 0 then return {'unknown_blog'} end
local newest = ARGV[1] == 'newest'
local limit = tonumber(ARGV[2])
local section, cursor_ms, cursor_id = tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]

-- ids of zset *key* in display order after (ms, id) when given; at most n.
local function after(key, ms, id, n)
  local out, offset = {}, 0
  while #out < n do
    local batch
    if newest then
      batch = redis.call('ZREVRANGEBYSCORE', key, ms and ms or '+inf', '-inf', 'WITHSCORES', 'LIMIT', offset, n)
    else
      batch = redis.call('ZRANGEBYSCORE', key, ms and ms or '-inf', '+inf', 'WITHSCORES', 'LIMIT', offset, n)
    end
    if #batch == 0 then break end
    for i = 1, #batch, 2 do
      local member, score = batch[i], tonumber(batch[i + 1])
      -- Equal scores come back in byte order of the id (reversed for newest): the tie-break we want.
      local skip = ms ~= nil and score == ms and ((newest and member >= id) or ((not newest) and member <= id))
      if not skip and #out < n then out[#out + 1] = member end
    end
    offset = offset + #batch / 2
  end
  return out
end

local want = limit + 1
local ids = {}
if section <= 0 then
  local ms, id = nil, nil
  if section == 0 then ms, id = cursor_ms, cursor_id end
  for _, member in ipairs(after(KEYS[4], ms, id, want)) do ids[#ids + 1] = member end
end
if #ids < want then
  local ms, id = nil, nil
  if section == 1 then ms, id = cursor_ms, cursor_id end
  for _, member in ipairs(after(KEYS[3], ms, id, want - #ids)) do ids[#ids + 1] = member end
end
local more = 0
if #ids > limit then
  more = 1
  ids[#ids] = nil
end
local result = {redis.call('HGETALL', KEYS[1]), more}
for _, member in ipairs(ids) do result[#result + 1] = redis.call('HGET', KEYS[2], member) end
return result
