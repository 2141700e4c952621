-- KEYS: meta, posts, unpinned, pinned, events
-- ARGV: since, epoch ('' = any)
-- Returns {'ok', epoch, top, event...} with every event after since, or {'gone'} when history no
-- longer holds them all (or the epoch differs): never a partial list.
if redis.call('EXISTS', KEYS[1]) == 0 then return {'unknown_blog'} end
local meta = redis.call('HMGET', KEYS[1], 'seq', 'epoch')
local top, epoch, since = tonumber(meta[1]), meta[2], tonumber(ARGV[1])
if (ARGV[2] ~= '' and ARGV[2] ~= epoch) or since > top or since < 0 then return {'gone'} end
local result = {'ok', epoch, top}
if since == top then return result end
local oldest = redis.call('XRANGE', KEYS[5], '-', '+', 'COUNT', 1)
if #oldest == 0 or tonumber(string.match(oldest[1][1], '^(%d+)')) > since + 1 then return {'gone'} end
for _, entry in ipairs(redis.call('XRANGE', KEYS[5], (since + 1) .. '-0', '+')) do
  result[#result + 1] = entry[2][2]
end
return result
