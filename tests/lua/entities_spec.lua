-- entities_spec.lua: lore.entities: actors woken by their first message, routed by id,
-- passivated when idle, woken again (recovered) with nothing lost.
local lore = require "lore"
local h = require "helpers"
local ph = require "persist_helpers"

describe("lore.entities", function()
  it("spawns an entity on its first message, routes by id, and its ref names manager and id", function()
    ph.run({ journal = ph.memory_journal() }, function()
      local ledgers = lore.entities("ent.ledger")
      assert.equal(5, ledgers:ask("acc-1", { op = "add", amount = 5 }, 5))
      assert.equal(7, ledgers:ask("acc-1", { op = "add", amount = 2 }, 5))
      assert.equal(100, ledgers:ask("acc-2", { op = "add", amount = 100 }, 5))
      ledgers:tell("acc-1", { op = "add", amount = 1 })
      local s = ledgers:ask("acc-1", { op = "get" }, 5)
      assert.same({ total = 8, count = 3, seq = 3 }, { total = s.total, count = s.count, seq = s.seq })
      assert.equal(ledgers:ref("acc-1"), s.self) -- ctx.self is the entity's ref
      assert.equal("ref(ent.ledger/acc-1)", tostring(ledgers:ref("acc-1")))
      local st = ledgers:stats()
      assert.equal(2, st.live)
      assert.equal(2, st.woken)
      assert.equal(0, st.passivated)
      assert.same(st, lore.stats().entities["ent.ledger"])
    end)
  end)

  it("passivates an idle entity and wakes it, recovered, on the next message", function()
    ph.run({ journal = ph.memory_journal() }, function()
      local ledgers = lore.entities("ent.ledger", { name = "sleepy", passivate_after = 0.1 })
      assert.equal(5, ledgers:ask("a", { op = "add", amount = 5 }, 5))
      assert.truthy(h.eventually(function() return ledgers:stats().passivated == 1 end, 3),
        "it was never passivated")
      assert.equal(0, ledgers:stats().live)
      assert.equal(0, lore.stats().alive) -- its memory is returned
      assert.equal(8, ledgers:ask("a", { op = "add", amount = 3 }, 5)) -- recovered, then added
      local st = ledgers:stats()
      assert.equal(1, st.live)
      assert.equal(2, st.woken)
    end)
  end)

  it("loses nothing sent while an entity is passivating or recovering", function()
    ph.run({ journal = ph.memory_journal() }, function()
      local ledgers = lore.entities("ent.ledger", { name = "busy", passivate_after = 0.03 })
      local acks = lore.spawn("recorder")
      local sent = 0
      -- bursts with pauses around the passivation time (some arrive while it
      -- stops, some while it recovers), until it has been passivated a few times
      local round = 0
      while ledgers:stats().passivated < 3 and round < 200 do
        round = round + 1
        for _ = 1, 10 do
          ledgers:tell("b", { op = "add", amount = 1, ack = acks })
          sent = sent + 1
        end
        lore.sleep(0.01 + (round % 4) * 0.012)
      end
      assert.truthy(h.eventually(function() return acks:ask({ op = "count" }, 5) == sent end, 10),
        "only " .. acks:ask({ op = "count" }, 5) .. " of " .. sent .. " were persisted")
      assert.equal(sent, ledgers:ask("b", { op = "get" }, 5).total)
      assert.is_true(ledgers:stats().passivated >= 3, "it was passivated too seldom")
    end)
  end)

  it("a plain entity's state is lost on passivation (it has no journal)", function()
    h.run(function()
      local counters = lore.entities("ent.counter", { passivate_after = 0.1 })
      assert.equal(1, counters:ask("c", { op = "inc" }, 5))
      assert.equal(2, counters:ask("c", { op = "inc" }, 5))
      assert.truthy(h.eventually(function() return counters:stats().passivated == 1 end, 3))
      assert.equal(1, counters:ask("c", { op = "inc" }, 5))
    end)
  end)

  it("a ref kept in another actor's state reaches the entity after it was passivated", function()
    ph.run({ journal = ph.memory_journal() }, function()
      local ledgers = lore.entities("ent.ledger", { name = "kept", passivate_after = 0.1 })
      local relay = lore.spawn("relay")
      assert.is_true(relay:ask({ op = "keep", ref = ledgers:ref("k") }, 5))
      assert.equal(10, ledgers:ask("k", { op = "add", amount = 10 }, 5))
      assert.truthy(h.eventually(function() return ledgers:stats().passivated == 1 end, 3))
      assert.is_true(relay:ask({ op = "tell_kept", payload = { op = "add", amount = 1 } }, 5))
      assert.truthy(h.eventually(function() return ledgers:ask("k", { op = "get" }, 5).total == 11 end))
    end)
  end)

  it("refuses a bad id, a bad passivate_after, and a manager name taken by another behaviour", function()
    h.run(function()
      local counters = lore.entities("ent.counter")
      assert.matches("blank", h.error_of(counters.ref, counters, "  "))
      assert.matches("passivate_after", h.error_of(lore.entities, "ent.counter", { passivate_after = -1 }))
      assert.matches("taken", h.error_of(lore.entities, "ent.ledger", { name = "ent.counter" }))
      assert.equal(lore.entities("ent.counter"):ref("x"), counters:ref("x")) -- the same manager
    end)
  end)
  it("wakes an entity with messages in flight from actors on both workers: each sender's arrive once, in order",
    function()
      ph.run({ journal = ph.memory_journal() }, function()
        local logs = lore.entities("ent.log", { name = "flight", passivate_after = 0.03 })
        local target = logs:ref("e")
        local n = 90
        local drippers = {}
        for i = 1, 2 do
          drippers[i] = lore.spawn("ent.dripper")
          -- pauses around the passivation time: groups arrive while it idles,
          -- stops, is stopped and recovers
          drippers[i]:ask { op = "go", to = target, from = "d" .. i, n = n,
            pauses = i == 1 and { 0.005, 0.045, 0.02, 0.06 } or { 0.05, 0.01, 0.035 } }
        end
        assert.are_not.equal(h.worker_of(drippers[1]), h.worker_of(drippers[2]))
        assert.truthy(h.eventually(function()
          return drippers[1]:ask { op = "sent" } == n and drippers[2]:ask { op = "sent" } == n
        end, 20), "the drippers did not finish")
        local st
        assert.truthy(h.eventually(function()
          st = logs:ask("e", { op = "get" }, 5)
          return st.count >= 2 * n
        end, 10), "messages were lost")
        assert.equal(2 * n, st.count)
        for i = 1, 2 do
          local list = st.by["d" .. i]
          assert.equal(n, #list)
          for k = 1, n do assert.equal(k, list[k], "d" .. i .. ": message " .. k .. " out of order") end
        end
        assert.is_true(logs:stats().passivated >= 2, "it was passivated " .. logs:stats().passivated .. " time(s)")
      end)
    end)

  it("a ref stored in an event reaches the passivated entity after a restart", function()
    local journal = ph.memory_journal()
    ph.run({ journal = journal }, function()
      local ledgers = lore.entities("ent.ledger", { name = "restarted", passivate_after = 0.1 })
      assert.equal(10, ledgers:ask("r", { op = "add", amount = 10 }, 5))
      assert.is_true(lore.spawn("ent.keeper", { id = "keeper" }):ask({ op = "keep", ref = ledgers:ref("r") }, 5))
    end)
    ph.run({ journal = journal }, function()
      local ledgers = lore.entities("ent.ledger", { name = "restarted", passivate_after = 0.1 })
      local keeper = lore.spawn("ent.keeper", { id = "keeper" }) -- recovers the ref from its event
      assert.equal("ref(restarted/r)", keeper:ask({ op = "tell_kept", payload = { op = "add", amount = 1 } }, 5))
      assert.truthy(h.eventually(function() return ledgers:ask("r", { op = "get" }, 5).total == 11 end),
        "the entity woken through the recovered ref did not get the message")
      assert.truthy(h.eventually(function() return ledgers:stats().passivated >= 1 end, 3))
      keeper:ask({ op = "tell_kept", payload = { op = "add", amount = 1 } }, 5) -- and once more, passivated
      assert.truthy(h.eventually(function() return ledgers:ask("r", { op = "get" }, 5).total == 12 end))
    end)
  end)

  it("a hot reload reaches live entities, and passivated ones wake on the new version", function()
    local dir = h.tmpdir("ent-reload")
    local function write(v)
      local f = assert(io.open(dir .. "/ent_room.lua", "w"))
      f:write(([[
local M = {}
M.version = %d
function M.init() return { total = 0 } end
function M.apply(state, evt) state.total = state.total + evt.n return state end
function M.on_upgrade(state, old) state.upgraded_from = old return state end
function M.receive(state, msg, ctx)
  if msg.op == "add" then
    ctx:persist({ n = msg.n }, function()
      ctx:reply { v = M.version, total = state.total, from = state.upgraded_from }
    end)
  end
end
return M]]):format(v))
      f:close()
    end
    write(1)
    local ok, err = pcall(ph.run, { journal = ph.memory_journal(), scripts = { dir, h.fixtures } }, function()
      local rooms = lore.entities("ent_room", { passivate_after = 0.3 })
      assert.same({ v = 1, total = 2 }, rooms:ask("asleep", { op = "add", n = 2 }, 5))
      assert.truthy(h.eventually(function() return rooms:stats().passivated == 1 end, 5))
      assert.same({ v = 1, total = 1 }, rooms:ask("live", { op = "add", n = 1 }, 5))
      write(2)
      assert.is_true(lore.reload("ent_room"))
      local woken = rooms:stats().woken
      local got = rooms:ask("live", { op = "add", n = 1 }, 5)
      if rooms:stats().woken == woken then
        assert.same({ v = 2, total = 2, from = 1 }, got) -- it stayed awake: on_upgrade converted it
      else
        assert.same({ v = 2, total = 2 }, got) -- a slow machine passivated it meanwhile: recovered on 2
      end
      assert.same({ v = 2, total = 4 }, rooms:ask("asleep", { op = "add", n = 2 }, 5))
      assert.same({ v = 2, total = 1 }, rooms:ask("new", { op = "add", n = 1 }, 5))
    end)
    os.execute("rm -rf " .. h.quote(dir))
    assert(ok, err)
  end)
end)
