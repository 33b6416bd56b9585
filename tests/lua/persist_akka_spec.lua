-- persist_akka_spec.lua: Akka Persistence's semantics where Lore used to differ, each case named
-- after the Akka spec and case it follows (PersistentActorSpec, PersistentActorStashingSpec,
-- PersistentActorBoundedStashingSpec, EventSourcedActorFailureSpec, RecoveryPermitterSpec, SnapshotSpec).
local lore = require "lore"
local ph = require "persist_helpers"

local function ask(ref, msg) return ref:ask(msg, 10) end

describe("PersistentActorSpec", function()
  it("support calling persistAll with Nil", function()
    ph.run({ journal = ph.memory_journal() }, function()
      local a = lore.spawn("persist.akka", { id = "nil-defer" })
      -- nothing pending: both deferred handlers run at once, in order
      assert.same({ "recovered@0", "before-nil", "after-nil", "defer-x" },
        ask(a, { op = "persist_all_nil_defer", data = "defer-x" }))
      local b = lore.spawn("persist.akka", { id = "nil-persist" })
      assert.same({ "recovered@0", "persist-x", "before-nil", "after-nil" },
        ask(b, { op = "persist_all_nil_persist", data = "persist-x" }))
    end)
  end)

  it("invoke deferred handlers right away, if there are no pending persist handlers registered", function()
    ph.run({ journal = ph.memory_journal() }, function()
      local a = lore.spawn("persist.akka", { id = "defer-now" })
      assert.same({ "recovered@0", "before", "deferred", "after" }, ask(a, { op = "defer_right_away" }))
    end)
  end)

  it("receive RecoveryCompleted, then defer in it: the handler runs at once (it used to hang)", function()
    ph.run({ journal = ph.memory_journal() }, function()
      local a = lore.spawn("persist.akka", { id = "defer-rc", defer_on_recovery = true })
      local s = ask(a, { op = "get" })
      assert.same({ "deferred-after-recovery", "recovered@0" }, s.log)
      assert.equal(1, ask(a, { op = "add", v = 1 }).n) -- and it serves commands
    end)
  end)

  it("defer during replay is refused: recovery fails naming it", function()
    ph.run({ journal = ph.memory_journal(), log_level = "off" }, function()
      local a = lore.spawn("persist.akka", { id = "defer-replay" })
      ask(a, { op = "add", v = 1, defer_in_replay = true })
      -- a restart replays that event: its apply defers (through the ctx the
      -- behaviour kept), which fails the recovery, which stops the actor
      assert.matches("boom on purpose", ph.error_of(a.ask, a, { op = "boom" }, 5))
      assert.truthy(ph.eventually(function() return lore.stats().alive == 0 end), "it did not stop")
    end)
  end)

  it("not be able to delete higher seqnr than current", function()
    ph.run({ journal = ph.memory_journal() }, function()
      local a = lore.spawn("persist.akka", { id = "del-high" })
      ask(a, { op = "add", v = 1 })
      ask(a, { op = "add", v = 2 })
      ask(a, { op = "delete", to = 5 })
      local got = ph.eventually(function() return ask(a, { op = "hooks" }).events_deleted end)
      assert.is_false(got.ok)
      assert.matches("last persisted seq is 2", got.info)
      assert.same({ n = 3, seq = 2 }, { n = ask(a, { op = "get" }).n, seq = ask(a, { op = "get" }).seq })
    end)
  end)

  it("be able to delete all events (math.maxinteger: everything persisted so far)", function()
    ph.run({ journal = ph.memory_journal() }, function()
      local a = lore.spawn("persist.akka", { id = "del-all" })
      ask(a, { op = "add", v = 1 })
      ask(a, { op = "add", v = 2 })
      ask(a, { op = "delete", to = math.maxinteger })
      local got = ph.eventually(function() return ask(a, { op = "hooks" }).events_deleted end)
      assert.is_true(got.ok)
      assert.equal("2", got.info)
    end)
  end)

  it("after a recovery limited by to_seq, lastSequenceNr is the journal's highest", function()
    local j = ph.memory_journal()
    ph.run({ journal = j }, function()
      local a = lore.spawn("persist.acc", { id = "to-seq-akka" })
      for v = 1, 5 do a:ask({ op = "add", v = v }, 5) end
    end)
    ph.run({ journal = j }, function()
      local s = lore.spawn("persist.to3", { id = "to-seq-akka" }):ask({ op = "get" }, 5)
      assert.same({ 1, 2, 3 }, s.log)
      assert.equal(5, s.seq)
    end)
  end)
end)

describe("apply(state, evt, meta) and restore(snap, meta)", function()
  it("gives each event's seq, id and timestamp, and ctx.seq follows the replay event by event", function()
    local j = ph.memory_journal()
    local t0 = os.time() * 1000
    ph.run({ journal = j }, function()
      local a = lore.spawn("persist.akka", { id = "meta" })
      for v = 1, 3 do ask(a, { op = "add", v = v }) end
      local s = ask(a, { op = "get" })
      assert.same({ 1, 2, 3 }, { s.metas[1].seq, s.metas[2].seq, s.metas[3].seq })
      assert.equal("meta", s.metas[1].id)
      assert.is_true(s.metas[3].ts >= t0 - 1000)
    end)
    ph.run({ journal = j, log_level = "off" }, function()
      local a = lore.spawn("persist.akka", { id = "meta" })
      local s = ask(a, { op = "get" }) -- recovered in a new process: the same metadata
      for i = 1, 3 do
        assert.equal(i, s.metas[i].seq)
        assert.is_true(s.metas[i].ts >= t0 - 1000)
      end
      -- a restart replays again, now with the ctx the behaviour kept at hand:
      -- ctx.seq during replay is each event's own seq
      assert.matches("boom on purpose", ph.error_of(a.ask, a, { op = "boom" }, 5))
      s = ask(a, { op = "get" })
      for i = 1, 3 do assert.equal(i, s.metas[i].ctx_seq) end
    end)
  end)

  it("hands restore the snapshot's seq and timestamp", function()
    local j = ph.memory_journal()
    ph.run({ journal = j, snapshots = j }, function()
      local a = lore.spawn("persist.akka", { id = "restore-meta" })
      for v = 1, 4 do ask(a, { op = "add", v = v }) end
      ask(a, { op = "snapshot" })
      lore.sleep(0.2)
    end)
    ph.run({ journal = j, snapshots = j }, function()
      local s = ask(lore.spawn("persist.akka", { id = "restore-meta" }), { op = "get" })
      assert.same({ seq = 4, ts_ok = true }, s.restored)
      assert.equal(10, s.n)
    end)
  end)
end)

describe("PersistentActorStashingSpec", function()
  it("support user stash operations under failures: stashed commands come back after a restart", function()
    ph.run({ journal = ph.memory_journal(), log_level = "off" }, function()
      local a = lore.spawn("persist.akka", { id = "stash-restart" })
      for v = 1, 3 do a:tell { op = "stash", v = v } end
      assert.equal(3, ask(a, { op = "get" }).stashed)
      assert.matches("boom on purpose", ph.error_of(a.ask, a, { op = "boom" }, 5))
      -- the restart starts from init (stashed = 0) and puts the three stashed
      -- commands back in the mailbox: each is handled (and stashed) again
      assert.truthy(ph.eventually(function() return ask(a, { op = "get" }).stashed == 3 end),
        "the stashed commands were not delivered again")
    end)
  end)
end)

describe("EventSourcedActorFailureSpec", function()
  it("call onPersistRejected and continue if persist rejected: ctx.seq is the seq the event would have had", function()
    ph.run({ journal = ph.memory_journal() }, function()
      local a = lore.spawn("persist.akka", { id = "reject-seq" })
      ask(a, { op = "add", v = 1 })
      local r = ask(a, { op = "reject" })
      assert.same({ "recovered@0", "rejected@2:bad" }, r.log)
      assert.equal(1, r.seq) -- back to the last persisted seq afterwards
      assert.equal(2, ask(a, { op = "add", v = 1 }).seq)
    end)
  end)

  it("persist of nil, and persist_all of a list with a hole, raise at the call", function()
    ph.run({ journal = ph.memory_journal() }, function()
      local a = lore.spawn("persist.akka", { id = "nil-events" })
      local r = ask(a, { op = "persist_nil" })
      assert.is_false(r[1])
      assert.matches("the event is nil", r[2])
      assert.is_false(r[3])
      assert.matches("event 2 of 3 is nil", r[4])
      assert.equal(0, r[5])
    end)
  end)

  it("a failed write answers the command's ask with the journal's error (not a timeout)", function()
    local uri, path = ph.sqlite_journal()
    finally(function() ph.remove_db(path) end)
    ph.run({ journal = uri, log_level = "off" }, function()
      local sink = lore.spawn("persist.sink")
      local a = lore.spawn("persist.acc", { id = "fail-ask", observer = sink })
      a:ask({ op = "add", v = 1 }, 5)
      ph.sql(path, "CREATE TRIGGER fail BEFORE INSERT ON events BEGIN SELECT RAISE(ROLLBACK, 'disk full'); END;")
      local t0 = os.time()
      local err = ph.error_of(a.ask, a, { op = "add", v = 2 }, 20)
      assert.matches("journal storage failed", err)
      assert.is_true(os.time() - t0 < 10)
      assert.truthy(ph.wait_hook(sink, "persist_failure"), "the hook did not run")
    end)
  end)
end)

describe("PersistentActorBoundedStashingSpec", function()
  it("ReplyToStrategy answers a teller that is an actor with a message naming the overflow", function()
    local j = ph.memory_journal()
    ph.run({ journal = j }, function()
      local a = lore.spawn("persist.acc", { id = "overflow-tell" })
      for k = 0, 17 do a:ask({ op = "add_all", vs = ph.range(k * 500 + 1, k * 500 + 500) }, 20) end
    end)
    ph.run({ journal = j, max_instructions = 0 }, function()
      local teller = lore.spawn("overflow_teller")
      -- A replay slow enough (a few hundred ms a page) that the flood lands while the first
      -- page applies, and three pages long: a worker may apply the second page (read while
      -- the first applied) before it takes in the flood, never the third as well.
      local a = lore.spawn("persist.reply", { id = "overflow-tell", slow = 25000 })
      teller:ask({ op = "flood", to = a, n = 40 }, 10)
      local got = ph.eventually(function()
        local g = teller:ask({ op = "got" }, 5)
        return g.notices > 0 and g
      end, 30)
      assert.truthy(got, "the teller never heard of the overflow")
      assert.equal("stash_overflow", got.last.type)
      assert.matches("stash overflow", got.last.error)
      assert.equal("overflow-tell", got.last.id)
    end)
  end)
end)

describe("RecoveryPermitterSpec", function()
  it("grant permits up to max_concurrent_recoveries for the whole process, not per worker", function()
    local j = ph.memory_journal()
    ph.run({ journal = j }, function()
      for i = 1, 12 do lore.spawn("permit_probe", { id = "permit-" .. i }):ask({ op = "fill", n = 300 }, 20) end
    end)
    ph.run({ journal = j, max_concurrent_recoveries = 3, max_instructions = 0 }, function()
      local refs = {}
      for i = 1, 12 do refs[i] = lore.spawn("permit_probe", { id = "permit-" .. i }) end
      for i = 1, 12 do assert.equal(300, refs[i]:ask({ op = "get" }, 30)) end
      local st = lore.stats()
      assert.equal(0, st.recoveries)
      assert.is_true(st.recoveries_peak >= 2 and st.recoveries_peak <= 3,
        "peak " .. st.recoveries_peak)
    end)
  end)
end)

describe("SnapshotSpec", function()
  it("delete snapshots matching criteria: on_snapshots_deleted reports it", function()
    local j = ph.memory_journal()
    ph.run({ journal = j, snapshots = j }, function()
      local a = lore.spawn("persist.akka", { id = "snap-del" })
      ask(a, { op = "add", v = 1 })
      ask(a, { op = "snapshot" })
      ask(a, { op = "delete_snapshots", criteria = { max_seq = 1 } })
      local got = ph.eventually(function() return ask(a, { op = "hooks" }).snapshots_deleted end)
      assert.is_true(got.ok)
      assert.equal(1, got.max_seq)
    end)
  end)
end)

describe("lore.configure", function()
  it("refuses numbers out of range, NaN and infinities with a clear message", function()
    for _, bad in ipairs {
      { recovery_timeout = -5 }, { recovery_timeout = 0 / 0 }, { recovery_timeout = 1e10 },
      { recovery_timeout = math.huge }, { shutdown_timeout = 0 }, { workers = -1 },
      { max_concurrent_recoveries = 0 }, { max_instructions = 1.5 }, { memory_limit = -1 },
    } do
      local k = next(bad)
      local err = ph.error_of(lore.configure, bad)
      assert.matches("lore.configure: " .. k, err)
    end
  end)
end)
