-- Token bucket pieces (inlined where a script says `--- @include "bucket"`).
--
-- State: a hash of theoretical arrival times (GCRA), one field per limited figure: 't' combined
-- tokens, 'i' input, 'o' output, 'r' requests, each an epoch time in microseconds at which that
-- bucket would be full again; 'exp' as in the window hash. A figure with limit L over a window
-- of W ms refills one token every W * 1000 / L us; the bucket holds `bucket ms` of refill.

local FIGURES = { 't', 'i', 'o', 'r' }

local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

-- Microseconds of refill that `amount` tokens take, rounded away from zero (charges round up,
-- refunds round down), so rounding never adds capacity.
local function refill_us(amount, limit, window_ms)
  local us = amount * window_ms * 1000 / limit
  if us >= 0 then
    return math.ceil(us)
  end
  return -math.floor(-us)
end

-- An arrival time moved by `change` us of refill: a charge adds to what is owed from now on, a
-- refund takes back from it but never fills the bucket beyond full.
local function move_arrival(tat, change, us)
  if change > 0 then
    return math.max(tat, us) + change
  end
  return math.max(tat + change, us)
end

-- The sliding window's pacing bucket (see acquire.lua, ARGV[15]): arrival times in the window
-- hash's fields 'qt' 'qi' 'qo' 'qr', moved here by signed amounts (adjust and release).
local function pace_move(window, amounts, limit, window_ms, us)
  local tat = redis.call('HMGET', window, 'qt', 'qi', 'qo', 'qr')
  local fields = {}
  for d = 1, 4 do
    if limit[d] > 0 and amounts[d] ~= 0 and tat[d] then
      fields[#fields + 1] = 'q' .. FIGURES[d]
      fields[#fields + 1] = fmt(move_arrival(tonumber(tat[d]), refill_us(amounts[d], limit[d], window_ms), us))
    end
  end
  if #fields > 0 then
    redis.call('HSET', window, unpack(fields))
  end
end

-- An arrival line per limited figure (the token bucket's, or the sliding window's pacing
-- bucket), with `shift`: the refill given back by refunds so far, per figure. A reservation
-- records where its refill ends plus the shift at that moment; refunds given back since then can
-- only have moved its end earlier, so `end - shift now` is a lower bound of its end, and a
-- refund gives back at most the part of it still ahead of now. (Capping at a full bucket is not
-- enough: an old reservation refunded after the bucket refilled would give back capacity that
-- new ones already use.)
local function arrival_line(x, shift, limit, tau, W)
  local self = {}
  local max = math.max
  local moved = false

  function self.moved()
    return moved
  end

  -- The earliest time (us) every figure's bucket has room for `cost`.
  function self.start(cost, us)
    local start = us
    for d = 1, 4 do
      if limit[d] > 0 then
        local inc = refill_us(cost[d], limit[d], W)
        start = max(start, max(x[d], us) + inc - max(tau, inc))
      end
    end
    return start
  end

  function self.charge(cost, us)
    moved = true
    local ends = { -1, -1, -1, -1 }
    for d = 1, 4 do
      if limit[d] > 0 then
        x[d] = max(x[d], us) + refill_us(cost[d], limit[d], W)
        ends[d] = x[d] + shift[d]
      end
    end
    return ends
  end

  function self.move(ends, delta, us)
    moved = true
    for d = 1, 4 do
      if limit[d] > 0 and ends[d] >= 0 and delta[d] ~= 0 then
        if delta[d] > 0 then
          x[d] = max(x[d], us) + refill_us(delta[d], limit[d], W)
        else
          local give = math.min(-refill_us(delta[d], limit[d], W), max(0, ends[d] - shift[d] - us), max(0, x[d] - us))
          x[d] = x[d] - give
          shift[d] = shift[d] + give
        end
      end
    end
  end

  -- Tokens each figure's bucket still has to refill, at `us`.
  function self.owed(us)
    local owed = { 0, 0, 0, 0 }
    for d = 1, 4 do
      if limit[d] > 0 then
        owed[d] = math.ceil(max(0, x[d] - us) * limit[d] / (W * 1000))
      end
    end
    return owed
  end

  return self
end
