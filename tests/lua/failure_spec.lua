-- failure_spec.lua: a handler that raises or runs away fails its own actor only, which restarts.
local lore = require "lore"
local h = require "helpers"

describe("a failing handler", function()
  it("gives the ask its error with file:line", function()
    h.run(function()
      local f = lore.spawn("faulty")
      local err = h.error_of(f.ask, f, "boom", 5)
      assert.matches("faulty%.lua:16: boom on purpose", err)
    end)
  end)

  it("restarts the actor with its init state, and it keeps serving", function()
    h.run(function()
      local f = lore.spawn("faulty")
      assert.equal(1, f:ask("inc"))
      assert.equal(2, f:ask("inc"))
      pcall(f.ask, f, "boom")
      assert.equal(0, f:ask("get")) -- init state, not 2 or 102
      assert.equal(1, f:ask("inc"))
    end)
  end)

  it("a plain tell that fails also restarts the actor", function()
    h.run(function()
      local f = lore.spawn("faulty")
      f:ask("inc")
      f:tell("boom")
      assert.equal(0, f:ask("get"))
    end)
  end)

  it("keeps the messages queued behind the failing one", function()
    h.run(function()
      local f = lore.spawn("faulty")
      f:tell("boom")
      for _ = 1, 10 do f:tell("inc") end
      assert.equal(10, f:ask("get"))
    end)
  end)

  it("survives repeated failures (with back-off)", function()
    h.run(function()
      local f = lore.spawn("faulty")
      for _ = 1, 4 do
        assert.matches("boom on purpose", h.error_of(f.ask, f, "boom", 5))
      end
      assert.equal(1, f:ask("inc", 5))
    end)
  end)

  it("leaves other actors alone", function()
    h.run(function()
      local f = lore.spawn("faulty")
      local others = {}
      for i = 1, 4 do
        others[i] = lore.spawn("faulty")
        others[i]:ask("inc")
      end
      pcall(f.ask, f, "boom")
      for i = 1, 4 do assert.equal(2, others[i]:ask("inc")) end
      assert.equal(5, lore.stats().alive)
    end)
  end)

  it("that runs away is stopped by the instruction budget, and the actor restarts", function()
    h.run(function()
      local f = lore.spawn("faulty")
      local other = lore.spawn("faulty")
      assert.equal(1, f:ask("inc"))
      local t0 = h.now()
      local err = h.error_of(f.ask, f, "spin", 20)
      assert.matches("instruction budget exceeded", err)
      assert.is_true(h.now() - t0 < 10)
      assert.equal(0, f:ask("get"))
      assert.equal(1, f:ask("inc"))
      assert.equal(1, other:ask("inc"))
    end, { max_instructions = 10000000 })
  end)

  it("budgets each handler call, not the actor's lifetime", function()
    h.run(function()
      local f = lore.spawn("faulty")
      for _ = 1, 30 do -- 30 million instructions in all, a million a call
        assert.equal(250000 * 250001 // 2, f:ask("work"))
      end
    end, { max_instructions = 10000000 })
  end)

  it("that allocates without bound is stopped by the memory limit, and the actor restarts", function()
    h.run(function()
      local f = lore.spawn("faulty")
      local other = lore.spawn("faulty")
      f:ask("inc")
      other:ask("inc")
      assert.matches("not enough memory", h.error_of(f.ask, f, "hog", 30))
      assert.equal(0, f:ask("get"))
      assert.equal(2, other:ask("inc"))
    end, { workers = 1, memory_limit = 64 * 1024 * 1024 })
  end)

  it("a message too big for what is left of the memory limit is refused with an error, no abort", function()
    h.run(function()
      local a = lore.spawn("hostile.hoarder")
      local keeps = a:ask({ op = "fill", mb = 40 }, 30) -- 40 of the worker's 48 MB
      assert.equal(40, keeps)
      local big = string.rep("x", 16 * 1024 * 1024)
      local err = h.error_of(a.ask, a, { op = "size", data = big }, 30)
      assert.matches("not enough memory to decode the message", err)
      a:tell { op = "size", data = big } -- a tell too: dropped, logged, nothing else
      -- the actor, its state and the process are all still there
      assert.equal(40, a:ask({ op = "count" }, 30))
      assert.equal(5, a:ask({ op = "size", data = "small" }, 30))
    end, { workers = 1, memory_limit = 48 * 1024 * 1024 })
  end)
end)
