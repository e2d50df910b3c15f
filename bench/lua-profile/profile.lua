-- Where lua/queue.lua spends its Lua time, outside Redis: the script (as the library assembles
-- it) runs in a standalone Lua 5.1 (the VM Redis embeds) against mock-redis.lua, and a count
-- hook samples the running function every 100 VM instructions. The mock's own share is reported
-- as one line; the rest is the script's Lua work, which the cost of a lone acquire is mostly
-- made of (the Redis commands it calls take a few µs each).
--
-- lua5.1 profile.lua <assembled queue.lua> [calls]   (npm run bench:lua-profile does it all)
dofile(arg[0]:gsub('profile%.lua$', 'mock-redis.lua'))
local source = assert(io.open(arg[1])):read('*a')
local script = assert(loadstring(source, 'queue'))
local calls = tonumber(arg[2] or 20000)

-- One lone acquire per call, as a limiter sends it (sliding window of 60 s, limits that never
-- hold anyone back), the clock 50 ms on per call: the window's buckets (600 ms) move every 12
-- calls, and the call that moves them takes the general path; the others take the fast path.
local function call(i)
  KEYS = { '{p:m}:w', '{p:m}:q', '{p:m}:r', '{p:m}:x', '{p:m}:o' }
  ARGV = { 'w|60000|100|0|1000000000000|0|0|0|0|0|10000|5000|256|-1', '{p:m}:n', '1',
    'A', 'op' .. i, 'AU29z9K0', '10', '10', '0', '1', '-1', '-1' }
  return script()
end
for i = 1, 2000 do
  call(i)
end

local started = os.clock()
for i = 2001, 2000 + calls do
  call(i)
end
local per_call = (os.clock() - started) * 1e6 / calls

local samples, total = {}, 0
debug.sethook(function()
  local info = debug.getinfo(2, 'S')
  if info then
    local where = 'this harness'
    if info.short_src:find('mock') then
      where = 'the mock Redis'
    elseif info.short_src:find('queue') then
      where = string.format('queue.lua (assembled) line %d', info.linedefined)
    end
    samples[where] = (samples[where] or 0) + 1
    total = total + 1
  end
end, '', 100)
for i = 2001 + calls, 2000 + 2 * calls do
  call(i)
end
debug.sethook()

local lines = {}
for line in source:gmatch('([^\n]*)\n?') do
  lines[#lines + 1] = line
end
local list = {}
for where, n in pairs(samples) do
  list[#list + 1] = { where, n }
end
table.sort(list, function(a, b) return a[2] > b[2] end)
print(string.format('%.1f µs a call, the mock included (%d calls)', per_call, calls))
for k = 1, math.min(25, #list) do
  local where, n = list[k][1], list[k][2]
  local at = tonumber(where:match('line (%d+)$'))
  local text = at and at > 0 and lines[at]:gsub('^%s+', ''):sub(1, 80) or (at == 0 and '(the main chunk)' or '')
  print(string.format('%5.1f%%  %-40s %s', 100 * n / total, where, text))
end
