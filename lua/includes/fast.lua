-- The common call of lua/queue.lua, without the general machinery (inlined where a script says
-- `--- @include "fast"`): a sliding window without pacing, nothing waiting, no pause, the keys'
-- TTL not due to move, the window not due to slide past its base, and commands that are only
-- acquires that fit at once and settles of admitted records. It reads what the general path
-- reads, in the same order, and writes what it would write. Anything else, found before a
-- single write, hands the call to the general path together with what was read.

-- Positions in the state hash's values as capacity_fields(PACE_FIELDS, window_own(n)) lays them
-- out: 'p' 1, 'f' 2, 'fa' 3, 'exp' 5, 'wn' 14, then the pacing fields, then the window's own.
local OWN_AT = #COMMON_FIELDS + #PACE_FIELDS

-- Returns the reply, or nil and what was read for the general path: the state hash's values,
-- whether the records were trimmed, and the ops named with their stored values (nil when not
-- read).
local function fast_call(state_key, records, expiry, now, W, B, configured, horizon, lease, count)
  local n = bucket_of(now, W, B)
  local oldest = n - B
  local v = redis.call('HMGET', state_key, unpack(capacity_fields(PACE_FIELDS, window_own(n))))
  local base = tonumber(v[OWN_AT + 1])
  if count == 0 or not base or base < oldest or (tonumber(v[14]) or 0) > 0 or (tonumber(v[1]) or 0) > now
    or (tonumber(v[5]) or 0) < now + W + horizon + lease then
    return nil, v
  end

  local ops = {}
  local seen = {}
  local at = 17
  for x = 1, count do
    local kind, op = ARGV[at], ARGV[at + 1]
    if (kind ~= 'A' and kind ~= 'S') or seen[op] then
      return nil, v
    end
    seen[op] = true
    ops[x] = op
    at = at + (kind == 'A' and 9 or 7)
  end
  trim_records(records, expiry, now)
  local stored = redis.call('HMGET', records, unpack(ops))

  local last = tonumber(v[OWN_AT + 2]) or (oldest - 1)
  local sums = { tonumber(v[OWN_AT + 3]) or 0, tonumber(v[OWN_AT + 4]) or 0, tonumber(v[OWN_AT + 5]) or 0,
    tonumber(v[OWN_AT + 6]) or 0 }
  local limit = scale_limits(configured, limit_factor(v[2], v[3], now, W))
  local buckets = bucket_store(state_key)
  buckets.seed(chunk_of(n), v[OWN_AT + 7])
  local dirty = false
  local out = { fmt(now), '0', '', '0' }
  local writes, scores = {}, {}
  local admitted_at = fmt(now)
  local admitted_expiry = now + W + horizon
  local tombstone_expiry = now + horizon

  at = 17
  for x = 1, count do
    local op = ops[x]
    if ARGV[at] == 'A' then
      local t, i, o, r = tonumber(ARGV[at + 3]), tonumber(ARGV[at + 4]), tonumber(ARGV[at + 5]), tonumber(ARGV[at + 6])
      local gave_up = tonumber(ARGV[at + 8])
      if stored[x] or (gave_up >= 0 and now > gave_up)
        or (limit[1] > 0 and sums[1] + t > limit[1]) or (limit[2] > 0 and sums[2] + i > limit[2])
        or (limit[3] > 0 and sums[3] + o > limit[3]) or (limit[4] > 0 and sums[4] + r > limit[4]) then
        return nil, v, ops, stored
      end
      buckets.add(n, t, i, o, r)
      sums[1], sums[2], sums[3], sums[4] = sums[1] + t, sums[2] + i, sums[3] + o, sums[4] + r
      if n > last then
        last = n
      end
      dirty = true
      writes[#writes + 1] = op
      writes[#writes + 1] = 'a|' .. ARGV[at + 2] .. '|' .. fmt(t) .. '|' .. fmt(i) .. '|' .. fmt(o) .. '|' .. fmt(r) .. '|'
        .. admitted_at .. '|' .. fmt(n) .. '|-1|-1|-1|-1'
      scores[#scores + 1] = admitted_expiry
      scores[#scores + 1] = op
      out[#out + 1] = 'admitted'
      out[#out + 1] = admitted_at
      out[#out + 1] = '0'
      out[#out + 1] = '0'
      at = at + 9
    else
      local rec = stored[x] and parse_record(stored[x])
      if not rec or rec.kind ~= 'a' then
        return nil, v, ops, stored
      end
      local mode, c = ARGV[at + 2], rec.cost
      local status, applied = 'ok', { 0, 0, 0, 0 }
      if mode ~= 'keep' then
        if rec.j < oldest then
          status = 'expired'
        else
          local delta = { -c[1], -c[2], -c[3], -c[4] }
          if mode == 'adjust' then
            local refunds = ARGV[at + 3] == '1'
            for d = 1, 3 do
              local target = tonumber(ARGV[at + 3 + d])
              if not refunds and target < c[d] then
                target = c[d]
              end
              delta[d] = target - c[d]
            end
            delta[4] = 0
          end
          local b = buckets.get(rec.j) or { 0, 0, 0, 0 }
          for d = 1, 4 do
            applied[d] = math.max(0, b[d] + delta[d]) - b[d]
            sums[d] = sums[d] + applied[d]
          end
          buckets.set(rec.j, b[1] + applied[1], b[2] + applied[2], b[3] + applied[3], b[4] + applied[4])
          dirty = true
        end
      end
      writes[#writes + 1] = op
      writes[#writes + 1] = mode == 'release' and 'e|r' or 'e|s'
      scores[#scores + 1] = tombstone_expiry
      scores[#scores + 1] = op
      out[#out + 1] = status
      for d = 1, 4 do
        out[#out + 1] = fmt(applied[d])
      end
      for d = 1, 4 do
        out[#out + 1] = fmt(c[d])
      end
      at = at + 7
    end
  end

  local fields = {}
  if dirty then
    fields = { 'base', fmt(base), 'last', fmt(last), 'st', fmt(sums[1]), 'si', fmt(sums[2]), 'so', fmt(sums[3]), 'sr',
      fmt(sums[4]) }
  end
  write_window(state_key, buckets, fields)
  local exp = v[5]
  redis.call('HSET', records, unpack(writes))
  redis.call('ZADD', expiry, unpack(scores))
  redis.call('PEXPIREAT', records, exp)
  redis.call('PEXPIREAT', expiry, exp)
  return out
end
