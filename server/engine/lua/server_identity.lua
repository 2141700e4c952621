-- Shared by identity.lua and rebase.lua (server/engine/redis.py prepends it).
-- The identity of the Redis server running the script: "<run_id>:<master_replid>", and its role.
-- run_id is new every time redis-server starts; master_replid is new when a replica is promoted
-- (and when a primary without replicas frees its backlog after repl-backlog-ttl). Data written
-- under one identity can only have lost its newest writes on the way to another.
local function server_identity()
  local run_id = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
  local replication = redis.call('INFO', 'replication')
  return run_id .. ':' .. string.match(replication, 'master_replid:(%x+)'), string.match(replication, 'role:(%a+)')
end
