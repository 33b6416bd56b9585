-- requester: n sequential request/response round trips to a server actor,
-- one in flight at a time; many requesters run at once.
local M = {}
local DONE = { done = true }

function M.receive(st, msg, ctx)
  if type(msg) == "number" then
    local left = st.left - 1
    st.left = left
    if left > 0 then
      st.server:tell(left)
    else
      st.latch:tell(DONE)
      ctx:stop()
    end
  elseif msg.cmd == "go" then
    st.server, st.latch, st.left = msg.server, msg.latch, msg.n
    st.server:tell(msg.n)
  end
end

return M
