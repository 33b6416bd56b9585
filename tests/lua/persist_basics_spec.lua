-- persist_basics_spec.lua: persist, persist_all, persist_async, defer, nested persists,
-- the internal stash, the user stash, seq across restarts, single writer, safe stop.
local lore = require "lore"
local ph = require "persist_helpers"

local function add(ref, v) return ref:ask({ op = "add", v = v }, 5) end
local function get(ref) return ref:ask({ op = "get" }, 5) end

-- The entries of a trace that start with `prefix`, in order.
local function only(trace, prefix)
  local out = {}
  for _, s in ipairs(trace) do
    if s:sub(1, #prefix) == prefix then out[#out + 1] = s end
  end
  return out
end

describe("ctx:persist", function()
  it("applies the event, and an ask answered from the callback sees the new state", function()
    ph.run({ journal = ph.memory_journal() }, function()
      local a = lore.spawn("persist.acc", { id = "p-basic" })
      assert.same({ n = 5, seq = 1 }, add(a, 5))
      assert.same({ n = 12, seq = 2 }, add(a, 7))
      local s = get(a)
      assert.equal(12, s.n)
      assert.same({ 5, 7 }, s.log)
      assert.equal(2, s.seq)
    end)
  end)

  it("runs the callback after apply and before the next command", function()
    ph.run({ journal = ph.memory_journal() }, function()
      local a = lore.spawn("persist.acc", { id = "p-order" })
      for v = 1, 20 do a:tell { op = "add", v = v } end -- all queued behind the first persist
      local s = get(a)
      local want = { "recovered@0" }
      for v = 1, 20 do
        want[#want + 1] = "cmd:" .. v
        want[#want + 1] = "cb:" .. v .. "@" .. v -- no ":NOT-APPLIED": apply ran first
      end
      assert.same(want, s.trace)
    end)
  end)

  it("increments ctx.seq, and a second run recovers the same state and seq", function()
    local j = ph.memory_journal()
    ph.run({ journal = j }, function()
      local a = lore.spawn("persist.acc", { id = "p-seq" })
      assert.equal(1, add(a, 10).seq)
      assert.equal(2, add(a, 20).seq)
      assert.equal(3, add(a, 30).seq)
    end)
    ph.run({ journal = j }, function()
      local a = lore.spawn("persist.acc", { id = "p-seq" })
      local s = get(a)
      assert.equal(60, s.n)
      assert.same({ 10, 20, 30 }, s.log)
      assert.equal(3, s.seq)
      assert.equal(3, s.rc_seq)
      assert.same({ n = 100, seq = 4 }, add(a, 40)) -- continues after the recovered seq
    end)
  end)

  it("stashes 500 commands sent while persists are in flight and delivers them in order", function()
    local j = ph.memory_journal()
    ph.run({ journal = j }, function()
      local a = lore.spawn("persist.acc", { id = "p-500" })
      for v = 1, 500 do a:tell { op = "add", v = v } end
      local s = a:ask({ op = "get" }, 20)
      assert.same(ph.range(1, 500), s.log)
      assert.equal(500, s.seq)
      -- strictly command, callback, command, callback...
      for v = 1, 500 do
        assert.equal("cmd:" .. v, s.trace[2 * v])
        assert.equal("cb:" .. v .. "@" .. v, s.trace[2 * v + 1])
      end
    end)
    ph.run({ journal = j }, function()
      local a = lore.spawn("persist.acc", { id = "p-500" })
      local s = a:ask({ op = "get" }, 20)
      assert.same(ph.range(1, 500), s.log)
      assert.equal(500 * 501 // 2, s.n)
      assert.equal(500, s.seq)
    end)
  end)
end)

describe("ctx:persist_all", function()
  it("calls fn once per event, applies all, with consecutive seqs", function()
    local j = ph.memory_journal()
    ph.run({ journal = j }, function()
      local a = lore.spawn("persist.acc", { id = "p-all" })
      local r = a:ask({ op = "add_all", vs = { 1, 2, 3 } }, 5)
      assert.same({ 1, 2, 3 }, r.seqs)
      assert.equal(6, r.n)
      r = a:ask({ op = "add_all", vs = { 4, 5 } }, 5)
      assert.same({ 4, 5 }, r.seqs)
      local s = get(a)
      assert.same({ 1, 2, 3, 4, 5 }, s.log)
      assert.same({ "cb:1@1", "cb:2@2", "cb:3@3", "cb:4@4", "cb:5@5" }, only(s.trace, "cb:"))
    end)
    ph.run({ journal = j }, function()
      local s = get(lore.spawn("persist.acc", { id = "p-all" }))
      assert.same({ 1, 2, 3, 4, 5 }, s.log)
      assert.equal(5, s.seq)
    end)
  end)

  it("with an empty list persists nothing and keeps serving", function()
    ph.run({ journal = ph.memory_journal() }, function()
      local a = lore.spawn("persist.acc", { id = "p-all-empty" })
      local r = a:ask({ op = "add_all", vs = {} }, 5)
      assert.same({}, r.seqs)
      assert.equal(0, r.seq)
      assert.same({ n = 9, seq = 1 }, add(a, 9))
    end)
  end)
end)

describe("ctx:persist_async", function()
  it("does not stash: a command sent meanwhile is handled before the callback", function()
    ph.run({ journal = ph.memory_journal() }, function()
      local a = lore.spawn("persist.acc", { id = "p-async" })
      a:tell { op = "add_async", v = 1 }
      a:tell { op = "mark" }
      local s = ph.eventually(function()
        local s = get(a)
        return #only(s.trace, "cb:") == 1 and s
      end)
      assert.truthy(s, "the async persist's callback never ran")
      assert.same({ "recovered@0", "cmd:1", "cmd:mark", "cb:1@1" }, s.trace)
    end)
  end)

  it("keeps the order of events and callbacks, and the state is right", function()
    local j = ph.memory_journal()
    ph.run({ journal = j }, function()
      local a = lore.spawn("persist.acc", { id = "p-async-order" })
      for v = 1, 50 do a:tell { op = "add_async", v = v } end
      local s = ph.eventually(function()
        local s = get(a)
        return #only(s.trace, "cb:") == 50 and s
      end)
      assert.truthy(s, "not every async callback ran")
      local want = {}
      for v = 1, 50 do want[v] = "cb:" .. v .. "@" .. v end
      assert.same(want, only(s.trace, "cb:"))
      assert.same(ph.range(1, 50), s.log)
      assert.equal(50, s.seq)
    end)
    ph.run({ journal = j }, function()
      local s = get(lore.spawn("persist.acc", { id = "p-async-order" }))
      assert.same(ph.range(1, 50), s.log)
      assert.equal(50, s.seq)
    end)
  end)
end)

describe("ctx:defer", function()
  it("runs after the callbacks of the persists issued before it, before the next command", function()
    ph.run({ journal = ph.memory_journal() }, function()
      local a = lore.spawn("persist.acc", { id = "p-defer" })
      a:tell { op = "defer", vs = { 1, 2 } }
      a:tell { op = "mark" }
      local s = get(a)
      assert.same({ "recovered@0", "cmd:defer", "cb:1@1", "cb:2@2", "defer@2", "cmd:mark" }, s.trace)
      assert.same({ n = 3, seq = 2 }, a:ask({ op = "defer", vs = {} }, 5)) -- nothing pending: runs at once
    end)
  end)

  it("with nothing in flight runs before the next command", function()
    ph.run({ journal = ph.memory_journal() }, function()
      local a = lore.spawn("persist.acc", { id = "p-defer-alone" })
      a:tell { op = "defer", vs = {} }
      a:tell { op = "mark" }
      assert.same({ "recovered@0", "cmd:defer", "defer@0", "cmd:mark" }, get(a).trace)
    end)
  end)

  it("defer_async runs after earlier async persists' callbacks, without stashing", function()
    ph.run({ journal = ph.memory_journal() }, function()
      local a = lore.spawn("persist.acc", { id = "p-defer-async" })
      a:tell { op = "defer_async", vs = { 1, 2 } }
      a:tell { op = "mark" }
      local s = ph.eventually(function()
        local s = get(a)
        return #only(s.trace, "defer") == 1 and s
      end)
      assert.truthy(s, "the deferred function never ran")
      assert.same({ "recovered@0", "cmd:defer_async", "cmd:mark", "cb:1@1", "cb:2@2", "defer@2" }, s.trace)
    end)
  end)
end)

describe("a persist inside a persist callback", function()
  it("completes (callback included) before the next command", function()
    ph.run({ journal = ph.memory_journal() }, function()
      local a = lore.spawn("persist.acc", { id = "p-nested" })
      a:tell { op = "nested", a = 1, b = 2 }
      a:tell { op = "mark" }
      local s = get(a)
      assert.same({ "recovered@0", "cmd:nested", "cb:1@1", "cb:2@2", "cmd:mark" }, s.trace)
      assert.same({ n = 7, seq = 4 }, a:ask({ op = "nested", a = 1, b = 3 }, 5)) -- answers the ask
    end)
  end)
end)

describe("the user stash with persists", function()
  it("keeps order: unstashed commands come before commands held during the persist", function()
    ph.run({ journal = ph.memory_journal() }, function()
      local a = lore.spawn("persist.acc", { id = "p-ustash" })
      a:tell { op = "close" }
      for v = 1, 5 do a:tell { op = "s_add", v = v } end
      a:tell { op = "open" } -- persists; its callback unstashes
      for v = 6, 10 do a:tell { op = "s_add", v = v } end -- held behind that persist
      local s = get(a)
      assert.same(ph.range(1, 10), s.log)
      assert.same({ "stashed:1", "stashed:2", "stashed:3", "stashed:4", "stashed:5" }, only(s.trace, "stashed:"))
      assert.equal(11, s.seq) -- 10 adds and the "opened" event
    end)
  end)

  it("refuses ctx:stash() inside a persist callback", function()
    ph.run({ journal = ph.memory_journal() }, function()
      local a = lore.spawn("persist.acc", { id = "p-ustash-cb" })
      local r = a:ask({ op = "stash_in_cb", v = 1 }, 5)
      assert.is_false(r.ok)
      assert.matches("ctx:stash%(%)", r.err)
      assert.equal(1, get(a).seq)
    end)
  end)
end)

describe("ctx:stash() after a callback raised", function()
  it("works again once the actor restarted from a raising persist callback", function()
    ph.run({ journal = ph.memory_journal() }, function()
      local a = lore.spawn("persist.acc", { id = "p-cb-raise" })
      a:tell { op = "raise_in_cb", v = 1 }
      -- handled after the callback: by the restarted actor, recovered to seq 1
      assert.same("recovered@1", get(a).trace[1])
      a:tell { op = "close" }
      a:tell { op = "s_add", v = 2 } -- must be stashed, not refused
      a:tell { op = "open" }
      local s = get(a)
      assert.same({ "stashed:2" }, only(s.trace, "stashed:"))
      assert.same({ 1, 2 }, s.log)
    end)
  end)

  it("works after a script's pcall caught a raise in a defer that ran at once", function()
    ph.run({ journal = ph.memory_journal() }, function()
      local a = lore.spawn("persist.acc", { id = "p-defer-raise" })
      local r = a:ask({ op = "pcall_defer" }, 5)
      assert.is_true(r.caught)
      assert.is_true(r.ok, r.err)
    end)
  end)
end)

describe("a persistence id", function()
  it("has a single live writer: a second spawn raises 'already live'", function()
    ph.run({ journal = ph.memory_journal() }, function()
      local a = lore.spawn("persist.acc", { id = "p-single" })
      add(a, 1)
      local err = ph.error_of(lore.spawn, "persist.acc", { id = "p-single" })
      assert.matches("already live", err)
      assert.same({ n = 3, seq = 2 }, add(a, 2)) -- the first one is unaffected
    end)
  end)
end)

describe("ref:stop() on a persistent actor", function()
  it("never overtakes stashed commands: all 100 are in the journal", function()
    local uri, path = ph.sqlite_journal()
    finally(function() ph.remove_db(path) end)
    ph.run({ journal = uri }, function()
      local sink = lore.spawn("persist.sink")
      local a = lore.spawn("persist.acc", { id = "p-stop", observer = sink })
      for v = 1, 100 do a:tell { op = "add", v = v } end
      a:stop()
      local got = ph.wait_hook(sink, "stop", 10)
      assert.truthy(got, "on_stop never ran")
      assert.equal(5050, got[1].n) -- it ran after all 100 commands
      assert.truthy(ph.eventually(function() return lore.stats().alive == 1 end), "the actor is still alive")
    end)
    assert.same(ph.range(1, 100), ph.stored_seqs(path, "p-stop"))
    ph.run({ journal = uri }, function()
      local s = get(lore.spawn("persist.acc", { id = "p-stop" }))
      assert.same(ph.range(1, 100), s.log)
      assert.equal(100, s.seq)
    end)
  end)
end)
