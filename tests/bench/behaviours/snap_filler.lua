-- snap_filler.lua: a persistent counter for the snapshot recovery benchmark.
local M = {}
M.recovery = { snapshot = "latest" }

function M.init() return { n = 0, sum = 0 } end

function M.receive(state, msg, ctx)
  if msg.type == "fill" then
    local batch = {}
    for i = 1, msg.count do batch[i] = { type = "tick", v = i } end
    ctx:persist_all(batch)
    ctx:defer(function() ctx:reply(ctx.seq) end)
  elseif msg.type == "snap" then
    ctx:save_snapshot()
    ctx:reply(ctx.seq)
  elseif msg.type == "get" then
    ctx:reply { n = state.n, seq = ctx.seq }
  end
end

function M.apply(state, evt)
  state.n = state.n + 1
  state.sum = state.sum + evt.v
  return state
end

return M
