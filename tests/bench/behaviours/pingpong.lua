-- pingpong: a pair of actors bouncing small integers.
-- The initiator keeps `window` messages in flight and counts n round trips
-- (2n tells); the echo side (opts.echo / setup.echo) sends each one back.
local M = {}
local DONE = { done = true }

function M.init(opts)
  return { peer = opts.peer, echo = opts.echo, owns_peer = false }
end

function M.receive(st, msg, ctx)
  if type(msg) == "number" then
    if st.echo then
      st.peer:tell(msg)
      return
    end
    local got = st.got + 1
    st.got = got
    if st.sent < st.n then
      st.sent = st.sent + 1
      st.peer:tell(msg)
    elseif got == st.n then
      st.latch:tell(DONE)
    end
    return
  end
  local cmd = msg.cmd
  if cmd == "setup" then -- a peer on another worker, given by the app
    st.peer, st.echo = msg.peer, msg.echo
    ctx:reply(tostring(ctx.self))
  elseif cmd == "local_peer" then -- a peer on this worker (ctx:spawn places it here)
    st.peer = ctx:spawn("pingpong", { peer = ctx.self, echo = true })
    st.owns_peer = true
    ctx:reply(tostring(st.peer))
  elseif cmd == "go" then
    st.n, st.got, st.latch = msg.n, 0, msg.latch
    local w = math.min(msg.window or 1, msg.n)
    st.sent = w
    for i = 1, w do st.peer:tell(i) end
  end
end

function M.on_stop(st)
  if st.owns_peer then st.peer:stop() end
end

return M
