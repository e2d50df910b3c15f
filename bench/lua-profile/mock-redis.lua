-- A tiny in-memory Redis: the commands lua/queue.lua calls, enough to run it outside Redis.
local db = {}
local clock = 1796409073625
local function hash(k) db[k] = db[k] or { t = 'h', v = {} } return db[k].v end
local function zset(k) db[k] = db[k] or { t = 'z', v = {} } return db[k].v end
local function zsorted(z)
  local a = {}
  for m, s in pairs(z) do a[#a + 1] = { m, s } end
  table.sort(a, function(x, y) if x[2] == y[2] then return x[1] < y[1] end return x[2] < y[2] end)
  return a
end
redis = {}
function redis.call(cmd, ...)
  local a = { ... }
  if cmd == 'TIME' then clock = clock + 50 return { tostring(math.floor(clock / 1000)), tostring((clock % 1000) * 1000) } end
  if cmd == 'HMGET' then local h = hash(a[1]) local out = {} for i = 2, #a do out[i - 1] = h[a[i]] or false end return out end
  if cmd == 'HGET' then return hash(a[1])[a[2]] or false end
  if cmd == 'HSET' then local h = hash(a[1]) for i = 2, #a, 2 do h[a[i]] = tostring(a[i + 1]) end return 1 end
  if cmd == 'HDEL' then local h = hash(a[1]) for i = 2, #a do h[a[i]] = nil end return 1 end
  if cmd == 'PEXPIREAT' or cmd == 'PUBLISH' then return 1 end
  if cmd == 'ZADD' then
    local z, nx, from, added = zset(a[1]), a[2] == 'NX', a[2] == 'NX' and 3 or 2, 0
    for i = from, #a, 2 do if not (nx and z[a[i + 1]]) then added = added + (z[a[i + 1]] and 0 or 1) z[a[i + 1]] = tonumber(a[i]) end end
    return added
  end
  if cmd == 'ZREM' then local z = zset(a[1]) for i = 2, #a do z[a[i]] = nil end return 1 end
  if cmd == 'ZSCORE' then local s = zset(a[1])[a[2]] return s and tostring(s) or false end
  if cmd == 'ZRANGE' then
    local s = zsorted(zset(a[1])) local n = #s
    local from, to = tonumber(a[2]), tonumber(a[3]) if from < 0 then from = n + from end if to < 0 then to = n + to end
    local out = {} for i = from + 1, math.min(to + 1, n) do out[#out + 1] = s[i][1] if a[4] then out[#out + 1] = tostring(s[i][2]) end end
    return out
  end
  if cmd == 'ZRANK' then local s = zsorted(zset(a[1])) for i, e in ipairs(s) do if e[1] == a[2] then return i - 1 end end return false end
  if cmd == 'ZRANGEBYSCORE' then
    local hi = tonumber(a[3]) local m = {}
    for k, s in pairs(zset(a[1])) do if s <= hi then m[k] = s end end
    local out = {}
    for _, e in ipairs(zsorted(m)) do if #out < 512 then out[#out + 1] = e[1] end end
    return out
  end
  if cmd == 'ZREMRANGEBYSCORE' then local z = zset(a[1]) local hi = tonumber(a[3]) for m, s in pairs(z) do if s <= hi then z[m] = nil end end return 1 end
  error('mock: ' .. cmd)
end
