-- KEYS: meta, posts, unpinned, pinned, events
-- ARGV: new_epoch, channel
-- Compare-and-set keyed on the server's identity: unless this blog was already moved under the
-- identity of the server running the script, give it a new epoch (keeping seq, posts and history)
-- and tell every process through the blog's channel. Any number of nodes may run it for the same
-- change: the first one moves the blog, the others find it done, so all agree on one new epoch.
-- The notice "<new epoch> <seq> {}" carries no new seq: relays see the foreign epoch, close the
-- blog's readers (1013) and re-read the blog, after which the notice is at or below their position.
-- Returns {'moved', epoch}, {'kept', epoch}, {'unknown_blog'} or {'replica'}.
local identity, role = server_identity()
if role ~= 'master' then return {'replica'} end
if redis.call('EXISTS', KEYS[1]) == 0 then return {'unknown_blog'} end
local meta = redis.call('HMGET', KEYS[1], 'identity', 'epoch', 'seq')
if meta[1] == identity then return {'kept', meta[2]} end
redis.call('HSET', KEYS[1], 'epoch', ARGV[1], 'identity', identity)
redis.call('PUBLISH', ARGV[2], ARGV[1] .. ' ' .. meta[3] .. ' {}')
return {'moved', ARGV[1]}
