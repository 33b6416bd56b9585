-- room.lua: a persistent game room. Its players and last moves are events in
-- the journal; the connections in it are not (they belong to one run of the
-- server), and it pushes what happens to each of them through the host
-- endpoint the server gave it.
--
-- Commands (MessagePack maps from the C server; `conn` is a host endpoint
-- ref, `cid` the server's number for that connection):
--   { cmd = "join", cid =, conn =, name = }   take a seat (once), come online
--   { cmd = "move", cid =, conn =, text = }   say or play something
--   { cmd = "roll", cid =, conn =, sides = }  roll a die (the native `dice`)
--   { cmd = "leave", cid = }                  the connection is gone
--   { cmd = "look" }                          ask: { room, players, moves }
-- Events: joined { name }, moved { name, text }, rolled { name, sides, value }.
-- Pushed to connections: { room =, event = "joined" | "moved" | "rolled" |
--   "left" | "error", name =, text =, sides =, value = }.
local dice = require "dice"

local M = {}
M.version = 1

local KEEP_MOVES = 10

function M.init()
  return { players = {}, moves = {}, online = {} }
end

local function room_name(ctx)
  return string.match(ctx.id, "^room:(.+)$") or ctx.id
end

local function broadcast(state, event)
  for _, who in pairs(state.online) do who.conn:tell(event) end
end

local function is_player(state, name)
  for _, p in ipairs(state.players) do
    if p == name then return true end
  end
  return false
end

-- Persists evt; once it is durable, everyone online hears about it.
local function persist_and_tell(ctx, evt, event)
  ctx:persist(evt, function(st) broadcast(st, event) end)
end

function M.receive(state, msg, ctx)
  local room = room_name(ctx)
  local who = msg.cid and state.online[msg.cid]
  if msg.cmd == "join" then
    state.online[msg.cid] = { conn = msg.conn, name = msg.name }
    local event = { room = room, event = "joined", name = msg.name }
    if is_player(state, msg.name) then return broadcast(state, event) end
    persist_and_tell(ctx, { type = "joined", name = msg.name }, event)
  elseif msg.cmd == "move" or msg.cmd == "roll" then
    if not who then
      return msg.conn:tell { room = room, event = "error", text = "join " .. room .. " first" }
    end
    if msg.cmd == "move" then
      persist_and_tell(ctx, { type = "moved", name = who.name, text = msg.text },
        { room = room, event = "moved", name = who.name, text = msg.text })
    else
      -- The roll is decided here, once, and stored: replay never rolls again.
      local value = dice.roll(msg.sides)
      persist_and_tell(ctx, { type = "rolled", name = who.name, sides = msg.sides, value = value },
        { room = room, event = "rolled", name = who.name, sides = msg.sides, value = value })
    end
  elseif msg.cmd == "leave" then
    if who then
      state.online[msg.cid] = nil
      broadcast(state, { room = room, event = "left", name = who.name })
    end
  elseif msg.cmd == "look" then
    ctx:reply { room = room, players = state.players, moves = state.moves }
  end
end

local function remember(state, name, text)
  local moves = state.moves
  moves[#moves + 1] = { name = name, text = text }
  if #moves > KEEP_MOVES then table.remove(moves, 1) end
end

function M.apply(state, evt)
  if evt.type == "joined" then
    state.players[#state.players + 1] = evt.name
  elseif evt.type == "moved" then
    remember(state, evt.name, evt.text)
  elseif evt.type == "rolled" then
    remember(state, evt.name, string.format("rolled %d (d%d)", evt.value, evt.sides))
  end
  return state
end

return M
