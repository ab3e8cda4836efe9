-- set_spend.lua: set an existing budget counter's settled spend from the ledger (an
-- administrator set a key's spend), keeping its open reservations ('r', 'q<id>', the lease
-- zset) and its expiry. Mirrors MemoryStorage.set_spend. It never creates the key: a counter
-- that does not exist is seeded from the ledger when next used.
-- Units: nano-USD.
-- KEYS: the counter hash. ARGV: field ('s'; or a bucket 'b<i>' of a rolling window, which
-- then holds the whole spend: every other bucket is dropped), value.
-- Returns 1 if set, 0 if the key does not exist.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[1] ~= 's' then
  local names = redis.call('HKEYS', KEYS[1])
  for _, name in ipairs(names) do
    if string.match(name, '^b%d+$') then redis.call('HDEL', KEYS[1], name) end
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
