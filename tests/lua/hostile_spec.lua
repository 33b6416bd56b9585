-- hostile_spec.lua: behaviour scripts are untrusted: each class of attack a hostile script
-- might try, and what stops it. (fixtures/hostile/*.lua are the scripts.)
local lore = require "lore"
local h = require "helpers"

local function ask(ref, msg) return ref:ask(msg, 10) end

describe("a hostile script cannot reach another actor's journal", function()
  it("finds every ctx field read-only, even through rawset, and the ctx metatable locked", function()
    h.run(function()
      local t = lore.spawn("hostile.ctx_thief", { id = "thief-1" })
      assert.matches("ctx is read%-only", ask(t, { op = "set_id", id = "victim" }))
      assert.matches("ctx is read%-only", ask(t, { op = "set_seq" }))
      assert.matches("ctx is read%-only", ask(t, { op = "rawset_id", id = "victim" }))
      assert.matches("protected metatable", ask(t, { op = "set_metatable" }))
      assert.equal("lore.ctx", ask(t, { op = "metatable" }))
      -- a ctx holds nothing a script could enumerate: its fields come from
      -- the runtime's record, which no script can reach
      assert.same({}, ask(t, { op = "fields" }))
      assert.same({ n = 0, seq = 0 }, ask(t, { op = "get" }))
    end)
  end)

  it("writes an event that names another id and seq into its own stream only", function()
    local path = os.tmpname()
    os.remove(path)
    finally(function()
      for _, s in ipairs { "", "-wal", "-shm" } do os.remove(path .. s) end
    end)
    h.run(function()
      local v = lore.spawn("hostile.victim", { id = "victim" })
      assert.equal(5, ask(v, { op = "add", amount = 5 }))
      assert.equal(12, ask(v, { op = "add", amount = 7 }))
      local t = lore.spawn("hostile.ctx_thief", { id = "thief-2" })
      assert.equal(1, ask(t, { op = "persist_forged", id = "victim" }))
      assert.equal(2, ask(t, { op = "persist_forged", id = "victim" }))
      assert.is_true(ask(t, { op = "delete_all" }))
      assert.same({ total = 12, n = 2, seq = 2 }, ask(v, { op = "get" }))
    end, { journal = "sqlite:" .. path })
    h.run(function() -- and after a restart, from the journal
      local v = lore.spawn("hostile.victim", { id = "victim" })
      assert.same({ total = 12, n = 2, seq = 2 }, ask(v, { op = "get" }))
    end, { journal = "sqlite:" .. path })
  end)

  it("cannot act through a ctx another actor left in a module table", function()
    h.run(function()
      -- one worker: both actors share its Lua state and the module's table
      local a = lore.spawn("hostile.ctx_thief", { id = "owner" })
      local b = lore.spawn("hostile.ctx_thief", { id = "intruder" })
      assert.is_true(ask(a, { op = "steal" }))
      assert.matches("belongs to another actor", ask(b, { op = "use_stolen" }))
      assert.matches("belongs to another actor", ask(b, { op = "stop_stolen" }))
      assert.same({ n = 0, seq = 0 }, ask(a, { op = "get" }))
      assert.same({ n = 0, seq = 0 }, ask(b, { op = "get" }))
    end, { workers = 1 })
  end)

  it("cannot change the methods of refs or reach its environment's metatable", function()
    h.run(function()
      local t = lore.spawn("hostile.ctx_thief", { id = "thief-3" })
      local r = ask(t, { op = "ref_metatable" })
      assert.matches("attempt to index a nil value.*|lore%.ref$", r)
      assert.equal("false", ask(t, { op = "env_metatable" }))
    end)
  end)
end)

describe("a hostile script cannot change what other behaviours run", function()
  it("changes only its own copy of the standard library and of lore", function()
    h.run(function()
      local p = lore.spawn("hostile.poisoner")
      local honest = lore.spawn("hostile.prober")
      assert.equal("poisoned", ask(p, { op = "poison" }))
      assert.equal("1,ab,2,abab,ref(x)", ask(honest, { op = "probe" }))
      -- a behaviour loaded after the poisoning gets a clean library too
      local late = lore.spawn("echo")
      assert.equal("x", ask(late, "x"))
    end, { workers = 1 })
  end)
end)

describe("the instruction budget cannot be escaped", function()
  local ways = { "coroutine", "wrap", "pcall_loop", "xpcall_handler", "resume_loop", "nested",
    "pattern", "method_pattern" }
  for _, way in ipairs(ways) do
    it("stops " .. way .. " with a budget error, and the actor serves again", function()
      h.run(function()
        local r = lore.spawn("hostile.runaway")
        local t0 = h.now()
        local err = h.error_of(r.ask, r, { op = way }, 20)
        assert.matches("instruction budget exceeded", err)
        assert.is_true(h.now() - t0 < 10, "took " .. (h.now() - t0))
        assert.equal("pong", ask(r, { op = "ping" }))
      end, { max_instructions = 2000000 })
    end)
  end

  it("refuses __gc metamethods (a finalizer runs outside any handler's budget)", function()
    h.run(function()
      local r = lore.spawn("hostile.runaway")
      assert.equal("false", ask(r, { op = "gc" }))
    end)
  end)
end)

describe("a message is bounded in work, not only in depth", function()
  it("refuses a message of shared subtables (2^40 values) quickly, naming the limit", function()
    h.run(function()
      local b = lore.spawn("hostile.bomb")
      local t0 = h.now()
      local err = h.error_of(b.ask, b, { op = "dag" }, 20)
      assert.matches("too many values", err)
      assert.is_true(h.now() - t0 < 5, "took " .. (h.now() - t0))
      assert.equal("pong", ask(b, { op = "ping" }))
      -- the same from the application script
      local t = { leaf = "x" }
      for _ = 1, 40 do t = { a = t, b = t } end
      assert.matches("too many values", h.error_of(b.tell, b, t))
    end)
  end)
end)

describe("persistence ids", function()
  it("refuses a NUL byte and a blank id everywhere an id is given", function()
    h.run(function()
      assert.matches("NUL", h.error_of(lore.spawn, "hostile.victim", { id = "victim\0other" }))
      assert.matches("blank", h.error_of(lore.spawn, "hostile.victim", { id = "  \t" }))
      assert.matches("NUL", h.error_of(lore.ref, "a\0b"))
      assert.matches("blank", h.error_of(lore.ref, "   "))
      assert.matches("empty", h.error_of(lore.ref, ""))
    end)
  end)
end)

describe("stop and shutdown always win", function()
  it("stops an actor whose on_recovery_completed raises, when asked to", function()
    h.run(function()
      local a = lore.spawn("hostile.bad_recovery", { id = "bad-rc" })
      lore.sleep(0.3) -- it fails and restarts, again and again, with back-off
      a:stop()
      assert.truthy(h.eventually(function() return lore.stats().alive == 0 end, 3),
        "the failing actor did not stop")
    end)
  end)

  local function app(source)
    return h.app_file(([[
local lore = require "lore"
lore.configure { scripts = { %q }, workers = 2, log_level = "error",
  max_instructions = 0, shutdown_timeout = 1 }
]]):format(h.fixtures) .. source)
  end

  it("lore.shutdown() ends within a few seconds while a handler loops with no budget", function()
    local path = app [[
      local r = lore.spawn("hostile.runaway")
      r:tell { op = "pcall_loop" }
      lore.sleep(0.2)
      lore.shutdown()
    ]]
    local _, err, code, took = h.sh(h.quote(h.lore_bin()) .. " run " .. h.quote(path))
    os.remove(path)
    assert.is_true(took < 8, "took " .. took)
    assert.equal(1, code) -- the exit status says actors had to be stopped by force
    assert.matches("stopped by force", err)
  end)

  it("SIGTERM ends the process within a few seconds while a pattern backtracks with no budget", function()
    local path = app [[
      local r = lore.spawn("hostile.runaway")
      r:tell { op = "pattern" }
      print("started")
      io.stdout:flush()
      lore.sleep(60)
    ]]
    local out, err, code, took = h.sh(("timeout --preserve-status -s TERM 1 %s run %s")
      :format(h.quote(h.lore_bin()), h.quote(path)))
    os.remove(path)
    assert.equal("started\n", out)
    assert.is_true(took < 8, "took " .. took)
    assert.equal(1, code)
    assert.matches("stopped by force", err)
  end)

  it("SIGTERM with well-behaved actors exits 0 at once", function()
    local path = app [[
      lore.spawn("echo")
      print("started")
      io.stdout:flush()
      lore.sleep(60)
    ]]
    local out, _, code, took = h.sh(("timeout --preserve-status -s TERM 1 %s run %s")
      :format(h.quote(h.lore_bin()), h.quote(path)))
    os.remove(path)
    assert.equal("started\n", out)
    assert.equal(0, code)
    assert.is_true(took < 4, "took " .. took)
  end)
end)

describe("a closed stdout", function()
  it("is a logged error for print, not a SIGPIPE that kills the process", function()
    local path = h.app_file(([[
local lore = require "lore"
lore.configure { scripts = { %q }, workers = 1 }
local p = lore.spawn("hostile.printer")
p:ask({ n = 20000 }, 30)
io.stderr:write("still running\n")
lore.shutdown()
]]):format(h.fixtures))
    local cmd = "set -o pipefail; " .. h.quote(h.lore_bin()) .. " run " .. h.quote(path) .. " | head -n 1"
    local _, err, code = h.sh("bash -c " .. h.quote(cmd))
    os.remove(path)
    assert.equal(0, code)
    assert.matches("still running", err)
    assert.matches("cannot write to stdout", err)
  end)
end)
