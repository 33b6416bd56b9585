-- verify.lua: after writer.lua was killed with SIGKILL, recovers every actor
-- and checks the journal against the ack file.
--
--   lore run tests/crash/verify.lua DB ACKFILE
--
-- Checks, for each actor:
--   * every acknowledged (id, seq, value) is recovered (the recovered count >= seq:
--     events form a gap-free 1..N, so seq is among them);
--   * nothing was invented: the recovered events are exactly 1..N in order,
--     each with the value the writer meant for that seq (crash_ids.check),
--     and the journal's highest seq is N;
--   * persist_all atomicity: a batch actor holds only whole batches of 5.
-- Prints "verify: ..." counts; on any violation prints each one on stderr and
-- fails (exit status 1).
local lore = require "lore"

local here = (arg and arg[0] or ""):match("(.*/)") or "./"
local db, ackpath = ...
assert(db and ackpath, "usage: lore run verify.lua DB ACKFILE")

local ids = dofile(here .. "behaviours/crash_ids.lua")

lore.configure {
  journal = "sqlite:" .. db,
  synchronous = "full",
  workers = 2,
  scripts = { here .. "behaviours" },
  log_level = "warn",
  max_concurrent_recoveries = 64,
  recovery_timeout = 60,
}

local violations = {}
local function violation(fmt, ...)
  violations[#violations + 1] = fmt:format(...)
end

-- The ack file. A kill can tear its last line (no newline yet): that line is
-- dropped from the file, so the next writer appends after a whole line.
local f = io.open(ackpath, "rb")
local text = f and f:read("a") or ""
if f then f:close() end
local torn = 0
if #text > 0 and text:sub(-1) ~= "\n" then
  local keep = text:match("^(.*\n)") or ""
  torn = 1
  text = keep
  local w = assert(io.open(ackpath, "wb"))
  w:write(text)
  w:close()
end
local known = {}
for _, a in ipairs(ids.actors) do known[a.id] = a end
local acked, nacks = {}, 0
local lineno = 0
for line in text:gmatch("([^\n]*)\n") do
  lineno = lineno + 1
  local id, seq, value = line:match("^(%S+) (%d+) (%d+)$")
  if not id then
    violation("ack file line %d is malformed: %q", lineno, line)
  elseif not known[id] then
    violation("ack file line %d names an unknown id %q", lineno, id)
  else
    seq = tonumber(seq)
    nacks = nacks + 1
    if tonumber(value) ~= ids.value(id, seq) then
      violation("ack file line %d: %s seq %d was acknowledged with value %s, the writer meant %d",
        lineno, id, seq, value, ids.value(id, seq))
    end
    if seq > (acked[id] or 0) then acked[id] = seq end
  end
end

local events, batches, kinds = 0, 0, { one = 0, batch = 0, async = 0 }
for _, a in ipairs(ids.actors) do
  local ok, st = pcall(function()
    local r = lore.spawn("crash_actor", { id = a.id, kind = a.kind })
    local s = r:ask({ type = "get" }, 60)
    r:stop()
    return s
  end)
  if not ok then
    violation("%s: recovery failed: %s", a.id, tostring(st))
  else
    events = events + st.n
    kinds[a.kind] = kinds[a.kind] + st.n
    if a.kind == "batch" then batches = batches + st.n // ids.BATCH end
    if st.bad then violation("%s: %s", a.id, st.bad) end
    local want = acked[a.id] or 0
    if st.n < want then
      violation("%s: LOST acknowledged events: seq %d was acknowledged, only %d recovered",
        a.id, want, st.n)
    end
  end
end

print(("verify: %d actors, %d events recovered (persist %d, persist_all %d = %d whole batches," ..
  " persist_async %d), %d acks checked%s, %d violations")
  :format(#ids.actors, events, kinds.one, kinds.batch, batches, kinds.async, nacks,
    torn > 0 and " (a torn last ack line dropped)" or "", #violations))
if #violations > 0 then
  for _, v in ipairs(violations) do io.stderr:write("VIOLATION: ", v, "\n") end
  error(("crash verify: %d violation(s) in %s (first: %s)"):format(#violations, db, violations[1]), 0)
end
