-- latch: opens after opts.need {done = true} tells; an ask "wait" that comes
-- earlier is stashed and answered (with the count) when it opens.
local M = {}

function M.init(opts) return { need = opts.need or 1, got = 0 } end

function M.receive(st, msg, ctx)
  if msg == "wait" then
    if st.got >= st.need then
      ctx:reply(st.got)
      ctx:stop()
    else
      ctx:stash()
    end
  elseif type(msg) == "table" and msg.done then
    st.got = st.got + 1
    if st.got == st.need then ctx:unstash_all() end
  end
end

return M
