-- persist_recovery_spec.lua: recovery in pages, commands stashed during it, ctx.recovering,
-- on_recovery_completed, delete_events, M.recovery options, restarts, recovery limits.
local lore = require "lore"
local ph = require "persist_helpers"

local function add(ref, v) return ref:ask({ op = "add", v = v }, 5) end
local function get(ref) return ref:ask({ op = "get" }, 10) end

-- Writes `count` events of value 1 for `id` (in batches of persist_all).
local function preload(ref, count)
  local left = count
  while left > 0 do
    local k = math.min(left, 500)
    local vs = {}
    for i = 1, k do vs[i] = 1 end
    ref:ask({ op = "add_all", vs = vs }, 20)
    left = left - k
  end
end

-- Events with values vs for id, written in a run of their own.
local function write_events(journal, id, vs)
  ph.run({ journal = journal }, function()
    local a = lore.spawn("persist.acc", { id = id })
    for _, v in ipairs(vs) do add(a, v) end
  end)
end

describe("recovery", function()
  it("stashes commands that arrive while replaying 5000 events, then runs them in order", function()
    local j = ph.memory_journal()
    ph.run({ journal = j }, function() preload(lore.spawn("persist.acc", { id = "r-stash" }), 5000) end)
    ph.run({ journal = j, max_instructions = 0 }, function()
      -- slow: each replayed event spins a little, so recovery is still running
      -- when the commands arrive
      local a = lore.spawn("persist.acc", { id = "r-stash", slow = 2000 })
      for v = 10001, 10020 do a:tell { op = "add", v = v } end
      local s = get(a)
      assert.equal(1, s.rc) -- once, though the replay took two pages
      assert.equal(5000, s.rc_seq)
      assert.is_false(s.rc_recovering)
      local want = { "recovered@5000" }
      for v = 10001, 10020 do
        want[#want + 1] = "cmd:" .. v
        want[#want + 1] = "cb:" .. v .. "@" .. (v - 10000 + 5000)
      end
      assert.same(want, s.trace)
      assert.equal(5000 + (10001 + 10020) * 10, s.n)
      assert.equal(5020, s.seq)
    end)
  end)

  it("sets ctx.recovering inside apply during a replay, and clears it after", function()
    ph.run({ journal = ph.memory_journal() }, function()
      local a = lore.spawn("persist.acc", { id = "r-flag" })
      for v = 1, 3 do add(a, v) end
      assert.same({ false, false, false }, get(a).flags) -- applied after a persist
      assert.matches("raised on purpose", ph.error_of(a.ask, a, { op = "raise" }, 5))
      add(a, 4) -- after the restart's replay
      local s = get(a)
      -- the restart rebuilt the state: three replayed events, then one live
      assert.same({ true, true, true, false }, s.flags)
      assert.is_false(s.recovering)
      assert.is_false(s.rc_recovering)
      assert.equal(1, s.rc)
    end)
  end)

  it("delete_events(3) then a restart with M.recovery.deleted = \"skip\" rebuilds from events 4..", function()
    local j = ph.memory_journal()
    write_events(j, "r-del", { 1, 2, 3, 4, 5 })
    ph.run({ journal = j }, function()
      local sink = lore.spawn("persist.sink")
      local a = lore.spawn("persist.acc", { id = "r-del", observer = sink })
      assert.is_true(a:ask({ op = "delete", to = 3 }, 5))
      local got = ph.wait_hook(sink, "events_deleted")
      assert.truthy(got, "on_events_deleted never ran")
      assert.is_true(got[1].ok)
      assert.equal(15, get(a).n) -- the live state is untouched
    end)
    ph.run({ journal = j }, function()
      local a = lore.spawn("persist.skipdel", { id = "r-del" })
      local s = get(a)
      assert.same({ 4, 5 }, s.log)
      assert.equal(9, s.n)
      assert.equal(5, s.seq)
      assert.equal(6, add(a, 6).seq)
    end)
  end)

  it("by default refuses to recover a stream whose first events were deleted, naming id and seqs", function()
    local j = ph.memory_journal()
    write_events(j, "r-del-fail", { 1, 2, 3, 4, 5 })
    ph.run({ journal = j }, function()
      local a = lore.spawn("persist.acc", { id = "r-del-fail" })
      a:ask({ op = "delete", to = 3 }, 5)
    end)
    ph.run({ journal = j, log_level = "off" }, function()
      local sink = lore.spawn("persist.sink")
      lore.spawn("persist.acc", { id = "r-del-fail", observer = sink })
      local got = ph.wait_hook(sink, "recovery_failure")
      assert.truthy(got, "recovery did not fail")
      assert.matches("events 1%.%.3 of r%-del%-fail were deleted", got[1].err)
    end)
  end)

  it("detects events missing at the start of a stream (rows 1-3 gone, the rest intact)", function()
    local uri, path = ph.sqlite_journal()
    finally(function() ph.remove_db(path) end)
    write_events(uri, "r-start-gap", { 1, 2, 3, 4, 5 })
    ph.sql(path, "DELETE FROM events WHERE id = 'r-start-gap' AND seq <= 3;")
    ph.run({ journal = uri, log_level = "off" }, function()
      local sink = lore.spawn("persist.sink")
      lore.spawn("persist.acc", { id = "r-start-gap", observer = sink })
      local got = ph.wait_hook(sink, "recovery_failure")
      assert.truthy(got, "recovery did not fail")
      assert.matches("expected seq 1, found 4", got[1].err)
    end)
  end)

  it("after deleting every event (deleted = \"skip\") starts from init with the highest seq kept", function()
    local j = ph.memory_journal()
    write_events(j, "r-del-all", { 1, 2, 3 })
    ph.run({ journal = j }, function()
      local a = lore.spawn("persist.acc", { id = "r-del-all" })
      a:ask({ op = "delete", to = 3 }, 5)
    end)
    ph.run({ journal = j }, function()
      local a = lore.spawn("persist.skipdel", { id = "r-del-all" })
      local s = get(a)
      assert.same({}, s.log)
      assert.equal(3, s.seq)
      assert.equal(4, add(a, 4).seq)
    end)
  end)

  it("M.recovery = false: state from init, seq = highest, new events continue after it", function()
    local j = ph.memory_journal()
    write_events(j, "r-norec", { 1, 2, 3, 4, 5 })
    ph.run({ journal = j }, function()
      local a = lore.spawn("persist.norec", { id = "r-norec" })
      local s = get(a)
      assert.equal(0, s.n)
      assert.same({}, s.log)
      assert.equal(5, s.seq)
      assert.equal(1, s.rc)
      assert.same({ n = 7, seq = 6 }, add(a, 7))
    end)
    ph.run({ journal = j }, function()
      local s = get(lore.spawn("persist.acc", { id = "r-norec" }))
      assert.same({ 1, 2, 3, 4, 5, 7 }, s.log)
      assert.equal(6, s.seq)
    end)
  end)

  it("M.recovery = {to_seq = 3} replays events 1..3; ctx.seq is then the journal's highest (Akka)", function()
    local j = ph.memory_journal()
    write_events(j, "r-to3", { 1, 2, 3, 4, 5 })
    ph.run({ journal = j }, function()
      local a = lore.spawn("persist.to3", { id = "r-to3" })
      local s = get(a)
      assert.same({ 1, 2, 3 }, s.log)
      assert.equal(5, s.seq)
      assert.equal(6, add(a, 10).seq)
    end)
    ph.run({ journal = j }, function()
      local s = get(lore.spawn("persist.acc", { id = "r-to3" }))
      assert.same({ 1, 2, 3, 4, 5, 10 }, s.log)
    end)
  end)

  it("M.recovery = {replay_max = 2} replays two events", function()
    local j = ph.memory_journal()
    write_events(j, "r-max2", { 1, 2, 3, 4, 5 })
    ph.run({ journal = j }, function()
      local a = lore.spawn("persist.max2", { id = "r-max2" })
      local s = get(a)
      assert.same({ 1, 2 }, s.log)
      assert.equal(5, s.seq)
      assert.equal(6, add(a, 10).seq)
    end)
  end)

  it("with max_concurrent_recoveries = 2, twenty actors all recover", function()
    local j = ph.memory_journal()
    ph.run({ journal = j }, function()
      for i = 1, 20 do
        local a = lore.spawn("persist.acc", { id = "r-many-" .. i })
        a:ask({ op = "add_all", vs = ph.range(1, 100 + i) }, 10)
      end
    end)
    ph.run({ journal = j, max_concurrent_recoveries = 2, max_instructions = 0 }, function()
      local refs = {}
      for i = 1, 20 do refs[i] = lore.spawn("persist.acc", { id = "r-many-" .. i, slow = 200 }) end
      for i = 1, 20 do refs[i]:tell { op = "add", v = 1 } end
      for i = 1, 20 do
        local s = get(refs[i])
        assert.equal(1, s.rc)
        assert.equal(100 + i, s.rc_seq)
        assert.equal(101 + i, s.seq)
        assert.equal((100 + i) * (101 + i) // 2 + 1, s.n)
      end
    end)
  end)

  -- The pages of a long replay on sqlite: a small first one, shrinking last ones, and
  -- (for an apply without meta) pages read without the event metadata.
  describe("in pages on sqlite", function()
    local N = 1500
    local uri, path
    before_each(function()
      uri, path = ph.sqlite_journal()
      ph.run({ journal = uri }, function() preload(lore.spawn("persist.acc", { id = "r-pages" }), N) end)
    end)
    after_each(function() ph.remove_db(path) end)

    it("an apply without meta gets every event once, in order", function()
      ph.run({ journal = uri }, function()
        local s = get(lore.spawn("persist.acc", { id = "r-pages" }))
        assert.equal(N, s.n)
        assert.equal(N, #s.log)
        assert.equal(N, s.seq)
        assert.equal(1, s.rc)
      end)
    end)

    it("an apply with meta gets every event's meta, whatever page it came in", function()
      ph.run({ journal = uri }, function()
        local s = lore.spawn("persist.akka", { id = "r-pages" }):ask({ op = "get" }, 10)
        assert.equal(N, #s.metas)
        for i, m in ipairs(s.metas) do
          assert.equal(i, m.seq)
          assert.equal("r-pages", m.id)
          assert.is_true(m.ts > 0)
        end
      end)
    end)

    -- Around the first page (513 events when the bounds are not read first, 256 or the whole
    -- stream up to 512 when they are), the page after it (641) and the later ones.
    local SIZES = { 255, 256, 257, 511, 512, 513, 514, 1023, 1154, 1155, 4097, 10000 }
    local function sizes_recover(prefix)
      for _, n in ipairs(SIZES) do
        local id = prefix .. n
        ph.run({ journal = uri }, function() preload(lore.spawn("persist.acc", { id = id }), n) end)
        ph.run({ journal = uri }, function()
          local s = get(lore.spawn("persist.acc", { id = id }))
          assert.equal(n, s.n, id)
          assert.equal(n, #s.log, id)
          assert.equal(n, s.seq, id)
          assert.equal(1, s.rc, id)
        end)
      end
    end

    it("streams around the page sizes recover whole, each in one recovery", function()
      sizes_recover("r-size-")
    end)

    it("the same with events deleted elsewhere in the journal (each recovery reads its bounds first)",
      function()
        ph.run({ journal = uri }, function()
          assert.is_true(lore.spawn("persist.acc", { id = "r-pages" }):ask({ op = "delete", to = 1 }, 5))
        end)
        sizes_recover("r-size-del-")
      end)

    -- (later pages of an apply without meta are lean reads: their own column checks)
    for _, case in ipairs {
      { "a corrupt row", "payload = x'c1'", 1200 },
      { "a text payload", "payload = CAST(payload AS TEXT)", 1300 },
      { "a text crc", "crc = 'not a number'", 1300 },
    } do
      local what, set, seq = case[1], case[2], case[3]
      it(what .. " in a later page stops the recovery as corrupt, naming the seq", function()
        ph.sql(path, "UPDATE events SET " .. set .. " WHERE id = 'r-pages' AND seq = " .. seq .. ";")
        ph.run({ journal = uri }, function()
          local sink = lore.spawn("persist.sink")
          lore.spawn("persist.acc", { id = "r-pages", observer = sink })
          local got = ph.wait_hook(sink, "recovery_failure")
          local f = ph.hooks(got, "recovery_failure")
          assert.equal(1, #f)
          assert.matches("r%-pages", f[1].err)
          assert.matches(("after seq %d %%(expected seq %d%%)"):format(seq - 1, seq), f[1].err)
          assert.matches("corrupt", f[1].err)
        end)
      end)
    end
  end)
end)

describe("a raising handler in a persistent actor", function()
  it("fails the ask, restarts through recovery, and keeps only durable state", function()
    ph.run({ journal = ph.memory_journal() }, function()
      local a = lore.spawn("persist.acc", { id = "r-raise" })
      add(a, 1)
      add(a, 2)
      assert.matches("raised on purpose", ph.error_of(a.ask, a, { op = "raise" }, 5))
      local s = get(a)
      assert.equal(3, s.n) -- not 1000003: the mutation was not an event
      assert.same({ 1, 2 }, s.log)
      assert.equal(2, s.seq)
      assert.equal(1, s.rc) -- the restart ran recovery again
      assert.same({ n = 6, seq = 3 }, add(a, 3))
    end)
  end)

  it("keeps the commands queued behind the failing one, in order", function()
    ph.run({ journal = ph.memory_journal() }, function()
      local a = lore.spawn("persist.acc", { id = "r-raise-queue" })
      a:tell { op = "add", v = 1 }
      a:tell { op = "raise" }
      for v = 2, 10 do a:tell { op = "add", v = v } end
      local s = get(a)
      assert.same(ph.range(1, 10), s.log)
      assert.equal(10, s.seq)
    end)
  end)
end)
