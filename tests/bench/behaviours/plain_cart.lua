-- plain_cart: cart without persistence (no apply), starting with the state a
-- cart recovered from one event has; persist_bench.lua's idle-memory baseline.
local cart = require "cart"

local M = {}

function M.init() return cart.apply(cart.init(), cart.added(cart.item(1))) end

function M.receive(state, msg, ctx)
  if msg.type == "get" then
    local answer = { count = state.count }
    if msg.reply_to then msg.reply_to:tell(answer) else ctx:reply(answer) end
  end
end

return M
