-- latch: the benchmark app's way to wait for actors without polling.
-- opts.need: how many {done = true} tells open it. An ask "wait" that comes
-- before that is stashed and answered (with the count) once the latch opens;
-- the latch then stops itself.
local M = {}

function M.init(opts)
  return { need = opts.need or 1, got = 0 }
end

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
