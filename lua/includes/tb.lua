-- The token bucket's capacity in the live queue (inlined where a script says
-- `--- @include "tb"`): one arrival line per limited figure (GCRA, see bucket.lua), charged at
-- the moment of admission. Bucket hash fields: 't' 'i' 'o' 'r' (arrival times, us) and those of
-- capacity.lua.

local function bucket_capacity(state_key, now, W, bucket_ms, configured)
  local us = now * 1000
  local self = capacity_base(state_key, now, W, configured, FIGURES, bucket_ms * 1000, {})

  function self.fits(cost)
    return self.pause <= now and self.line.start(cost, us) <= us
  end

  function self.admit(cost)
    return 0, self.line.charge(cost, us)
  end

  -- A change of an admitted reservation: what it asks is what the reply reports; the line gives
  -- back only refill still ahead (see arrival_line).
  function self.move(rec, delta)
    self.line.move(rec.ends, delta, us)
    return 'ok', delta
  end

  function self.next_fit(cost)
    return math.max(now, self.pause, math.ceil(self.line.start(cost, us) / 1000))
  end

  function self.estimate_for(cost)
    return self.estimate(cost, self.line.owed(us))
  end

  function self.used()
    return self.line.owed(us)
  end

  function self.write()
    local fields = {}
    self.common_fields(fields, true)
    self.write_exp(fields)
    if #fields > 0 then
      redis.call('HSET', state_key, unpack(fields))
    end
    if self.moved_ttl() then
      redis.call('PEXPIREAT', state_key, self.exp)
    end
  end

  return self
end
