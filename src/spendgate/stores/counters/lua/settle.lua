-- settle.lua: settle (charge the real cost) or release (give back) one request, exactly once.
-- Mirrors MemoryStorage.settle_nowait. Units: nano-USD, ms since the Unix epoch (caller's clock).
-- KEYS: the request's state key, then per budget: counter hash, lease zset; then per rate
--   limit: its hash or slot zset.
-- ARGV (after unpack_argv; sent as request_id and a JSON array of the rest, request_id's
--   place holding '-'): now_ms, request_id, done_ttl_ms, settle (1 settle / 0 release), cost_nanos,
--   real_tokens, n_budgets, n_rates, then per budget (5): spend field, ttl_ms, require_seed,
--   bucket_ms (0 = calendar period), oldest_bucket;
--   per rate (3): kind (0 requests, 1 parallel, 2 tokens), reserved amount, window index.
-- State key: '1' settled, '2' released. A settle after a release still charges the cost.
-- Returns 0 if it was already done; else a list: 1, then per budget its spend after this
-- settle (the period's, or the rolling window's sum), or -1 where nothing was charged.
local ARGV = unpack_argv(2)
local rid = ARGV[2]
local settle = ARGV[4] == 1
local cost = int(ARGV[5])
local real = tonumber(ARGV[6])
local nb, nr = tonumber(ARGV[7]), tonumber(ARGV[8])
local state = redis.call('GET', KEYS[1])
if state == '1' or (state and not settle) then return 0 end
local released = state == '2'
local out = {1}

for i = 1, nb do
  local key, lkey = KEYS[2 * i], KEYS[2 * i + 1]
  local a = 8 + (i - 1) * 5
  local ttl = tonumber(ARGV[a + 2])
  local apply = settle
  local existed = redis.call('EXISTS', key) == 1
  if not existed then
    if ARGV[a + 3] == 1 then apply = false end
  else
    local old = redis.call('HGET', key, 'q' .. rid)
    if old then
      redis.call('HDEL', key, 'q' .. rid)
      redis.call('HINCRBY', key, 'r', int(-tonumber(old)))
      redis.call('ZREM', lkey, rid)
    end
  end
  if apply then
    local after = redis.call('HINCRBY', key, ARGV[a + 1], cost)
    local bucket = tonumber(ARGV[a + 4])
    if bucket > 0 and tonumber(after) == tonumber(cost) then
      prune_buckets(key, tonumber(ARGV[a + 5]))
    end
    if ttl > 0 then expire(key, ttl, existed) end
    if bucket > 0 then after = spend_of(key, bucket, tonumber(ARGV[a + 5]), tonumber(ARGV[1])) end
    table.insert(out, after)
  else
    table.insert(out, -1)
  end
end
for j = 1, nr do
  local key = KEYS[2 * nb + 1 + j]
  local a = 8 + nb * 5 + (j - 1) * 3
  local kind, amount, idx = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  if kind == 1 then
    redis.call('ZREM', key, rid)
  elseif kind == 2 then
    local delta = -amount
    if settle then
      if released then delta = real else delta = real - amount end
    end
    local h = redis.call('HMGET', key, 'w', 'p', 'c')
    if h[1] and delta ~= 0 then
      local w = tonumber(h[1])
      if w == idx then
        redis.call('HSET', key, 'c', int(math.max(0, num(h[3]) + delta)))
      elseif w == idx + 1 then
        redis.call('HSET', key, 'p', int(math.max(0, num(h[2]) + delta)))
      end
    end
  end
end
local mark = '2'
if settle then mark = '1' end
redis.call('SET', KEYS[1], mark, 'PX', int(ARGV[3]))
return out
