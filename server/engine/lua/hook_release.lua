-- KEYS: lease
-- ARGV: owner
-- Give the lease up if the caller holds it, so another process can take over at once.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
