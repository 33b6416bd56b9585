-- counter.lua: the behaviour docs/examples/minimal_host.c runs. A plain
-- (not persistent) actor: its state starts from opts.start and lives in memory.
local M = {}

function M.init(opts) return { n = opts.start or 0 } end

function M.receive(state, msg, ctx)
  if msg.type == "add" then
    state.n = state.n + (msg.by or 1)
  elseif msg.type == "get" then
    ctx:reply(state.n)
  end
end

return M
