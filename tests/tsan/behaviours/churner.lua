-- churner: { cmd = "go", n = N, sink = ref, latch = ref } spawns N children on
-- its own worker, a few per message so other work interleaves; each child
-- tells the sink once and stops itself. Opens the latch when all are spawned.
local M = {}
local CHUNK = 10

function M.receive(st, msg, ctx)
  if msg == "more" then
    local k = math.min(CHUNK, st.n - st.spawned)
    for _ = 1, k do ctx:spawn("child", { sink = st.sink }):tell("go") end
    st.spawned = st.spawned + k
    if st.spawned < st.n then
      ctx.self:tell("more")
    else
      st.latch:tell { done = true }
    end
  elseif msg.cmd == "go" then
    st.n, st.sink, st.latch, st.spawned = msg.n, msg.sink, msg.latch, 0
    ctx.self:tell("more")
  end
end

return M
