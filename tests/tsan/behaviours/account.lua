-- account: a persistent sum fed by several feeders at once, with snapshots.
--   { cmd = "add", v = N, ack = latch }         persist; the callback tells the latch
--   { cmd = "add_async", v = N, ack = latch }   the same with persist_async
--   { cmd = "add_all", vs = {...}, ack = latch } one persist_all; the latch is told once
--   "get"                                       reply { sum =, n =, seq = }
local M = {}
M.snapshot_every = 25
M.keep_snapshots = 2
M.delete_events_on_snapshot = true

function M.init() return { sum = 0, n = 0 } end

function M.apply(state, evt)
  state.sum = state.sum + evt.v
  state.n = state.n + 1
  return state
end

local DONE = { done = true }

function M.receive(state, msg, ctx)
  if msg == "get" then return ctx:reply { sum = state.sum, n = state.n, seq = ctx.seq } end
  local ack = msg.ack
  if msg.cmd == "add" then
    ctx:persist({ v = msg.v }, function() ack:tell(DONE) end)
  elseif msg.cmd == "add_async" then
    ctx:persist_async({ v = msg.v }, function() ack:tell(DONE) end)
  elseif msg.cmd == "add_all" then
    local events = {}
    for i, v in ipairs(msg.vs) do events[i] = { v = v } end
    local left = #events
    ctx:persist_all(events, function()
      left = left - 1
      if left == 0 then ack:tell(DONE) end
    end)
  end
end

return M
