-- reload_spec.lua: hot reload: lore.reload and hot_reload = true swap a behaviour (and what it
-- requires) on every worker at a message boundary, with state kept; broken edits are refused.
local lore = require "lore"
local h = require "helpers"

local dir

local function write(name, source)
  local f = assert(io.open(dir .. "/" .. name .. ".lua", "w"))
  f:write(source)
  f:close()
end

-- A counter behaviour of version v: replies "v<v>:<n>".
local function counter(v, extra)
  return ([[
local M = {}
M.version = %d
function M.init(opts) return { n = 0, fragile = opts.fragile } end
function M.receive(state, msg, ctx)
  if msg == "get" then return ctx:reply { v = %d, n = state.n } end
  state.n = state.n + 1
  ctx:reply("v%d:" .. state.n)
end
%s
return M
]]):format(v, v, v, extra or "")
end

local function run(fn, config)
  local cfg = { scripts = { dir } }
  for k, v in pairs(config or {}) do cfg[k] = v end
  return h.run(fn, cfg)
end

-- A numbered-message tracker of version v: each message {i = n} is logged as
-- "n:version:tag", where the version is M.version and the tag comes from a
-- local of the same file: a message handled by a half-swapped module would
-- log a version and a tag that disagree. on_upgrade logs each step taken.
-- persistent: the entry goes through an event and apply.
local function tracker(v, persistent)
  return ([[
local M = {}
M.version = %d
local TAG = "t%d"
local function tag() return TAG end
function M.init() return { log = {}, n = 0, upgrades = {} } end
function M.on_upgrade(state, old)
  state.upgrades[#state.upgrades + 1] = old .. ">" .. M.version
  return state
end
local function record(state, entry)
  state.n = state.n + 1
  state.log[state.n] = entry
end
%s
function M.receive(state, msg, ctx)
  if msg.op == "version" then return ctx:reply(M.version) end
  if msg.op == "get" then return ctx:reply(state) end
  local entry = msg.i .. ":" .. M.version .. ":" .. tag()
  %s
end
return M
]]):format(v, v,
    persistent and "function M.apply(state, evt) record(state, evt.e) return state end" or "",
    persistent and "ctx:persist({ e = entry })" or "record(state, entry)")
end

-- Tells every target {i = n} for n = 1, 2, ... (5 a tick, a tick every
-- 5 ms) from "go" until "stop", which answers the last n.
local PUMP = [[
local M = {}
function M.init() return { n = 0 } end
function M.receive(state, msg, ctx)
  if msg.op == "go" then
    state.to, state.on = msg.to, true
    ctx.self:tell { op = "tick" }
    ctx:reply(true)
  elseif msg.op == "tick" and state.on then
    for _ = 1, 5 do
      state.n = state.n + 1
      for _, r in ipairs(state.to) do r:tell { i = state.n } end
    end
    ctx:schedule(0.005, { op = "tick" })
  elseif msg.op == "stop" then
    state.on = false
    ctx:reply(state.n)
  end
end
return M
]]

-- Checks a tracker's state after `sent` messages: each handled once, in
-- order; versions never go back, each entry's tag matches its version; the
-- on_upgrade steps chain from 1 to `last`.
local function check_tracker(name, st, sent, last)
  assert.equal(sent, st.n, name .. ": messages lost or repeated")
  local prev = 1
  for n = 1, sent do
    local i, v, tag = st.log[n]:match("^(%d+):(%d+):(%w+)$")
    assert.equal(n, tonumber(i), name .. ": message " .. n .. " out of order")
    v = tonumber(v)
    assert.equal("t" .. v, tag, name .. ": message " .. n .. " handled by a half-swapped module")
    assert.is_true(v >= prev, name .. ": message " .. n .. " went back to version " .. v)
    prev = v
  end
  local at = 1
  for _, step in ipairs(st.upgrades) do
    local from, to = step:match("^(%d+)>(%d+)$")
    assert.equal(at, tonumber(from), name .. ": on_upgrade steps " .. table.concat(st.upgrades, " "))
    at = tonumber(to)
  end
  assert.equal(last, at, name .. ": on_upgrade steps " .. table.concat(st.upgrades, " "))
end

describe("hot reload", function()
  before_each(function() dir = h.tmpdir("reload") end)
  after_each(function() os.execute("rm -rf " .. h.quote(dir)) end)

  it("lore.reload swaps the behaviour of live actors on every worker, state kept", function()
    write("counter", counter(1))
    run(function()
      local a, b = lore.spawn("counter"), lore.spawn("counter")
      assert.are_not.equal(h.worker_of(a), h.worker_of(b)) -- one on each worker
      assert.equal("v1:1", a:ask("x"))
      assert.equal("v1:1", b:ask("x"))
      write("counter", counter(2))
      assert.is_true(lore.reload("counter"))
      -- after the reload returns, no actor runs the old version
      assert.equal("v2:2", a:ask("x"))
      assert.equal("v2:2", b:ask("x"))
      assert.equal("v2:1", lore.spawn("counter"):ask("x")) -- and new ones start on it
    end)
  end)

  it("runs on_upgrade when M.version changes; an actor whose on_upgrade raises keeps the old code", function()
    write("counter", counter(1))
    run(function()
      local ok, fragile = lore.spawn("counter"), lore.spawn("counter", { fragile = true })
      ok:ask("x")
      fragile:ask("x")
      write("counter", counter(2, [[
function M.on_upgrade(state, old)
  if state.fragile then error("cannot upgrade this one") end
  state.n = state.n + 100 * old
  return state
end]]))
      assert.is_true(lore.reload("counter"))
      assert.equal("v2:102", ok:ask("x"))  -- 1 + 100 * 1, then this message
      assert.equal("v1:2", fragile:ask("x")) -- still the old code, state untouched
      assert.same({ v = 1, n = 2 }, fragile:ask("get"))
    end, { workers = 1, log_level = "off" })
  end)

  it("refuses a file with a syntax error (the old code stays), and takes the fix", function()
    write("counter", counter(1))
    run(function()
      local a = lore.spawn("counter")
      assert.equal("v1:1", a:ask("x"))
      write("counter", "local M = {\n")
      local ok, err = lore.reload("counter")
      assert.is_nil(ok)
      assert.matches("counter%.lua:%d+:", err)
      assert.equal("v1:2", a:ask("x"))
      write("counter", "return { receive = 'not a function' }")
      ok, err = lore.reload("counter")
      assert.is_nil(ok)
      assert.matches("receive", err)
      write("counter", counter(2))
      assert.is_true(lore.reload("counter"))
      assert.equal("v2:3", a:ask("x"))
    end, { log_level = "off" })
  end)

  it("reports an unknown behaviour", function()
    run(function()
      local ok, err = lore.reload("no_such_thing")
      assert.is_nil(ok)
      assert.matches("not found", err)
    end, { log_level = "off" })
  end)

  it("reloads the modules a behaviour requires with it", function()
    write("helper", "return { word = function() return 'old' end }")
    write("user", [[
local helper = require "helper"
return { receive = function(_, _, ctx) ctx:reply(helper.word()) end }]])
    run(function()
      local u = lore.spawn("user")
      assert.equal("old", u:ask("x"))
      write("helper", "return { word = function() return 'new' end }")
      assert.is_true(lore.reload("helper"))
      assert.equal("new", u:ask("x"))
    end)
  end)

  it("loses and repeats no message of a burst sent during a reload", function()
    write("counter", counter(1))
    run(function()
      local actors = {}
      for i = 1, 4 do actors[i] = lore.spawn("counter") end
      write("counter", counter(2))
      local sent = 0
      for round = 1, 20 do
        for i = 1, 4 do
          for _ = 1, 25 do actors[i]:tell("x") end
          sent = sent + 25
        end
        if round == 10 then assert.is_true(lore.reload("counter")) end
      end
      local total = 0
      for i = 1, 4 do
        local s = actors[i]:ask("get")
        assert.equal(2, s.v)
        total = total + s.n
      end
      assert.equal(sent, total)
    end)
  end)

  it("applies a persistent behaviour's new apply to new events and to later recoveries", function()
    local journal = "memory:reload-" .. os.time() .. "-" .. math.random(1, 1e9)
    local function ledger(factor)
      return ([[
local M = {}
function M.init() return { total = 0 } end
function M.apply(state, evt) state.total = state.total + evt.amount * %d return state end
function M.receive(state, msg, ctx)
  if msg.op == "add" then
    ctx:persist({ type = "added", amount = msg.amount }, function() ctx:reply(state.total) end)
  else ctx:reply(state.total) end
end
return M]]):format(factor)
    end
    write("ledger", ledger(1))
    run(function()
      local l = lore.spawn("ledger", { id = "reloaded-ledger" })
      assert.equal(1, l:ask { op = "add", amount = 1 })
      write("ledger", ledger(10))
      assert.is_true(lore.reload("ledger"))
      assert.equal(11, l:ask { op = "add", amount = 1 }) -- the new event through the new apply
    end, { journal = journal })
    run(function() -- a later recovery replays everything through the new apply
      assert.equal(20, lore.spawn("ledger", { id = "reloaded-ledger" }):ask { op = "get" })
    end, { journal = journal })
  end)

  it("with hot_reload = true picks up an edited file on every worker by itself", function()
    write("counter", counter(1))
    run(function()
      local a, b = lore.spawn("counter"), lore.spawn("counter")
      assert.equal("v1:1", a:ask("x"))
      write("counter", counter(2))
      assert.truthy(h.eventually(function() return a:ask("get").v == 2 end, 5), "never reloaded")
      assert.equal(2, b:ask("get").v)
      -- a broken edit is refused; the fix is taken
      write("counter", "local M = {\n")
      lore.sleep(0.4)
      assert.equal(2, a:ask("get").v)
      write("counter", counter(3))
      assert.truthy(h.eventually(function() return a:ask("get").v == 3 end, 5), "the fix was not taken")
    end, { hot_reload = true, log_level = "off" })
  end)
  it("runs one version on every worker: an edited file reaches no actor, old or new, before its reload", function()
    write("counter", counter(1))
    run(function()
      local a = lore.spawn("counter")
      assert.equal("v1:1", a:ask("x"))
      write("counter", counter(2)) -- no hot_reload: nothing happens until lore.reload
      local later = { lore.spawn("counter"), lore.spawn("counter"), lore.spawn("counter") }
      local workers = {}
      for _, r in ipairs(later) do
        workers[h.worker_of(r)] = true
        assert.equal("v1:1", r:ask("x")) -- the runtime's version, on whichever worker
      end
      assert.truthy(workers[1] and workers[2], "the later actors were not spread over both workers")
      assert.is_true(lore.reload("counter"))
      assert.equal("v2:2", a:ask("x"))
      for _, r in ipairs(later) do assert.equal("v2:2", r:ask("x")) end
      for _ = 1, 2 do assert.equal("v2:1", lore.spawn("counter"):ask("x")) end
      -- a refused edit is not what a later spawn gets either, on any worker
      write("counter", "local M = {\n")
      assert.is_nil((lore.reload("counter")))
      for _ = 1, 2 do assert.equal("v2:1", lore.spawn("counter"):ask("x")) end
    end, { log_level = "off" })
  end)

  it("keeps every worker on the same version through repeated reloads under load", function()
    write("counter", counter(1))
    run(function()
      local actors = {}
      for i = 1, 6 do actors[i] = lore.spawn("counter") end
      for v = 2, 8 do
        for _, r in ipairs(actors) do
          for _ = 1, 20 do r:tell("x") end
        end
        write("counter", counter(v))
        assert.is_true(lore.reload("counter"))
        local fresh = { lore.spawn("counter"), lore.spawn("counter") }
        assert.are_not.equal(h.worker_of(fresh[1]), h.worker_of(fresh[2]))
        for _, r in ipairs(actors) do assert.equal(v, r:ask("get").v) end
        for _, r in ipairs(fresh) do assert.equal(v, r:ask("get").v) end
      end
    end)
  end)

  it("handles no message twice, loses none and none by a half-swapped module, " ..
    "when the watcher reloads in the middle of a burst", function()
    write("pump", PUMP)
    write("tracker", tracker(1))
    write("ptracker", tracker(1, true))
    local journal = "memory:reload-burst-" .. os.time() .. "-" .. math.random(1, 1e9)
    run(function()
      local targets = {
        lore.spawn("tracker"), lore.spawn("tracker"),
        lore.spawn("ptracker", { id = "burst-a" }), lore.spawn("ptracker", { id = "burst-b" }),
      }
      assert.are_not.equal(h.worker_of(targets[1]), h.worker_of(targets[2]))
      local pump = lore.spawn("pump")
      assert.is_true(pump:ask { op = "go", to = targets })
      assert.truthy(h.eventually(function() return targets[4]:ask({ op = "get" }).n >= 20 end, 10))
      for v = 2, 3 do
        write("tracker", tracker(v))
        write("ptracker", tracker(v, true))
        for i, r in ipairs(targets) do
          assert.truthy(h.eventually(function() return r:ask({ op = "version" }) == v end, 10),
            "target " .. i .. " never reached version " .. v)
        end
      end
      local seen = targets[3]:ask({ op = "get" }).n
      assert.truthy(h.eventually(function() return targets[3]:ask({ op = "get" }).n >= seen + 20 end, 10))
      local sent = pump:ask { op = "stop" }
      for i, r in ipairs(targets) do
        assert.truthy(h.eventually(function() return r:ask({ op = "get" }).n >= sent end, 10),
          "target " .. i .. " did not get all " .. sent .. " messages")
        check_tracker("target " .. i, r:ask { op = "get" }, sent, 3)
      end
    end, { hot_reload = true, journal = journal })
    run(function() -- recovery replays what each version persisted
      local st = lore.spawn("ptracker", { id = "burst-a" }):ask { op = "get" }
      local versions = {}
      for _, e in ipairs(st.log) do versions[e:match("^%d+:(%d+):")] = true end
      assert.truthy(versions["1"] and versions["3"], "the journal lacks entries of version 1 or 3")
    end, { journal = journal })
  end)

  it("refuses a bad module name and a non-string", function()
    run(function()
      local ok, err = lore.reload("../etc/passwd")
      assert.is_nil(ok)
      assert.matches("bad module name", err)
      assert.matches("string expected", h.error_of(lore.reload, {}))
    end, { log_level = "off" })
  end)

  it("with hot_reload = true reloads a behaviour when a module it requires, through another, is edited", function()
    write("deep", "return { word = 'old' }")
    write("mid", "local deep = require 'deep' return { word = function() return deep.word end }")
    write("user", [[
local mid = require "mid"
return { receive = function(_, _, ctx) ctx:reply(mid.word()) end }]])
    write("other", [[
local deep = require "deep"
return { receive = function(_, _, ctx) ctx:reply("other " .. deep.word) end }]])
    run(function()
      local u1, u2, o = lore.spawn("user"), lore.spawn("user"), lore.spawn("other")
      assert.equal("old", u1:ask("x"))
      assert.equal("other old", o:ask("x"))
      write("deep", "return { word = 'new' }")
      assert.truthy(h.eventually(function() return u1:ask("x") == "new" end, 10), "user never reloaded")
      assert.equal("new", u2:ask("x"))
      assert.equal("other new", o:ask("x"))
    end, { hot_reload = true })
  end)

  it("logs a refused edit at warn and an on_upgrade that raised, each with file and line", function()
    write("counter", counter(1))
    local app = h.app_file(([[
local lore = require "lore"
local dir = %q
lore.configure { scripts = { dir }, workers = 2, hot_reload = true, log_level = "warn" }
local function write(source)
  local f = assert(io.open(dir .. "/counter.lua", "w"))
  f:write(source)
  f:close()
end
local function log_has(pattern)
  local f = io.open(dir .. "/log", "r")
  local text = f and f:read("a") or ""
  if f then f:close() end
  return text:find(pattern) ~= nil
end
local function wait_for(pattern)
  for _ = 1, 2000 do
    if log_has(pattern) then return end
    lore.sleep(0.01)
  end
  error("the log never showed " .. pattern)
end
local a, b = lore.spawn("counter"), lore.spawn("counter", { fragile = true })
a:ask("x")
b:ask("x")
write("local M = {}\nfunction M.receive(\n")           -- refused by the watcher
wait_for("refused")
assert(a:ask("get").v == 1, "the broken edit was taken")
write(%q)
for _ = 1, 2000 do
  if a:ask("get").v == 2 then break end
  lore.sleep(0.01)
end
assert(a:ask("get").v == 2, "the fix was not taken")
assert(b:ask("get").v == 1, "on_upgrade raised, yet the actor moved on")
wait_for("keeps counter")
print("done")
lore.shutdown()
]]):format(dir, counter(2, [[
function M.on_upgrade(state, old)
  if state.fragile then error("this one cannot be upgraded") end
  return state
end]])))
    local out, err, code = h.sh(("(cd %s && %s run %s 2>log)"):format(h.quote(dir), h.quote(h.lore_bin()),
      h.quote(app)))
    os.remove(app)
    local f = assert(io.open(dir .. "/log"))
    local log = f:read("a")
    f:close()
    assert.equal(0, code, out .. err .. log)
    assert.equal("done\n", out)
    assert.matches("warn: hot reload: 'counter' refused[^\n]*counter%.lua:%d+: <name>", log)
    assert.matches("warn: actor [^\n]*keeps counter version 1[^\n]*counter%.lua:%d+: this one cannot be upgraded", log)
  end)
end)
