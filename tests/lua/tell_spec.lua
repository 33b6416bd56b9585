-- tell_spec.lua: ref:tell delivery order, from the app, from several actors, across workers.
local lore = require "lore"
local h = require "helpers"

local function range(n)
  local t = {}
  for i = 1, n do t[i] = i end
  return t
end

describe("ref:tell", function()
  it("delivers 1000 tells from the app in order, before a later ask", function()
    h.run(function()
      local rec = lore.spawn("recorder")
      for i = 1, 1000 do rec:tell { op = "add", v = i } end
      assert.same(range(1000), rec:ask { op = "get" })
    end)
  end)

  it("delivers an actor's tells to itself in order, as copies", function()
    h.run(function()
      local a = lore.spawn("self_teller")
      a:tell { op = "go", n = 50 }
      local want = { 1 }
      for i = 1, 50 do
        want[#want + 1] = i
        want[#want + 1] = i % 2 == 0
        want[#want + 1] = "s" .. i
        want[#want + 1] = i + 0.5
      end
      want[#want + 1] = "nil"
      want[#want + 1] = math.mininteger
      want[#want + 1] = string.rep("x", 100)
      -- the app's ask may overtake the actor's own tells (they are queued behind it)
      local got = h.eventually(function()
        local g = a:ask { op = "get" }
        return #g >= #want and g or nil
      end)
      assert.same(want, got)
      assert.equal("float", math.type(got[5]))
      assert.equal("integer", math.type(got[2]))
    end)
  end)

  it("makes a tell to itself after ctx:stop() a dead letter", function()
    h.run(function()
      local a = lore.spawn("self_teller")
      local before = lore.stats().dead_letters
      a:tell { op = "stop_then_tell" }
      assert.truthy(h.eventually(function() return lore.stats().alive == 0 or nil end))
      assert.truthy(h.eventually(function() return lore.stats().dead_letters > before or nil end))
    end)
  end)

  it("answers each of many senders through ctx.sender, never another one", function()
    h.run(function()
      -- more senders than the worker's cache of sender refs has slots, on both workers
      local bouncer = lore.spawn("bouncer")
      local clients = {}
      for i = 1, 150 do
        clients[i] = lore.spawn("bounce_client")
        clients[i]:tell { op = "go", token = i, to = bouncer, rounds = 20 }
      end
      for i, c in ipairs(clients) do
        local r = h.eventually(function()
          local x = c:ask { op = "get" }
          return x.right + x.wrong >= 20 and x or nil
        end)
        assert.same({ right = 20, wrong = 0 }, r, "client " .. i)
      end
    end)
  end)

  it("keeps each sender's order when several actors tell one", function()
    h.run(function()
      local rec = lore.spawn("recorder")
      local senders = {}
      for i = 1, 4 do senders[i] = lore.spawn("blaster") end
      for i, s in ipairs(senders) do
        s:tell { op = "blast", to = rec, from = "s" .. i, n = 500 }
      end
      -- each blaster's tells all precede its answer to this ask
      for _, s in ipairs(senders) do s:ask { op = "blast", to = rec, from = "done", n = 0 } end
      local by = h.eventually(function()
        local b = rec:ask { op = "get_by" }
        for i = 1, 4 do
          if #(b["s" .. i] or {}) < 500 then return nil end
        end
        return b
      end)
      assert.truthy(by, "not every tell arrived")
      for i = 1, 4 do assert.same(range(500), by["s" .. i]) end
      assert.equal(2000, rec:ask { op = "count" })
    end)
  end)

  it("keeps order across the two workers", function()
    h.run(function()
      local rec = lore.spawn("recorder")
      assert.equal(2, lore.stats().workers)
      local workers_seen, senders = {}, {}
      for i = 1, 6 do
        senders[i] = lore.spawn("blaster")
        workers_seen[h.worker_of(senders[i]) or 0] = true
      end
      assert.truthy(workers_seen[1] and workers_seen[2], "senders should be on both workers")
      for i, s in ipairs(senders) do
        local me = s:ask { op = "blast", to = rec, from = i, n = 300 }
        assert.equal(s, me)
      end
      local by = h.eventually(function()
        local b = rec:ask { op = "get_by" }
        for i = 1, 6 do
          if #(b[i] or {}) < 300 then return nil end
        end
        return b
      end)
      assert.truthy(by, "not every tell arrived")
      for i = 1, 6 do assert.same(range(300), by[i]) end
    end)
  end)

  it("interleaves the app's tells and asks in send order", function()
    h.run(function()
      local rec = lore.spawn("recorder")
      for i = 1, 50 do
        rec:tell { op = "add", v = i }
        assert.equal(i, rec:ask { op = "count" })
      end
    end)
  end)

  it("to a stopped actor is a dead letter, not an error", function()
    h.run(function()
      local echo = lore.spawn("echo")
      echo:stop()
      assert.truthy(h.eventually(function() return lore.stats().alive == 0 end))
      local before = lore.stats().dead_letters
      assert.has_no.errors(function() echo:tell("into the void") end)
      assert.truthy(h.eventually(function() return lore.stats().dead_letters > before end))
    end)
  end)
end)
