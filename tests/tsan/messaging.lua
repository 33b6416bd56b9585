-- messaging.lua: cross-worker tells, asks, spawns and stops, for ThreadSanitizer.
--
--   lore run tests/tsan/messaging.lua [SCALE [WORKERS]]     (SCALE 1, WORKERS 3 by default)
--
-- Everything runs at once on WORKERS workers: tokens circling a ring whose nodes sit
-- on different workers, asks from the application to actors on every worker,
-- churners spawning children that each tell a sink on another worker and stop
-- themselves, and an actor stopping idle actors that live on other workers.
-- Every count is checked at the end; any mismatch raises, and `lore run`
-- exits non-zero.
local lore = require "lore"

local here = (arg and arg[0] or ""):match("(.*/)") or "./"
local args = { ... }
local SCALE = tonumber(args[1]) or 1
local WORKERS = math.max(2, math.tointeger(tonumber(args[2]) or 3) or 3)
lore.configure { workers = WORKERS, scripts = { here .. "behaviours" }, log_level = "warn" }

local function scaled(n) return math.max(1, math.floor(n * SCALE + 0.5)) end
local function check(ok, fmt, ...)
  if not ok then error(string.format(fmt, ...), 2) end
end
local function wait_alive(at_most)
  for _ = 1, 10000 do
    if lore.stats().alive <= at_most then return end
    lore.sleep(0.002)
  end
  error(string.format("%d actors still alive, expected at most %d", lore.stats().alive, at_most))
end

local base = lore.stats().alive

-- A ring of NODES nodes: lore.spawn places actors round-robin, so neighbours
-- are on different workers and every hop is a cross-worker tell.
local NODES, TOKENS, HOPS = 9, scaled(30), scaled(300)
local ring = {}
for i = 1, NODES do ring[i] = lore.spawn("ring_node") end
for i = 1, NODES do ring[i]:ask({ cmd = "link", next = ring[i % NODES + 1] }, 10) end

-- Churn: one churner and one sink per worker; churner w's children tell sink w+1.
local CHILDREN = scaled(200)
local churners, sinks = {}, {}
for w = 1, WORKERS do churners[w] = lore.spawn("churner") end
for w = 1, WORKERS do sinks[w] = lore.spawn("sink") end

-- Idle actors, stopped later by a stopper on whichever worker it lands.
local IDLE = scaled(60)
local idle = {}
for i = 1, IDLE do idle[i] = lore.spawn("idle") end
local stopper = lore.spawn("stopper")

local echoes = {}
for w = 1, WORKERS do echoes[w] = lore.spawn("echo") end

-- Start everything, then ask while it runs.
local ring_latch = lore.spawn("latch", { need = TOKENS })
for t = 1, TOKENS do ring[1 + t % NODES]:tell { hops = HOPS, latch = ring_latch } end
local churn_latch = lore.spawn("latch", { need = WORKERS })
for w = 1, WORKERS do
  churners[w]:tell { cmd = "go", n = CHILDREN, sink = sinks[w % WORKERS + 1], latch = churn_latch }
end
local stop_latch = lore.spawn("latch", { need = 1 })
stopper:tell { cmd = "stop_all", refs = idle, latch = stop_latch }

local ASKS = scaled(300)
local answered_by = {}
for i = 1, ASKS do
  local e = echoes[1 + i % WORKERS]
  local r = e:ask({ v = i }, 10)
  check(r.v == i, "ask %d answered %s", i, tostring(r.v))
  answered_by[r.by] = true
end
local distinct = 0
for _ in pairs(answered_by) do distinct = distinct + 1 end
check(distinct == WORKERS, "asks answered by %d actors, expected %d", distinct, WORKERS)

check(ring_latch:ask("wait", 60) == TOKENS, "ring latch")
check(churn_latch:ask("wait", 60) == WORKERS, "churn latch")
check(stop_latch:ask("wait", 60) == 1, "stop latch")

local passed = 0
for i = 1, NODES do passed = passed + ring[i]:ask({ cmd = "count" }, 10) end
check(passed == TOKENS * HOPS, "ring passed %d tokens on, expected %d", passed, TOKENS * HOPS)

-- The children's tells may still be on their way: wait until every child is gone.
wait_alive(base + NODES + 2 * WORKERS + 1 + WORKERS)
for w = 1, WORKERS do
  local s = sinks[w]:ask("get", 10)
  check(s.tells == CHILDREN and s.total == CHILDREN, "sink %d got %d tells (total %d), expected %d",
    w, s.tells, s.total, CHILDREN)
end

for _, group in ipairs { ring, churners, sinks, echoes, { stopper } } do
  for _, r in ipairs(group) do r:stop() end
end
wait_alive(base)
print(string.format("messaging: ok (%d hops, %d asks, %d children, %d cross-worker stops)",
  TOKENS * HOPS, ASKS, CHILDREN * WORKERS, IDLE))
lore.shutdown()
