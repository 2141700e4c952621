-- Shared by every write script (server/engine/redis.py prepends it).
-- KEYS[1] is always the blog's meta hash and KEYS[5] (when present) its event stream.
-- emit() appends the event to the bounded history and publishes it, in the same atomic step
-- that assigned its seq, so pub/sub order equals history order.
local function emit(meta, stream, seq, event, history_max, channel)
  local epoch = redis.call('HGET', meta, 'epoch')
  redis.call('XADD', stream, 'MAXLEN', '~', history_max, seq .. '-0', 'e', event)
  redis.call('PUBLISH', channel, epoch .. ' ' .. seq .. ' ' .. event)
end

local function event_head(kind, blog_json, seq, count, updated_at)
  return '{"type":"' .. kind .. '","blog":' .. blog_json .. ',"seq":' .. seq .. ',"post_count":' .. count ..
         ',"updated_at":"' .. updated_at .. '"'
end
