-- KEYS: lp:identity (the identity every blog's epoch was last confirmed under)
-- Returns {identity, role, stamp or nil}: one round trip, all read on the same server.
local identity, role = server_identity()
return {identity, role, redis.call('GET', KEYS[1])}
