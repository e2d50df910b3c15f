--[[
  queue: one call of the live queue for one model: a batch of acquires, claims and settles from
  one process, each applied in order, with the admit step before and after them. Sliding window
  and token bucket alike; the capacity arithmetic is in includes/window.lua and
  includes/tb.lua, the queue's own in includes/records.lua.

  KEYS[1]  state hash of the model (window hash or bucket hash, per the algorithm)
  KEYS[2]  queue: sorted set of waiting op ids, scored by arrival
  KEYS[3]  records: hash, op id -> record (waiting, admitted, or ended as a tombstone)
  KEYS[4]  expiry: sorted set, op id -> when its record or tombstone is deleted (ms)
  KEYS[5]  owners: sorted set, owner id -> end of its lease (ms)
  ARGV[1]  the model's settings, one string, '|' between fields (one argument rather than
           fourteen: each argument costs the client and Redis alike, on every call):
             algorithm: 'w' sliding window, 'b' token bucket
             window length, ms
             buckets per window (B; sliding window)
             sliding window: pacing bucket, ms of refill (0 = no pacing); token bucket: bucket
               size, ms of refill
             limits: combined tokens, input, output, requests (0 = off)
             learned limits: largest limit factor (0 = the limits are fixed)
             learned limits: factor gained per window of pressing demand
             how long a tombstone is kept, ms
             owner lease, ms (a call with a deadline renews the lease to that deadline at most:
               its owner gives up its waiters only once the deadline passed, so none of them is
               admitted after that)
             most waiters one admit step admits or drops
             clock, epoch ms (-1 = the server's TIME; set only by the differential tests)
  ARGV[2]  channel admissions are published on ('' = none)
  ARGV[3]  number of commands (N), then the commands, each starting with its kind:
    'A' op id, owner, cost combined, input, output, requests, longest wait ms (-1 = no bound),
        deadline: server ms after which its caller gave up, so a new acquire reserves nothing
        and answers 'timeout' (-1 = none)
    'C' owner, deadline: server ms after which its caller gave up, so the call renews no lease
        (-1 = none), count K, then K op ids
    'S' op id, mode ('adjust' | 'release' | 'keep'), refunds (1 | 0), to combined, input, output

  Returns one string, its fields joined by '|' (one bulk reply costs both sides less than an
  array of many; no field holds a '|': op ids and owners are base64url, the rest are numbers and
  names): now ms, next check ms (0 = nothing waits), the owner of the queue's head ('' =
  nothing waits), the number of admitted waiters M, then M pairs (op id, slot ms), then per
  command:
    'A' state, slot ms, position, estimate ms
    'C' K, then K triples (state, slot ms, 0: claims do not rank)
    'S' status, applied combined, input, output, requests, charged combined, input, output,
        requests
  and last, what the state holds once the call is done: used combined, input, output,
  requests (the window's sums, or the token bucket's tokens still to refill), and the largest
  live instance count a heartbeat published (0 = none lately).
  States and statuses are as lib/core/store.ts describes them.

  Admitted waiters are published on the channel as "op:slot,op:slot,...".
]]
--- @include "common"
--- @include "trim"
--- @include "fast"

local state_key, queue, records, expiry, owners = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local algorithm, W, B, tau_ms, configured, max_factor, learn_step, horizon, lease, max_admit, now
do
  -- One match for all fourteen fields: a loop over them costs the lone call more.
  local f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14 = string.match(ARGV[1],
    '^([^|]+)|([^|]+)|([^|]+)|([^|]+)|([^|]+)|([^|]+)|([^|]+)|([^|]+)|([^|]+)|([^|]+)|([^|]+)|([^|]+)|([^|]+)|([^|]+)$')
  algorithm, W, B, tau_ms = f1, tonumber(f2), tonumber(f3), tonumber(f4)
  configured = { tonumber(f5), tonumber(f6), tonumber(f7), tonumber(f8) }
  max_factor, learn_step, horizon, lease = tonumber(f9), tonumber(f10), tonumber(f11), tonumber(f12)
  max_admit, now = tonumber(f13), clock_ms(f14)
end
local channel = ARGV[2]
local count = tonumber(ARGV[3])
-- ARGV index of the first command.
local FIRST = 4

-- What the fast path read before it handed the call over (when it got that far): the records
-- named, after trimming them.
local named_ops, named_values
if algorithm == 'w' and tau_ms == 0 then
  local reply
  if count == 1 and ARGV[FIRST] == 'A' then
    reply = lone_acquire(state_key, records, expiry, now, W, B, configured, horizon, lease, FIRST)
  else
    reply, named_ops, named_values = fast_call(state_key, records, expiry, now, W, B, configured, horizon, lease, FIRST, count)
  end
  if reply then
    return reply
  end
end

-- The general path's pieces, defined only when it runs (each function a script defines costs
-- every call that reaches it).
--- @include "windows"
--- @include "records"
--- @include "bucket"
--- @include "capacity"
--- @include "window"
--- @include "tb"

local cap
if algorithm == 'w' then
  cap = window_capacity(state_key, now, W, B, tau_ms, configured)
else
  cap = bucket_capacity(state_key, now, W, tau_ms, configured)
end
local waited_before = cap.waiters > 0
local q = record_store(records, expiry, queue, owners, now, horizon, W)
if named_ops then
  q.seed(named_ops, named_values)
else
  trim_records(records, expiry, now)
end

local admitted = {}
local ran_out = false

-- The queue's head; with nothing waiting (the state says so) the queue is not read.
local function head()
  if cap.waiters == 0 then
    return nil
  end
  return q.head()
end

-- Admits the head while it fits; drops a head past its deadline or whose owner is gone.
local function admit_step()
  ran_out = false
  for _ = 1, max_admit do
    local first = head()
    if not first then
      return
    end
    local rec = q.get(first)
    if rec.deadline >= 0 and now > rec.deadline then
      q.dequeue(first, rec, cap)
      q.finish(first, 't')
    elseif q.lease_of(rec.owner) < now then
      q.dequeue(first, rec, cap)
      q.finish(first, 'l')
    elseif cap.fits(rec.cost) then
      q.dequeue(first, rec, cap)
      q.admit(first, rec.owner, rec.cost, cap)
      admitted[#admitted + 1] = first
    else
      return
    end
  end
  ran_out = head() ~= nil
end

local function state_reply(op, ranked)
  local rec = q.get(op)
  if not rec then
    return 'unknown', 0, 0
  elseif rec.kind == 'w' then
    return 'waiting', 0, ranked and q.position(op) or 0
  elseif rec.kind == 'a' then
    return 'admitted', rec.slot, 0
  end
  return ENDED_NAMES[rec.ended], 0, 0
end

-- Where a lease renewed by a call with deadline `gave_up` ends (see the owner lease in ARGV[1]).
local function lease_end(gave_up)
  if gave_up >= 0 then
    return math.min(now + lease, gave_up)
  end
  return now + lease
end

local results = {}
local pending = {}
local function push(...)
  for _, v in ipairs({ ... }) do
    results[#results + 1] = v
  end
end

-- The records the commands name, read in one call.
local named = {}
do
  local i = FIRST
  for _ = 1, count do
    local kind = ARGV[i]
    if kind == 'C' then
      local k = tonumber(ARGV[i + 3])
      for x = 1, k do
        named[#named + 1] = ARGV[i + 3 + x]
      end
      i = i + 4 + k
    else
      named[#named + 1] = ARGV[i + 1]
      i = i + (kind == 'A' and 9 or 7)
    end
  end
end
q.preload(named)

admit_step()

local at = FIRST
for _ = 1, count do
  local kind = ARGV[at]
  if kind == 'A' then
    local op, owner = ARGV[at + 1], ARGV[at + 2]
    local cost = { tonumber(ARGV[at + 3]), tonumber(ARGV[at + 4]), tonumber(ARGV[at + 5]), tonumber(ARGV[at + 6]) }
    local max_wait = tonumber(ARGV[at + 7])
    local gave_up = tonumber(ARGV[at + 8])
    at = at + 9
    if q.get(op) then
      local s, slot, position = state_reply(op, true)
      push(s, fmt(slot), fmt(position), '0')
    elseif gave_up >= 0 and now > gave_up then
      push('timeout', '0', '0', fmt(cap.estimate_for(cost)))
    elseif not head() and cap.fits(cost) then
      q.admit(op, owner, cost, cap)
      push('admitted', fmt(now), '0', '0')
    elseif max_wait == 0 or (max_wait > 0 and cap.pause > now + max_wait) then
      push('timeout', '0', '0', fmt(cap.estimate_for(cost)))
    else
      -- Only a waiter needs its owner's lease: one admitted at once is not dropped for it.
      q.renew(owner, lease_end(gave_up))
      local deadline = -1
      if max_wait > 0 then
        deadline = now + max_wait
      end
      q.enqueue(op, owner, cost, deadline, cap)
      if max_factor > 0 and cap.pause <= now then
        cap.grow(max_factor, learn_step)
      end
      -- Answered after the last admit step, which may admit it.
      pending[#pending + 1] = { #results + 1, op }
      push('waiting', '0', '0', '0')
    end
  elseif kind == 'C' then
    local owner, gave_up, k = ARGV[at + 1], tonumber(ARGV[at + 2]), tonumber(ARGV[at + 3])
    if gave_up < 0 or now <= gave_up then
      q.renew(owner, lease_end(gave_up))
    end
    push(fmt(k))
    for x = 1, k do
      local s, slot, position = state_reply(ARGV[at + 3 + x], false)
      push(s, fmt(slot), fmt(position))
    end
    at = at + 4 + k
  else
    local op, mode, refunds = ARGV[at + 1], ARGV[at + 2], ARGV[at + 3] == '1'
    local to = { tonumber(ARGV[at + 4]), tonumber(ARGV[at + 5]), tonumber(ARGV[at + 6]) }
    at = at + 7
    local status, applied, charged = q.settle(op, mode, refunds, to, cap)
    push(status, fmt(applied[1]), fmt(applied[2]), fmt(applied[3]), fmt(applied[4]),
      fmt(charged[1]), fmt(charged[2]), fmt(charged[3]), fmt(charged[4]))
  end
end

admit_step()

-- Acquires that were queued by this call answer now, after the last admit step: admitted by it,
-- or waiting with their rank.
for _, p in ipairs(pending) do
  local s, slot, position = state_reply(p[2], true)
  results[p[1]], results[p[1] + 1], results[p[1] + 2] = s, fmt(slot), fmt(position)
end

local next_check = 0
local head_owner = ''
local first = head()
if first then
  local rec = q.get(first)
  head_owner = rec.owner
  if ran_out then
    next_check = now
  else
    local t = cap.next_fit(rec.cost)
    if rec.deadline >= 0 then
      t = math.min(t, rec.deadline + 1)
    end
    t = math.min(t, q.lease_of(rec.owner) + 1)
    next_check = math.max(now + 1, t)
  end
end

local out = { fmt(now), fmt(next_check), head_owner, fmt(#admitted) }
local notice = {}
for x = 1, #admitted do
  out[#out + 1] = admitted[x]
  out[#out + 1] = fmt(now)
  notice[x] = admitted[x] .. ':' .. fmt(now)
end
for x = 1, #results do
  out[#out + 1] = results[x]
end
local used = cap.used()
for d = 1, 4 do
  out[#out + 1] = fmt(used[d])
end
out[#out + 1] = fmt(cap.instances)

local expire_at, moved = cap.expire_at(horizon, lease)
cap.write()
q.flush(expire_at, moved, waited_before or cap.waiters > 0)
if #notice > 0 and channel ~= '' then
  redis.call('PUBLISH', channel, table.concat(notice, ','))
end
return table.concat(out, '|')
