-- writer.lua: the crash test's writer: 50 persistent actors persist without
-- pause on a sqlite journal (synchronous = "full") until the process is killed.
--
--   lore run tests/crash/writer.lua DB ACKFILE [MAX_SECONDS]
--
-- Every event whose persist callback has run is acknowledged: the actor tells
-- "id seq value" to a collector, and this script drains the collector and appends
-- the lines to ACKFILE, flushed to the OS after each drain. So a line in
-- ACKFILE is a promise that the event is durable. verify.lua checks it.
-- The script stops by itself after MAX_SECONDS (default 20): run.sh kills it
-- long before that.
local lore = require "lore"

local here = (arg and arg[0] or ""):match("(.*/)") or "./"
local db, ackpath, max_seconds = ...
assert(db and ackpath, "usage: lore run writer.lua DB ACKFILE [MAX_SECONDS]")
max_seconds = tonumber(max_seconds) or 20

local ids = dofile(here .. "behaviours/crash_ids.lua")

lore.configure {
  journal = "sqlite:" .. db,
  synchronous = "full",
  workers = 2,
  scripts = { here .. "behaviours" },
  log_level = "warn",
  max_concurrent_recoveries = 64,
}

local function now()
  local f = io.open("/proc/uptime", "r")
  local t = f and f:read("n")
  if f then f:close() end
  return t or os.time()
end

local ack = assert(io.open(ackpath, "a"))
ack:setvbuf("full", 1 << 20) -- one write(2) per drain: a kill tears at most the last line

local collector = lore.spawn("crash_collector")
local refs = {}
for i, a in ipairs(ids.actors) do
  refs[i] = lore.spawn("crash_actor", { id = a.id, kind = a.kind, collector = collector })
end
-- An ask waits for the actor's recovery: run.sh's kill clock starts at the
-- line below, once every actor persists again.
local recovered = 0
for _, r in ipairs(refs) do recovered = recovered + r:ask({ type = "get" }, 120).n end
for _, r in ipairs(refs) do r:tell { type = "go" } end
io.stdout:write(("writer: persisting (%d events recovered)\n"):format(recovered))
io.stdout:flush()

local deadline = now() + max_seconds
local total = 0
while now() < deadline do
  local acks = collector:ask("drain", 30)
  if #acks > 0 then
    ack:write(table.concat(acks, "\n"), "\n")
    ack:flush()
    total = total + #acks
  end
  lore.sleep(0.002)
end
ack:close()
print(("writer: not killed after %d s (%d acks); stopping"):format(max_seconds, total))
lore.shutdown()
