-- postgres_rounds.lua: one Lore round of postgres_bench.lua, in this process (a fresh runtime).
--
--   lore run tests/bench/postgres_rounds.lua MODE JOURNAL ARGS...
--
-- Public Lua API only, with the behaviours of tests/bench/behaviours (cart.lua, a persistent
-- shopping cart; waker.lua; latch.lua) and JOURNAL a "postgres:" URI. 2 workers, log_level
-- "warn", everything else Lore's defaults. The timed stretch is printed as "@mark start" /
-- "@mark end" lines, which bench_stamp stamps with a monotonic clock; the runtime is up and
-- the journal open before "@mark start". Modes (ids are "cart-1", "cart-2", ...):
--   chain   JOURNAL N M   N empty carts woken (not timed: their leases taken, their empty
--                         recoveries done); then each adds M items, one command at a time,
--                         the next sent from the previous persist's callback
--   fillone JOURNAL M     (setup, not timed) cart-1 gets M events (persist_all, 1000 at a time)
--   replay  JOURNAL M     cart-1 (M events) spawned and asked; ends with its answer
-- Each mode checks what it did (counts, answers) and raises if it went wrong.
local lore = require "lore"

local args = { ... }
local MODE, JOURNAL = args[1], args[2]
local fmt = string.format
local here = (arg and arg[0] or ""):match("(.*/)") or "./"

assert(MODE and JOURNAL, "usage: lore run postgres_rounds.lua MODE JOURNAL ARGS...")
lore.configure {
  journal = JOURNAL, workers = 2, scripts = { here .. "behaviours" }, log_level = "warn",
}

local common = dofile(here .. "common.lua")
local mark = common.mark
local function int_arg(i) return common.int_arg(args, i) end

local function latch(need) return lore.spawn("latch", { need = need }) end

local function check_count(id, want)
  local got = lore.ref(id):ask({ type = "get" }, 60).count
  if got ~= want then error(fmt("%s holds %d events, expected %d", id, got, want), 0) end
end

if MODE == "chain" then
  local n, m = int_arg(3), int_arg(4)
  local waker, l = lore.spawn("waker"), latch(1)
  waker:tell { cmd = "wake", behaviour = "cart", prefix = "cart-", from = 1, to = n, expect = 0, done = l }
  l:ask("wait", 600)
  local refs = {}
  for i = 1, n do refs[i] = lore.ref("cart-" .. i) end
  local done = latch(n)
  local before = lore.stats()
  mark("start")
  for i = 1, n do refs[i]:tell { type = "shop", left = m, done = done } end
  done:ask("wait", 3600)
  mark("end")
  local after = lore.stats()
  print(fmt("NOTE writes=%d batches=%d", after.journal_writes - before.journal_writes,
    after.journal_batches - before.journal_batches))
  check_count("cart-1", m)
  check_count("cart-" .. n, m)
elseif MODE == "fillone" then
  local m = int_arg(3)
  local c = lore.spawn("cart", { id = "cart-1" })
  local seq = 0
  while seq < m do seq = c:ask({ type = "fill", count = math.min(1000, m - seq) }, 600) end
  check_count("cart-1", m)
elseif MODE == "replay" then
  local m = int_arg(3)
  latch(1) -- the runtime is up and the journal open before the clock starts
  mark("start")
  local c = lore.spawn("cart", { id = "cart-1" })
  local got = c:ask({ type = "get" }, 600).count
  mark("end")
  if got ~= m then error(fmt("recovered %s events, expected %d", tostring(got), m), 0) end
else
  error("unknown mode " .. tostring(MODE), 0)
end
lore.shutdown()
