-- read.lua: the state admit.lua would see, changing nothing (for explain and headers).
-- Units: nano-USD, ms since the Unix epoch (caller's clock).
-- KEYS: per budget: counter hash, lease zset; then per rate limit: its key.
-- ARGV: now_ms, n_budgets, n_rates, per budget (2): bucket_ms, oldest_bucket; per rate (2):
--   kind (0 requests, 1 parallel, 2 tokens), window_ms.
-- Returns per budget: exists (1/0), spend, reserved (expired leases left out), oldest bucket;
--   per rate: previous, current, elapsed_ms (parallel: 0, live slots, 0).
local now = tonumber(ARGV[1])
local nb, nr = tonumber(ARGV[2]), tonumber(ARGV[3])
local out = {}
for i = 1, nb do
  local key, lkey = KEYS[2 * i - 1], KEYS[2 * i]
  local a = 3 + (i - 1) * 2
  if redis.call('EXISTS', key) == 0 then
    for _, v in ipairs({0, 0, 0, -1}) do table.insert(out, v) end
  else
    local reserved = num(redis.call('HGET', key, 'r'))
    for _, m in ipairs(redis.call('ZRANGEBYSCORE', lkey, '-inf', int(now))) do
      reserved = reserved - num(redis.call('HGET', key, 'q' .. m))
    end
    local spend, first = spend_of(key, tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), now)
    for _, v in ipairs({1, spend, reserved, first}) do table.insert(out, v) end
  end
end
for j = 1, nr do
  local key = KEYS[2 * nb + j]
  local a = 3 + nb * 2 + (j - 1) * 2
  if tonumber(ARGV[a + 1]) == 1 then
    for _, v in ipairs({0, live_slots(key, now), 0}) do table.insert(out, v) end
  else
    local previous, current, elapsed = window_state(key, now, tonumber(ARGV[a + 2]))
    for _, v in ipairs({previous, current, elapsed}) do table.insert(out, v) end
  end
end
return out
