-- room: a game room, and its rules. Each room is an entity (one actor per
-- room id, woken by its first message, passivated when idle); what players
-- do is persisted as events, so a room comes back as it was after
-- passivation or a restart. This file is meant to be edited while the
-- server runs (hot reload): keep the decision in receive (the rules) and
-- the facts in the events, so apply never has to change with the rules.
local M = {}

M.version = 2
M.rules = "a pair (the value of the play before) scores triple"

function M.init(opts)
  return { room = opts.id, players = {}, order = {}, plays = 0 }
end

-- Version 2 keeps each player as { score =, pairs = } (version 1: a number).
function M.on_upgrade(state, old_version)
  if old_version == 1 then
    for player, score in pairs(state.players) do state.players[player] = { score = score, pairs = 0 } end
  end
  return state
end

-- Facts only: who joined, what was played and what it scored.
function M.apply(state, evt)
  if evt.type == "joined" then
    state.players[evt.player] = { score = 0, pairs = 0 }
    state.order[#state.order + 1] = evt.player
  elseif evt.type == "played" then
    local p = state.players[evt.player]
    p.score = p.score + evt.points
    if evt.pair then p.pairs = p.pairs + 1 end -- events of version 1 have no pair
    state.plays = state.plays + 1
    state.last = evt.value
  end
  return state
end

-- The rules: the points a play scores, and whether it made a pair.
local function points(state, value)
  if value == state.last then return value * 3, true end
  return value, false
end

local function scores(state)
  local out = {}
  for i, player in ipairs(state.order) do
    local p = state.players[player]
    out[i] = { player = player, score = p.score, pairs = p.pairs }
  end
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
    local p, pair = points(state, value)
    ctx:persist({ type = "played", player = msg.player, value = value, points = p, pair = pair }, function()
      ctx:reply { ok = true, points = p, pair = pair, version = M.version, scores = scores(state) }
    end)
  elseif msg.cmd == "look" then
    ctx:reply { room = state.room, version = M.version, rules = M.rules, plays = state.plays,
      scores = scores(state) }
  else
    ctx:reply { error = "unknown command " .. tostring(msg.cmd) }
  end
end

return M
