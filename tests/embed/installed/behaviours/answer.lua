-- answer.lua: the behaviour the installed host asks.
local M = {}

function M.receive(state, msg, ctx)
  if msg.question == "life" then ctx:reply(42) end
end

return M
