-- spawner: spawns n children with ctx:spawn (on its own worker), `chunk` per
-- message so the scheduler runs other work between chunks. With stop = true
-- each child is stopped right away (the spawn + stop cycle); otherwise the
-- children stay alive and idle. Opens the latch when every child is spawned.
local M = {}
local DONE = { done = true }

function M.receive(st, msg, ctx)
  if msg == "more" then
    local k = math.min(st.chunk, st.n - st.done)
    local spawn, child, stop = ctx.spawn, st.child, st.stop
    for _ = 1, k do
      local c = spawn(ctx, child)
      if stop then c:stop() end
    end
    st.done = st.done + k
    if st.done < st.n then
      st.me:tell("more")
    else
      st.latch:tell(DONE)
      if stop then ctx:stop() end
    end
  elseif type(msg) == "table" and msg.cmd == "go" then
    st.n, st.chunk, st.stop, st.latch, st.done = msg.n, msg.chunk or 1000, msg.stop, msg.latch, 0
    st.child = msg.child or "idle"
    st.me = ctx.self
    ctx.self:tell("more")
  end
end

return M
