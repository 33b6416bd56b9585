-- gate: counts the acks it is told (any value) so the benchmark app can keep a bounded
-- number of requests in flight. { until_ = N } asked: answered with the count once it is
-- at least N (the ask waits in the stash until then).
local M = {}

function M.init() return { acks = 0 } end

function M.receive(st, msg, ctx)
  if type(msg) == "table" and msg.until_ then
    if st.acks >= msg.until_ then return ctx:reply(st.acks) end
    st.waiting = msg.until_
    ctx:stash()
  else
    st.acks = st.acks + 1
    if st.waiting and st.acks >= st.waiting then
      st.waiting = nil
      ctx:unstash_all()
    end
  end
end

return M
