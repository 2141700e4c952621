-- Shared by every write script (server/engine/redis.py prepends it).
-- KEYS[1] is always the blog's meta hash, KEYS[5] (when present) its event stream, and the last key
-- lp:blogs-updated (every blog id scored by its updated_ms, for listing the most recent first).
-- emit() appends the event to the bounded history and publishes it, in the same atomic step
-- that assigned its seq, so pub/sub order equals history order.

-- Bytes of event JSON the stream holds, kept in meta; counted once for a blog written before the field.
local function history_bytes(meta, stream)
  local bytes = redis.call('HGET', meta, 'history_bytes')
  if bytes then return tonumber(bytes) end
  local total = 0
  for _, entry in ipairs(redis.call('XRANGE', stream, '-', '+')) do total = total + #entry[2][2] end
  redis.call('HSET', meta, 'history_bytes', total)
  return total
end

-- Drop the oldest events while the stream holds more than max_events events or max_bytes bytes,
-- always keeping the newest. Reads the oldest entries a few at a time: in the steady state one write
-- drops about one event, so this reads one entry.
local function trim(meta, stream, max_events, max_bytes)
  local length, bytes = redis.call('XLEN', stream), history_bytes(meta, stream)
  local dropped, freed, last, batch = 0, 0, nil, 1
  while length - dropped > 1 and (length - dropped > max_events or bytes - freed > max_bytes) do
    local entries = redis.call('XRANGE', stream, last and ('(' .. last) or '-', '+', 'COUNT', batch)
    if #entries == 0 then break end
    for _, entry in ipairs(entries) do
      if length - dropped <= 1 or (length - dropped <= max_events and bytes - freed <= max_bytes) then break end
      dropped, freed, last = dropped + 1, freed + #entry[2][2], entry[1]
    end
    batch = batch * 2
  end
  if last then
    local next_seq = tonumber(string.match(last, '^(%d+)')) + 1
    redis.call('XTRIM', stream, 'MINID', next_seq .. '-0')
    redis.call('HINCRBY', meta, 'history_bytes', -freed)
  end
end

local function emit(meta, stream, seq, event, max_events, max_bytes, channel)
  local epoch = redis.call('HGET', meta, 'epoch')
  -- meta is "lp:{<blog>}:meta"
  redis.call('ZADD', KEYS[#KEYS], redis.call('HGET', meta, 'updated_ms'), string.sub(meta, 5, -7))
  history_bytes(meta, stream)  -- before the XADD: a blog from before the field counts its old events once
  redis.call('XADD', stream, seq .. '-0', 'e', event)
  redis.call('HINCRBY', meta, 'history_bytes', #event)
  trim(meta, stream, tonumber(max_events), tonumber(max_bytes))
  redis.call('PUBLISH', channel, epoch .. ' ' .. seq .. ' ' .. event)
end

local function event_head(kind, blog_json, seq, count, updated_at)
  return '{"type":"' .. kind .. '","blog":' .. blog_json .. ',"seq":' .. seq .. ',"post_count":' .. count ..
         ',"updated_at":"' .. updated_at .. '"'
end
