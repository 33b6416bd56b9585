-- supervision_spec.lua: the supervision tree (children, strategies, back-off, limits), watch,
-- and actors talking to each other (ctx:ask, ctx:reply_later, error values, ctx:now, ctx:log).
local lore = require "lore"
local h = require "helpers"

local function ask(ref, msg) return ref:ask(msg, 10) end

local function ended(ref)
  return ask(ref, { op = "ended" })
end

describe("the supervision tree", function()
  it("stops a parent's children when the parent stops", function()
    h.run(function()
      local p = lore.spawn("sup.restarter")
      ask(p, { op = "spawn", name = "a" })
      ask(p, { op = "spawn", name = "b", id = "sup-named-child" }) -- placed by its id
      assert.equal(3, lore.stats().alive)
      p:stop()
      assert.truthy(h.eventually(function() return lore.stats().alive == 0 end, 5),
        "children were left running")
    end)
  end)

  it("restarts a failing child by default (fresh state), its parent untouched", function()
    h.run(function()
      local p = lore.spawn("sup.restarter")
      local c = ask(p, { op = "spawn", name = "a" })
      assert.equal(1, ask(c, { op = "inc" }))
      assert.equal(2, ask(c, { op = "inc" }))
      assert.matches("child a fails on purpose", h.error_of(c.ask, c, { op = "boom" }, 5))
      assert.equal(1, ask(c, { op = "inc" })) -- restarted from init
      assert.same({}, ended(p))
      assert.equal(1, ask(p, { op = "starts" }))
    end, { log_level = "off" })
  end)

  it("stops a child for good after max_restarts within `within`, and its watcher hears \"failed\"", function()
    h.run(function()
      local p = lore.spawn("sup.limited") -- max_restarts = 2
      local c = ask(p, { op = "spawn", name = "a" })
      for _ = 1, 3 do pcall(c.ask, c, { op = "boom" }, 5) end
      local got = h.eventually(function()
        local e = ended(p)
        return #e > 0 and e
      end, 5)
      assert.truthy(got, "the parent never heard the child ended")
      assert.same({ { ref = tostring(c), reason = "failed" } }, got)
      assert.matches("dead letter", h.error_of(c.ask, c, { op = "inc" }, 5))
    end, { log_level = "off" })
  end)

  it("with strategy = \"stop\" stops a failing child at once", function()
    h.run(function()
      local p = lore.spawn("sup.stopper")
      local c = ask(p, { op = "spawn", name = "a" })
      pcall(c.ask, c, { op = "boom" }, 5)
      assert.truthy(h.eventually(function() return #ended(p) == 1 end, 5))
      assert.equal("failed", ended(p)[1].reason)
    end, { log_level = "off" })
  end)

  it("with strategy = \"escalate\" fails the parent too (which restarts, and stops its children)", function()
    h.run(function()
      local p = lore.spawn("sup.escalator")
      local c = ask(p, { op = "spawn", name = "a" })
      local other = ask(p, { op = "spawn", name = "b" })
      pcall(c.ask, c, { op = "boom" }, 5)
      assert.truthy(h.eventually(function() return ask(p, { op = "starts" }) == 2 end, 5),
        "the parent did not restart")
      assert.truthy(h.eventually(function()
        return not pcall(other.ask, other, { op = "inc" }, 1)
      end, 5), "the restarted parent's children were not stopped")
    end, { log_level = "off" })
  end)

  it("makes ctx:spawn of a missing behaviour an error at the call, wherever the child would live", function()
    h.run(function()
      local s = lore.spawn("sup.spawner_bad")
      -- without an id the child lives on the spawner's worker; with these ids
      -- (hashed to both workers) some are placed on the other one
      for _, id in ipairs { false, "kid-1", "kid-2", "kid-3", "kid-4" } do
        local r = ask(s, { id = id or nil })
        assert.is_false(r.ok)
        assert.matches("not found", r.err)
      end
      assert.equal(1, lore.stats().alive)
    end)
  end)
end)

describe("ctx:watch", function()
  it("reports a stop, then nothing once unwatched", function()
    h.run(function()
      local w = lore.spawn("sup.watcher")
      local a, b = lore.spawn("echo"), lore.spawn("echo")
      ask(w, { op = "watch", ref = a })
      ask(w, { op = "watch", ref = b })
      ask(w, { op = "unwatch", ref = b })
      a:stop()
      b:stop()
      local got = h.eventually(function()
        local e = ended(w)
        return #e > 0 and e
      end, 5)
      assert.same({ { ref = tostring(a), reason = "stopped", self = tostring(w) } }, got)
      lore.sleep(0.1)
      assert.equal(1, #ended(w))
    end)
  end)

  it("reports at once an actor that was not running when watched", function()
    h.run(function()
      local w = lore.spawn("sup.watcher")
      local gone = lore.spawn("echo")
      gone:stop()
      assert.truthy(h.eventually(function() return lore.stats().alive == 1 end))
      ask(w, { op = "watch", ref = gone })
      ask(w, { op = "watch", ref = lore.ref("never-spawned") })
      local got = h.eventually(function()
        local e = ended(w)
        return #e == 2 and e
      end, 5)
      assert.truthy(got, "watching a dead actor reported nothing")
      assert.equal("stopped", got[1].reason)
    end)
  end)
end)

describe("actors talking to each other", function()
  it("ctx:ask runs the callback as a turn of the asking actor, with the reply", function()
    h.run(function()
      local r, a = lore.spawn("talk.responder"), lore.spawn("talk.asker")
      ask(a, { op = "ask", to = r, msg = { op = "double", v = 21 } })
      local got = h.eventually(function()
        local res = ask(a, { op = "results" })
        return #res > 0 and res
      end)
      assert.equal(42, got[1].reply)
      assert.is_nil(got[1].err)
    end)
  end)

  it("ctx:ask hands over the target's error value intact (a table stays a table)", function()
    h.run(function()
      local r, a = lore.spawn("talk.responder"), lore.spawn("talk.asker")
      ask(a, { op = "ask", to = r, msg = { op = "raise_table" } })
      local got = h.eventually(function()
        local res = ask(a, { op = "results" })
        return #res > 0 and res
      end)
      assert.same({ code = 42, why = "no stock" }, got[1].err)
      -- and so does ref:ask from the application
      local ok, err = pcall(r.ask, r, { op = "raise_table" }, 5)
      assert.is_false(ok)
      assert.same({ code = 42, why = "no stock" }, err)
    end, { log_level = "off" })
  end)

  it("ctx:ask times out naming the target and the seconds waited, and reports dead letters", function()
    h.run(function()
      local r, a = lore.spawn("talk.responder"), lore.spawn("talk.asker")
      ask(a, { op = "ask", to = r, msg = { op = "silent" }, timeout = 0.1 })
      ask(a, { op = "ask", to = lore.ref("nobody-here"), msg = { op = "double", v = 1 } })
      local got = h.eventually(function()
        local res = ask(a, { op = "results" })
        return #res == 2 and res
      end)
      table.sort(got, function(x, y) return tostring(x.err) < tostring(y.err) end)
      assert.matches("dead letter", got[1].err)
      assert.equal("timeout: " .. tostring(r) .. " did not answer within 0.1 s", got[2].err)
    end)
  end)

  it("ctx:reply_later answers the asker from a later turn", function()
    h.run(function()
      local r, p = lore.spawn("talk.responder"), lore.spawn("talk.proxy")
      assert.same({ via = true, reply = 10 }, ask(p, { op = "via", to = r, msg = { op = "double", v = 5 } }))
      local err = h.error_of(p.ask, p, { op = "via", to = r, msg = { op = "raise_string" } }, 5)
      assert.equal("plain failure", err)
    end, { log_level = "off" })
  end)

  it("ctx:now has millisecond resolution, ctx:log names the actor", function()
    h.run(function()
      local p = lore.spawn("talk.proxy")
      local t0 = os.time()
      local now = ask(p, { op = "now" })
      assert.is_true(math.abs(now - t0) < 5)
      -- a reading may land on a whole second (1 in 1,000): a later one will not
      local fraction = now ~= math.floor(now)
      for _ = 1, 5 do
        if fraction then break end
        lore.sleep(0.003)
        local later = ask(p, { op = "now" })
        fraction = later ~= math.floor(later)
      end
      assert.is_true(fraction)
      assert.is_true(ask(p, { op = "log" }))
    end, { log_level = "off" })
  end)
end)
