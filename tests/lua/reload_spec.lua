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
end)
