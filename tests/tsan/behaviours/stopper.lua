-- stopper: { cmd = "stop_all", refs = {...}, latch = ref } stops actors that
-- live on any worker, then opens the latch.
local M = {}

function M.receive(_, msg)
  if msg.cmd == "stop_all" then
    for _, r in ipairs(msg.refs) do r:stop() end
    msg.latch:tell { done = true }
  end
end

return M
