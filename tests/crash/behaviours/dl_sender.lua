-- dl_sender.lua: the delivery crash test's sender (delivery.sh). Each "send" delivers
-- {k, from} to opts.to at least once and starts a durable timer due soon after, in the
-- same journal write as its "sent" event; it answers k once that write is durable (the
-- writer acknowledges it). Each timer's firing persists {type = "ticked", k}.
local M = {}

M.delivery = { redeliver_interval = 0.2, warn_after = 1000000 }

function M.init(opts) return { id = opts.id, to = opts.to, sent = 0, ticked = {}, dup_ticks = 0 } end

function M.apply(state, evt)
  if evt.type == "sent" then
    state.sent = evt.k
  elseif evt.type == "ticked" then
    if state.ticked[evt.k] then state.dup_ticks = state.dup_ticks + 1 end
    state.ticked[evt.k] = true
  end
  return state
end

function M.receive(state, msg, ctx)
  local t = msg.type
  if t == "send" then
    local k = state.sent + 1
    ctx:deliver(state.to, function(id) return { type = "deliver", k = k, id = id, from = ctx.self } end)
    ctx:schedule(0.02 + (k % 10) / 50, { type = "tick", k = k }, { durable = true })
    ctx:persist({ type = "sent", k = k }, function() ctx:reply(k) end)
  elseif t == "confirm" then
    ctx:confirm_delivery(msg.id)
  elseif t == "tick" then
    ctx:persist { type = "ticked", k = msg.k }
  elseif t == "get" then
    local ticks = 0
    for _ in pairs(state.ticked) do ticks = ticks + 1 end
    local missing
    for k = 1, state.sent do
      if not state.ticked[k] then
        missing = k
        break
      end
    end
    ctx:reply { sent = state.sent, ticks = ticks, dup_ticks = state.dup_ticks, missing_tick = missing,
      unconfirmed = ctx:unconfirmed() }
  end
end

return M
