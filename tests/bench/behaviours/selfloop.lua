-- selfloop: tells itself an integer counting down to 0, then opens the latch.
-- One message in flight, one actor: the cost of a tell within one scheduler.
local M = {}
local DONE = { done = true }

function M.receive(st, msg, ctx)
  if type(msg) == "number" then
    if msg > 0 then
      st.me:tell(msg - 1)
    else
      st.latch:tell(DONE)
    end
  elseif msg.cmd == "go" then
    st.me, st.latch = ctx.self, msg.latch
    ctx.self:tell(msg.n)
  end
end

return M
