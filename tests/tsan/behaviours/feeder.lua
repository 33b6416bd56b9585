-- feeder: { cmd = "go", accounts = {...}, rounds = R, v = V, ack = latch }
-- sends R rounds of commands to every account, cycling add, add_async and
-- add_all, a round per message so other work interleaves. Every round adds
-- 3 * V to each account (add and add_async: one event of 3 * V; add_all:
-- three events of V) and tells the latch once per account.
local M = {}

function M.receive(st, msg, ctx)
  if msg == "more" then
    st.round = st.round + 1
    local kind = st.round % 3
    for _, a in ipairs(st.accounts) do
      if kind == 0 then
        a:tell { cmd = "add", v = 3 * st.v, ack = st.ack }
      elseif kind == 1 then
        a:tell { cmd = "add_async", v = 3 * st.v, ack = st.ack }
      else
        a:tell { cmd = "add_all", vs = { st.v, st.v, st.v }, ack = st.ack }
      end
    end
    if st.round < st.rounds then ctx.self:tell("more") end
  elseif msg.cmd == "go" then
    st.accounts, st.rounds, st.v, st.ack, st.round = msg.accounts, msg.rounds, msg.v, msg.ack, 0
    ctx.self:tell("more")
  end
end

return M
