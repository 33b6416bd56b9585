-- reloadable: the behaviour reload_bench.lua reloads (it copies this file to a
-- scripts directory of its own and rewrites `M.version` there before each reload).
-- An ordinary behaviour of some size: a counter with a few commands, an
-- on_upgrade, and a self-telling loop for the throughput figure.
--
--   "spin"                        count one, and tell itself "spin" again while on
--   { op = "go" }                 reset the count, start spinning; answers true
--   { op = "halt" }               stop spinning; answers the count
--   { op = "add", n = N }         add N; answers the total
--   { op = "get" }                answers { version =, total =, n = }
local M = {}

M.version = 1

function M.init(opts)
  return { n = 0, total = 0, on = false, name = opts.name, seen = {} }
end

function M.on_upgrade(state, old_version)
  state.upgraded_from = old_version
  return state
end

local function check_amount(n)
  if math.type(n) ~= "integer" then return nil, "an amount is a whole number" end
  if n < 0 or n > 1e9 then return nil, "an amount is from 0 to 1e9" end
  return n
end

local handlers = {}

function handlers.go(state, _, ctx)
  state.n, state.on = 0, true
  state.me = ctx.self
  ctx.self:tell("spin")
  ctx:reply(true)
end

function handlers.halt(state, _, ctx)
  state.on = false
  ctx:reply(state.n)
end

function handlers.add(state, msg, ctx)
  local n, err = check_amount(msg.n)
  if not n then return ctx:reply { error = err } end
  state.total = state.total + n
  ctx:reply(state.total)
end

function handlers.get(state, _, ctx)
  ctx:reply { version = M.version, total = state.total, n = state.n, from = state.upgraded_from }
end

function M.receive(state, msg, ctx)
  if msg == "spin" then
    state.n = state.n + 1
    if state.on then state.me:tell("spin") end
    return
  end
  local h = type(msg) == "table" and handlers[msg.op]
  if not h then return ctx:reply { error = "unknown message" } end
  return h(state, msg, ctx)
end

return M
