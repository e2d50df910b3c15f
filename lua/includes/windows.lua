-- The sliding window's buckets (inlined where a script says `--- @include "windows"`): bucket
-- j's first ms, the chunked bucket store of a window hash (layout in common.lua), and the
-- running sums kept as buckets enter and leave the window.

local function bucket_start(j, window_ms, buckets)
  return math.ceil(j * window_ms / buckets)
end

-- The buckets of one window hash, read a chunk at a time and written back by `flush`.
local function bucket_store(window)
  -- chunk index -> array of CHUNK entries: false (empty), the stored "t:i:o:r" text (not read
  -- yet), or { t, i, o, r } (read, maybe changed)
  local chunks = {}
  local dirty = {}
  local self = {}

  -- Takes chunk c's stored value (false when absent), as read by the caller.
  function self.seed(c, v)
    local entries = {}
    local k = 0
    if v then
      for e in string.gmatch(v .. ',', '([^,]*),') do
        k = k + 1
        entries[k] = e ~= '' and e
      end
    end
    for x = k + 1, CHUNK do
      entries[x] = false
    end
    chunks[c] = entries
  end

  -- Reads, in one call, the chunks covering buckets [from, to] that were not read yet.
  function self.load(from, to)
    local fields, at = {}, {}
    for c = chunk_of(from), chunk_of(to) do
      if not chunks[c] then
        fields[#fields + 1] = fmt(c)
        at[#at + 1] = c
      end
    end
    if #fields == 0 then
      return
    end
    local values = redis.call('HMGET', window, unpack(fields))
    for x = 1, #fields do
      self.seed(at[x], values[x])
    end
  end

  -- The figures of bucket j, { t, i, o, r }, or nil when it is empty.
  function self.get(j)
    local c = chunk_of(j)
    local entries = chunks[c]
    if not entries then
      self.load(j, j)
      entries = chunks[c]
    end
    local k = j - c * CHUNK + 1
    local e = entries[k]
    if type(e) == 'string' then
      local t, i, o, r = string.match(e, '^(%d+):(%d+):(%d+):(%d+)$')
      e = { tonumber(t), tonumber(i), tonumber(o), tonumber(r) }
      entries[k] = e
    end
    return e or nil
  end

  -- Sets bucket j's figures (all zero empties it).
  function self.set(j, t, i, o, r)
    local c = chunk_of(j)
    if not chunks[c] then
      self.load(j, j)
    end
    if t + i + o + r == 0 then
      chunks[c][j - c * CHUNK + 1] = false
    else
      chunks[c][j - c * CHUNK + 1] = { t, i, o, r }
    end
    dirty[c] = true
  end

  -- Adds to bucket j's figures.
  function self.add(j, t, i, o, r)
    local e = self.get(j)
    local c = chunk_of(j)
    if e then
      e[1], e[2], e[3], e[4] = e[1] + t, e[2] + i, e[3] + o, e[4] + r
    else
      chunks[c][j - c * CHUNK + 1] = { t, i, o, r }
    end
    dirty[c] = true
  end

  -- Appends the changed chunks to `fields` (HSET arguments) and returns the names of those
  -- left empty, to delete.
  function self.flush(fields)
    local empty = {}
    for c in pairs(dirty) do
      local parts = {}
      local any = false
      for k = 1, CHUNK do
        local e = chunks[c][k]
        if type(e) == 'table' then
          e = fmt(e[1]) .. ':' .. fmt(e[2]) .. ':' .. fmt(e[3]) .. ':' .. fmt(e[4])
        end
        parts[k] = e or ''
        any = any or e ~= false
      end
      if any then
        fields[#fields + 1] = fmt(c)
        fields[#fields + 1] = table.concat(parts, ',')
      else
        empty[#empty + 1] = fmt(c)
      end
    end
    dirty = {}
    return empty
  end

  return self
end

-- Writes `fields` (field, value pairs) and the changed chunks of `buckets`, deleting the chunks
-- left empty.
local function write_window(window, buckets, fields)
  local empty = buckets.flush(fields)
  if #fields > 0 then
    redis.call('HSET', window, unpack(fields))
  end
  if #empty > 0 then
    redis.call('HDEL', window, unpack(empty))
  end
end

-- Sums of the B + 1 buckets of the window ending with bucket n.
local function window_used(buckets, n, B)
  buckets.load(n - B, n)
  local used = { 0, 0, 0, 0 }
  for k = n - B, n do
    local b = buckets.get(k)
    if b then
      used[1], used[2], used[3], used[4] = used[1] + b[1], used[2] + b[2], used[3] + b[3], used[4] + b[4]
    end
  end
  return used
end

-- Buckets older than the window (below `oldest`) leave the running sums, each once, and the
-- chunks left wholly behind are deleted. Every script that charges a bucket advances first, so
-- base..last spans at most B + 1 buckets and this is bounded. Returns the new base and sums.
local function window_advance(window, base, last, sums, oldest)
  local gone = {}
  if last < oldest then
    sums = { 0, 0, 0, 0 }
    for c = chunk_of(base), chunk_of(math.max(base, last)) do
      gone[#gone + 1] = fmt(c)
    end
  else
    local old = bucket_store(window)
    old.load(base, oldest - 1)
    for k = base, oldest - 1 do
      local b = old.get(k)
      if b then
        sums[1], sums[2], sums[3], sums[4] = sums[1] - b[1], sums[2] - b[2], sums[3] - b[3], sums[4] - b[4]
      end
    end
    for c = chunk_of(base), chunk_of(oldest) - 1 do
      gone[#gone + 1] = fmt(c)
    end
  end
  if #gone > 0 then
    redis.call('HDEL', window, unpack(gone))
  end
  return oldest, sums
end
