-- ring_node: one node of a ring spread over the workers. A token
-- { hops = H, latch = ref } is passed on to the next node H times, then the
-- last node opens the latch. Each node counts the tokens it passed on.
local M = {}

function M.init() return { passed = 0 } end

function M.receive(st, msg, ctx)
  if msg.hops then
    if msg.hops == 0 then return msg.latch:tell { done = true } end
    st.passed = st.passed + 1
    msg.hops = msg.hops - 1
    st.next:tell(msg)
  elseif msg.cmd == "link" then
    st.next = msg.next
    ctx:reply(true)
  elseif msg.cmd == "count" then
    ctx:reply(st.passed)
  end
end

return M
