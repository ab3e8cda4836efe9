-- renew.lua: extend the leases of an open request (reservation leases and parallel slots).
-- Units: ms since the Unix epoch (caller's clock).
-- KEYS: lease zsets and slot zsets. ARGV: now_ms, lease_ms, request_id.
-- Returns the number of leases renewed (a lease already purged is not revived).
local expiry = int(tonumber(ARGV[1]) + tonumber(ARGV[2]))
local renewed = 0
for _, key in ipairs(KEYS) do
  if redis.call('ZSCORE', key, ARGV[3]) then
    redis.call('ZADD', key, 'XX', expiry, ARGV[3])
    renewed = renewed + 1
  end
end
return renewed
