-- run_spec.lua: lore.run, lore.configure, lore.sleep, lore.shutdown, lore.stats.
local lore = require "lore"
local h = require "helpers"

-- configure as the helpers do, for specs that call lore.run directly
local function configure(extra)
  local cfg = {}
  for k, v in pairs(h.defaults) do cfg[k] = v end
  for k, v in pairs(extra or {}) do cfg[k] = v end
  lore.configure(cfg)
end

describe("lore.run", function()
  it("runs the function with its arguments and returns true", function()
    configure()
    local got
    assert.is_true(lore.run(function(a, b) got = { a, b } end, "x", 2))
    assert.same({ "x", 2 }, got)
  end)

  it("returns once the function has returned and the last actor has stopped", function()
    configure()
    local t0 = h.now()
    assert.is_true(lore.run(function()
      lore.spawn("timer"):tell { op = "stop_after", delay = 0.3 }
    end))
    local took = h.now() - t0
    assert.is_true(took >= 0.25 and took < 5, "took " .. took)
  end)

  it("raises the function's error", function()
    configure()
    local ok, err = pcall(lore.run, function() error("app failed") end)
    assert.is_false(ok)
    assert.matches("app failed", err)
  end)

  it("raises the function's error promptly even with actors alive", function()
    configure()
    local t0 = h.now()
    local ok, err = pcall(lore.run, function()
      lore.spawn("echo")
      error("app failed with an actor alive")
    end)
    assert.is_false(ok)
    assert.matches("app failed with an actor alive", err)
    assert.is_true(h.now() - t0 < 2)
  end)

  it("starts a fresh runtime each time", function()
    h.run(function()
      lore.spawn("echo", { id = "fresh" })
      assert.equal(1, lore.stats().alive)
    end)
    h.run(function()
      assert.equal(0, lore.stats().alive)
      lore.spawn("echo", { id = "fresh" }) -- the id is free again
      assert.equal(1, lore.stats().alive)
    end)
  end)

  it("is not reentrant", function()
    h.run(function()
      assert.matches("already running", h.error_of(lore.run, function() end))
    end)
  end)

  it("lore.shutdown() ends the run with actors alive", function()
    configure()
    local t0 = h.now()
    assert.is_true(lore.run(function()
      lore.spawn("echo")
      lore.spawn("faulty")
      lore.shutdown()
    end))
    assert.is_true(h.now() - t0 < 2)
  end)
end)

describe("lore.configure", function()
  it("rejects unknown options and bad values", function()
    assert.matches("unknown option 'wrokers'", h.error_of(lore.configure, { wrokers = 2 }))
    assert.matches("workers", h.error_of(lore.configure, { workers = -1 }))
    assert.matches("workers", h.error_of(lore.configure, { workers = "two" }))
    assert.matches("scripts", h.error_of(lore.configure, { scripts = 5 }))
    assert.matches("synchronous", h.error_of(lore.configure, { synchronous = "maybe" }))
    assert.has_error(function() lore.configure("workers=2") end)
  end)

  it("changes nothing when any option of the call is bad (a good journal before a bad key)", function()
    configure()
    local dir = os.tmpname()
    os.remove(dir)
    -- pairs visits keys in no set order: several bad calls make sure the good
    -- options were read before the bad one at least once
    for i = 1, 8 do
      local bad = { journal = "sqlite:" .. dir .. "-" .. i .. ".db", workers = 3, scripts = { "/nowhere" } }
      bad["bad_key_" .. i] = true
      assert.matches("unknown option", h.error_of(lore.configure, bad))
      assert.matches("log_level", h.error_of(lore.configure, { workers = 3, log_level = "loud" }))
    end
    local st, answer
    lore.run(function()
      answer = lore.spawn("echo"):ask("still the old scripts")
      st = lore.stats()
      lore.shutdown()
    end)
    assert.equal("still the old scripts", answer)
    assert.equal(2, st.workers) -- not the 3 of the refused calls
    for i = 1, 8 do -- the refused journal was never opened
      assert.is_nil(io.open(dir .. "-" .. i .. ".db", "r"))
    end
  end)

  it("leaves the scripts list as it was when the new one is bad", function()
    configure()
    assert.has_error(function() lore.configure { scripts = 5 } end)
    assert.has_error(function() lore.configure { scripts = { "/tmp", 5 } } end)
    local got
    lore.run(function()
      local ok, v = pcall(function() return lore.spawn("echo"):ask("still found") end)
      got = ok and v or tostring(v)
      lore.shutdown()
    end)
    assert.equal("still found", got)
  end)

  it("must come before the first spawn", function()
    h.run(function()
      lore.spawn("echo")
      assert.matches("before the first spawn", h.error_of(lore.configure, { workers = 1 }))
    end)
  end)

  it("sets the number of workers", function()
    h.run(function()
      lore.spawn("echo")
      assert.equal(3, lore.stats().workers)
    end, { workers = 3 })
  end)

  it("accepts one scripts directory as a string", function()
    h.run(function()
      assert.equal(1, lore.spawn("echo"):ask(1))
    end, { scripts = h.fixtures })
  end)
end)

describe("lore.sleep", function()
  it("suspends the app without blocking actors", function()
    h.run(function()
      local t = lore.spawn("timer")
      local rec = lore.spawn("recorder")
      t:ask { op = "schedule_notify", tag = "during sleep", delay = 0.05, notify = rec }
      local t0 = h.now()
      lore.sleep(0.3)
      local took = h.now() - t0
      assert.is_true(took >= 0.25 and took < 2, "slept " .. took)
      assert.same({ "during sleep" }, rec:ask { op = "get" })
    end)
  end)

  it("rejects a negative time", function()
    h.run(function()
      assert.has_error(function() lore.sleep(-1) end)
      lore.sleep(0)
    end)
  end)
end)

describe("lore.stats", function()
  it("counts live actors, dead letters and workers", function()
    h.run(function()
      local a = lore.spawn("echo")
      lore.spawn("echo")
      lore.spawn("recorder")
      local s = lore.stats()
      assert.equal(3, s.alive)
      assert.equal(2, s.workers)
      assert.equal(0, s.dead_letters)
      a:stop()
      assert.truthy(h.eventually(function() return lore.stats().alive == 2 end))
      a:tell("lost")
      pcall(a.ask, a, "lost too", 5)
      assert.truthy(h.eventually(function() return lore.stats().dead_letters >= 2 end))
    end)
  end)

  it("reports the workers' Lua memory, which grows with the actors", function()
    h.run(function()
      lore.spawn("echo"):ask(1)
      local before = lore.stats().lua_memory
      assert.is_true(before > 0, "lua_memory " .. tostring(before))
      local refs = {}
      for i = 1, 2000 do refs[i] = lore.spawn("echo") end
      for i = 1, 2000 do refs[i]:ask(i) end
      local after = lore.stats().lua_memory
      assert.is_true(after > before + 2000 * 100, ("%d -> %d"):format(before, after))
    end)
  end)

  it("reports zeros outside a run", function()
    local s = lore.stats()
    assert.equal(0, s.alive)
    assert.equal(0, s.dead_letters)
  end)
end)
