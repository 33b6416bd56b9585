-- account.lua: a persistent bank account (Riker's "Persisting State" example:
-- commands are validated, events are persisted, then applied).
--
-- Commands:
--   { type = "deposit",  amount = 100 }
--   { type = "withdraw", amount = 30 }   -- refused when the balance is too low
--   { type = "balance" }
-- Events: Deposited { amount }, Withdrawn { amount }. Amounts are whole units
-- (cents, say): positive integers.
local M = {}
M.version = 1

local HISTORY = 10 -- the last transactions kept in the state, for statements

function M.init(opts)
  return { owner = opts.owner, balance = 0, deposits = 0, withdrawals = 0, history = {} }
end

local function valid_amount(a)
  return math.type(a) == "integer" and a > 0
end

local function reply_balance(state, ctx, extra)
  local r = { balance = state.balance, deposits = state.deposits, withdrawals = state.withdrawals,
              history = state.history, seq = ctx.seq }
  for k, v in pairs(extra or {}) do r[k] = v end
  ctx:reply(r)
end

function M.receive(state, msg, ctx)
  local t = type(msg) == "table" and msg.type
  if t == "deposit" or t == "withdraw" then
    if not valid_amount(msg.amount) then
      local err = ("the amount must be a positive whole number, not %s"):format(tostring(msg.amount))
      return ctx:reply { error = err }
    end
    if t == "withdraw" and msg.amount > state.balance then
      local err = ("insufficient funds: the balance is %d, %d was asked for"):format(state.balance, msg.amount)
      return ctx:reply { error = err, balance = state.balance }
    end
    local evt = { type = t == "deposit" and "Deposited" or "Withdrawn", amount = msg.amount }
    ctx:persist(evt, function(st) reply_balance(st, ctx, { ok = true }) end)
  elseif t == "balance" then
    reply_balance(state, ctx)
  else
    ctx:reply { error = ("unknown command %s"):format(tostring(t)) }
  end
end

-- Only state changes here: it also runs for every stored event on recovery.
function M.apply(state, evt)
  if evt.type == "Deposited" then
    state.balance = state.balance + evt.amount
    state.deposits = state.deposits + 1
  elseif evt.type == "Withdrawn" then
    state.balance = state.balance - evt.amount
    state.withdrawals = state.withdrawals + 1
  end
  local h = state.history
  h[#h + 1] = { evt.type, evt.amount, state.balance }
  if #h > HISTORY then table.remove(h, 1) end
  return state
end

return M
