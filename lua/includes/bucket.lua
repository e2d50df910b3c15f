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
