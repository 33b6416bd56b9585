-- counter.lua: a behaviour keeping a number: "add" changes it, "get" answers with it.
local M = {}

function M.init(opts)
  return { n = opts.start or 0 }
end

function M.receive(state, msg, ctx)
  if msg.type == "add" then
    state.n = state.n + (msg.by or 1)
  elseif msg.type == "get" then
    ctx:reply(state.n)
  end
end

return M
