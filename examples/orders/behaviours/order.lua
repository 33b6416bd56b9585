-- order.lua: one order, a persistent actor ("order-N"). Placing it asks the warehouse to
-- reserve the items and billing to invoice the amount, both at least once (ctx:deliver:
-- re-sent until they confirm, also after a crash of this process), and starts a durable
-- payment timeout: unpaid when it fires, the order is cancelled and the warehouse told to
-- release the items (at least once too).
--
-- Commands:
--   { type = "place", items = { sku = qty }, amount = N, pay_within = SECONDS }
--   { type = "paid", delivery_id = ID, reply_to = REF }   from billing (at least once)
--   { type = "reserved" | "invoiced" | "released", delivery_id = ID }   confirmations
--   { type = "payment_timeout" }                          the durable timer
--   { type = "status" }
-- Events: placed, reserved, invoiced, paid, cancelled, released.
-- luacheck: read globals lore (behaviour scripts see lore.ref)
local M = {}

M.delivery = { redeliver_interval = 0.5, warn_after = 10 }

local WAREHOUSE, BILLING = lore.ref("warehouse"), lore.ref("billing")

function M.init(opts)
  return { id = opts.id, status = "new", items = {}, amount = 0, reserved = false, invoiced = false,
    released = false }
end

function M.apply(state, evt)
  local t = evt.type
  if t == "placed" then
    state.status, state.items, state.amount = "placed", evt.items, evt.amount
  elseif t == "reserved" then
    state.reserved = true
  elseif t == "invoiced" then
    state.invoiced = true
  elseif t == "paid" then
    state.status = "paid"
  elseif t == "cancelled" then
    state.status = "cancelled"
  elseif t == "released" then
    state.released = true
  end
  return state
end

-- A confirmation from the warehouse or billing: the delivery ends; the first one is an event.
local function confirmed(state, msg, ctx, event, done)
  if ctx:confirm_delivery(msg.delivery_id) and not state[done] then ctx:persist { type = event } end
end

function M.receive(state, msg, ctx)
  local t = msg.type
  if t == "place" then
    if state.status ~= "new" then return ctx:reply { status = state.status } end -- placed already
    local order = ctx.id
    -- Two deliveries, a durable timer and the "placed" event: one journal write, all or none.
    ctx:deliver(WAREHOUSE, function(id)
      return { type = "reserve", order = order, items = msg.items, delivery_id = id, reply_to = ctx.self }
    end)
    ctx:deliver(BILLING, function(id)
      return { type = "invoice", order = order, amount = msg.amount, delivery_id = id, reply_to = ctx.self }
    end)
    ctx:schedule(msg.pay_within, { type = "payment_timeout" }, { durable = true, key = "payment" })
    ctx:persist({ type = "placed", items = msg.items, amount = msg.amount }, function()
      ctx:reply { status = "placed" }
    end)
  elseif t == "reserved" then
    confirmed(state, msg, ctx, "reserved", "reserved")
  elseif t == "invoiced" then
    confirmed(state, msg, ctx, "invoiced", "invoiced")
  elseif t == "released" then
    confirmed(state, msg, ctx, "released", "released")
  elseif t == "paid" then
    -- billing delivers this at least once: acknowledge every copy, act on the first
    msg.reply_to:tell { type = "paid_ack", order = ctx.id, delivery_id = msg.delivery_id }
    if state.status == "placed" then
      ctx:cancel_timer("payment")
      ctx:persist { type = "paid" }
    end
  elseif t == "payment_timeout" then
    if state.status ~= "placed" then return end
    ctx:log("info", "order %s unpaid in time: cancelled", ctx.id)
    local order = ctx.id
    ctx:deliver(WAREHOUSE, function(id)
      return { type = "release", order = order, delivery_id = id, reply_to = ctx.self }
    end)
    ctx:persist { type = "cancelled" }
  elseif t == "status" then
    ctx:reply { status = state.status, reserved = state.reserved, invoiced = state.invoiced,
      released = state.released, unconfirmed = ctx:unconfirmed() }
  end
end

return M
