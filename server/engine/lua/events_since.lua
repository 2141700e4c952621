-- KEYS: meta, posts, unpinned, pinned, events
-- ARGV: since, epoch ('' = any), limit, max_bytes
-- Returns {'ok', epoch, top, event...} with the first events after since: at most limit of them, and no
-- more than max_bytes unless the first alone is larger; or {'gone'} when history no longer reaches back
-- to since+1 (or the epoch differs). Never a gap. The stream is read a few entries at a time, so a call
-- costs Redis about max_bytes of copying however long the history is.
if redis.call('EXISTS', KEYS[1]) == 0 then return {'unknown_blog'} end
local meta = redis.call('HMGET', KEYS[1], 'seq', 'epoch')
local top, epoch, since = tonumber(meta[1]), meta[2], tonumber(ARGV[1])
local limit, max_bytes = tonumber(ARGV[3]), tonumber(ARGV[4])
if (ARGV[2] ~= '' and ARGV[2] ~= epoch) or since > top or since < 0 then return {'gone'} end
local result = {'ok', epoch, top}
if since == top then return result end
local oldest = redis.call('XRANGE', KEYS[5], '-', '+', 'COUNT', 1)
if #oldest == 0 or tonumber(string.match(oldest[1][1], '^(%d+)')) > since + 1 then return {'gone'} end
local count, bytes, from = 0, 0, (since + 1) .. '-0'
while count < limit do
  local entries = redis.call('XRANGE', KEYS[5], from, '+', 'COUNT', math.min(8, limit - count))
  if #entries == 0 then return result end
  for _, entry in ipairs(entries) do
    local data = entry[2][2]
    bytes = bytes + #data
    if count > 0 and bytes > max_bytes then return result end
    result[#result + 1] = data
    count = count + 1
  end
  from = '(' .. entries[#entries][1]
end
return result
