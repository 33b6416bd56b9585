-- server: request/response between actors (ref:ask is for the app script
-- only): answers each request by telling the value back to its sender.
local M = {}

function M.receive(_, msg, ctx)
  ctx.sender:tell(msg)
end

return M
