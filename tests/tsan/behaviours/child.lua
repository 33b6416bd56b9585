-- child: tells opts.sink { add = 1 } from init's first message, then stops itself.
local M = {}

function M.init(opts) return { sink = opts.sink } end

function M.receive(st, msg, ctx)
  if msg == "go" then
    st.sink:tell { add = 1 }
    ctx:stop()
  end
end

return M
