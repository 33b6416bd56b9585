-- cart.lua: a persistent shopping cart (the Proto.Actor bootcamp's, module 9).
--
-- Commands (validated here; a bad one is answered with { error = ... } and
-- persists nothing):
--   { type = "add",      sku = "apple", qty = 3 }
--   { type = "remove",   sku = "apple", qty = 1 }   -- qty omitted: all of it
--   { type = "clear" }
--   { type = "checkout" }                           -- empties the cart, counts an order
--   { type = "get" }
-- Events (what is stored; `apply` rebuilds the cart from them on recovery):
--   ItemAdded { sku, qty }, ItemRemoved { sku, qty }, CartCleared { reason, units }
local M = {}
M.version = 1

function M.init()
  return { items = {}, units = 0, orders = 0 }
end

local function is_count(n)
  return math.type(n) == "integer" and n > 0
end

local function summary(state, ctx, extra)
  local r = { items = state.items, units = state.units, orders = state.orders, seq = ctx.seq }
  for k, v in pairs(extra or {}) do r[k] = v end
  return r
end

function M.receive(state, msg, ctx)
  local t = type(msg) == "table" and msg.type
  if t == "add" then
    if type(msg.sku) ~= "string" or msg.sku == "" then
      return ctx:reply { error = "an item needs a name (sku)" }
    end
    if not is_count(msg.qty) then
      return ctx:reply { error = ("qty must be a positive whole number, not %s"):format(tostring(msg.qty)) }
    end
    ctx:persist({ type = "ItemAdded", sku = msg.sku, qty = msg.qty }, function(st)
      ctx:reply(summary(st, ctx, { ok = true }))
    end)
  elseif t == "remove" then
    local have = state.items[msg.sku]
    if not have then
      return ctx:reply { error = ("there is no %s in the cart"):format(tostring(msg.sku)) }
    end
    local qty = msg.qty
    if qty == nil then qty = have end
    if not is_count(qty) then
      return ctx:reply { error = ("qty must be a positive whole number, not %s"):format(tostring(msg.qty)) }
    end
    if qty > have then
      return ctx:reply { error = ("cannot remove %d %s: the cart holds %d"):format(qty, msg.sku, have) }
    end
    ctx:persist({ type = "ItemRemoved", sku = msg.sku, qty = qty }, function(st)
      ctx:reply(summary(st, ctx, { ok = true }))
    end)
  elseif t == "clear" or t == "checkout" then
    if t == "checkout" and state.units == 0 then
      return ctx:reply { error = "cannot check out an empty cart" }
    end
    local order = {}
    for sku, qty in pairs(state.items) do order[sku] = qty end
    local units = state.units
    ctx:persist({ type = "CartCleared", reason = t, units = units }, function(st)
      ctx:reply(summary(st, ctx, { ok = true, order = order, ordered_units = units }))
    end)
  elseif t == "get" then
    ctx:reply(summary(state, ctx))
  else
    ctx:reply { error = ("unknown command %s"):format(tostring(t)) }
  end
end

-- Events only change state: no replies, no messages (this also runs on replay).
function M.apply(state, evt)
  if evt.type == "ItemAdded" then
    state.items[evt.sku] = (state.items[evt.sku] or 0) + evt.qty
    state.units = state.units + evt.qty
  elseif evt.type == "ItemRemoved" then
    local left = (state.items[evt.sku] or 0) - evt.qty
    state.items[evt.sku] = left > 0 and left or nil
    state.units = state.units - evt.qty
  elseif evt.type == "CartCleared" then
    state.items, state.units = {}, 0
    if evt.reason == "checkout" then state.orders = state.orders + 1 end
  end
  return state
end

return M
