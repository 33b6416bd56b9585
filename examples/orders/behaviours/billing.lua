-- billing.lua: invoices, a persistent actor ("billing"). Invoices arrive at least once
-- (deduplicated by order, every copy confirmed); a payment ("pay", from the application)
-- is told to the order at least once in turn: billing delivers "paid" until the order
-- acknowledges it.
-- opts.confirm = false: store but do not confirm (the demo kills the process then).
-- luacheck: read globals lore (behaviour scripts see lore.ref)
local M = {}

M.delivery = { redeliver_interval = 0.5 }

function M.init(opts) return { invoices = {}, paid = {}, confirm = opts.confirm ~= false } end

function M.apply(state, evt)
  if evt.type == "invoiced" then
    state.invoices[evt.order] = evt.amount
  elseif evt.type == "paid" then
    state.paid[evt.order] = true
  end
  return state
end

function M.receive(state, msg, ctx)
  if msg.type == "invoice" then
    local function confirm()
      if state.confirm then msg.reply_to:tell { type = "invoiced", delivery_id = msg.delivery_id } end
    end
    if state.invoices[msg.order] then return confirm() end -- a copy
    ctx:persist({ type = "invoiced", order = msg.order, amount = msg.amount }, confirm)
  elseif msg.type == "pay" then
    if not state.invoices[msg.order] then return ctx:reply { error = "no invoice for " .. msg.order } end
    if state.paid[msg.order] then return ctx:reply { status = "paid already" } end
    local order = msg.order
    ctx:deliver(lore.ref(order), function(id)
      return { type = "paid", order = order, delivery_id = id, reply_to = ctx.self }
    end)
    ctx:persist({ type = "paid", order = order }, function() ctx:reply { status = "paid" } end)
  elseif msg.type == "paid_ack" then
    ctx:confirm_delivery(msg.delivery_id)
  elseif msg.type == "status" then
    local n = 0
    for _ in pairs(state.invoices) do n = n + 1 end
    ctx:reply { invoices = n, unconfirmed = ctx:unconfirmed() }
  end
end

return M
