-- echo: answers an ask with { v = msg.v, by = its own ref as a string }.
local M = {}

function M.receive(_, msg, ctx) ctx:reply { v = msg.v, by = tostring(ctx.self) } end

return M
