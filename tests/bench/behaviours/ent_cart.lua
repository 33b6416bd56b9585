-- ent_cart: the cart of persist_bench.lua as an entity of entities_bench.lua (ids "cart-N").
--
--   { type = "add", sku = S, qty = Q, ack = ref }   persist { type = "added", sku = S, qty = Q }
--                                                   (the bytes bench_sqlite_baseline writes);
--                                                   tell ack true once it is durable
--   { type = "get" }                                answer { count = C } (C: events recovered)
local M = {}

function M.init() return { items = {}, count = 0 } end

function M.apply(state, evt)
  state.items[evt.sku] = (state.items[evt.sku] or 0) + evt.qty
  state.count = state.count + 1
  return state
end

local ACK = true

function M.receive(state, msg, ctx)
  if msg.type == "add" then
    local ack = msg.ack
    ctx:persist({ type = "added", sku = msg.sku, qty = msg.qty }, function() ack:tell(ACK) end)
  elseif msg.type == "get" then
    ctx:reply { count = state.count }
  end
end

return M
