-- renew.lua: extend the leases of an open request (reservation leases and parallel slots).
-- Units: ms since the Unix epoch (caller's clock).
-- KEYS: lease zsets and slot zsets, then budget counter hashes.
-- ARGV: now_ms, lease_ms, request_id, and optionally ttl_ms, n_zsets: the zsets that hold a
--   renewed lease and the counter hashes that exist then live at least ttl_ms (GT: an expiry
--   is never shortened, and a key kept without one is left so).
-- Returns the number of leases renewed (a lease already purged is not revived).
local expiry = int(tonumber(ARGV[1]) + tonumber(ARGV[2]))
local ttl = tonumber(ARGV[4] or 0)
local nz = tonumber(ARGV[5] or #KEYS)
local renewed = 0
for i = 1, nz do
  local key = KEYS[i]
  if redis.call('ZSCORE', key, ARGV[3]) then
    redis.call('ZADD', key, 'XX', expiry, ARGV[3])
    renewed = renewed + 1
    if ttl > 0 then redis.call('PEXPIRE', key, ttl, 'GT') end
  end
end
for i = nz + 1, #KEYS do
  redis.call('PEXPIRE', KEYS[i], ttl, 'GT')
end
return renewed
