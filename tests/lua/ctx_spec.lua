-- ctx_spec.lua: what a behaviour does through ctx: schedule, stash, spawn, self.
local lore = require "lore"
local h = require "helpers"

describe("ctx", function()
  describe(":schedule", function()
    it("delivers a message to self later", function()
      h.run(function()
        local t = lore.spawn("timer")
        local rec = lore.spawn("recorder")
        local t0 = h.now()
        t:ask { op = "schedule_notify", tag = "later", delay = 0.1, notify = rec }
        assert.same({}, t:ask { op = "got" }) -- not yet
        local log = h.eventually(function()
          local l = rec:ask { op = "get" }
          return #l > 0 and l
        end)
        assert.same({ "later" }, log)
        assert.is_true(h.now() - t0 >= 0.08)
        assert.same({ "later" }, t:ask { op = "got" })
      end)
    end)

    it("delivers in order of due time", function()
      h.run(function()
        local t = lore.spawn("timer")
        local rec = lore.spawn("recorder")
        t:ask { op = "schedule_notify", tag = "c", delay = 0.15, notify = rec }
        t:ask { op = "schedule_notify", tag = "a", delay = 0.0, notify = rec }
        t:ask { op = "schedule_notify", tag = "b", delay = 0.05, notify = rec }
        local log = h.eventually(function()
          local l = rec:ask { op = "get" }
          return #l == 3 and l
        end)
        assert.same({ "a", "b", "c" }, log)
      end)
    end)

    it("returns a handle whose :cancel() prevents the delivery", function()
      h.run(function()
        local t = lore.spawn("timer")
        local rec = lore.spawn("recorder")
        t:ask { op = "schedule_notify", tag = "cancelled", delay = 0.1, notify = rec }
        t:ask { op = "schedule_notify", tag = "kept", delay = 0.2, notify = rec }
        assert.is_true(t:ask { op = "cancel", tag = "cancelled" })
        local log = h.eventually(function()
          local l = rec:ask { op = "get" }
          return #l > 0 and l
        end)
        assert.same({ "kept" }, log)
        assert.same({ "kept" }, t:ask { op = "got" })
        -- cancelling a timer that already fired reports false
        assert.is_false(t:ask { op = "cancel", tag = "kept" })
      end)
    end)

    it("raises at the call for a message that cannot be sent", function()
      h.run(function()
        local f = lore.spawn("faulty")
        assert.matches("message%.f", h.error_of(f.ask, f, "schedule_function", 5))
        assert.equal(1, f:ask("inc"))
      end)
    end)

    it("rejects a delay that is not a number", function()
      h.run(function()
        local t = lore.spawn("timer")
        local err = h.error_of(t.ask, t, { op = "schedule", tag = "x", delay = "soon" }, 5)
        assert.matches("seconds must be a number", err)
      end)
    end)
  end)

  describe(":stash and :unstash_all", function()
    it("hold commands and give them back in their order", function()
      h.run(function()
        local s = lore.spawn("stasher")
        for i = 1, 5 do s:tell { op = "cmd", v = i } end
        assert.same({}, s:ask { op = "get" })
        s:tell { op = "open" }
        for i = 6, 8 do s:tell { op = "cmd", v = i } end
        assert.same({ 1, 2, 3, 4, 5, 6, 7, 8 }, s:ask { op = "get" })
      end)
    end)

    it("put stashed commands before those that arrived after the unstash was asked", function()
      h.run(function()
        local s = lore.spawn("stasher")
        for i = 1, 100 do s:tell { op = "cmd", v = i } end
        s:tell { op = "open" }
        s:tell { op = "cmd", v = 101 }
        s:tell { op = "close" }
        s:tell { op = "cmd", v = 102 } -- stashed again
        local log = s:ask { op = "get" }
        assert.equal(101, #log)
        for i = 1, 101 do assert.equal(i, log[i]) end
        s:tell { op = "open" }
        assert.equal(102, s:ask({ op = "get" })[102])
      end)
    end)

    it("a stashed ask is answered once unstashed", function()
      h.run(function()
        local late = lore.spawn("late")
        late:tell("release")
        assert.equal("late", late:ask("hold"))
      end)
    end)
  end)

  describe(":spawn", function()
    it("starts a child whose ref works from the app", function()
      h.run(function()
        local p = lore.spawn("parent")
        local child = p:ask { op = "spawn", behaviour = "echo", opts = { tag = "kid" } }
        assert.equal("lore.ref", getmetatable(child)) -- locked: a script gets its name only
        assert.equal("hi", child:ask("hi"))
        assert.same({ tag = "kid" }, child:ask { op = "opts" })
        assert.equal(2, lore.stats().alive)
      end)
    end)

    it("children receive from their parent", function()
      h.run(function()
        local p = lore.spawn("parent")
        local c1 = p:ask { op = "spawn", behaviour = "recorder" }
        local c2 = p:ask { op = "spawn", behaviour = "recorder" }
        assert.equal(2, p:ask { op = "tell_children", payload = { op = "add", v = "from parent" } })
        for _, c in ipairs { c1, c2 } do
          assert.same({ "from parent" }, h.eventually(function()
            local l = c:ask { op = "get" }
            return #l > 0 and l
          end))
        end
      end)
    end)

    it("with an id makes a named child", function()
      h.run(function()
        local p = lore.spawn("parent")
        local child = p:ask { op = "spawn", behaviour = "echo", opts = { id = "child-7" } }
        assert.equal(lore.ref("child-7"), child)
        assert.equal(7, h.eventually(function()
          local ok, v = pcall(child.ask, child, 7, 1)
          return ok and v
        end))
      end)
    end)

    it("fails the parent's handler for an unknown behaviour", function()
      h.run(function()
        local p = lore.spawn("parent")
        local err = h.error_of(p.ask, p, { op = "spawn", behaviour = "nope" }, 5)
        assert.matches("nope", err)
        assert.matches("not found", err)
        local child = p:ask { op = "spawn", behaviour = "echo" }
        assert.equal(1, child:ask(1))
      end)
    end)
  end)

  it(".self is the actor's own ref", function()
    h.run(function()
      local relay = lore.spawn("relay")
      assert.equal(relay, relay:ask { op = "self" })
      local named = lore.spawn("relay", { id = "relay-self" })
      assert.equal(lore.ref("relay-self"), named:ask { op = "self" })
    end)
  end)
end)
