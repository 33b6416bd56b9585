-- notifier.lua: the behaviour docs/examples/endpoint_host.c runs. Subscribers
-- are refs (host endpoints here); every published text is told to each of
-- them, stamped by the host's native module `stamp`.
local stamp = require "stamp" -- preloaded by the host (lore_preload)

local M = {}

function M.init() return { subscribers = {} } end

function M.receive(state, msg, ctx)
  if msg.op == "subscribe" then
    state.subscribers[#state.subscribers + 1] = msg.to
  elseif msg.op == "publish" then
    local n = stamp.next()
    for _, to in ipairs(state.subscribers) do
      to:tell { text = msg.text, n = n }
    end
  end
end

return M
