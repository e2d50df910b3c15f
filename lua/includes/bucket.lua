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
