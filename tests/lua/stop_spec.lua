-- stop_spec.lua: ref:stop, ctx:stop, on_stop, and how stopping shows in lore.stats.
local lore = require "lore"
local h = require "helpers"

-- The first entry the watcher recorded, once it has one.
local function first_report(watcher)
  return h.eventually(function() return watcher:ask({ op = "get" })[1] end)
end

describe("stopping", function()
  it("ref:stop() is processed after the messages already queued", function()
    h.run(function()
      local watcher = lore.spawn("recorder")
      local n = lore.spawn("notifier", { watcher = watcher })
      for _ = 1, 100 do n:tell("work") end
      n:stop()
      local report = first_report(watcher)
      assert.truthy(report, "on_stop never reported")
      assert.equal(100, report.seen)
      assert.equal(tostring(n), report.stopped)
      assert.truthy(h.eventually(function() return lore.stats().alive == 1 end))
    end)
  end)

  it("messages sent after ref:stop() become dead letters", function()
    h.run(function()
      local watcher = lore.spawn("recorder")
      local n = lore.spawn("notifier", { watcher = watcher })
      n:tell("work")
      n:stop()
      local before = lore.stats().dead_letters
      n:tell("work")
      assert.matches("dead letter", h.error_of(n.ask, n, "seen", 5))
      assert.is_true(lore.stats().dead_letters >= before + 2)
      assert.equal(1, first_report(watcher).seen)
    end)
  end)

  it("lore.stats().alive drops to 0 once every actor has stopped", function()
    h.run(function()
      local refs = {}
      for i = 1, 5 do refs[i] = lore.spawn("echo") end
      assert.equal(5, lore.stats().alive)
      for _, r in ipairs(refs) do r:stop() end
      assert.truthy(h.eventually(function() return lore.stats().alive == 0 end))
    end)
  end)

  it("ctx:stop() stops the actor after the current message, running on_stop", function()
    h.run(function()
      local watcher = lore.spawn("recorder")
      local n = lore.spawn("notifier", { watcher = watcher })
      n:tell("work")
      n:tell("work")
      assert.equal(2, n:ask("stop_self")) -- the reply of the stopping message still arrives
      local report = first_report(watcher)
      assert.truthy(report, "on_stop never reported")
      assert.equal(2, report.seen)
      assert.matches("dead letter", h.error_of(n.ask, n, "seen", 5))
      assert.truthy(h.eventually(function() return lore.stats().alive == 1 end))
    end)
  end)

  it("ctx:stop() stops a persistent actor too", function()
    h.run(function()
      local l = lore.spawn("stopping_ledger", { id = "ledger-stop" })
      assert.equal(5, l:ask { op = "add", v = 5 })
      assert.same({ 5 }, l:ask { op = "stop_self" }) -- no error from ctx:stop()
      assert.matches("dead letter", h.error_of(l.ask, l, { op = "add", v = 1 }, 5))
      assert.truthy(h.eventually(function() return lore.stats().alive == 0 end))
    end)
  end)

  it("on_stop runs once even when stop is requested twice", function()
    h.run(function()
      local watcher = lore.spawn("recorder")
      local n = lore.spawn("notifier", { watcher = watcher })
      n:stop()
      n:stop()
      assert.truthy(first_report(watcher))
      assert.truthy(h.eventually(function() return lore.stats().alive == 1 end))
      lore.sleep(0.05)
      assert.equal(1, watcher:ask { op = "count" })
    end)
  end)

  it("lore.shutdown() ends the run promptly with actors alive and work queued", function()
    local t0 = h.now()
    h.run(function() -- h.run calls lore.shutdown() when this returns
      local watcher = lore.spawn("recorder")
      local n = lore.spawn("notifier", { watcher = watcher })
      for _ = 1, 1000 do n:tell("work") end
    end)
    assert.is_true(h.now() - t0 < 5)
  end)
end)
