-- reload_bench.lua: hot reload figures beside their baselines (figures, never pass/fail).
-- See tests/bench/README.md ("Hot reload") for what each figure means.
--
--   lore run tests/bench/reload_bench.lua [--smoke]
--
-- 1. Reload time with N live actors of the reloaded behaviour (N = 1,000 and 100,000;
--    100 and 1,000 with --smoke), each N in a fresh process: the behaviour file is saved
--    with a new M.version, then lore.reload'ed; each reload is one sample. Baseline, in
--    the same kind of process: the same save, then the file read, compiled, run and
--    swapped into package.loaded by hand, with N plain tables standing for the actors.
-- 2. Message throughput of self-telling actors of the reloaded behaviour, in rounds of
--    fixed length alternating between no reloads and a lore.reload every 100 ms.
--
-- Times come from fine_clock.lua (/proc/timer_list, as root); without it, from
-- /proc/uptime over batches long enough for its 10 ms.
--
-- Internal modes (one process each, run by the driver):
--   --reload DIR N COUNT OTHERS      Lore's reload time (OTHERS: idle actors of another behaviour)
--   --swap DIR N COUNT               the baseline
--   --throughput DIR ROUNDS SECONDS SPINNERS
local lore = require "lore"

local args = { ... }
local fmt = string.format

local LORE, script = arg and arg[-1], arg and arg[0]
assert(LORE and script, "run me with `lore run`")
local here = script:match("^(.*)/[^/]*$") or "."
local common = dofile(here .. "/common.lua")
local q, sh = common.q, common.sh
local TEMPLATE = here .. "/behaviours/reloadable.lua"
local WORKERS = 2
local clock = dofile(here .. "/fine_clock.lua")

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local template_text

-- Saves DIR/reloadable.lua as version v (what an editor does, then the reload reads).
local function save_version(dir, v)
  template_text = template_text or read(TEMPLATE)
  local text, n = template_text:gsub("\nM%.version = 1\n", "\nM.version = " .. v .. "\n", 1)
  assert(n == 1, "reloadable.lua has no `M.version = 1` line")
  local f = assert(io.open(dir .. "/reloadable.lua", "wb"))
  f:write(text)
  f:close()
end

-- count samples of op's time (seconds per op), prep() run before each op outside the
-- clock; `batch` ops per sample when the clock is coarse.
local function samples(count, coarse_batch, prep, op)
  local out = {}
  local now, cost, batch = clock.now, clock.cost, 1
  if not now then now, cost, batch = clock.uptime, 0, coarse_batch end
  for i = 1, count do
    if batch == 1 then
      prep()
      local t0 = now()
      op()
      out[i] = now() - t0 - cost
    else
      local t0 = now()
      for _ = 1, batch do
        prep()
        op()
      end
      out[i] = (now() - t0) / batch
    end
  end
  return out
end

local function report(list)
  local parts = {}
  for i, x in ipairs(list) do parts[i] = fmt("%.9f", x) end
  print("SAMPLES " .. table.concat(parts, " "))
end

local function configure(dir)
  lore.configure { workers = WORKERS, scripts = { dir, here .. "/behaviours" }, log_level = "warn" }
end

-- N idle actors of `child` (default reloadable), spawned by one spawner per worker.
local function spawn_many(n, child)
  local latch = lore.spawn("latch", { need = WORKERS })
  for w = 1, WORKERS do
    local per = n // WORKERS + (w <= n % WORKERS and 1 or 0)
    local sp
    for _ = 1, WORKERS * 2 do -- lore.spawn places round-robin: land one on worker w
      sp = lore.spawn("spawner")
      if tostring(sp):match("^ref%((%d+):") == tostring(w) then break end
      sp:stop()
    end
    sp:tell { cmd = "go", n = per, chunk = 1000, stop = false, child = child or "reloadable", latch = latch }
  end
  latch:ask("wait", 600)
end

---------------------------------------------------------------------------
-- The rounds
---------------------------------------------------------------------------

local function reload_round(dir, n, count, others)
  configure(dir)
  save_version(dir, 1)
  spawn_many(n)
  if others > 0 then spawn_many(others, "idle") end
  local probe = lore.spawn("reloadable")
  local v = 1
  local function save()
    v = v + 1
    save_version(dir, v)
  end
  local function reload()
    local ok, err = lore.reload("reloadable")
    if not ok then error("reload failed: " .. tostring(err)) end
  end
  for _ = 1, 2 do -- warm up
    save()
    reload()
  end
  report(samples(count, 50, save, reload))
  local got = probe:ask { op = "get" }
  assert(got.version == v and got.from == 1, "the probe did not move to the last version")
  print(fmt("ALIVE %d", lore.stats().alive))
  lore.shutdown()
end

local function swap_round(dir, n, count)
  save_version(dir, 1)
  local path = dir .. "/reloadable.lua"
  local function load_module()
    local text = read(path)
    local chunk = assert(load(text, "@" .. path, "t", setmetatable({}, { __index = _G })))
    return chunk("reloadable")
  end
  package.loaded.reloadable = load_module()
  local actors = {} -- what an actor is to a hand-written runtime: its module and state
  for i = 1, n do actors[i] = { module = "reloadable", state = { n = 0, total = 0, seen = {} } } end
  local v = 1
  local function save()
    v = v + 1
    save_version(dir, v)
  end
  report(samples(count, 1000, save, function() package.loaded.reloadable = load_module() end))
  assert(package.loaded[actors[n].module].version == v)
end

local function throughput_round(dir, rounds, seconds, spinners)
  local now = clock.now or clock.uptime
  configure(dir)
  save_version(dir, 1)
  local spin = {}
  for i = 1, spinners do spin[i] = lore.spawn("reloadable") end -- round-robin over the workers
  local v = 1
  for r = 1, rounds do
    -- alternate which side goes first, so a slow stretch hits both
    local order = r % 2 == 1 and { "none", "reload" } or { "reload", "none" }
    for _, mode in ipairs(order) do
      local reloads = 0
      local t0 = now()
      for i = 1, spinners do spin[i]:ask { op = "go" } end
      if mode == "reload" then
        repeat
          lore.sleep(0.1)
          v = v + 1
          save_version(dir, v)
          assert(lore.reload("reloadable"))
          reloads = reloads + 1
        until now() - t0 >= seconds
      else
        lore.sleep(seconds)
      end
      local total = 0
      for i = 1, spinners do total = total + spin[i]:ask { op = "halt" } end
      print(fmt("COUNT r%d-%s %d %d %.9f", r, mode, total, reloads, now() - t0))
    end
  end
  for i = 1, spinners do
    assert(spin[i]:ask({ op = "get" }).version == v, "a spinner is not on the last version")
  end
  lore.shutdown()
end

local MODE = (args[1] or ""):match("^%-%-(%a+)$")
if MODE == "reload" or MODE == "swap" or MODE == "throughput" then
  local dir, a, b, c = args[2], tonumber(args[3]), tonumber(args[4]), tonumber(args[5])
  if MODE == "reload" then return reload_round(dir, a, b, c) end
  if MODE == "swap" then return swap_round(dir, a, b) end
  return throughput_round(dir, a, b, c)
end

---------------------------------------------------------------------------
-- The driver
---------------------------------------------------------------------------

local SMOKE = args[1] == "--smoke"
if args[1] and not SMOKE then error("usage: reload_bench.lua [--smoke]", 0) end


local dir = common.tmpdir("reload-bench")

local function round(mode, ...)
  local words = { q(LORE), "run", q(script), "--" .. mode, q(dir) }
  for _, a in ipairs { ... } do words[#words + 1] = q(a) end
  return sh(table.concat(words, " "))
end

local function parse_samples(out)
  local line = out:match("SAMPLES ([^\n]*)")
  assert(line, "a round printed no samples:\n" .. out)
  local t = {}
  for x in line:gmatch("%S+") do t[#t + 1] = tonumber(x) end
  return t
end

local stats = common
local sorted, median = stats.sorted, stats.median

local function mmm(list, scale, unit)
  local s = sorted(list)
  return fmt("%8.3f %8.3f %8.3f %s", s[1] * scale, median(list) * scale, s[#s] * scale, unit)
end

local NS = SMOKE and { 100, 1000 } or { 1000, 100000 }
local COUNT = SMOKE and 10 or 200
local ROUNDS, SECONDS, SPINNERS = SMOKE and 1 or 6, SMOKE and 0.3 or 2, 4

local lines = 0
for _ in read(TEMPLATE):gmatch("\n") do lines = lines + 1 end
print(fmt("Hot reload: %d workers; behaviours/reloadable.lua (%d lines) saved with a new M.version before each " ..
  "reload (not timed)", WORKERS, lines))
print(clock.now and fmt("clock: /proc/timer_list (%.1f us a reading, taken off each sample)", clock.cost * 1e6)
  or "clock: /proc/uptime (10 ms; /proc/timer_list is not readable): each sample is the mean of a batch")
print(fmt("%-64s %8s %8s %8s", "figure", "min", "median", "max"))

local medians = {}
for _, n in ipairs(NS) do
  local t = parse_samples(round("reload", n, COUNT, 0))
  medians[n] = median(t)
  print(fmt("%-64s %s", fmt("lore.reload, %d live actors of it (%d samples)", n, #t), mmm(t, 1e3, "ms")))
end
do -- as many actors as the larger run, but of another behaviour: the heap's size alone
  local t = parse_samples(round("reload", NS[1], COUNT, NS[2] - NS[1]))
  medians.control = median(t)
  print(fmt("%-64s %s", fmt("lore.reload, %d of it + %d idle of another behaviour", NS[1], NS[2] - NS[1]),
    mmm(t, 1e3, "ms")))
end
for _, n in ipairs(NS) do
  local t = parse_samples(round("swap", n, COUNT))
  print(fmt("%-64s %s", fmt("baseline: read + load + package.loaded swap, %d tables", n), mmm(t, 1e3, "ms")))
end
print(fmt("%-64s %8.2f", fmt("ratio of the lore.reload medians, %d / %d actors of it", NS[2], NS[1]),
  medians[NS[2]] / medians[NS[1]]))
print(fmt("%-64s %8.2f", fmt("ratio of the lore.reload medians, %d / %d + %d of another", NS[2], NS[1],
  NS[2] - NS[1]), medians[NS[2]] / medians.control))

local out = round("throughput", ROUNDS, SECONDS, SPINNERS)
local rates = { none = {}, reload = {} }
local reload_counts = {}
for r = 1, ROUNDS do
  for _, mode in ipairs { "none", "reload" } do
    local total, reloads, secs = out:match(fmt("COUNT r%d%%-%s (%%d+) (%%d+) ([%%d.]+)", r, mode))
    assert(total, "a throughput round printed nothing:\n" .. out)
    rates[mode][r] = tonumber(total) / tonumber(secs)
    if mode == "reload" then reload_counts[r] = tonumber(reloads) end
  end
end
print(fmt("%-64s %s", fmt("messages/s, %d self-telling actors, no reload (%d x %g s)", SPINNERS, ROUNDS, SECONDS),
  mmm(rates.none, 1e-6, "M/s")))
print(fmt("%-64s %s", fmt("messages/s, the same with lore.reload every 100 ms (%g a round)", median(reload_counts)),
  mmm(rates.reload, 1e-6, "M/s")))
print(fmt("%-64s %8.3f", "ratio of the medians, with reloads / without", median(rates.reload) / median(rates.none)))
sh("rm -rf " .. q(dir))
