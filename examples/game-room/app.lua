-- app.lua: game rooms as entities, whose rules (behaviours/room.lua) are
-- edited while the server runs.
--
--   lore run examples/game-room/app.lua
--       The demo: plays a few moves, edits the rules while the rooms are
--       live (hot reload), plays on, makes a broken edit (refused), fixes
--       it, and checks every result on the way (exit status 1 if one is
--       wrong). Works in a temporary directory, removed at the end.
--
--   lore run examples/game-room/app.lua serve DIR
--       A server: the rules are DIR/scripts/room.lua (copied there on the
--       first run; watched: save an edit and it is live), the journal is
--       DIR/rooms.db. Commands are read from DIR/commands as lines are
--       appended to it:
--         join ROOM PLAYER | play ROOM PLAYER N | look ROOM | stats | quit
--       ROOM_PASSIVATE_AFTER (seconds, default 60) passivates idle rooms.
--
--   lore run examples/game-room/app.lua show DIR ROOM...
--       Prints rooms as DIR's journal has them, and exits.
local lore = require "lore"

local here = (arg and arg[0] or ""):match("(.*/)") or "./"
local args = { ... }

local function quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

-- Saves a file the way editors do: a new file, renamed over the old one.
local function save(path, text)
  local f = assert(io.open(path .. ".new", "wb"))
  f:write(text)
  f:close()
  assert(os.rename(path .. ".new", path))
end

local function check(ok, fmt, ...)
  if not ok then error("game-room: check failed: " .. fmt:format(...), 0) end
end

-- "alice 8, bob 3"
local function scoreline(scores)
  local parts = {}
  for i, s in ipairs(scores) do parts[i] = s.player .. " " .. s.score end
  return #parts > 0 and table.concat(parts, ", ") or "nobody yet"
end

local rooms -- the entity manager

local function ask(room, msg)
  return rooms:ask(room, msg, 30) -- sanitizer builds are slow
end

local function join(room, player)
  local r = ask(room, { cmd = "join", player = player })
  if r.error then return nil, r.error end
  print(("%s: %s joins -> %s"):format(room, player, scoreline(r.scores)))
  return r
end

local function play(room, player, value)
  local r = ask(room, { cmd = "play", player = player, value = value })
  if r.error then return nil, r.error end
  print(("%s: %s plays %d, +%d%s -> %s [rules v%d]"):format(room, player, value, r.points,
    r.pair and " (pair)" or "", scoreline(r.scores), r.version))
  return r
end

local function look(room)
  local r = ask(room, { cmd = "look" })
  print(("%s: %s, %d play(s) [rules v%d: %s]"):format(room, scoreline(r.scores), r.plays, r.version, r.rules))
  return r
end

local function stats()
  local s = rooms:stats()
  return ("rooms: %d live, %d passivated, %d woken"):format(s.live, s.passivated, s.woken)
end

---------------------------------------------------------------------------
-- The demo
---------------------------------------------------------------------------

-- The edits the demo makes to the rules, as a person would in an editor.
-- Version 2 is edits/room-v2.lua (pairs score triple; players' state gets a
-- new shape, converted by on_upgrade). Version 3 adds a line to it (a six
-- scores double); broken, that line lacks its `end`.
local function version3(v2, broken)
  local rule = "  if value == state.last then return value * 3, true end\n"
  local text = v2:gsub("M%.version = 2\nM%.rules = \"[^\n]*\"",
    'M.version = 3\nM.rules = "a pair scores triple, a six double"')
  local six = broken and "  if value == 6 then return 12, false\n" or "  if value == 6 then return 12, false end\n"
  local i, j = text:find(rule, 1, true)
  assert(i, "edits/room-v2.lua no longer has the pair rule")
  return text:sub(1, j) .. six .. text:sub(j + 1)
end

-- Plays and checks the points and the scores.
local function move(room, player, value, points, want)
  local r, err = play(room, player, value)
  check(r, "%s: %s plays %d: %s", room, player, value, tostring(err))
  check(r.points == points, "%s: %s plays %d scored %d, not %d", room, player, value, r.points, points)
  check(scoreline(r.scores) == want, "%s: scores %s, not %s", room, scoreline(r.scores), want)
  return r
end

-- Asks `room` until it runs rules version v (the watcher reloads the file
-- a moment after it is saved).
local function wait_for_version(room, v)
  local deadline = os.time() + 60
  repeat
    local r = ask(room, { cmd = "look" })
    if r.version == v then return r end
    lore.sleep(0.02)
  until os.time() > deadline
  check(false, "the rules never reached version %d", v)
end

local function wait_until(what, cond)
  local deadline = os.time() + 60
  while not cond() do
    check(os.time() <= deadline, "%s never happened", what)
    lore.sleep(0.02)
  end
end

local function demo()
  local p = assert(io.popen("mktemp -d " .. quote((os.getenv("TMPDIR") or "/tmp") .. "/lore-game-room.XXXXXX")))
  local dir = p:read("l")
  p:close()
  check(dir and dir ~= "", "mktemp -d failed")
  local rules = dir .. "/scripts/room.lua"
  os.execute("mkdir -p " .. quote(dir .. "/scripts"))
  save(rules, read(here .. "behaviours/room.lua"))

  local ok, err = pcall(function()
    lore.configure {
      journal = "sqlite:" .. dir .. "/rooms.db",
      scripts = { dir .. "/scripts" },
      hot_reload = true,
      log_level = "warn",
    }
    rooms = lore.entities("room", { passivate_after = 0.3 })
    print("-- rules v1: a play scores its value")
    join("lobby", "alice")
    join("lobby", "bob")
    move("lobby", "alice", 3, 3, "alice 3, bob 0")
    move("lobby", "bob", 3, 3, "alice 3, bob 3")
    move("lobby", "alice", 5, 5, "alice 8, bob 3")
    join("arena", "carol")
    join("arena", "dave")
    move("arena", "carol", 2, 2, "carol 2, dave 0")
    move("arena", "dave", 2, 2, "carol 2, dave 2")
    check(not ask("lobby", { cmd = "play", player = "eve", value = 1 }).ok, "eve played without joining")

    wait_until("passivating the idle rooms", function() return rooms:stats().live == 0 end)
    print("-- both rooms idle for 0.3 s: passivated (their actors stopped, their events kept)")

    print("-- saving edits/room-v2.lua as room.lua while the server runs")
    local v2 = read(here .. "edits/room-v2.lua")
    save(rules, v2)
    wait_for_version("lobby", 2)
    print("-- reloaded: the lobby runs the new rules, its scores kept")
    local r = look("lobby")
    check(scoreline(r.scores) == "alice 8, bob 3", "the lobby lost its scores: %s", scoreline(r.scores))
    move("lobby", "alice", 4, 4, "alice 12, bob 3")
    move("lobby", "bob", 4, 12, "alice 12, bob 15") -- a pair: triple
    move("lobby", "alice", 1, 1, "alice 13, bob 15")
    move("arena", "carol", 2, 6, "carol 8, dave 2") -- woken, recovered: dave's 2 was the last play

    print("-- saving a broken edit (an `if` without its `end`)")
    save(rules, version3(v2, true))
    local refused, why = lore.reload("room") -- what the watcher does on a save, on demand
    check(refused == nil and why and why:find("room%.lua:%d+:"), "the broken edit was not refused: %s",
      tostring(why))
    print("-- refused: " .. why:gsub("^.*/scripts/", ""))
    move("lobby", "bob", 1, 3, "alice 13, bob 18") -- still version 2: a pair
    join("cellar", "frank") -- a room that never ran: version 2 as well
    check(look("cellar").version == 2, "a new room did not get the running rules")

    print("-- fixing the edit")
    save(rules, version3(v2, false))
    wait_for_version("lobby", 3)
    move("lobby", "alice", 6, 12, "alice 25, bob 18") -- a six: double
    move("lobby", "bob", 6, 18, "alice 25, bob 36") -- a pair of sixes: triple
    look("arena")
    print("-- " .. stats())
    print("-- every check passed")
  end)
  os.execute("rm -rf " .. quote(dir))
  if not ok then error(err, 0) end
  lore.shutdown()
end

---------------------------------------------------------------------------
-- The server
---------------------------------------------------------------------------

local function open(dir, hot_reload)
  os.execute("mkdir -p " .. quote(dir .. "/scripts"))
  local rules = dir .. "/scripts/room.lua"
  local f = io.open(rules, "rb")
  if f then
    f:close()
  else
    save(rules, read(here .. "behaviours/room.lua"))
  end
  lore.configure {
    journal = "sqlite:" .. dir .. "/rooms.db",
    synchronous = "full", -- an acknowledged move survives a crash of the machine, too
    scripts = { dir .. "/scripts" },
    hot_reload = hot_reload,
    log_level = "warn",
  }
  rooms = lore.entities("room", { passivate_after = tonumber(os.getenv("ROOM_PASSIVATE_AFTER")) or 60 })
  return rules
end

local function command(line)
  local words = {}
  for w in line:gmatch("%S+") do words[#words + 1] = w end
  local cmd, room = words[1], words[2]
  local ok, err = true, nil
  if cmd == nil then
    return true
  elseif cmd == "quit" then
    return false
  elseif cmd == "stats" then
    print(stats())
  elseif cmd == "look" and room then
    look(room)
  elseif cmd == "join" and room and words[3] then
    ok, err = join(room, words[3])
  elseif cmd == "play" and room and words[3] and math.tointeger(tonumber(words[4])) then
    ok, err = play(room, words[3], math.tointeger(tonumber(words[4])))
  else
    print("unknown command: " .. line .. " (join ROOM PLAYER | play ROOM PLAYER N | look ROOM | stats | quit)")
  end
  if not ok then print(room .. ": rejected: " .. err) end
  io.stdout:flush()
  return true
end

local function serve(dir)
  local rules = open(dir, true)
  local inbox = dir .. "/commands"
  print("serving: the rules are " .. rules .. " (edit and save: live); commands from " .. inbox)
  io.stdout:flush()
  local pos, running = 0, true
  while running do
    local f = io.open(inbox, "rb")
    if f then
      f:seek("set", pos)
      local text = f:read("a") or ""
      f:close()
      for line in text:gmatch("([^\n]*)\n") do -- complete lines only
        pos = pos + #line + 1
        running = command(line)
        if not running then break end
      end
    end
    if running then lore.sleep(0.05) end
  end
  print("bye")
  lore.shutdown()
end

local function show(dir, names)
  open(dir, false)
  for _, room in ipairs(names) do look(room) end
  lore.shutdown()
end

if args[1] == nil then
  demo()
elseif args[1] == "serve" and args[2] then
  serve(args[2])
elseif args[1] == "show" and args[2] and args[3] then
  show(args[2], { table.unpack(args, 3) })
else
  io.stderr:write("usage: lore run app.lua [serve DIR | show DIR ROOM...]\n")
  error("bad arguments", 0)
end
