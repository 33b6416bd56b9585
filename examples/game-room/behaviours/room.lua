-- room: a game room, and its rules. Each room is an entity (one actor per
-- room id, woken by its first message, passivated when idle); what players
-- do is persisted as events, so a room comes back as it was after
-- passivation or a restart. This file is meant to be edited while the
-- server runs (hot reload): keep the decision in receive (the rules) and
-- the facts in the events, so apply never has to change with the rules.
local M = {}

M.version = 1
M.rules = "a play scores its value"

function M.init(opts)
  return { room = opts.id, players = {}, order = {}, plays = 0 }
end

-- Facts only: who joined, what was played and what it scored.
function M.apply(state, evt)
  if evt.type == "joined" then
    state.players[evt.player] = 0
    state.order[#state.order + 1] = evt.player
  elseif evt.type == "played" then
    state.players[evt.player] = state.players[evt.player] + evt.points
    state.plays = state.plays + 1
    state.last = evt.value
  end
  return state
end

-- The rules: the points a play scores.
local function points(_, value)
  return value
end

local function scores(state)
  local out = {}
  for i, player in ipairs(state.order) do out[i] = { player = player, score = state.players[player] } end
  return out
end

function M.receive(state, msg, ctx)
  if msg.cmd == "join" then
    if type(msg.player) ~= "string" or msg.player == "" then return ctx:reply { error = "who joins?" } end
    if state.players[msg.player] then return ctx:reply { error = msg.player .. " is already in " .. state.room } end
    ctx:persist({ type = "joined", player = msg.player }, function()
      ctx:reply { ok = true, version = M.version, scores = scores(state) }
    end)
  elseif msg.cmd == "play" then
    if not state.players[msg.player] then
      return ctx:reply { error = tostring(msg.player) .. " has not joined " .. state.room }
    end
    local value = msg.value
    if math.type(value) ~= "integer" or value < 1 or value > 6 then
      return ctx:reply { error = "a play is a whole number from 1 to 6" }
    end
    local p = points(state, value)
    ctx:persist({ type = "played", player = msg.player, value = value, points = p }, function()
      ctx:reply { ok = true, points = p, version = M.version, scores = scores(state) }
    end)
  elseif msg.cmd == "look" then
    ctx:reply { room = state.room, version = M.version, rules = M.rules, plays = state.plays,
      scores = scores(state) }
  else
    ctx:reply { error = "unknown command " .. tostring(msg.cmd) }
  end
end

return M
