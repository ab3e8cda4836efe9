-- common.lua: helpers prepended to every spendgate script (not a script by itself).
-- Numbers are Lua doubles: exact for integers below 2^53 (nano-USD: about $9M per counter).
local TICKS = 1000

-- admit and settle get their numbers (and field names) as one JSON array in ARGV[2] and the
-- request id in ARGV[1]: one argument instead of one per number, because each argument
-- costs the client a few µs to encode, and cjson decodes the array faster than Redis hands
-- over separate arguments. This returns the documented ARGV layout, with the request id
-- at position rid_at. Its values are Lua numbers, not strings (flags compare with 1).
local function unpack_argv(rid_at)
  local argv = cjson.decode(ARGV[2])
  argv[rid_at] = ARGV[1]
  return argv
end
local function int(x) return string.format('%d', x) end

-- Key expiries are extended, never shortened: a reservation with a long lease (a batch's,
-- 24 h) gives its keys a long life that the next short request must not cut. `existed`:
-- the key existed before this script touched it (a new key has no expiry yet, and GT
-- treats "no expiry" as infinite). A key kept without expiry is left so, as GT does.
local function expire(key, ttl, existed)
  if existed then
    redis.call('PEXPIRE', key, ttl, 'GT')
  else
    redis.call('PEXPIRE', key, ttl)
  end
end

-- The same for a key whose existence is unknown (a lease or slot zset: Redis deletes an
-- emptied zset): GT, else NX (the key is new and has no expiry yet).
local function extend(key, ttl)
  if redis.call('PEXPIRE', key, ttl, 'GT') == 0 then redis.call('PEXPIRE', key, ttl, 'NX') end
end
local function num(x) if x then return tonumber(x) end return 0 end

-- Spend of a budget counter: field 's' (calendar period), or the sum of fields 'b<i>' for
-- i = oldest .. now // bucket (rolling window: scan the fields when there are fewer fields
-- than buckets, else read the buckets by name). Returns spend, oldest non-empty bucket
-- (-1: none).
local function spend_of(key, bucket, oldest, now)
  if bucket == 0 then return num(redis.call('HGET', key, 's')), -1 end
  local last = math.floor(now / bucket)
  local spend, first = 0, -1
  if redis.call('HLEN', key) < last - oldest + 1 then
    local all = redis.call('HGETALL', key)
    for i = 1, #all, 2 do
      local idx = string.match(all[i], '^b(%d+)$')
      local x = tonumber(all[i + 1])
      if idx and x ~= 0 then
        idx = tonumber(idx)
        if idx >= oldest and idx <= last then
          spend = spend + x
          if first < 0 or idx < first then first = idx end
        end
      end
    end
    return spend, first
  end
  local names = {}
  for i = oldest, last do table.insert(names, 'b' .. int(i)) end
  local values = redis.call('HMGET', key, unpack(names))
  for j, v in ipairs(values) do
    if v then
      local x = tonumber(v)
      if x ~= 0 then
        spend = spend + x
        if first < 0 then first = oldest + j - 1 end
      end
    end
  end
  return spend, first
end

-- Delete the buckets older than oldest (run when a new bucket is started).
local function prune_buckets(key, oldest)
  for _, name in ipairs(redis.call('HKEYS', key)) do
    local idx = string.match(name, '^b(%d+)$')
    if idx and tonumber(idx) < oldest then redis.call('HDEL', key, name) end
  end
end

-- A sliding-window counter rotated to now: previous, current, elapsed ms, window index.
local function window_state(key, now, window)
  local idx = math.floor(now / window)
  local previous, current = 0, 0
  local h = redis.call('HMGET', key, 'w', 'p', 'c')
  if h[1] then
    local w = tonumber(h[1])
    if w == idx then
      previous, current = num(h[2]), num(h[3])
    elseif w == idx - 1 then
      previous = num(h[3])
    end
  end
  return previous, current, now - idx * window, idx
end

-- Live parallel slots (lease expiry > now).
local function live_slots(key, now)
  return redis.call('ZCOUNT', key, '(' .. int(now), '+inf')
end
