-- What the sliding window and the token bucket share in the live queue (inlined where a script
-- says `--- @include "capacity"`): the back-off pause and limit factor, learned limits, the sums
-- of what waits, the arrival line (token bucket, or the window's pacing bucket) with its refund
-- shift, and the state hash's TTL.
--
-- State hash fields besides each algorithm's own: 'p' 'f' 'fa' 'fc' 'fg' (see common), 'exp',
-- arrival times (token bucket 't' 'i' 'o' 'r'; pacing 'qt' 'qi' 'qo' 'qr'), refund shift 'ht'
-- 'hi' 'ho' 'hr', waiting sums 'wt' 'wi' 'wo' 'wr' and count 'wn' (with nothing waiting, the
-- queue is not read at all), and the largest live instance count a heartbeat published 'ni'
-- with when it stops counting 'nu' (lua/heartbeat.lua). Only what a call changed is written back.

-- Learned limits, after an acquire outside a pause that found no room now (demand presses
-- against the limits): the factor grows by `step` per window of time since growth was last
-- counted ('fg'), at most one window's worth at once, up to `max_factor`. So it grows by `step`
-- per window in which demand pressed at least once, and not at all while demand stays below.
local function learned_factor(f, fg, now, window_ms, max_factor, step)
  local since = math.min(window_ms, math.max(0, now - (tonumber(fg) or now)))
  return math.min(max_factor, (tonumber(f) or 1) + step * since / window_ms)
end

local COMMON_FIELDS = { 'p', 'f', 'fa', 'fg', 'exp', 'ht', 'hi', 'ho', 'hr', 'wt', 'wi', 'wo', 'wr', 'wn', 'ni', 'nu' }

-- The fields capacity_base reads: the common ones, then `x_names`, then `own`.
local function capacity_fields(x_names, own)
  local names = {}
  for _, f in ipairs(COMMON_FIELDS) do
    names[#names + 1] = f
  end
  for _, f in ipairs(x_names) do
    names[#names + 1] = f
  end
  for _, f in ipairs(own) do
    names[#names + 1] = f
  end
  return names
end

-- Reads the common fields and `own` (the algorithm's fields) in one HMGET; returns the base
-- object, whose `values` hold `own` from `own_at` + 1 on.
local function capacity_base(state_key, now, W, configured, x_names, tau, own)
  local v = redis.call('HMGET', state_key, unpack(capacity_fields(x_names, own)))
  local self = {}
  local num = function(k)
    return tonumber(v[k]) or 0
  end
  self.pause = num(1)
  local f, fa, fg = v[2], v[3], v[4]
  self.exp = num(5)
  local shift = { num(6), num(7), num(8), num(9) }
  self.waiting = { num(10), num(11), num(12), num(13) }
  self.waiters = num(14)
  self.instances = 0
  if num(16) >= now then
    self.instances = num(15)
  end
  local x = { num(17), num(18), num(19), num(20) }
  self.limit = scale_limits(configured, limit_factor(f, fa, now, W))
  self.line = arrival_line(x, shift, self.limit, tau, W)
  local learned
  local waited

  function self.grow(max_factor, step)
    local grown = learned_factor(f, fg, now, W, max_factor, step)
    f, fa, fg = real(grown), '-1', fmt(now)
    learned = true
    local scaled = scale_limits(configured, grown)
    for d = 1, 4 do
      self.limit[d] = scaled[d]
    end
  end

  function self.wait(cost, sign)
    for d = 1, 4 do
      self.waiting[d] = self.waiting[d] + sign * cost[d]
    end
    self.waiters = self.waiters + sign
    waited = true
  end

  -- When a request sent now could be admitted, ms from now, if the window (or bucket) freed
  -- its limit evenly over a window: the pause, and what is used and waits beyond the limit.
  function self.estimate(cost, used)
    local est = math.max(0, self.pause - now)
    for d = 1, 4 do
      local l = self.limit[d]
      if l > 0 then
        est = math.max(est, math.ceil((used[d] + self.waiting[d] + cost[d] - l) * W / l))
      end
    end
    return est
  end

  -- Appends the common fields to `out` (HSET arguments); `with_line` when the arrival line is
  -- in use.
  function self.common_fields(out, with_line)
    if waited then
      for d = 1, 4 do
        out[#out + 1] = 'w' .. FIGURES[d]
        out[#out + 1] = fmt(self.waiting[d])
      end
      out[#out + 1] = 'wn'
      out[#out + 1] = fmt(self.waiters)
    end
    if with_line and self.line.moved() then
      for d = 1, 4 do
        if self.limit[d] > 0 then
          out[#out + 1] = x_names[d]
          out[#out + 1] = fmt(x[d])
          out[#out + 1] = 'h' .. FIGURES[d]
          out[#out + 1] = fmt(shift[d])
        end
      end
    end
    if learned then
      for _, kv in ipairs({ 'f', f, 'fa', fa, 'fg', fg }) do
        out[#out + 1] = kv
      end
    end
  end

  -- The TTL every key of the model needs: a window and the horizon past now, pushed about once
  -- a window. Returns it, and whether it moved (then it is written with the other fields).
  local moved
  function self.expire_at(horizon, lease)
    local needed = now + W + horizon + lease
    if self.exp >= needed then
      return self.exp, false
    end
    self.exp = needed + W
    moved = true
    return self.exp, true
  end

  function self.write_exp(out)
    if moved then
      out[#out + 1] = 'exp'
      out[#out + 1] = fmt(self.exp)
    end
  end

  function self.moved_ttl()
    return moved
  end

  self.values = v
  self.own_at = #COMMON_FIELDS + #x_names
  return self
end
