-- persist_rounds.lua: one Lore round of persist_bench.lua, in this process (a fresh runtime).
--
--   lore run tests/bench/persist_rounds.lua MODE DB ARGS...
--
-- Public Lua API only (lore.configure/spawn/ref/stats/shutdown, ref:ask/tell, ctx:persist
-- in tests/bench/behaviours/cart.lua). The journal is "sqlite:DB", synchronous = "full",
-- 2 workers, log_level "warn", everything else Lore's defaults. The timed stretch is
-- printed as "@mark start" / "@mark end" lines, which bench_stamp stamps with a
-- monotonic clock; the runtime is up and the journal open before "@mark start".
-- Modes (ids are "cart-1", "cart-2", ...):
--   chain  DB N M     N empty carts woken (not timed); then each adds M items, one
--                     command at a time, the next sent from the previous persist's callback
--   one    DB M       one cart; the app asks "add" M times, each answered after its persist
--   fill   DB N M     (setup, not timed) carts 1..N get M events each, in rounds of one
--                     event per cart, so their events interleave as live carts' would
--   fillone DB M      (setup, not timed) cart-1 gets M events (persist_all, 1000 at a time)
--   wake   DB N M     N carts with M events each are spawned and asked a first question by
--                     two waker actors (ctx:spawn); ends when every one has answered
--   wakeapp DB N M    the same from the app script: lore.spawn each, then ref:ask each in turn
--   replay DB M       cart-1 (M events) spawned and asked; ends with its answer
--   idle   DB N KIND  N idle carts (KIND "persistent": recovered, one event each; "plain":
--                     plain_cart, no persistence, the same state), spawned by two wakers;
--                     prints "IDLE actors=N rss_before=B rss_after=A rss_idle=I lua_before=LB
--                     lua_idle=LI" (A: 50 ms after the wake-up; I: once the workers' idle
--                     collection is done; LB, LI: the workers' Lua heaps, lore.stats().lua_memory)
-- Each mode checks what it did (counts, answers) and raises if it went wrong.
local lore = require "lore"

local args = { ... }
local MODE, DB = args[1], args[2]
local fmt = string.format
local here = (arg and arg[0] or ""):match("(.*/)") or "./"

assert(MODE and DB, "usage: lore run persist_rounds.lua MODE DB ARGS...")
lore.configure {
  journal = "sqlite:" .. DB, synchronous = "full", workers = 2,
  scripts = { here .. "behaviours" }, log_level = "warn",
  -- Stopping 100,000 idle actors can take longer than the default 5 s on a
  -- loaded VM; a forced stop there made the round (not the figure) fail.
  shutdown_timeout = 300,
}

local common = dofile(here .. "common.lua")
local mark = common.mark
local function int_arg(i) return common.int_arg(args, i) end

local function latch(need) return lore.spawn("latch", { need = need }) end

-- Two wakers (spawned round-robin: one per worker) share ids 1..n.
local function wakers()
  return { lore.spawn("waker"), lore.spawn("waker") }
end

local function wake(ws, behaviour, prefix, n, expect)
  local l = latch(#ws)
  local half = n // 2
  local ranges = { { 1, half }, { half + 1, n } }
  local used = 0
  for i, w in ipairs(ws) do
    local from, to = ranges[i][1], ranges[i][2]
    if to >= from then
      used = used + 1
      w:tell { cmd = "wake", behaviour = behaviour, prefix = prefix, from = from, to = to, expect = expect, done = l }
    end
  end
  for _ = used + 1, #ws do l:tell { done = true } end
  l:ask("wait", 600)
  local answered, wrong = 0, 0
  for _, w in ipairs(ws) do
    local s = w:ask({ cmd = "status" }, 60)
    answered, wrong = answered + s.answered, wrong + s.wrong
  end
  if answered ~= n or wrong ~= 0 then
    error(fmt("wake: %d of %d answered, %d with a count other than %d", answered, n, wrong, expect), 0)
  end
end

local function check_count(id, want)
  local got = lore.ref(id):ask({ type = "get" }, 60).count
  if got ~= want then error(fmt("%s holds %d events, expected %d", id, got, want), 0) end
end

local function rss_bytes()
  local f = assert(io.open("/proc/self/statm", "r"))
  local _, resident = f:read("n", "n")
  f:close()
  local p = assert(io.popen("getconf PAGESIZE"))
  local page = tonumber(p:read("l")) or 4096
  p:close()
  return resident * page
end

local function journal_note()
  local s = lore.stats()
  if s.journal_batches and s.journal_batches > 0 then
    print(fmt("NOTE writes=%d batches=%d", s.journal_writes, s.journal_batches))
  end
end

-- The behaviour's own module, for its item formula (the app's "add" commands use it too).
local cart = dofile(here .. "behaviours/cart.lua")

if MODE == "chain" then
  local n, m = int_arg(3), int_arg(4)
  wake(wakers(), "cart", "cart-", n, 0)
  local refs = {}
  for i = 1, n do refs[i] = lore.ref("cart-" .. i) end
  local l = latch(n)
  local before = lore.stats()
  mark("start")
  for i = 1, n do refs[i]:tell { type = "shop", left = m, done = l } end
  l:ask("wait", 3600)
  mark("end")
  local after = lore.stats()
  if after.journal_batches then
    print(fmt("NOTE writes=%d batches=%d", after.journal_writes - before.journal_writes,
      after.journal_batches - before.journal_batches))
  end
  check_count("cart-1", m)
  check_count("cart-" .. n, m)
elseif MODE == "one" then
  local m = int_arg(3)
  local c = lore.spawn("cart", { id = "cart-1" })
  c:ask({ type = "get" }, 60)
  mark("start")
  for i = 1, m do
    local sku, qty = cart.item(i)
    local r = c:ask({ type = "add", sku = sku, qty = qty }, 60)
    if r.count ~= i then error(fmt("add %d answered count %s", i, tostring(r.count)), 0) end
  end
  mark("end")
elseif MODE == "fill" then
  local n, m = int_arg(3), int_arg(4)
  local ws = wakers()
  wake(ws, "cart", "cart-", n, 0)
  for _ = 1, m do
    local l = latch(n)
    for i = 1, n do lore.ref("cart-" .. i):tell { type = "shop", left = 1, done = l } end
    l:ask("wait", 3600)
  end
  check_count("cart-1", m)
  check_count("cart-" .. n, m)
  journal_note()
elseif MODE == "fillone" then
  local m = int_arg(3)
  local c = lore.spawn("cart", { id = "cart-1" })
  local seq = 0
  while seq < m do seq = c:ask({ type = "fill", count = math.min(1000, m - seq) }, 600) end
  check_count("cart-1", m)
elseif MODE == "wake" then
  local n, m = int_arg(3), int_arg(4)
  local ws = wakers()
  mark("start")
  wake(ws, "cart", "cart-", n, m)
  mark("end")
elseif MODE == "wakeapp" then
  local n, m = int_arg(3), int_arg(4)
  latch(1) -- the runtime is up and the journal open before the clock starts
  local refs = {}
  mark("start")
  for i = 1, n do refs[i] = lore.spawn("cart", { id = "cart-" .. i }) end
  for i = 1, n do
    local got = refs[i]:ask({ type = "get" }, 60).count
    if got ~= m then error(fmt("cart-%d answered count %s, expected %d", i, tostring(got), m), 0) end
  end
  mark("end")
elseif MODE == "replay" then
  local m = int_arg(3)
  latch(1) -- the runtime is up and the journal open before the clock starts
  mark("start")
  local c = lore.spawn("cart", { id = "cart-1" })
  local got = c:ask({ type = "get" }, 600).count
  mark("end")
  if got ~= m then error(fmt("recovered %s events, expected %d", tostring(got), m), 0) end
elseif MODE == "idle" then
  local n, kind = int_arg(3), args[4]
  if kind ~= "persistent" and kind ~= "plain" then error("idle: KIND is persistent or plain", 0) end
  local ws = wakers()
  latch(1):tell { done = true } -- the latch behaviour is loaded before the first measure
  lore.sleep(0.05)
  local before = rss_bytes()
  local lua_before = lore.stats().lua_memory
  if kind == "persistent" then
    wake(ws, "cart", "cart-", n, 1)
  else
    wake(ws, "plain_cart", nil, n, 1)
  end
  lore.sleep(0.05)
  local after = rss_bytes()
  -- A second reading once the runtime is idle: the workers' idle collection
  -- (bindings/idle_gc.c) has run when their Lua heaps stop shrinking (three
  -- 100 ms looks alike; at most 5 s). Both kinds go through the same wait.
  local last, same, waited = lore.stats().lua_memory, 0, 0
  while same < 3 and waited < 5 do
    lore.sleep(0.1)
    waited = waited + 0.1
    local now = lore.stats().lua_memory
    same = now == last and same + 1 or 0
    last = now
  end
  local idle = rss_bytes()
  -- lua_idle: the workers' live Lua heaps at the idle reading (lua_memory
  -- counts what the Lua allocators hold, before mimalloc's bins round it).
  print(fmt("IDLE actors=%d rss_before=%d rss_after=%d rss_idle=%d lua_before=%d lua_idle=%d", n, before,
    after, idle, lua_before, last))
else
  error("unknown mode " .. tostring(MODE), 0)
end
lore.shutdown()
