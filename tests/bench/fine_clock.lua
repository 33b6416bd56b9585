-- fine_clock.lua: a nanosecond clock for benchmark scripts run by `lore run`, which have
-- none finer than /proc/uptime (10 ms). Loaded with dofile; returns a table:
--
--   clock.now()     seconds on the kernel's monotonic clock, read from the "now at N nsecs"
--                   line of /proc/timer_list (readable by root only); nil when unreadable
--   clock.cost      seconds one reading takes (the median of back-to-back readings): a
--                   stretch timed by two readings includes about one of them
--   clock.uptime()  /proc/uptime, 10 ms resolution (the fallback)
--
-- A stamp taken by another process (bench_stamp) is late by however long that process
-- waits for a CPU, which on a loaded machine is milliseconds; this one is taken in the
-- measuring thread itself.
local clock = {}

function clock.uptime()
  local f = io.open("/proc/uptime", "r")
  if not f then return os.time() end
  local t = f:read("n")
  f:close()
  return t
end

local function timer_list()
  local f = io.open("/proc/timer_list", "r")
  if not f then return nil end
  local head = f:read(256)
  f:close()
  local ns = head and head:match("now at (%d+) nsecs")
  return ns and tonumber(ns) / 1e9
end

if timer_list() then
  clock.now = timer_list
  local d = {}
  for i = 1, 201 do
    local a = timer_list()
    d[i] = timer_list() - a
  end
  table.sort(d)
  clock.cost = d[101]
end

return clock
