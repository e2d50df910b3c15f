-- The sliding window's capacity in the live queue (inlined where a script says
-- `--- @include "window"`). Every admission is charged to the bucket of its moment, so the
-- running sums are exactly the window ending now: no bucket after the current one is ever
-- charged. Window hash fields: 'base' (lowest bucket still counted), 'last' (highest bucket
-- charged), 'st' 'si' 'so' 'sr' (running sums), the bucket chunks (see common), and the fields
-- of capacity.lua (pacing bucket 'q*').

local function window_capacity(window, now, W, B, pace_ms, configured)
  local n = bucket_of(now, W, B)
  local oldest = n - B
  local us = now * 1000
  local paced = pace_ms > 0
  local own = { 'base', 'last', 'st', 'si', 'so', 'sr', fmt(chunk_of(n)) }
  local self = capacity_base(window, now, W, configured, { 'qt', 'qi', 'qo', 'qr' }, pace_ms * 1000, own)
  local v, at = self.values, self.own_at
  local base = tonumber(v[at + 1]) or oldest
  local last = tonumber(v[at + 2]) or (oldest - 1)
  local sums = { tonumber(v[at + 3]) or 0, tonumber(v[at + 4]) or 0, tonumber(v[at + 5]) or 0, tonumber(v[at + 6]) or 0 }
  local buckets = bucket_store(window)
  local dirty = false

  if base < oldest then
    base, sums = window_advance(window, base, last, sums, oldest)
    dirty = true
  end
  buckets.seed(chunk_of(n), v[at + 7])

  local function fits_sums(used, cost)
    local l = self.limit
    for d = 1, 4 do
      if l[d] > 0 and used[d] + cost[d] > l[d] then
        return false
      end
    end
    return true
  end

  function self.fits(cost)
    if self.pause > now or not fits_sums(sums, cost) then
      return false
    end
    return not paced or self.line.start(cost, us) <= us
  end

  function self.admit(cost)
    buckets.add(n, cost[1], cost[2], cost[3], cost[4])
    for d = 1, 4 do
      sums[d] = sums[d] + cost[d]
    end
    last = math.max(last, n)
    dirty = true
    if paced then
      return n, self.line.charge(cost, us)
    end
    return n, { -1, -1, -1, -1 }
  end

  -- Charges (delta > 0) or gives back (delta < 0) a change of an admitted reservation, in its
  -- own bucket; nothing once that bucket has left the window.
  function self.move(rec, delta)
    local applied = { 0, 0, 0, 0 }
    if rec.j < oldest then
      return 'expired', applied
    end
    local b = buckets.get(rec.j) or { 0, 0, 0, 0 }
    for d = 1, 4 do
      applied[d] = math.max(0, b[d] + delta[d]) - b[d]
      sums[d] = sums[d] + applied[d]
    end
    buckets.set(rec.j, b[1] + applied[1], b[2] + applied[2], b[3] + applied[3], b[4] + applied[4])
    if paced then
      self.line.move(rec.ends, applied, us)
    end
    dirty = true
    return 'ok', applied
  end

  -- When `cost` could fit from time alone: the window slides (dropping its oldest bucket per
  -- step) until it has room, no earlier than the pause and the pacing bucket allow.
  function self.next_fit(cost)
    local used = { sums[1], sums[2], sums[3], sums[4] }
    local step = 0
    if not fits_sums(used, cost) then
      buckets.load(oldest, n)
    end
    while step <= B and not fits_sums(used, cost) do
      local out = buckets.get(oldest + step)
      if out then
        for d = 1, 4 do
          used[d] = used[d] - out[d]
        end
      end
      step = step + 1
    end
    local t = now
    if step > 0 then
      t = bucket_start(n + step, W, B)
    end
    t = math.max(t, self.pause)
    if paced then
      t = math.max(t, math.ceil(self.line.start(cost, us) / 1000))
    end
    return t
  end

  function self.estimate_for(cost)
    return self.estimate(cost, sums)
  end

  function self.used()
    return sums
  end

  function self.write()
    local fields = {}
    if dirty then
      for _, kv in ipairs({ 'base', fmt(base), 'last', fmt(last), 'st', fmt(sums[1]), 'si', fmt(sums[2]), 'so', fmt(sums[3]), 'sr', fmt(sums[4]) }) do
        fields[#fields + 1] = kv
      end
    end
    self.common_fields(fields, paced)
    self.write_exp(fields)
    write_window(window, buckets, fields)
    if self.moved_ttl() then
      redis.call('PEXPIREAT', window, self.exp)
    end
  end

  return self
end
