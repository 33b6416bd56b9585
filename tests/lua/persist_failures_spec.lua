-- persist_failures_spec.lua: rejected events, journal write failures, recovery failures
-- (corrupt rows, sequence gaps) and the bounded internal stash.
local lore = require "lore"
local ph = require "persist_helpers"

local function add(ref, v) return ref:ask({ op = "add", v = v }, 5) end
local function get(ref) return ref:ask({ op = "get" }, 10) end

local hooks, wait_hook = ph.hooks, ph.wait_hook

-- Writes events with values vs for id into the sqlite journal at uri.
local function write_events(uri, id, vs)
  ph.run({ journal = uri }, function()
    local a = lore.spawn("persist.acc", { id = id })
    for _, v in ipairs(vs) do add(a, v) end
  end)
end

-- CRC-32C (Castagnoli), as the journal seals payloads with.
local function crc32c(s)
  local crc = 0xFFFFFFFF
  for i = 1, #s do
    crc = crc ~ s:byte(i)
    for _ = 1, 8 do
      if crc & 1 == 1 then crc = (crc >> 1) ~ 0x82F63B78 else crc = crc >> 1 end
    end
  end
  return crc ~ 0xFFFFFFFF
end

describe("on_persist_rejected", function()
  it("an event that cannot be encoded: the hook runs, the actor continues, no seq is used", function()
    local j = ph.memory_journal()
    ph.run({ journal = j }, function()
      local a = lore.spawn("persist.acc", { id = "f-reject" })
      add(a, 1)
      local r = a:ask({ op = "bad" }, 5)
      assert.equal(1, #r.rejected)
      assert.matches("function", r.rejected[1].err)
      assert.equal(1000, r.rejected[1].v)
      assert.equal(1, r.n) -- not applied
      assert.equal(1, r.seq)
      assert.same({ n = 3, seq = 2 }, add(a, 2)) -- the next persist takes seq 2
      for _, t in ipairs(get(a).trace) do
        assert.is_nil(t:find("^cb:1000"), "the rejected event's callback ran")
      end
    end)
    ph.run({ journal = j }, function()
      local s = get(lore.spawn("persist.acc", { id = "f-reject" }))
      assert.same({ 1, 2 }, s.log)
      assert.equal(2, s.seq)
    end)
  end)

  it("persist_all with one bad event rejects the whole batch", function()
    local j = ph.memory_journal()
    ph.run({ journal = j }, function()
      local a = lore.spawn("persist.acc", { id = "f-reject-all" })
      add(a, 1)
      local r = a:ask({ op = "bad_all" }, 5)
      assert.equal(3, #r.rejected) -- the hook runs for each event of the batch
      assert.same({ 1000, 2000, 3000 }, { r.rejected[1].v, r.rejected[2].v, r.rejected[3].v })
      assert.matches("event%[2%]", r.rejected[1].err) -- names the event that cannot be encoded
      assert.equal(1, r.n)
      assert.equal(1, r.seq)
      assert.same({ n = 6, seq = 2 }, add(a, 5))
    end)
    ph.run({ journal = j }, function()
      local s = get(lore.spawn("persist.acc", { id = "f-reject-all" }))
      assert.same({ 1, 5 }, s.log)
      assert.equal(2, s.seq)
    end)
  end)

  it("a write the journal refuses (a trigger's ABORT): the actor continues without a seq gap", function()
    local uri, path = ph.sqlite_journal()
    finally(function() ph.remove_db(path) end)
    write_events(uri, "f-abort", { 1, 2 })
    ph.sql(path, "CREATE TRIGGER refuse BEFORE INSERT ON events WHEN NEW.manifest = 'boom' "
      .. "BEGIN SELECT RAISE(ABORT, 'boom'); END;")
    ph.run({ journal = uri }, function()
      local a = lore.spawn("persist.acc", { id = "f-abort" })
      a:tell { op = "boom_event" }
      local s = get(a)
      assert.equal(1, #s.rejected)
      assert.equal(2, s.seq)
      assert.same({ n = 6, seq = 3 }, add(a, 3)) -- seq 3 is reused: nothing was stored there
    end)
    assert.same({ 1, 2, 3 }, ph.stored_seqs(path, "f-abort"))
    ph.run({ journal = uri }, function() -- and the journal recovers (no gap)
      local s = get(lore.spawn("persist.acc", { id = "f-abort" }))
      assert.same({ 1, 2, 3 }, s.log)
      assert.equal(1, s.rc)
    end)
  end)
end)

describe("on_persist_failure", function()
  it("a failed journal write calls the hook; the actor recovers and keeps serving", function()
    local uri, path = ph.sqlite_journal()
    finally(function() ph.remove_db(path) end)
    ph.run({ journal = uri }, function()
      local sink = lore.spawn("persist.sink")
      local a = lore.spawn("persist.acc", { id = "f-fail", observer = sink })
      add(a, 1)
      add(a, 2)
      -- RAISE(ROLLBACK) ends the whole transaction: a write failure, not a rejection
      ph.sql(path, "CREATE TRIGGER fail BEFORE INSERT ON events WHEN NEW.manifest = 'boom' "
        .. "BEGIN SELECT RAISE(ROLLBACK, 'boom'); END;")
      a:tell { op = "boom_event" }
      local got = wait_hook(sink, "persist_failure")
      local f = hooks(got, "persist_failure")
      assert.equal(1, #f, "on_persist_failure did not run once")
      assert.equal("boom", f[1].type)
      assert.equal("f-fail", f[1].id)
      assert.is_string(f[1].err)
      local r = a:ask({ op = "add", v = 3 }, 5) -- after the back-off and recovery
      assert.same({ n = 6, seq = 3 }, r)
      local s = get(a)
      assert.same({ 1, 2, 3 }, s.log)
      assert.equal(1, s.rc) -- the restarted incarnation recovered once
      for _, t in ipairs(s.trace) do assert.not_equal("cb:boom", t) end
    end)
    assert.same({ 1, 2, 3 }, ph.stored_seqs(path, "f-fail"))
  end)
end)

describe("on_recovery_failure", function()
  -- Spawns id with an observer on the journal at uri; returns the sink's entries
  -- once the hook has reported, and the error an ask got.
  local function spawn_failing(uri, id)
    local got, ask_err
    ph.run({ journal = uri }, function()
      local sink = lore.spawn("persist.sink")
      local a = lore.spawn("persist.acc", { id = id, observer = sink })
      got = wait_hook(sink, "recovery_failure")
      ask_err = ph.error_of(a.ask, a, { op = "get" }, 1)
      assert.truthy(ph.eventually(function() return lore.stats().alive == 1 end), "the actor did not stop")
    end)
    return got, ask_err
  end

  it("a payload failing its CRC stops the actor, naming the id and the seq", function()
    local uri, path = ph.sqlite_journal()
    finally(function() ph.remove_db(path) end)
    write_events(uri, "f-crc", { 1, 2, 3 })
    ph.sql(path, "UPDATE events SET payload = x'c1' WHERE id = 'f-crc' AND seq = 2;")
    local got, ask_err = spawn_failing(uri, "f-crc")
    local f = hooks(got, "recovery_failure")
    assert.equal(1, #f)
    assert.matches("f%-crc", f[1].err)
    assert.matches("expected seq 2", f[1].err)
    assert.matches("corrupt", f[1].err)
    assert.is_string(ask_err)
  end)

  it("a payload that does not decode stops the actor, naming the id and the seq", function()
    local uri, path = ph.sqlite_journal()
    finally(function() ph.remove_db(path) end)
    write_events(uri, "f-decode", { 1, 2, 3 })
    -- 0xc1 is never used in MessagePack; the CRC is made to match so the decoder sees it
    ph.sql(path, string.format("UPDATE events SET payload = x'c1', crc = %d WHERE id = 'f-decode' AND seq = 2;",
      crc32c("\xc1")))
    local got, ask_err = spawn_failing(uri, "f-decode")
    local f = hooks(got, "recovery_failure")
    assert.equal(1, #f)
    assert.matches("f%-decode", f[1].err)
    assert.matches("seq 2", f[1].err)
    assert.matches("decode", f[1].err)
    assert.is_string(ask_err)
  end)

  it("a sequence gap stops the actor, naming the gap", function()
    local uri, path = ph.sqlite_journal()
    finally(function() ph.remove_db(path) end)
    write_events(uri, "f-gap", { 1, 2, 3, 4, 5 })
    ph.sql(path, "DELETE FROM events WHERE id = 'f-gap' AND seq = 3;")
    local got, ask_err = spawn_failing(uri, "f-gap")
    local f = hooks(got, "recovery_failure")
    assert.equal(1, #f)
    assert.matches("gap", f[1].err)
    assert.matches("f%-gap", f[1].err)
    assert.matches("expected seq 3, found 4", f[1].err)
    assert.is_string(ask_err)
  end)

  it("events missing at the end (below the highest seq) fail recovery", function()
    local uri, path = ph.sqlite_journal()
    finally(function() ph.remove_db(path) end)
    write_events(uri, "f-tail", { 1, 2, 3, 4, 5 })
    -- The journal keeps no per-write highest seq: deleting the last rows
    -- behind its back also has to leave the highest where it was.
    ph.sql(path, "DELETE FROM events WHERE id = 'f-tail' AND seq >= 4;" ..
      "INSERT INTO deletions(id, highest, deleted_to) VALUES ('f-tail', 5, 0);")
    local got = spawn_failing(uri, "f-tail")
    local f = hooks(got, "recovery_failure")
    assert.equal(1, #f)
    assert.matches("f%-tail", f[1].err)
    assert.matches("highest is 5", f[1].err)
  end)
end)

describe("M.stash_capacity", function()
  -- Writes 4500 events for id (values 1..4500), then runs body(ref, sink)
  -- with `behaviour` spawned: its mailbox is held (the internal stash) while
  -- it recovers, so what body sends at once meets the bound of 5. Two pages
  -- and a slow apply make sure of that: the worker routes its inbox between
  -- the pages, while the first one took long enough for the sends to arrive.
  local function during_recovery(behaviour, id, body)
    local j = ph.memory_journal()
    ph.run({ journal = j }, function()
      local a = lore.spawn("persist.acc", { id = id })
      for k = 0, 8 do a:ask({ op = "add_all", vs = ph.range(k * 500 + 1, k * 500 + 500) }, 20) end
    end)
    ph.run({ journal = j, max_instructions = 0 }, function()
      local sink = lore.spawn("persist.sink")
      body(lore.spawn(behaviour, { id = id, slow = 2000, observer = sink }), sink)
    end)
  end

  -- Waits for on_recovery_completed (told to the sink), then asks "get": an
  -- ask sent while the stash is full would meet the bound too.
  local function get_after_recovery(a, sink)
    assert.truthy(wait_hook(sink, "recovered", 20), "recovery never completed")
    return get(a)
  end

  local function expected_log(kept)
    local log = ph.range(1, 4500)
    for _, v in ipairs(kept) do log[#log + 1] = v end
    return log
  end

  it("'drop' sends commands beyond the bound to dead letters", function()
    during_recovery("persist.drop", "f-drop", function(a, sink)
      local dl0 = lore.stats().dead_letters
      for v = 1001, 1012 do a:tell { op = "add", v = v } end
      -- an ask beyond the bound is told why it went nowhere
      assert.matches("stash overflow", ph.error_of(a.ask, a, { op = "add", v = 2000 }, 5))
      local s = get_after_recovery(a, sink)
      assert.same(expected_log { 1001, 1002, 1003, 1004, 1005 }, s.log)
      assert.equal(4505, s.seq)
      assert.equal(8, lore.stats().dead_letters - dl0)
    end)
  end)

  it("'reply' answers an ask beyond the bound with an error", function()
    during_recovery("persist.reply", "f-reply", function(a, sink)
      for v = 1001, 1005 do a:tell { op = "add", v = v } end
      local err = ph.error_of(a.ask, a, { op = "add", v = 2000 }, 5)
      assert.matches("stash overflow", err)
      local s = get_after_recovery(a, sink)
      assert.same(expected_log { 1001, 1002, 1003, 1004, 1005 }, s.log)
    end)
  end)

  it("'fail' restarts the actor once; it recovers and runs the commands it held", function()
    during_recovery("persist.fail", "f-failover", function(a, sink)
      for v = 1001, 1008 do a:tell { op = "add", v = v } end
      local s = get_after_recovery(a, sink)
      -- state from the journal only: no event applied twice
      assert.same(expected_log { 1001, 1002, 1003, 1004, 1005 }, s.log)
      assert.equal(4505, s.seq)
      assert.equal(1, s.rc)
      lore.sleep(0.5) -- no second recovery comes later (it would apply every event again)
      s = get(a)
      assert.equal(4505, #s.log)
      assert.equal(1, s.rc)
      assert.equal(1, #hooks(sink:ask({ op = "get" }, 5), "recovered"))
    end)
  end)

  it("an actor whose tell overflows a bound on its own worker still answers its ask", function()
    -- The overflowing tell comes from an actor on the same worker (a local
    -- send handled inside that actor's turn): its own ctx:reply must still work.
    during_recovery("persist.drop", "f-local-overflow", function(b)
      -- one pump per worker (round-robin): one of them shares b's worker
      local pumps = { lore.spawn("persist.pump"), lore.spawn("persist.pump") }
      for v = 1, 5 do b:tell { op = "add", v = v } end -- the stash is full
      for _, p in ipairs(pumps) do
        assert.is_true(p:ask({ target = b, base = 100, count = 10 }, 2))
      end
    end)
  end)
end)
