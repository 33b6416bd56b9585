-- crash_ids.lua: the crash test's actors and the values they persist; shared by
-- writer.lua and verify.lua (dofile) and crash_actor.lua (require).
--   one-N    ctx:persist, one event per command
--   batch-N  ctx:persist_all, batches of 5 events (batch number b, index k)
--   async-N  ctx:persist_async, up to 8 events in flight
local M = {}

M.BATCH = 5
M.WINDOW = 8

M.actors = {}
for i = 1, 30 do M.actors[#M.actors + 1] = { id = "one-" .. i, kind = "one" } end
for i = 1, 10 do M.actors[#M.actors + 1] = { id = "batch-" .. i, kind = "batch" } end
for i = 1, 10 do M.actors[#M.actors + 1] = { id = "async-" .. i, kind = "async" } end

-- What the writer persists as event number `seq` of `id`: a pure function,
-- so the verifier can tell a stored event from an invented or misplaced one.
function M.value(id, seq)
  local h = 7
  for i = 1, #id do h = (h * 31 + id:byte(i)) % 1000003 end
  return (h * 7919 + seq * 104729) % 2147483647
end

function M.event(id, kind, seq)
  local e = { type = "tick", s = seq, v = M.value(id, seq), pad = "payload-" .. seq }
  if kind == "batch" then
    e.b = (seq - 1) // M.BATCH + 1
    e.k = (seq - 1) % M.BATCH + 1
  end
  return e
end

-- nil if evt is exactly event number `n` of `id`, else what is wrong with it.
-- (Field by field, without building the expected event: recovery runs it on
-- every event.)
function M.check(id, kind, n, evt)
  if type(evt) ~= "table" then return ("event %d is not a table"):format(n) end
  if evt.s ~= n then
    return ("event %d carries seq %s (a gap, a duplicate or a reordering)"):format(n, tostring(evt.s))
  end
  local v = M.value(id, n)
  local fields = 4
  local bad = evt.type ~= "tick" and "type" or evt.v ~= v and "v"
    or evt.pad ~= "payload-" .. n and "pad"
  if not bad and kind == "batch" then
    fields = 6
    bad = evt.b ~= (n - 1) // M.BATCH + 1 and "b" or evt.k ~= (n - 1) % M.BATCH + 1 and "k"
  end
  if bad then
    return ("event %d: field %s is %s, not what the writer wrote (%s)"):format(n, bad,
      tostring(evt[bad]), tostring(M.event(id, kind, n)[bad]))
  end
  local count = 0
  for _ in pairs(evt) do count = count + 1 end
  if count ~= fields then return ("event %d has %d fields, not %d"):format(n, count, fields) end
  return nil
end

return M
