-- echo: answers an ask with the message itself.
local M = {}

function M.receive(_, msg, ctx)
  ctx:reply(msg)
end

return M
