-- warehouse.lua: the stock, a persistent actor ("warehouse"). It receives reservations and
-- releases at least once, so it deduplicates them by order: each is applied once, and every
-- copy is confirmed to the sender (its reply_to, a ref that survives restarts).
-- opts.confirm = false: store but do not confirm (the demo kills the process then).
local M = {}

function M.init(opts)
  return { stock = { apple = 10, pear = 10 }, reservations = {}, released = {}, applied = 0,
    confirm = opts.confirm ~= false }
end

function M.apply(state, evt)
  if evt.type == "reserved" then
    state.reservations[evt.order] = evt.items
    for sku, qty in pairs(evt.items) do state.stock[sku] = (state.stock[sku] or 0) - qty end
    state.applied = state.applied + 1
  elseif evt.type == "released" then
    state.released[evt.order] = true
    for sku, qty in pairs(state.reservations[evt.order] or {}) do state.stock[sku] = state.stock[sku] + qty end
    state.applied = state.applied + 1
  end
  return state
end

function M.receive(state, msg, ctx)
  local function confirm(kind)
    if state.confirm then msg.reply_to:tell { type = kind, delivery_id = msg.delivery_id } end
  end
  if msg.type == "reserve" then
    if state.reservations[msg.order] then return confirm("reserved") end -- a copy
    ctx:persist({ type = "reserved", order = msg.order, items = msg.items }, function() confirm("reserved") end)
  elseif msg.type == "release" then
    if state.released[msg.order] or not state.reservations[msg.order] then return confirm("released") end
    ctx:persist({ type = "released", order = msg.order }, function() confirm("released") end)
  elseif msg.type == "status" then
    local n = 0
    for _ in pairs(state.reservations) do n = n + 1 end
    ctx:reply { stock = state.stock, reservations = n, applied = state.applied }
  end
end

return M
