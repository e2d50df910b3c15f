-- The live queue's records (inlined where a script says `--- @include "records"`).
--
-- A record is one reservation not yet settled, or a tombstone of one that ended:
--   waiting   "w|owner|t|i|o|r|deadline"       (deadline ms, -1 = none)
--   admitted  "a|owner|t|i|o|r|slot|j|e1|e2|e3|e4"
--             j: sliding-window bucket of the charge; e: per figure, where the reservation's
--             refill ends on the bucket's arrival line plus the refunds given back before it was
--             admitted (-1 = not tracked), so that a refund gives back only refill still ahead
--   ended     "e|s" settled, "e|r" released, "e|t" timed out, "e|l" lost (owner gone)
-- Waiting ids also stand in the queue, scored by arrival. Every admitted record and tombstone
-- has an expiry (admitted: a window and the horizon after its slot; ended: the horizon), and is
-- deleted once it passes: memory follows reservations in flight, never requests settled.

local ENDED_NAMES = { s = 'settled', r = 'released', t = 'timeout', l = 'lost' }

local function parse_record(v)
  local f = {}
  for part in string.gmatch(v, '[^|]+') do
    f[#f + 1] = part
  end
  local kind = f[1]
  if kind == 'e' then
    return { kind = 'e', ended = f[2] }
  end
  local rec = {
    kind = kind,
    owner = f[2],
    cost = { tonumber(f[3]), tonumber(f[4]), tonumber(f[5]), tonumber(f[6]) },
  }
  if kind == 'w' then
    rec.deadline = tonumber(f[7])
  else
    rec.slot = tonumber(f[7])
    rec.j = tonumber(f[8])
    rec.ends = { tonumber(f[9]), tonumber(f[10]), tonumber(f[11]), tonumber(f[12]) }
  end
  return rec
end

local function record_store(records, expiry, queue, owners, now, horizon, W)
  local self = {}
  local cache = {}
  local writes, expiring = {}, {}
  local leases = {}
  -- Whether this call wrote to the queue or the owners (every acquire and claim renews a lease).
  local touched = false
  local head_cache
  local last_score

  function self.get(op)
    local rec = cache[op]
    if rec == nil then
      local v = redis.call('HGET', records, op)
      rec = v and parse_record(v) or false
      cache[op] = rec
    end
    return rec or nil
  end

  -- Takes the stored values of `ops` (false: none), as the caller read them.
  function self.seed(ops, values)
    for x, op in ipairs(ops) do
      cache[op] = values[x] and parse_record(values[x]) or false
    end
  end

  -- Reads the records of `ops` in one HMGET (those not read yet), so that a batch of commands
  -- costs one call, not one per command.
  function self.preload(ops)
    local wanted, seen = {}, {}
    for _, op in ipairs(ops) do
      if cache[op] == nil and not seen[op] then
        seen[op] = true
        wanted[#wanted + 1] = op
      end
    end
    if #wanted == 0 then
      return
    end
    local values = redis.call('HMGET', records, unpack(wanted))
    for x, op in ipairs(wanted) do
      cache[op] = values[x] and parse_record(values[x]) or false
    end
  end

  local function put(op, rec, value, expires)
    cache[op] = rec
    writes[op] = value
    if expires then
      expiring[op] = expires
    end
  end

  function self.head()
    if head_cache == nil then
      local first = redis.call('ZRANGE', queue, 0, 0)[1]
      head_cache = first or false
    end
    return head_cache or nil
  end

  function self.position(op)
    return redis.call('ZRANK', queue, op) or 0
  end

  function self.lease_of(owner)
    local l = leases[owner]
    if l == nil then
      l = tonumber(redis.call('ZSCORE', owners, owner)) or -1
      leases[owner] = l
    end
    return l
  end

  -- Renews an owner's lease, once a call however many of its commands ask.
  function self.renew(owner, lease_end)
    if leases[owner] == lease_end then
      return
    end
    leases[owner] = lease_end
    redis.call('ZADD', owners, lease_end, owner)
    touched = true
  end

  function self.enqueue(op, owner, cost, deadline, cap)
    if last_score == nil then
      local tail = redis.call('ZRANGE', queue, -1, -1, 'WITHSCORES')
      last_score = tonumber(tail[2]) or 0
    end
    last_score = last_score + 1
    redis.call('ZADD', queue, last_score, op)
    touched = true
    if head_cache == false then
      head_cache = nil
    end
    local c = cost
    put(op, { kind = 'w', owner = owner, cost = c, deadline = deadline },
      'w|' .. owner .. '|' .. fmt(c[1]) .. '|' .. fmt(c[2]) .. '|' .. fmt(c[3]) .. '|' .. fmt(c[4]) .. '|' .. fmt(deadline))
    cap.wait(c, 1)
  end

  -- Takes a waiting record out of the queue (its figures leave the waiting sums).
  function self.dequeue(op, rec, cap)
    redis.call('ZREM', queue, op)
    if head_cache == op then
      head_cache = nil
    end
    cap.wait(rec.cost, -1)
  end

  function self.finish(op, code)
    put(op, { kind = 'e', ended = code }, 'e|' .. code, now + horizon)
  end

  function self.admit(op, owner, cost, cap)
    local j, e = cap.admit(cost)
    local c = cost
    put(op, { kind = 'a', owner = owner, cost = c, slot = now, j = j, ends = e },
      'a|' .. owner .. '|' .. fmt(c[1]) .. '|' .. fmt(c[2]) .. '|' .. fmt(c[3]) .. '|' .. fmt(c[4]) .. '|' .. fmt(now)
        .. '|' .. fmt(j) .. '|' .. fmt(e[1]) .. '|' .. fmt(e[2]) .. '|' .. fmt(e[3]) .. '|' .. fmt(e[4]),
      now + W + horizon)
  end

  -- Ends a record by adjust, release or keep; returns status, applied and charged figures.
  function self.settle(op, mode, refunds, to, cap)
    local none = { 0, 0, 0, 0 }
    local rec = self.get(op)
    if not rec then
      -- A release may overtake its own acquire (sent when the acquire's reply was lost): the
      -- tombstone makes the acquire, should it arrive later, change nothing.
      if mode == 'release' then
        self.finish(op, 'r')
      end
      return 'unknown', none, none
    end
    if rec.kind == 'e' then
      return ENDED_NAMES[rec.ended], none, none
    end
    local c = rec.cost
    if rec.kind == 'w' then
      if mode ~= 'release' then
        return 'waiting', none, c
      end
      self.dequeue(op, rec, cap)
      self.finish(op, 'r')
      return 'ok', none, c
    end
    local status, applied = 'ok', none
    if mode == 'release' then
      status, applied = cap.move(rec, { -c[1], -c[2], -c[3], -c[4] })
    elseif mode == 'adjust' then
      local delta = { 0, 0, 0, 0 }
      for d = 1, 3 do
        local target = to[d]
        if not refunds then
          target = math.max(c[d], target)
        end
        delta[d] = target - c[d]
      end
      status, applied = cap.move(rec, delta)
    end
    if mode == 'release' then
      self.finish(op, 'r')
    else
      self.finish(op, 's')
    end
    return status, applied, c
  end


  -- Writes the records changed by this call, and sets every key's TTL to `expire_at` (the
  -- state's) when that moved or when this call wrote anything. Not only the keys written: a
  -- write may create a key (an owner's lease after the owners key emptied), and a back-off or a
  -- reconcile may have pushed the state's TTL past the other keys' (they only write the state),
  -- which must not leave a queue with waiters to expire under owners that still claim.
  function self.flush(expire_at, moved, waiting)
    local fields, scores = {}, {}
    for op, v in pairs(writes) do
      fields[#fields + 1] = op
      fields[#fields + 1] = v
    end
    for op, at in pairs(expiring) do
      scores[#scores + 1] = at
      scores[#scores + 1] = op
    end
    if #fields > 0 then
      redis.call('HSET', records, unpack(fields))
    end
    if #scores > 0 then
      redis.call('ZADD', expiry, unpack(scores))
    end
    if moved then
      -- About once a window: owners whose lease ended long ago go.
      redis.call('ZREMRANGEBYSCORE', owners, '-inf', now - horizon)
    end
    -- Every key this call wrote gets the model's TTL. While anyone waits (or has waited in this
    -- call) all four do: a waiter's queue entry, record and lease must outlive every claim,
    -- also claims that write none of them. With nothing waiting, records and expiry hold only
    -- admitted records and tombstones, which the TTL set when they were written outlives.
    if moved or touched or waiting then
      for _, key in ipairs({ records, expiry, queue, owners }) do
        redis.call('PEXPIREAT', key, expire_at)
      end
    else
      if #fields > 0 then
        redis.call('PEXPIREAT', records, expire_at)
      end
      if #scores > 0 then
        redis.call('PEXPIREAT', expiry, expire_at)
      end
    end
  end

  return self
end
