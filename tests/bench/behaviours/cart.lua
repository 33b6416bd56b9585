-- cart: the persistent actor of persist_bench.lua, a shopping cart as an app
-- would write it (one event per item added; apply folds them into the cart).
--
--   { type = "add", sku = S, qty = Q }      persist { type = "added", sku = S, qty = Q };
--                                           reply { ok = true, count = C } once it is durable
--   { type = "shop", left = N, done = ref } a shopper adding N items, one command each: each
--                                           next command is sent from the previous persist's
--                                           callback; then tells done { done = true }
--   { type = "fill", count = N }            persist N items in one persist_all; reply the seq
--   { type = "get", reply_to = ref }        answer { count = C }: to reply_to if given (an
--                                           actor asking), else as the reply to an ask
-- The benchmark's items come from the event's seq: item(seq). bench_sqlite_baseline.c
-- encodes the same events, so both stores hold payloads of the same bytes.
local M = {}

local SKUS = { "apple", "pear", "banana", "cherry" }

function M.item(seq) return SKUS[seq % 4 + 1], seq % 9 + 1 end

function M.added(sku, qty) return { type = "added", sku = sku, qty = qty } end

function M.init() return { items = {}, count = 0 } end

function M.apply(state, evt)
  if evt.type == "added" then
    state.items[evt.sku] = (state.items[evt.sku] or 0) + evt.qty
    state.count = state.count + 1
  end
  return state
end

local function valid(sku, qty)
  return type(sku) == "string" and sku ~= "" and math.type(qty) == "integer" and qty > 0
end

function M.receive(state, msg, ctx)
  local t = msg.type
  if t == "add" then
    if not valid(msg.sku, msg.qty) then return ctx:reply { error = "bad item" } end
    ctx:persist(M.added(msg.sku, msg.qty), function(st) ctx:reply { ok = true, count = st.count } end)
  elseif t == "shop" then
    local left, done = msg.left, msg.done
    ctx:persist(M.added(M.item(ctx.seq + 1)), function()
      if left > 1 then
        ctx.self:tell { type = "shop", left = left - 1, done = done }
      else
        done:tell { done = true }
      end
    end)
  elseif t == "fill" then
    local batch = {}
    for i = 1, msg.count do batch[i] = M.added(M.item(ctx.seq + i)) end
    ctx:persist_all(batch)
    ctx:defer(function() ctx:reply(ctx.seq) end)
  elseif t == "get" then
    local answer = { count = state.count }
    if msg.reply_to then msg.reply_to:tell(answer) else ctx:reply(answer) end
  end
end

return M
