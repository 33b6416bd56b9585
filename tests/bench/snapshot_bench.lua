-- snapshot_bench.lua: recovery of one actor with N events, with and without a recent snapshot.
-- Usage: lore run tests/bench/snapshot_bench.lua [scale]   (scale 1 = 1,000,000 events)
local lore = require "lore"

local scale = tonumber((...)) or 1
local events = math.max(1000, math.floor(1000000 * scale))
local here = (arg and arg[0] or ""):match("(.*/)") or "./"
local dir = os.getenv("LORE_TEST_TMP") or "/tmp"
local db = dir .. "/snapshot_bench_" .. os.time() .. "_" .. math.random(1e6) .. ".db"

local function now()
  local f = io.open("/proc/uptime", "r")
  local t = f and f:read("n")
  if f then f:close() end
  return t or os.time()
end

lore.configure { scripts = { here .. "behaviours" }, journal = "sqlite:" .. db,
                 synchronous = "normal", workers = 2 }

-- Fill: persist_all batches of 1000 events, then one snapshot 100 events from the end.
local filler = lore.spawn("snap_filler", { id = "bench" })
local written = 0
while written < events - 100 do
  local n = math.min(1000, events - 100 - written)
  written = filler:ask({ type = "fill", count = n }, 60)
end
filler:ask({ type = "snap" }, 60)
filler:ask({ type = "fill", count = 100 }, 60)
filler:stop()
lore.sleep(0.2)

local function recover(behaviour)
  local t0 = now()
  local ref = lore.spawn(behaviour, { id = "bench" })
  local state = ref:ask({ type = "get" }, 600)
  local dt = math.max(now() - t0, 0.01)
  assert(state.n == events, ("recovered %d events, expected %d"):format(state.n, events))
  ref:stop()
  lore.sleep(0.2)
  return dt
end

local full = recover("snap_replayer")
local snap = recover("snap_filler")
print(("%-44s %12s %12s"):format("recovery of one actor", "seconds", "events/s"))
print(("%-44s %12.2f %12.0f"):format(("full replay of %d events"):format(events), full, events / full))
print(("%-44s %12.2f %12s"):format("snapshot + replay of the last 100", snap, "-"))
print(("speed-up with a recent snapshot: %.0fx"):format(full / snap))
for _, suffix in ipairs { "", "-wal", "-shm" } do os.remove(db .. suffix) end
lore.shutdown()
