-- Shared pieces of the limiter scripts (inlined where a script says `--- @include "common"`).
--
-- Layout of one model's state, every key under one hash tag so they share a Cluster slot:
--   window hash  fields 'base' (lowest bucket still counted), 'last' (highest bucket charged),
--                'st' 'si' 'so' 'sr' (running sums of every counted bucket: combined tokens,
--                input tokens, output tokens, requests), 'exp' (epoch ms the keys' TTL runs to),
--                and the buckets, CHUNK to a field: field c holds buckets c * CHUNK to
--                c * CHUNK + CHUNK - 1 as "t:i:o:r" entries joined by ',' (an empty bucket is an
--                empty entry). Entries below 'base' no longer count and are never read. The
--                live queue's fields are described in capacity.lua.
--   bucket hash  the token bucket's state instead (see bucket.lua and tb.lua).
--   queue, records, expiry, owners: the live queue (see records.lua).
-- Time is the Redis server's, never a client's, so clock skew between clients changes nothing.

local function fmt(x)
  return string.format('%d', x)
end

-- A fraction written in full (17 digits): Lua's tostring keeps 14, and a factor read back
-- rounded would make limits differ by a token from the memory store's.
local function real(x)
  return string.format('%.17g', x)
end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- The clock of a call: the server's, unless a test set one (the differential tests drive the
-- Redis and memory stores with one clock).
local function clock_ms(given)
  local ms = tonumber(given)
  if ms and ms >= 0 then
    return ms
  end
  return now_ms()
end

-- Bucket j covers [j * window / B, (j + 1) * window / B) ms. Every product here stays below
-- 2^53, so doubles compute these exactly, the same way the in-memory store does.
local function bucket_of(ms, window_ms, buckets)
  return math.floor(ms * buckets / window_ms)
end

-- Buckets per hash field: a window of 101 buckets takes about eleven fields, not 101.
local CHUNK = 10

local function chunk_of(j)
  return math.floor(j / CHUNK)
end

-- Back-off after the provider answered 429 (see backoff.lua): fields 'p' (pause admissions
-- until this epoch ms), 'f' (limit factor after the last cut or re-base), 'fa' (when 'f' was
-- set), 'fc' (when the limit was last cut). The factor recovers linearly, RECOVERY of the limit
-- per window, back to 1.
--
-- Learned limits (unknown capacity) use the same fields, with 'fa' set to -1: the factor does
-- not recover by time and may pass 1; it grows only while demand presses against it (see
-- learned_factor), and 'fg' says from when the next growth counts.
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
