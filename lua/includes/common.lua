-- Shared pieces of the limiter scripts (inlined where a script says `--- @include "common"`).
--
-- Layout of one model's state, both keys under one hash tag so they share a Cluster slot:
--   window hash  fields 'base' (lowest bucket still counted), 'tail' (highest bucket handed out),
--                'st' 'si' 'so' 'sr' (running sums of every stored bucket: combined tokens,
--                input tokens, output tokens, requests), 'exp' (epoch ms the keys' TTL runs to),
--                and one field per non-empty bucket, named by its index, valued "t:i:o:r".
--   ops ring     sorted set of recent operation ids: an acquire's id scored by its slot time
--                (ms), a released id scored by minus the release time, an adjust key scored by
--                the time it was applied. Bounded by count, it makes a re-sent command count
--                once and lets a late acquire see that it was cancelled.
-- Time is the Redis server's, never a client's, so clock skew between clients changes nothing.

local function fmt(x)
  return string.format('%d', x)
end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Bucket j covers [j * window / B, (j + 1) * window / B) ms. Every product here stays below
-- 2^53, so doubles compute these exactly, the same way the in-memory store does.
local function bucket_of(ms, window_ms, buckets)
  return math.floor(ms * buckets / window_ms)
end

local function bucket_start(j, window_ms, buckets)
  return math.ceil(j * window_ms / buckets)
end

local function unpack_bucket(v)
  if not v then
    return 0, 0, 0, 0
  end
  local t, i, o, r = string.match(v, '^(%d+):(%d+):(%d+):(%d+)$')
  return tonumber(t), tonumber(i), tonumber(o), tonumber(r)
end

local function pack_bucket(t, i, o, r)
  return fmt(t) .. ':' .. fmt(i) .. ':' .. fmt(o) .. ':' .. fmt(r)
end

-- Sums of the B + 1 buckets of the window ending with bucket n, and the raw field values read
-- (the last one is bucket n itself).
local function window_used(window, n, buckets)
  local fields = {}
  for k = n - buckets, n do
    fields[#fields + 1] = fmt(k)
  end
  local values = redis.call('HMGET', window, unpack(fields))
  local used = { 0, 0, 0, 0 }
  for x = 1, #fields do
    local t, i, o, r = unpack_bucket(values[x])
    used[1], used[2], used[3], used[4] = used[1] + t, used[2] + i, used[3] + o, used[4] + r
  end
  return used, values
end

-- Keeps the newest `capacity` operations (highest scores) and drops the rest in one call: an
-- old tombstone (negative score) goes first. Age needs no trimming of its own: the ring expires
-- with the model's keys, and its size is bounded either way.
local function ring_trim(ring, capacity)
  redis.call('ZREMRANGEBYRANK', ring, 0, -capacity - 1)
end

-- Every key carries a TTL that outlives the last reservation by a window plus the ring horizon.
-- It is pushed forward about once a window, not on every call.
local function ttl_needed(latest_ms, window_ms, horizon_ms)
  return latest_ms + window_ms + horizon_ms
end

local function keep_alive(window, ring, expire_at)
  redis.call('PEXPIREAT', window, expire_at)
  redis.call('PEXPIREAT', ring, expire_at)
end

-- Back-off after the provider answered 429 (see backoff.lua): fields 'p' (pause admissions
-- until this epoch ms), 'f' (limit factor after the last cut or re-base), 'fa' (when 'f' was
-- set), 'fc' (when the limit was last cut). The factor recovers linearly, RECOVERY of the limit
-- per window, back to 1.
--
-- Learned limits (unknown capacity) use the same fields, with 'fa' set to -1: the factor does
-- not recover by time and may pass 1; it grows only while demand presses against it (see
-- learn_limits), and 'fg' says from when the next growth counts.
local RECOVERY = 0.1

local function limit_factor(f, fa, now, window_ms)
  if not f then
    return 1
  end
  local at = tonumber(fa)
  if at < 0 then
    return tonumber(f)
  end
  return math.min(1, tonumber(f) + RECOVERY * (now - at) / window_ms)
end

local function scale_limits(limit, factor)
  if factor == 1 then
    return limit
  end
  local scaled = {}
  for d = 1, #limit do
    if limit[d] > 0 then
      scaled[d] = math.max(1, math.floor(limit[d] * factor))
    else
      scaled[d] = 0
    end
  end
  return scaled
end

-- Learned limits, after an acquire outside a pause that found no room now (demand presses
-- against the limits): the factor grows by `step` per window of time since growth was last
-- counted ('fg'), at most one window's worth at once, up to `max_factor`. So it grows by `step`
-- per window in which demand pressed at least once, and not at all while demand stays below.
local function learn_limits(state, f, fg, now, window_ms, max_factor, step)
  local since = math.min(window_ms, math.max(0, now - (tonumber(fg) or now)))
  local grown = math.min(max_factor, (tonumber(f) or 1) + step * since / window_ms)
  redis.call('HSET', state, 'f', tostring(grown), 'fa', '-1', 'fg', fmt(now))
end
