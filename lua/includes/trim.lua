-- The live queue's record expiry (inlined where a script says `--- @include "trim"`; layout in
-- records.lua).

-- Deletes records and tombstones whose time has passed (at most 512 a call; the rest go in the
-- next calls).
local function trim_records(records, expiry, now)
  local due = redis.call('ZRANGEBYSCORE', expiry, '-inf', now, 'LIMIT', 0, 512)
  if #due > 0 then
    redis.call('HDEL', records, unpack(due))
    redis.call('ZREM', expiry, unpack(due))
  end
end
