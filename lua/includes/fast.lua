-- The common call of lua/queue.lua, without the general machinery (inlined where a script says
-- `--- @include "fast"`): a sliding window without pacing, nothing waiting, no pause, the keys'
-- TTL not due to move, the window not due to slide past its base, and commands that are only
-- acquires that fit at once and settles of admitted records. It reads the part of the state
-- hash it needs and the records the general path reads, and writes what it would write.
-- Anything else, found before a single write, hands the call to the general path, together
-- with the records it read (the general path reads the state hash again, in full).

-- A chunk as bucket_store writes it: CHUNK entries joined by ',', '' for an empty bucket. The
-- fast path edits the entries it changes in place, without splitting the chunk.
local EMPTY_CHUNK = string.rep(',', CHUNK - 1)

-- Where entry k (1 to CHUNK) of a chunk starts and ends (ends before it starts when empty).
-- A chunk of fewer entries (bucket_store reads those as ending in empty ones) is padded first:
-- returns the text the span is in as well.
local function entry_span(text, k)
  local from = 1
  for _ = 2, k do
    local comma = string.find(text, ',', from, true)
    if not comma then
      local _, commas = string.gsub(text, ',', ',')
      return entry_span(text .. string.rep(',', CHUNK - 1 - commas), k)
    end
    from = comma + 1
  end
  local comma = string.find(text, ',', from, true)
  return from, (comma or #text + 1) - 1, text
end

-- What both fast paths read of the state hash (fewer fields than the general path reads: every
-- field read costs the lone call in Redis), in one HMGET with the chunk of bucket n: nil when
-- the call is not theirs (something waits, a pause, the keys' TTL or the window's base due to
-- move), else the values, the chunk's field name and the limits in force (back-off or learned).
local function fast_state(state_key, n, now, W, B, configured, horizon, lease)
  local field = fmt(chunk_of(n))
  local v = redis.call('HMGET', state_key, 'p', 'f', 'fa', 'exp', 'wn', 'ni', 'nu', 'base', 'last', 'st', 'si', 'so', 'sr', field)
  local base = tonumber(v[8])
  if not base or base < n - B or (tonumber(v[5]) or 0) > 0 or (tonumber(v[1]) or 0) > now
    or (tonumber(v[4]) or 0) < now + W + horizon + lease then
    return nil
  end
  return v, field, scale_limits(configured, limit_factor(v[2], v[3], now, W))
end

-- An admitted record as records.lua writes it, for the acquire at ARGV[at]: its costs as sent
-- (the client sends integers written in full, as fmt writes them), then `tail` ('|' slot '|'
-- bucket, and no refill ends: '|-1|-1|-1|-1').
local function admitted_record(at, tail)
  return 'a|' .. ARGV[at + 2] .. '|' .. ARGV[at + 3] .. '|' .. ARGV[at + 4] .. '|' .. ARGV[at + 5] .. '|' .. ARGV[at + 6] .. tail
end

-- The reply's last field, as the general path's: the instance count a heartbeat published, while
-- it counts.
local function fast_instances(v, now)
  return (tonumber(v[7]) or 0) >= now and fmt(tonumber(v[6]) or 0) or '0'
end

-- Returns the reply, or nil and, once the records were trimmed and read, the ops named with
-- their stored values (the general path reads the state hash itself: the fast path read only
-- part of it).
local function fast_call(state_key, records, expiry, now, W, B, configured, horizon, lease, first, count)
  local n = bucket_of(now, W, B)
  local oldest = n - B
  if count == 0 then
    return nil
  end
  local v, _, limit = fast_state(state_key, n, now, W, B, configured, horizon, lease)
  if not v then
    return nil
  end

  local ops = {}
  local seen = {}
  local at = first
  for x = 1, count do
    local kind, op = ARGV[at], ARGV[at + 1]
    if (kind ~= 'A' and kind ~= 'S') or seen[op] then
      return nil
    end
    seen[op] = true
    ops[x] = op
    at = at + (kind == 'A' and 9 or 7)
  end
  trim_records(records, expiry, now)
  local stored = redis.call('HMGET', records, unpack(ops))

  local stored_last = tonumber(v[9])
  local last = stored_last or (oldest - 1)
  local s1, s2, s3, s4 = tonumber(v[10]) or 0, tonumber(v[11]) or 0, tonumber(v[12]) or 0, tonumber(v[13]) or 0
  local l1, l2, l3, l4 = limit[1], limit[2], limit[3], limit[4]
  -- Chunks read (chunk index -> text), and the buckets read from them as numbers (bucket ->
  -- { t, i, o, r, written even when all zero }), written back into their entries at the end:
  -- a batch of acquires parses and formats its bucket once, not once per acquire.
  local cn = chunk_of(n)
  local chunks = { [cn] = v[14] or EMPTY_CHUNK }
  local figs, moved = {}, {}
  local function figures(j)
    local f = figs[j]
    if f then
      return f
    end
    local c = chunk_of(j)
    local from, to, text = entry_span(chunks[c] or redis.call('HGET', state_key, fmt(c)) or EMPTY_CHUNK, j - c * CHUNK + 1)
    chunks[c] = text
    local et, ei, eo, er = string.match(text, '^(%d+):(%d+):(%d+):(%d+)', from)
    if et then
      f = { tonumber(et), tonumber(ei), tonumber(eo), tonumber(er), true, text, from, to }
    else
      f = { 0, 0, 0, 0, false, text, from, to }
    end
    figs[j] = f
    return f
  end
  local dirty = false
  local admitted_at = fmt(now)
  local out = { admitted_at, '0', '', '0' }
  local writes, scores = {}, {}
  local admitted_tail = '|' .. admitted_at .. '|' .. fmt(n) .. '|-1|-1|-1|-1'
  local admitted_expiry = now + W + horizon
  local tombstone_expiry = now + horizon

  at = first
  for x = 1, count do
    local op = ops[x]
    if ARGV[at] == 'A' then
      local t, i, o, r = tonumber(ARGV[at + 3]), tonumber(ARGV[at + 4]), tonumber(ARGV[at + 5]), tonumber(ARGV[at + 6])
      local gave_up = tonumber(ARGV[at + 8])
      if stored[x] or (gave_up >= 0 and now > gave_up) or (l1 > 0 and s1 + t > l1) or (l2 > 0 and s2 + i > l2)
        or (l3 > 0 and s3 + o > l3) or (l4 > 0 and s4 + r > l4) then
        return nil, ops, stored
      end
      -- As bucket_store.add: the bucket's figures plus the cost, written even when all zero.
      local f = figures(n)
      f[1], f[2], f[3], f[4], f[5] = f[1] + t, f[2] + i, f[3] + o, f[4] + r, true
      moved[n] = true
      s1, s2, s3, s4 = s1 + t, s2 + i, s3 + o, s4 + r
      if n > last then
        last = n
      end
      dirty = true
      writes[#writes + 1] = op
      writes[#writes + 1] = admitted_record(at, admitted_tail)
      scores[#scores + 1] = admitted_expiry
      scores[#scores + 1] = op
      out[#out + 1] = 'admitted'
      out[#out + 1] = admitted_at
      out[#out + 1] = '0'
      out[#out + 1] = '0'
      at = at + 9
    else
      -- An admitted record's figures and bucket, read in one match (parse_record builds tables).
      local c1, c2, c3, c4, j = string.match(stored[x] or '', '^a|[^|]*|(%d+)|(%d+)|(%d+)|(%d+)|%d+|(%d+)|')
      if not c1 then
        return nil, ops, stored
      end
      local mode, c = ARGV[at + 2], { tonumber(c1), tonumber(c2), tonumber(c3), tonumber(c4) }
      j = tonumber(j)
      local status, a1, a2, a3, a4 = 'ok', 0, 0, 0, 0
      if mode ~= 'keep' then
        if j < oldest then
          status = 'expired'
        else
          local d1, d2, d3, d4 = -c[1], -c[2], -c[3], -c[4]
          if mode == 'adjust' then
            local refunds = ARGV[at + 3] == '1'
            local t1, t2, t3 = tonumber(ARGV[at + 4]), tonumber(ARGV[at + 5]), tonumber(ARGV[at + 6])
            if not refunds then
              t1, t2, t3 = math.max(c[1], t1), math.max(c[2], t2), math.max(c[3], t3)
            end
            d1, d2, d3, d4 = t1 - c[1], t2 - c[2], t3 - c[3], 0
          end
          -- As window_capacity's move: in the record's own bucket, never below zero; as
          -- bucket_store.set, a bucket left all zero is then empty.
          local f = figures(j)
          a1, a2, a3, a4 = math.max(0, f[1] + d1) - f[1], math.max(0, f[2] + d2) - f[2], math.max(0, f[3] + d3) - f[3],
            math.max(0, f[4] + d4) - f[4]
          s1, s2, s3, s4 = s1 + a1, s2 + a2, s3 + a3, s4 + a4
          f[1], f[2], f[3], f[4], f[5] = f[1] + a1, f[2] + a2, f[3] + a3, f[4] + a4, false
          moved[j] = true
          dirty = true
        end
      end
      writes[#writes + 1] = op
      writes[#writes + 1] = mode == 'release' and 'e|r' or 'e|s'
      scores[#scores + 1] = tombstone_expiry
      scores[#scores + 1] = op
      local m = #out
      out[m + 1], out[m + 2], out[m + 3], out[m + 4], out[m + 5] = status, fmt(a1), fmt(a2), fmt(a3), fmt(a4)
      out[m + 6], out[m + 7], out[m + 8], out[m + 9] = fmt(c[1]), fmt(c[2]), fmt(c[3]), fmt(c[4])
      at = at + 7
    end
  end

  -- As window_capacity's write and write_window: the sums once anything moved, the changed
  -- chunks, and the chunks left empty deleted.
  local fields, empty = {}, {}
  local f1, f2, f3, f4 = fmt(s1), fmt(s2), fmt(s3), fmt(s4)
  -- 'base' never moves here, and 'last' only to a new bucket: writing what is stored already
  -- would change nothing but the cost.
  if dirty then
    fields = { 'st', f1, 'si', f2, 'so', f3, 'sr', f4 }
    if last ~= stored_last then
      fields[9], fields[10] = 'last', fmt(last)
    end
  end
  -- Each moved bucket's entry, edited into its chunk's text (found by counting entries, so
  -- the order of the edits does not matter).
  local changed = {}
  for j in pairs(moved) do
    local f = figs[j]
    local c = chunk_of(j)
    local entry = ''
    if f[5] or f[1] + f[2] + f[3] + f[4] ~= 0 then
      entry = string.format('%d:%d:%d:%d', f[1], f[2], f[3], f[4])
    end
    -- Where the entry was read, unless another entry of its chunk was edited since.
    local from, to, text = f[7], f[8], f[6]
    if text ~= chunks[c] then
      from, to, text = entry_span(chunks[c], j - c * CHUNK + 1)
    end
    chunks[c] = string.sub(text, 1, from - 1) .. entry .. string.sub(text, to + 1)
    changed[c] = true
  end
  for c in pairs(changed) do
    local text = chunks[c]
    if string.find(text, '[^,]') then
      fields[#fields + 1] = fmt(c)
      fields[#fields + 1] = text
    else
      empty[#empty + 1] = fmt(c)
    end
  end
  if #fields > 0 then
    redis.call('HSET', state_key, unpack(fields))
  end
  if #empty > 0 then
    redis.call('HDEL', state_key, unpack(empty))
  end
  local exp = v[4]
  redis.call('HSET', records, unpack(writes))
  redis.call('ZADD', expiry, unpack(scores))
  redis.call('PEXPIREAT', records, exp)
  redis.call('PEXPIREAT', expiry, exp)
  -- As the general path's last fields: what the window holds now, and the published instance
  -- count while it counts.
  local m = #out
  out[m + 1], out[m + 2], out[m + 3], out[m + 4] = f1, f2, f3, f4
  out[m + 5] = fast_instances(v, now)
  return table.concat(out, '|')
end

-- The commonest call of all, one acquire, on a path of its own with the same checks and the same
-- writes as fast_call's (which serves it otherwise): no table per command, one entry of one
-- chunk edited, and no read of the records: its ZADD into expiry (which holds every record while
-- nothing waits) says whether the op id is known, NX leaving it as it was when it is. Returns the
-- reply, or nil to hand the call to the general path (before any write but a trim).
local function lone_acquire(state_key, records, expiry, now, W, B, configured, horizon, lease, at)
  local n = bucket_of(now, W, B)
  local v, field, limit = fast_state(state_key, n, now, W, B, configured, horizon, lease)
  if not v then
    return nil
  end
  local t, i, o, r = tonumber(ARGV[at + 3]), tonumber(ARGV[at + 4]), tonumber(ARGV[at + 5]), tonumber(ARGV[at + 6])
  local gave_up = tonumber(ARGV[at + 8])
  local s1, s2, s3, s4 = (tonumber(v[10]) or 0) + t, (tonumber(v[11]) or 0) + i, (tonumber(v[12]) or 0) + o,
    (tonumber(v[13]) or 0) + r
  local l1, l2, l3, l4 = limit[1], limit[2], limit[3], limit[4]
  if (gave_up >= 0 and now > gave_up) or (l1 > 0 and s1 > l1) or (l2 > 0 and s2 > l2) or (l3 > 0 and s3 > l3)
    or (l4 > 0 and s4 > l4) then
    return nil
  end
  trim_records(records, expiry, now)
  local op = ARGV[at + 1]
  if redis.call('ZADD', expiry, 'NX', now + W + horizon, op) == 0 then
    return nil
  end
  -- As fast_call: the bucket's entry plus the cost, written even when all zero.
  local from, to, text = entry_span(v[14] or EMPTY_CHUNK, n - chunk_of(n) * CHUNK + 1)
  local et, ei, eo, er = string.match(text, '^(%d+):(%d+):(%d+):(%d+)', from)
  if et then
    t, i, o, r = tonumber(et) + t, tonumber(ei) + i, tonumber(eo) + o, tonumber(er) + r
  end
  text = string.sub(text, 1, from - 1) .. string.format('%d:%d:%d:%d', t, i, o, r) .. string.sub(text, to + 1)
  local f1, f2, f3, f4 = fmt(s1), fmt(s2), fmt(s3), fmt(s4)
  local last = tonumber(v[9])
  if last and last >= n then
    redis.call('HSET', state_key, 'st', f1, 'si', f2, 'so', f3, 'sr', f4, field, text)
  else
    redis.call('HSET', state_key, 'st', f1, 'si', f2, 'so', f3, 'sr', f4, 'last', fmt(n), field, text)
  end
  local slot = fmt(now)
  redis.call('HSET', records, op, admitted_record(at, '|' .. slot .. '|' .. fmt(n) .. '|-1|-1|-1|-1'))
  redis.call('PEXPIREAT', records, v[4])
  redis.call('PEXPIREAT', expiry, v[4])
  return slot .. '|0||0|admitted|' .. slot .. '|0|0|' .. f1 .. '|' .. f2 .. '|' .. f3 .. '|' .. f4 .. '|' .. fast_instances(v, now)
end
