-- seed.lua: set a cold budget counter from the ledger, only if it does not exist. It never
-- adds, so any number of instances seeding the same key at once leave the same value.
-- Units: nano-USD; ttl in ms (0 = no expiry).
-- KEYS: the counter hash. ARGV: ttl_ms, then field, value pairs.
-- Returns 1 if set, 0 if the key already existed.
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
for i = 2, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
local ttl = tonumber(ARGV[1])
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
return 1
