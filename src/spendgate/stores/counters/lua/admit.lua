-- admit.lua: check every budget window and rate limit of one request and, if all pass, take
-- them all; if anything fails, take nothing. Mirrors MemoryStorage.admit_nowait.
-- Units: money in integer nano-USD; time in integer ms since the Unix epoch, from the
-- caller's clock (ARGV), never Redis TIME; ttl_ms are relative key expiries, and a budget
-- counter's, its lease zset's and a slot zset's are never shortened (see expire, extend).
-- KEYS: per budget: counter hash, lease zset; then per rate limit: its hash or slot zset.
-- ARGV (after unpack_argv; sent as request_id and a JSON array of the rest, request_id's
--   place holding '-'): now_ms, lease_ms, request_id, strict (1/0), n_budgets, n_rates, then
--   per budget (7): max_nanos (-1 unlimited), estimate_nanos, spend field, bucket_ms
--     (0 = calendar period), oldest_bucket, ttl_ms (0 = no expiry), require_seed (1/0);
--   per rate (5): kind (0 requests, 1 parallel, 2 tokens), limit, amount, window_ms, ttl_ms.
-- Returns {status (0 ok, 1 budget, 2 rate, 3 cold), per budget: spend, reserved, oldest
--   bucket; per rate: previous, current, elapsed_ms (parallel: 0, slots, 0);
--   then the 0-based indices of cold budgets}. Values are as seen before this request.
local ARGV = unpack_argv(3)
local now = tonumber(ARGV[1])
local lease = tonumber(ARGV[2])
local rid = ARGV[3]
local strict = ARGV[4] == 1
local nb = tonumber(ARGV[5])
local nr = tonumber(ARGV[6])
local out = {0}
local cold = {}
local existed = {}
local failed = false

for i = 1, nb do
  local key, lkey = KEYS[2 * i - 1], KEYS[2 * i]
  local a = 6 + (i - 1) * 7
  local max, est = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  local bucket, oldest = tonumber(ARGV[a + 4]), tonumber(ARGV[a + 5])
  local spend, reserved, first = 0, 0, -1
  existed[i] = redis.call('EXISTS', key) == 1
  if not existed[i] then
    if ARGV[a + 7] == 1 then table.insert(cold, i - 1) end
  else
    local gone = redis.call('ZRANGEBYSCORE', lkey, '-inf', int(now))
    for _, m in ipairs(gone) do
      local amount = num(redis.call('HGET', key, 'q' .. m))
      redis.call('HDEL', key, 'q' .. m)
      redis.call('HINCRBY', key, 'r', int(-amount))
    end
    if #gone > 0 then redis.call('ZREMRANGEBYSCORE', lkey, '-inf', int(now)) end
    reserved = num(redis.call('HGET', key, 'r'))
    spend, first = spend_of(key, bucket, oldest, now)
  end
  table.insert(out, spend)
  table.insert(out, reserved)
  table.insert(out, first)
  if max >= 0 then
    if strict then
      if spend + reserved + est > max then failed = true end
    elseif spend + reserved >= max then
      failed = true
    end
  end
end
if #cold > 0 then
  out[1] = 3
  for _, i in ipairs(cold) do table.insert(out, i) end
  return out
end

local rate_failed = false
local states = {}
for j = 1, nr do
  local key = KEYS[2 * nb + j]
  local a = 6 + nb * 7 + (j - 1) * 5
  local kind, limit, amount = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  if kind == 1 then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', int(now))
    local n = redis.call('ZCARD', key)
    table.insert(out, 0)
    table.insert(out, n)
    table.insert(out, 0)
    if n + 1 > limit then rate_failed = true end
  else
    local window = tonumber(ARGV[a + 4])
    local previous, current, elapsed, idx = window_state(key, now, window)
    states[j] = {previous, current, idx}
    table.insert(out, previous)
    table.insert(out, current)
    table.insert(out, elapsed)
    local ticks = math.floor(elapsed * TICKS / window)
    if previous * (TICKS - ticks) + (current + amount) * TICKS > limit * TICKS then rate_failed = true end
  end
end
if failed then out[1] = 1 return out end
if rate_failed then out[1] = 2 return out end

local expiry = int(now + lease)
for i = 1, nb do
  local key, lkey = KEYS[2 * i - 1], KEYS[2 * i]
  local a = 6 + (i - 1) * 7
  local ttl = tonumber(ARGV[a + 6])
  if strict then
    local est = tonumber(ARGV[a + 2])
    local old = num(redis.call('HGET', key, 'q' .. rid))
    redis.call('HSET', key, 'q' .. rid, int(est))
    redis.call('HINCRBY', key, 'r', int(est - old))
    redis.call('ZADD', lkey, expiry, rid)
    if ttl > 0 then extend(lkey, ttl) end
  else
    redis.call('HSETNX', key, 'r', 0)
  end
  if ttl > 0 then expire(key, ttl, existed[i]) end
end
for j = 1, nr do
  local key = KEYS[2 * nb + j]
  local a = 6 + nb * 7 + (j - 1) * 5
  local kind, amount, ttl = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 3]), tonumber(ARGV[a + 5])
  if kind == 1 then
    redis.call('ZADD', key, expiry, rid)
    if ttl > 0 then extend(key, ttl) end
  else
    local s = states[j]
    redis.call('HSET', key, 'w', int(s[3]), 'p', int(s[1]), 'c', int(s[2] + amount))
    if ttl > 0 then redis.call('PEXPIRE', key, ttl) end
  end
end
return out
