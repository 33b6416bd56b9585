-- entities_bench.lua: entities and passivation beside their baselines (figures, never
-- pass/fail). See tests/bench/README.md ("Entities") for what each figure means.
--
--   lore run tests/bench/entities_bench.lua [--smoke] [N]
--
-- N entities (default 1,000,000; 2,000 with --smoke) of ent_cart, a persistent cart,
-- each touched once (one command: one event persisted, acknowledged), with passivation
-- on, from the app with at most 2,000 commands in flight: entities/s, the peak RSS, the
-- RSS once every entity is passivated; then a sample of them woken one at a time by an
-- ask (recovered from their one event): wake-up latency, and the latency of the same ask
-- to an entity already awake. Baselines, each in a fresh process: a bare Lua table of N
-- small state tables touched once (rate, peak RSS, RSS after dropping it); the same
-- streams read by hand from SQLite (bench_sqlite_baseline fills a file with the same ids
-- and event bytes, bench_entity_wake reads the sampled ids one at a time).
--
-- Internal modes (one process each, run by the driver):
--   --lore DB N PASSIVATE_AFTER SAMPLE
--   --lua N
local lore = require "lore"

local args = { ... }
local fmt = string.format

local LORE, script = arg and arg[-1], arg and arg[0]
assert(LORE and script, "run me with `lore run`")
local here = script:match("^(.*)/[^/]*$") or "."
local common = dofile(here .. "/common.lua")
local q, sh = common.q, common.sh
local clock = dofile(here .. "/fine_clock.lua")
local now = clock.now or clock.uptime
local WINDOW = 2000

-- VmRSS and VmHWM (peak) of this process, in bytes.
local function rss()
  local f = assert(io.open("/proc/self/status", "r"))
  local s = f:read("a")
  f:close()
  return tonumber(s:match("VmRSS:%s*(%d+) kB")) * 1024, tonumber(s:match("VmHWM:%s*(%d+) kB")) * 1024
end

-- The k-th of `sample` ids spread over cart-1..cart-n (bench_entity_wake.c reads the same).
local function sampled_id(k, n, sample) return "cart-" .. (1 + (k - 1) * (n // sample)) end

-- Times op(k) for k = 1..count, one sample each (the mean of a batch of ten when the
-- clock is /proc/uptime's).
local function samples(count, op)
  local out = {}
  if clock.now then
    for k = 1, count do
      local t0 = now()
      op(k)
      out[k] = now() - t0 - clock.cost
    end
  else
    local k = 0
    while k < count do
      local t0, b = now(), math.min(10, count - k)
      for i = 1, b do op(k + i) end
      out[#out + 1] = (now() - t0) / b
      k = k + b
    end
  end
  return out
end

local function report(name, list)
  local parts = {}
  for i, x in ipairs(list) do parts[i] = fmt("%.9f", x) end
  print(name .. " " .. table.concat(parts, " "))
end

---------------------------------------------------------------------------
-- The rounds
---------------------------------------------------------------------------

local function lore_round(db, n, passivate_after, sample)
  lore.configure { journal = "sqlite:" .. db, workers = 2, scripts = { here .. "/behaviours" }, log_level = "warn" }
  local carts = lore.entities("ent_cart", { passivate_after = passivate_after })
  local gate = lore.spawn("gate")
  local rss0 = rss()
  local msg = { type = "add", sku = "pear", qty = 2, ack = gate } -- the baseline's event 1: pear x2
  local most_live = 0
  local t0 = now()
  for i = 1, n do
    carts:tell("cart-" .. i, msg)
    if i % (WINDOW // 2) == 0 and i > WINDOW then
      gate:ask({ until_ = i - WINDOW }, 600)
      local live = carts:stats().live
      if live > most_live then most_live = live end
    end
  end
  gate:ask({ until_ = n }, 600)
  local touch = now() - t0
  local rss_touched = rss()
  local deadline = clock.uptime() + passivate_after * 2 + 600
  while carts:stats().live > 0 do
    assert(clock.uptime() < deadline, "the entities were never all passivated")
    lore.sleep(0.05)
  end
  local rss_passivated, peak = rss()
  local wake = samples(sample, function(k)
    local got = carts:ask(sampled_id(k, n, sample), { type = "get" }, 60)
    if got.count ~= 1 then error(fmt("%s woke with %s events, not 1", sampled_id(k, n, sample), got.count)) end
  end)
  local awake = samples(sample, function(k) carts:ask(sampled_id(k, n, sample), { type = "get" }, 60) end)
  local st = carts:stats()
  print(fmt("TOUCH n=%d seconds=%.6f most_live=%d", n, touch, most_live))
  print(fmt("RSS before=%d touched=%d passivated=%d peak=%d", rss0, rss_touched, rss_passivated, peak))
  print(fmt("STATS woken=%d passivated=%d held=%d", st.woken, st.passivated, st.held))
  report("WAKE", wake)
  report("AWAKE", awake)
  lore.shutdown()
end

local function lua_round(n)
  local rss0 = rss()
  local t0 = now()
  local states = {}
  for i = 1, n do -- what a cart entity does with its first command, in a table
    local id = "cart-" .. i
    local st = states[id]
    if not st then
      st = { items = {}, count = 0 }
      states[id] = st
    end
    st.items.pear = (st.items.pear or 0) + 2
    st.count = st.count + 1
  end
  local touch = now() - t0
  local rss_touched = rss()
  states = nil -- luacheck: ignore 311 (dropped, for the collector)
  collectgarbage()
  collectgarbage()
  local rss_dropped, peak = rss()
  print(fmt("TOUCH n=%d seconds=%.6f", n, touch))
  print(fmt("RSS before=%d touched=%d passivated=%d peak=%d", rss0, rss_touched, rss_dropped, peak))
end

if args[1] == "--lore" then
  return lore_round(args[2], tonumber(args[3]), tonumber(args[4]), tonumber(args[5]))
elseif args[1] == "--lua" then
  return lua_round(tonumber(args[2]))
end

---------------------------------------------------------------------------
-- The driver
---------------------------------------------------------------------------

local SMOKE = args[1] == "--smoke"
local N = tonumber(args[SMOKE and 2 or 1]) or (SMOKE and 2000 or 1000000)
local PASSIVATE_AFTER = SMOKE and 0.5 or 2
local SAMPLE = math.min(N, SMOKE and 100 or 1000)

local bin_dir = LORE:match("^(.*)/[^/]*$") or "."
local FILL, WAKE = bin_dir .. "/bench_sqlite_baseline", bin_dir .. "/bench_entity_wake"


local dir = common.tmpdir("entities-bench")

local function parse(out, name)
  local line = out:match(name .. " ([^\n]*)")
  assert(line, name .. " missing from:\n" .. out)
  local t = {}
  for x in line:gmatch("%S+") do t[#t + 1] = tonumber(x) end
  return t
end

local function field(out, name)
  local v = out:match(name .. "=([%d.]+)")
  assert(v, name .. " missing from:\n" .. out)
  return tonumber(v)
end

local function percentile(list, p)
  local s = {}
  for i, x in ipairs(list) do s[i] = x end
  table.sort(s)
  return s[math.max(1, math.ceil(#s * p))]
end

local function mib(b) return fmt("%.0f MiB", b / 1048576) end
local function rate(r)
  if r >= 1e6 then return fmt("%.2f M/s", r / 1e6) end
  if r >= 1e3 then return fmt("%.1f k/s", r / 1e3) end
  return fmt("%.0f /s", r)
end
local function lat(list)
  if #list == 0 then return "n/a" end
  return fmt("%.3f / %.3f ms", percentile(list, 0.5) * 1e3, percentile(list, 0.99) * 1e3)
end
local function row(name, lore_side, base)
  print(fmt("%-44s %-22s %s", name, lore_side, base or ""))
end

print(fmt("Entities: %d carts (ent_cart) touched once each (one event persisted, acknowledged; <= %d in flight)",
  N, WINDOW))
print(fmt("passivate_after = %g s, 2 workers, journal sqlite in a temporary directory, Lore's other defaults",
  PASSIVATE_AFTER))
print(clock.now and fmt("clock: /proc/timer_list (%.1f us a reading, taken off each latency)", clock.cost * 1e6)
  or "clock: /proc/uptime (10 ms; /proc/timer_list is not readable): latencies are means of batches of 10")

local lore_out = sh(table.concat({ q(LORE), "run", q(script), "--lore", q(dir .. "/lore.db"), N, PASSIVATE_AFTER,
  SAMPLE }, " "))
local lua_out = sh(table.concat({ q(LORE), "run", q(script), "--lua", N }, " "))
sh(table.concat({ q(FILL), "fill", q(dir .. "/base.db"), N, 1 }, " "))
local base_wake = parse(sh(table.concat({ q(WAKE), q(dir .. "/base.db"), N, SAMPLE }, " ")), "SAMPLES")

local lore_rate = N / field(lore_out, "TOUCH n=%d+ seconds")
local lua_rate = N / field(lua_out, "TOUCH n=%d+ seconds")
print(fmt("%-44s %-22s %s", "figure", "Lore", "baseline"))
row("entities touched per second", rate(lore_rate), rate(lua_rate) .. " (a Lua table of state tables)")
row("  ratio, baseline / Lore", fmt("%.0f", lua_rate / lore_rate))
row("peak RSS (VmHWM)", mib(field(lore_out, "peak")), mib(field(lua_out, "peak")))
row("RSS once all are touched", mib(field(lore_out, "touched")), mib(field(lua_out, "touched")))
row("RSS once all are passivated", mib(field(lore_out, "RSS before=%d+ touched=%d+ passivated")),
  mib(field(lua_out, "RSS before=%d+ touched=%d+ passivated")) .. " (the table dropped, collected)")
row("RSS before the first", mib(field(lore_out, "RSS before")), mib(field(lua_out, "RSS before")))
row("live entities at most (sampled)", fmt("%d", field(lore_out, "most_live")))
row(fmt("wake-up latency, median / p99 (%d)", SAMPLE), lat(parse(lore_out, "WAKE")),
  lat(base_wake) .. " (the stream read by hand)")
row("the same ask, entity awake, median / p99", lat(parse(lore_out, "AWAKE")))
row("woken / passivated (mgr:stats)", fmt("%d / %d", field(lore_out, "woken"),
  field(lore_out, "STATS woken=%d+ passivated")))
sh("rm -rf " .. q(dir))
