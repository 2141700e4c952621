-- KEYS: meta, posts, unpinned, pinned
-- ARGV: order ('newest'|'oldest'), limit, cursor_section (-1 none, 0 pinned, 1 unpinned), cursor_ms, cursor_id
-- One page in display order (pinned first, then by time, ties by id), read together with the blog's
-- meta so a snapshot is current at exactly one seq. Returns {meta_flat, has_more, post_json...}.
-- The cursor may be forged: finding where it sits costs two ZCOUNTs and a binary search over the posts
-- that share its time (O(log^2 n) however many do), never a scan from the first of them.
if redis.call('EXISTS', KEYS[1]) == 0 then return {'unknown_blog'} end
local newest = ARGV[1] == 'newest'
local limit = tonumber(ARGV[2])
local section, cursor_ms, cursor_id = tonumber(ARGV[3]), ARGV[4], ARGV[5]
-- Display order is ZREVRANGE order for newest (time and id descending), ZRANGE order for oldest.
local range = newest and 'ZREVRANGE' or 'ZRANGE'

-- The rank (in display order) of the first member of *key* after (ms, id).
local function start_after(key, ms, id)
  local ahead, ties
  if newest then
    ahead = redis.call('ZCOUNT', key, '(' .. ms, '+inf')
  else
    ahead = redis.call('ZCOUNT', key, '-inf', '(' .. ms)
  end
  ties = redis.call('ZCOUNT', key, ms, ms)
  -- Among the ties (ranks ahead .. ahead+ties-1) ids run descending (newest) or ascending (oldest):
  -- find the first one past *id*.
  local low, high = ahead, ahead + ties
  while low < high do
    local mid = math.floor((low + high) / 2)
    local member = redis.call(range, key, mid, mid)[1]
    local past = (newest and member < id) or ((not newest) and member > id)
    if past then high = mid else low = mid + 1 end
  end
  return low
end

-- ids of zset *key* in display order after (ms, id) when given; at most n.
local function after(key, ms, id, n)
  local start = 0
  if ms ~= nil then start = start_after(key, ms, id) end
  return redis.call(range, key, start, start + n - 1)
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
