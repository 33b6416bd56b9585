-- example_game_room_spec.lua: examples/game-room through the `lore` executable: the demo
-- checks itself; a running server takes an edit of its rules through the file watcher
-- (state kept), refuses a broken one, and its rooms survive a restart.
local h = require "helpers"

local ROOT = h.root .. "/examples/game-room"
local APP = ROOT .. "/app.lua"
local q = h.quote

local function slurp(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function spit(path, text, mode)
  local f = assert(io.open(path, mode or "wb"))
  f:write(text)
  f:close()
end

local function pause() os.execute("sleep 0.05") end

-- Polls `path` until its text matches `pattern` (plain when `plain`); returns the text.
local function wait_file(path, pattern, timeout, plain)
  local tries = math.floor((timeout or 30) / 0.05)
  for _ = 1, tries do
    local text = slurp(path)
    if text and text:find(pattern, 1, plain) then return text end
    pause()
  end
  error(("%s never showed %q; it has:\n%s"):format(path, pattern, slurp(path) or "(no file)"), 2)
end

describe("examples/game-room", function()
  it("the demo plays, takes the edited rules live, refuses a broken edit, and checks itself", function()
    local out, err, code = h.sh(("cd %s && %s run examples/game-room/app.lua"):format(q(h.root), q(h.lore_bin())))
    assert.equal(0, code, out .. err)
    out = out:gsub("\n%-%- rooms: [^\n]*\n", "\n-- rooms: ...\n") -- how many rooms sleep depends on timing
    assert.equal([[
-- rules v1: a play scores its value
lobby: alice joins -> alice 0
lobby: bob joins -> alice 0, bob 0
lobby: alice plays 3, +3 -> alice 3, bob 0 [rules v1]
lobby: bob plays 3, +3 -> alice 3, bob 3 [rules v1]
lobby: alice plays 5, +5 -> alice 8, bob 3 [rules v1]
arena: carol joins -> carol 0
arena: dave joins -> carol 0, dave 0
arena: carol plays 2, +2 -> carol 2, dave 0 [rules v1]
arena: dave plays 2, +2 -> carol 2, dave 2 [rules v1]
-- both rooms idle for 0.3 s: passivated (their actors stopped, their events kept)
-- saving edits/room-v2.lua as room.lua while the server runs
-- reloaded: the lobby runs the new rules, its scores kept
lobby: alice 8, bob 3, 3 play(s) [rules v2: a pair (the value of the play before) scores triple]
lobby: alice plays 4, +4 -> alice 12, bob 3 [rules v2]
lobby: bob plays 4, +12 (pair) -> alice 12, bob 15 [rules v2]
lobby: alice plays 1, +1 -> alice 13, bob 15 [rules v2]
arena: carol plays 2, +6 (pair) -> carol 8, dave 2 [rules v2]
-- saving a broken edit (an `if` without its `end`)
-- refused: room.lua:43: 'end' expected (to close 'if' at line 42) near 'return'
lobby: bob plays 1, +3 (pair) -> alice 13, bob 18 [rules v2]
cellar: frank joins -> frank 0
cellar: frank 0, 0 play(s) [rules v2: a pair (the value of the play before) scores triple]
-- fixing the edit
lobby: alice plays 6, +12 -> alice 25, bob 18 [rules v3]
lobby: bob plays 6, +18 (pair) -> alice 25, bob 36 [rules v3]
arena: carol 8, dave 2, 3 play(s) [rules v3: a pair scores triple, a six double]
-- rooms: ...
-- every check passed
]], out)
    assert.matches("warn: hot reload: 'room' refused, the running code stays: [^\n]*room%.lua:43:", err)
  end)

  describe("a server", function()
    local dir, pidfile

    before_each(function()
      dir = h.tmpdir("game-room-spec")
      pidfile = dir .. "/pid"
    end)

    after_each(function()
      if not slurp(dir .. "/status") then -- still running: a failed test
        local pid = slurp(pidfile)
        if pid then os.execute("kill " .. pid:match("%d+") .. " 2>/dev/null") end
      end
      os.execute("rm -rf " .. q(dir))
    end)

    local function start()
      local script = ("cd %s || exit 9; ROOM_PASSIVATE_AFTER=0.3 %s run %s serve %s >out 2>err & " ..
        "echo $! >pid; wait $!; echo $? >status"):format(q(dir), q(h.lore_bin()), q(APP), q(dir))
      os.execute(("sh -c %s &"):format(q(script)))
      wait_file(dir .. "/out", "serving:", 30, true)
    end

    local function send(...)
      spit(dir .. "/commands", table.concat({ ... }, "\n") .. "\n", "ab")
    end

    local function out_has(text) return wait_file(dir .. "/out", text, 30, true) end

    it("takes an edit of its rules through the file watcher, refuses a broken one; the rooms survive a restart",
      function()
        start()
        send("join lobby alice", "join lobby bob", "play lobby alice 3", "play lobby bob 3", "join arena carol",
          "play arena carol 5")
        out_has("lobby: bob plays 3, +3 -> alice 3, bob 3 [rules v1]\n")
        out_has("arena: carol plays 5, +5 -> carol 5 [rules v1]\n")

        -- the edit, saved in place as an editor would: the watcher reloads it
        local v2 = slurp(ROOT .. "/edits/room-v2.lua")
        spit(dir .. "/scripts/room.lua", v2)
        local reloaded = false
        for _ = 1, 60 do
          send("look lobby")
          local ok = pcall(wait_file, dir .. "/out", "[rules v2:", 0.5, true)
          if ok then
            reloaded = true
            break
          end
        end
        assert.is_true(reloaded, "the server never took the edit:\n" .. slurp(dir .. "/out") .. slurp(dir .. "/err"))
        out_has("lobby: alice 3, bob 3, 2 play(s) [rules v2:") -- state kept
        send("play lobby alice 3", "play arena carol 5") -- pairs: triple (the arena may have been asleep)
        out_has("lobby: alice plays 3, +9 (pair) -> alice 12, bob 3 [rules v2]\n")
        out_has("arena: carol plays 5, +15 (pair) -> carol 20 [rules v2]\n")

        -- a broken edit: refused, logged with file and line; the running rules go on
        local broken = v2:gsub("M%.version = 2", "M.version = 3")
          :gsub("return value %* 3, true end", "return value * 3, true")
        spit(dir .. "/scripts/room.lua", broken)
        local err = wait_file(dir .. "/err", "refused", 30, true)
        assert.matches("warn: hot reload: 'room' refused, the running code stays: [^\n]*room%.lua:%d+: " ..
          "'end' expected", err)
        send("play lobby bob 3", "stats", "quit")
        out_has("lobby: bob plays 3, +9 (pair) -> alice 12, bob 12 [rules v2]\n")
        wait_file(dir .. "/status", "%d", 30)
        assert.equal("0\n", slurp(dir .. "/status"), slurp(dir .. "/err"))
        assert.matches("\nbye\n$", slurp(dir .. "/out"))

        -- a new process recovers the rooms from the journal (the rules file is still the broken one:
        -- fix it first, as the operator would)
        spit(dir .. "/scripts/room.lua", v2)
        local out, stderr, code = h.sh(("%s run %s show %s lobby arena"):format(q(h.lore_bin()), q(APP), q(dir)))
        assert.equal(0, code, stderr)
        assert.equal("lobby: alice 12, bob 12, 4 play(s) [rules v2: a pair (the value of the play before) scores " ..
          "triple]\n" ..
          "arena: carol 20, 2 play(s) [rules v2: a pair (the value of the play before) scores triple]\n", out)
      end)
  end)
end)
