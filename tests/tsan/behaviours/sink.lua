-- sink: counts { add = N } tells from anywhere; an ask "get" answers the total.
local M = {}

function M.init() return { total = 0, tells = 0 } end

function M.receive(st, msg, ctx)
  if msg == "get" then
    ctx:reply { total = st.total, tells = st.tells }
  else
    st.total = st.total + msg.add
    st.tells = st.tells + 1
  end
end

return M
