-- runtime_bench.lua: figures for the actor runtime (never pass/fail).
--
--   lore run tests/bench/runtime_bench.lua [SCALE]      all benchmarks; SCALE 1 = full
--                                                        (each run ~1-2 s), 0.01 = smoke
--   lore run tests/bench/runtime_bench.lua --idle N     only the idle-actor memory figure,
--                                                        in a fresh process (run by the above)
--   lore run tests/bench/runtime_bench.lua --nohook N   only the self-tell figure with
--                                                        max_instructions = 0 (no count hook)
--
-- Wall time comes from /proc/uptime (a monotonic clock with 10 ms resolution: stock Lua
-- has none finer), CPU time from os.clock (the whole process: every scheduler thread).
-- Rates are per wall second. Messages are small integers or tiny tables.
local lore = require "lore"

local args = { ... }
local MODE = (args[1] or ""):match("^%-%-(.*)") -- nil: everything
local SCALE = MODE and 1 or (tonumber(args[1]) or 1)
local WORKERS = 2
local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."

-- Default settings, except in --nohook mode: the default instruction budget
-- (max_instructions) installs a Lua count hook, which slows every handler.
local config = { workers = WORKERS, scripts = { here .. "/behaviours" }, log_level = "warn" }
if MODE == "nohook" then config.max_instructions = 0 end
lore.configure(config)

local fmt = string.format

local function wall()
  local f = io.open("/proc/uptime", "r")
  if not f then return os.time() end
  local t = f:read("n")
  f:close()
  return t
end

local function scaled(n, min)
  return math.max(min or 1, math.floor(n * SCALE + 0.5))
end

-- Which worker a ref lives on ("ref(W:AID)"), or nil if the format is unknown.
local function worker_of(ref)
  return tonumber(tostring(ref):match("^ref%((%d+):"))
end

-- lore.spawn places actors without an id round-robin; keep spawning until one
-- lands on worker w (at most WORKERS - 1 extra, which are stopped).
local function spawn_on(w, behaviour, opts)
  for _ = 1, WORKERS * 2 do
    local r = lore.spawn(behaviour, opts)
    local rw = worker_of(r)
    if rw == nil or rw == w then return r end
    r:stop()
  end
  error("cannot place an actor on worker " .. w)
end

local function new_latch(need)
  return lore.spawn("latch", { need = need or 1 })
end

local function wait_latch(latch)
  return latch:ask("wait", 600)
end

local function wait_alive(at_most)
  while lore.stats().alive > at_most do lore.sleep(0.001) end
end

---------------------------------------------------------------------------
-- Reporting
---------------------------------------------------------------------------

local rows = {}

local function human(rate)
  if rate >= 1e6 then return fmt("%.2f M/s", rate / 1e6) end
  if rate >= 1e3 then return fmt("%.1f k/s", rate / 1e3) end
  return fmt("%.0f /s", rate)
end

local function row(name, text, w, c, goal)
  rows[#rows + 1] = { name, text, w and fmt("%.2f", w) or "", c and fmt("%.2f", c) or "", goal or "" }
  io.write(fmt("%-56s %-12s %7s %7s  %s\n", name, text, rows[#rows][3], rows[#rows][4], goal or ""))
  io.flush()
end

-- Runs fn(mark) (which returns the number of operations it did) and reports a
-- rate; fn calls mark() once its setup is done, to start the clocks there.
local function bench(name, goal, fn)
  collectgarbage()
  local w0, c0 = wall(), os.clock()
  local function mark() w0, c0 = wall(), os.clock() end
  local n = fn(mark)
  local w, c = wall() - w0, os.clock() - c0
  local text
  if w <= 0 then
    text = "< 10 ms"
  else
    text = human(n / w)
  end
  row(name, text, w, c, goal)
  return n, w, c
end

---------------------------------------------------------------------------
-- Baselines: the same per-message work as plain Lua in this (the app's) state:
-- a FIFO queue and a handler call per message, no runtime at all.
---------------------------------------------------------------------------

local function baseline_tells(n)
  local q, head, tail = {}, 1, 0
  local function tell(x)
    tail = tail + 1
    q[tail] = x
  end
  local st, ctx = {}, {}
  local function receive(_, msg, _)
    if msg > 0 then tell(msg - 1) end
  end
  tell(n)
  while head <= tail do
    local m = q[head]
    q[head] = nil
    head = head + 1
    receive(st, m, ctx)
  end
  return n + 1
end

local function baseline_ask(n)
  local co = coroutine.wrap(function(x)
    while true do x = coroutine.yield(x) end
  end)
  co(0)
  for i = 1, n do co(i) end
  return n
end

local function baseline_spawn(n)
  local mt = { __index = {} }
  local registry = {}
  for i = 1, n do
    registry[i] = setmetatable({ id = nil, seq = 0, recovering = false, _st = {} }, mt) -- spawn
    registry[i] = nil -- stop
  end
  assert(next(registry) == nil)
  return n
end

local function baseline_idle_bytes(n)
  collectgarbage()
  local before = collectgarbage("count")
  local mt = { __index = {} }
  local live = {}
  for i = 1, n do
    live[i] = setmetatable({ id = nil, seq = 0, recovering = false, _st = {}, _aid = i }, mt)
  end
  collectgarbage()
  local after = collectgarbage("count")
  assert(#live == n)
  return (after - before) * 1024 / n
end

---------------------------------------------------------------------------
-- Idle actors: RSS before/after spawning N idle actors, in a process that
-- has done nothing else (memory freed by earlier runs would hide the cost).
---------------------------------------------------------------------------

local function rss_bytes()
  local f = io.open("/proc/self/statm", "r")
  if not f then return nil end
  local _, resident = f:read("n", "n")
  f:close()
  local page = 4096
  local p = io.popen and io.popen("getconf PAGESIZE 2>/dev/null")
  if p then
    page = tonumber(p:read("l")) or page
    p:close()
  end
  return resident * page
end

local function idle_only(n)
  local per = n // WORKERS
  local spawners = {}
  for w = 1, WORKERS do spawners[w] = spawn_on(w, "spawner") end
  lore.sleep(0.05)
  local base_alive = lore.stats().alive
  local before = rss_bytes()
  local latch = new_latch(WORKERS)
  local w0 = wall()
  for w = 1, WORKERS do
    spawners[w]:tell { cmd = "go", n = per, chunk = 1000, stop = false, child = "idle", latch = latch }
  end
  wait_latch(latch)
  local w = wall() - w0
  lore.sleep(0.05)
  local after = rss_bytes()
  local alive = lore.stats().alive - base_alive
  print(fmt("IDLE %d %d %d %d %.2f", per * WORKERS, alive, before or -1, after or -1, w))
  lore.shutdown()
end

-- The self-tell run alone (for --nohook).
local function selftell(n)
  local a = spawn_on(1, "selfloop")
  local latch = new_latch(1)
  local w0, c0 = wall(), os.clock()
  a:tell { cmd = "go", n = n, latch = latch }
  wait_latch(latch)
  print(fmt("SELFTELL %d %.2f %.2f", n + 1, wall() - w0, os.clock() - c0))
  lore.shutdown()
end

if MODE == "idle" then return idle_only(tonumber(args[2]) or 100000) end
if MODE == "nohook" then return selftell(tonumber(args[2]) or 4000000) end
if MODE then error("unknown mode --" .. MODE .. " (--idle N, --nohook N)") end

-- Runs this script again in a fresh process with `--MODE N`; returns its output.
local function subprocess(mode, n)
  local function q(x) return "'" .. tostring(x):gsub("'", "'\\''") .. "'" end
  local exe, script = arg and arg[-1], arg and arg[0]
  if not (exe and script and io.popen) then return "" end
  local p = io.popen(fmt("%s run %s --%s %d 2>&1", q(exe), q(script), mode, n))
  if not p then return "" end
  local out = p:read("a") or ""
  local ok, how, code = p:close()
  if not ok then error(fmt("the --%s run failed (%s %s):\n%s", mode, how, code, out)) end
  return out
end

---------------------------------------------------------------------------
-- The benchmarks
---------------------------------------------------------------------------

print(fmt("Lore runtime benchmarks: workers = %d, scale = %g, %s", WORKERS, SCALE, _VERSION))
print(fmt("%-56s %-12s %7s %7s  %s", "figure", "rate", "wall s", "cpu s", "goal"))

-- 1. one-way tells within one scheduler
do
  local n = scaled(4e6, 100)
  bench("baseline: plain Lua queue + handler call", "", function() return baseline_tells(n) end)

  bench("tells, one actor telling itself", "3 M/s per scheduler", function(mark)
    local a = spawn_on(1, "selfloop")
    local latch = new_latch(1)
    mark()
    a:tell { cmd = "go", n = n, latch = latch }
    wait_latch(latch)
    a:stop()
    return n + 1
  end)
  local out = subprocess("nohook", n)
  local cnt, sw, sc = out:match("SELFTELL (%d+) ([%d.]+) ([%d.]+)")
  if cnt and tonumber(sw) > 0 then
    row("tells, one actor telling itself, max_instructions=0", human(tonumber(cnt) / tonumber(sw)),
      tonumber(sw), tonumber(sc), "(no count hook)")
  else
    row("tells, one actor telling itself, max_instructions=0", "n/a", nil, nil, out)
  end

  -- The two above again, alternated (the machine's speed drifts between
  -- runs): min / median / max of 5 rounds each, and the ratio of medians.
  local ROUNDS = SCALE < 1 and 1 or 5
  local function timed(fn)
    collectgarbage()
    local w0 = wall()
    local ops = fn()
    local w = wall() - w0
    return w > 0 and ops / w or nil
  end
  local lv, bv = {}, {}
  for r = 1, ROUNDS do
    bv[r] = timed(function() return baseline_tells(n) end)
    lv[r] = timed(function()
      local a = spawn_on(1, "selfloop")
      local latch = new_latch(1)
      a:tell { cmd = "go", n = n, latch = latch }
      wait_latch(latch)
      a:stop()
      return n + 1
    end)
  end
  local function spread(v)
    if #v < ROUNDS then return "n/a (< 10 ms)" end
    table.sort(v)
    return fmt("%s / %s / %s", human(v[1]), human(v[(#v + 1) // 2]), human(v[#v]))
  end
  local ls, bs = spread(lv), spread(bv)
  row(fmt("self tells vs the baseline, %d alternating rounds", ROUNDS), "", nil, nil,
    fmt("Lore %s; baseline %s (min / median / max)%s", ls, bs,
      #lv == ROUNDS and #bv == ROUNDS and fmt("; Lore/baseline %.2f", lv[(#lv + 1) // 2] / bv[(#bv + 1) // 2])
        or ""))

  local rounds = scaled(2e6, 100)
  bench("tells, a pair on one scheduler (ping-pong)", "3 M/s per scheduler", function(mark)
    local a = spawn_on(1, "pingpong")
    a:ask { cmd = "local_peer" }
    local latch = new_latch(1)
    mark()
    a:tell { cmd = "go", n = rounds, window = 1, latch = latch }
    wait_latch(latch)
    a:stop()
    return 2 * rounds
  end)

  bench("tells, a pair on each of 2 schedulers (total)", "2 x 3 M/s", function(mark)
    local latch = new_latch(WORKERS)
    local pairs_ = {}
    for w = 1, WORKERS do
      pairs_[w] = spawn_on(w, "pingpong")
      pairs_[w]:ask { cmd = "local_peer" }
    end
    mark()
    for w = 1, WORKERS do
      pairs_[w]:tell { cmd = "go", n = rounds, window = 1, latch = latch }
    end
    wait_latch(latch)
    for w = 1, WORKERS do pairs_[w]:stop() end
    return 2 * rounds * WORKERS
  end)
end

-- 2. one-way tells across schedulers
local function cross_pairs(mark, npairs, rounds, window)
  local latch = new_latch(npairs)
  local actors = {}
  for i = 1, npairs do
    local a = spawn_on(1 + (i - 1) % WORKERS, "pingpong")
    local b = spawn_on(1 + i % WORKERS, "pingpong")
    b:ask { cmd = "setup", peer = a, echo = true }
    a:ask { cmd = "setup", peer = b }
    actors[#actors + 1], actors[#actors + 2] = a, b
  end
  mark()
  for i = 1, npairs do
    actors[2 * i - 1]:tell { cmd = "go", n = rounds, window = window, latch = latch }
  end
  wait_latch(latch)
  for _, r in ipairs(actors) do r:stop() end
  return 2 * rounds * npairs
end

do
  local rounds = scaled(1.5e6, 100)
  bench("tells across schedulers, 1 pair, 1000 in flight", "1 M/s", function(mark)
    return cross_pairs(mark, 1, rounds, 1000)
  end)
  local per = scaled(1e6, 100)
  bench("tells across schedulers, 2 pairs, 1000 in flight each", "1 M/s", function(mark)
    return cross_pairs(mark, 2, per, 1000)
  end)
  local lat = scaled(3.5e4, 20)
  bench("tells across schedulers, 1 pair, 1 in flight", "(latency-bound)", function(mark)
    return cross_pairs(mark, 1, lat, 1)
  end)
end

-- 3. asks
do
  local n = scaled(1e6, 100)
  bench("baseline: coroutine resume/yield round trip", "", function() return baseline_ask(n) end)

  local asks = scaled(3e4, 20)
  bench("asks from the app script, sequential", "0.35 M/s", function(mark)
    local e = spawn_on(1, "echo")
    mark()
    for i = 1, asks do
      if e:ask(i, 60) ~= i then error("echo answered wrong") end
    end
    e:stop()
    return asks
  end)

  local nreq, total = 200, scaled(1e6, 400)
  bench(fmt("request/response between actors, %d requesters", nreq), "0.35 M/s", function(mark)
    local servers = {}
    for w = 1, WORKERS do servers[w] = spawn_on(w, "server") end
    local latch = new_latch(nreq)
    local each = math.max(1, total // nreq)
    local reqs = {}
    for i = 1, nreq do reqs[i] = spawn_on(1 + (i - 1) % WORKERS, "requester") end
    mark()
    for i = 1, nreq do
      local w = 1 + (i - 1) % WORKERS
      -- ask a server on the other worker: a real cross-scheduler round trip
      reqs[i]:tell { cmd = "go", n = each, latch = latch, server = servers[1 + w % WORKERS] }
    end
    wait_latch(latch)
    for w = 1, WORKERS do servers[w]:stop() end
    return each * nreq
  end)
end

-- 4. spawns
do
  local n = scaled(1e6, 100)
  bench("baseline: plain Lua record (table + metatable)", "", function() return baseline_spawn(n) end)

  local spawns = scaled(6e5, 100)
  -- chunk: children spawned per message. The spawner's "more" messages to
  -- itself are handled in the same turn (64 messages a turn), so up to
  -- 64 * chunk children are alive before their stop messages run.
  local function spawn_stop(mark, nw, chunk, count)
    local base = lore.stats().alive
    local latch = new_latch(nw)
    local sp = {}
    for w = 1, nw do sp[w] = spawn_on(w, "spawner") end
    mark()
    for w = 1, nw do
      sp[w]:tell { cmd = "go", n = count, chunk = chunk, stop = true, child = "idle", latch = latch }
    end
    wait_latch(latch)
    wait_alive(base) -- every child (and the spawners) gone
    return count * nw
  end
  bench("spawn + stop with ctx:spawn, 1 scheduler, <= 640 live", "0.3 M/s", function(mark)
    return spawn_stop(mark, 1, 10, spawns)
  end)
  bench("spawn + stop with ctx:spawn, 2 schedulers (total)", "0.3 M/s", function(mark)
    return spawn_stop(mark, WORKERS, 10, spawns)
  end)
  bench("spawn + stop with ctx:spawn, 1 scheduler, <= 64k live", "0.3 M/s", function(mark)
    return spawn_stop(mark, 1, 1000, spawns // 2)
  end)

  local app_spawns = scaled(2e4, 10)
  bench("lore.spawn + ref:stop from the app, sequential", "", function()
    local base = lore.stats().alive
    for _ = 1, app_spawns do lore.spawn("idle"):stop() end
    wait_alive(base)
    return app_spawns
  end)
end

-- 5. bytes per idle actor (a fresh process: see idle_only)
do
  local n = scaled(1e5, 1000)
  local lua_bytes = baseline_idle_bytes(n)
  row("baseline: plain Lua record, bytes each", fmt("%.0f B", lua_bytes), nil, nil, "")
  local out = subprocess("idle", n)
  local total, alive, before, after, w = out:match("IDLE (%d+) (%d+) (%-?%d+) (%-?%d+) ([%d.]+)")
  if total and tonumber(before) > 0 then
    total, alive, before, after = tonumber(total), tonumber(alive), tonumber(before), tonumber(after)
    w = tonumber(w)
    row(fmt("spawns, all %d stay alive, 2 schedulers (total)", total),
      w > 0 and human(total / w) or "< 10 ms", w, nil, "0.3 M/s")
    row(fmt("bytes per idle actor (RSS delta / %d; %d alive)", total, alive),
      fmt("%.0f B", (after - before) / total), nil, nil, "< 1 KiB (1024 B)")
  else
    row("bytes per idle actor", "n/a", nil, nil, "< 1 KiB: " .. out)
  end
end

print("skynet for reference: 0.3 M msgs/s, 0.165 M calls/s, 3.5 k spawns/s, 50.7 KB per service")
lore.shutdown()
