-- timers_spec.lua: ctx:schedule with opts: repeating timers, keys, durable timers across
-- restarts and kill -9 (a timer due while the process was down fires once), cancellation
-- that survives a restart, timers of a stopped actor, handles that cannot be forged.
local lore = require "lore"
local h = require "helpers"
local ph = require "persist_helpers"

local eventually = ph.eventually

local function get(ref) return ref:ask({ op = "get" }, 10) end

local function count(list, v)
  local n = 0
  for _, x in ipairs(list) do if x == v then n = n + 1 end end
  return n
end

-- The tags of "fired" events stored for id (sqlite journals), in seq order.
local function stored_fired(path, id)
  local out = ph.sql(path, "SELECT manifest FROM events WHERE id = '" .. id .. "' ORDER BY seq;")
  local m = {}
  for line in out:gmatch("[^\n]+") do m[#m + 1] = line end
  return m
end

-- Waits until the actor's state shows `n` firings of `tag`.
local function fired(ref, tag, n, timeout)
  return eventually(function()
    local f = get(ref).fired
    return count(f, tag) >= n and f
  end, timeout or 10)
end

describe("ctx:schedule", function()
  it("repeats with opts.every until cancelled", function()
    ph.run({}, function()
      local sink = lore.spawn("persist.sink")
      local t = lore.spawn("timers.plain", { notify = sink })
      t:ask({ op = "schedule", tag = "r", delay = 0.02, every = 0.03 }, 5)
      assert.truthy(eventually(function() return #sink:ask({ op = "get" }, 5) >= 3 end), "it did not repeat")
      assert.is_true(t:ask({ op = "cancel", tag = "r" }, 5))
      lore.sleep(0.05)
      local n = #sink:ask({ op = "get" }, 5)
      lore.sleep(0.15)
      assert.equal(n, #sink:ask({ op = "get" }, 5)) -- no firing after the cancel
      assert.is_false(t:ask({ op = "cancel", tag = "r" }, 5))
    end)
  end)

  it("replaces a timer of the same key, and cancels by key", function()
    ph.run({}, function()
      local sink = lore.spawn("persist.sink")
      local t = lore.spawn("timers.plain", { notify = sink })
      t:ask({ op = "schedule", tag = "first", delay = 0.1, key = "k" }, 5)
      t:ask({ op = "schedule", tag = "second", delay = 0.15, key = "k" }, 5)
      t:ask({ op = "schedule", tag = "third", delay = 0.1, key = "other" }, 5)
      assert.is_true(t:ask({ op = "cancel_key", key = "other" }, 5))
      assert.is_false(t:ask({ op = "cancel_key", key = "nothing" }, 5))
      assert.truthy(eventually(function() return #sink:ask({ op = "get" }, 5) >= 1 end))
      lore.sleep(0.2)
      local got = sink:ask({ op = "get" }, 5)
      assert.equal(1, #got)
      assert.equal("second", got[1].tag)
    end)
  end)

  it("a handle's cancel refuses a forged handle", function()
    ph.run({}, function()
      local sink = lore.spawn("persist.sink")
      local t = lore.spawn("timers.plain", { notify = sink })
      t:ask({ op = "schedule", tag = "real", delay = 0.1 }, 5)
      local r = t:ask({ op = "forge", tag = "real", id = 1 }, 5)
      assert.is_false(r.ok)
      assert.matches("not a timer handle", r.err)
      assert.truthy(eventually(function() return #sink:ask({ op = "get" }, 5) == 1 end), "the real timer was lost")
    end)
  end)

  it("timers of a stopped actor never fire", function()
    local j = ph.memory_journal()
    ph.run({ journal = j }, function()
      local sink = lore.spawn("persist.sink")
      local p = lore.spawn("timers.plain", { notify = sink })
      local d = lore.spawn("timers.durable", { id = "t-stopped", notify = sink })
      p:ask({ op = "schedule", tag = "plain-once", delay = 0.15 }, 5)
      p:ask({ op = "schedule", tag = "plain-every", delay = 0.15, every = 0.05 }, 5)
      d:ask({ op = "schedule", tag = "durable", delay = 0.15 }, 5)
      d:ask({ op = "schedule", tag = "durable-every", delay = 0.1, every = 0.05 }, 5)
      p:ask({ op = "stop" }, 5)
      d:ask({ op = "stop" }, 5)
      local dead0 = lore.stats().dead_letters
      lore.sleep(0.5)
      assert.same({}, sink:ask({ op = "get" }, 5))
      assert.equal(dead0, lore.stats().dead_letters) -- not even as dead letters
    end)
    -- a durable timer is a reminder: it fires once its actor runs again
    ph.run({ journal = j }, function()
      local d = lore.spawn("timers.durable", { id = "t-stopped" })
      assert.truthy(fired(d, "durable", 1))
      assert.truthy(fired(d, "durable-every", 2))
    end)
  end)

  it("raises at the call for bad arguments", function()
    ph.run({}, function()
      local p = lore.spawn("delivery.plain")
      local r = p:ask({ op = "durable" }, 5)
      assert.is_false(r.ok)
      assert.matches("needs a persistent actor", r.err)
      local t = lore.spawn("timers.plain", { notify = p })
      assert.matches("opts.every", h.error_of(t.ask, t, { op = "schedule", tag = "x", delay = 1, every = 0 }, 5))
      assert.matches("seconds", h.error_of(t.ask, t, { op = "schedule", tag = "x", delay = -1 }, 5))
    end)
  end)
end)

describe("durable timers", function()
  it("fire once, and stay fired across a restart", function()
    local j = ph.memory_journal()
    ph.run({ journal = j }, function()
      local d = lore.spawn("timers.durable", { id = "t-once" })
      d:ask({ op = "schedule", tag = "a", delay = 0.05 }, 5)
      assert.truthy(fired(d, "a", 1))
    end)
    ph.run({ journal = j }, function()
      local d = lore.spawn("timers.durable", { id = "t-once" })
      lore.sleep(0.2)
      assert.same({ "a" }, get(d).fired)
    end)
  end)

  it("one that came due while the runtime was down fires once after recovery", function()
    local j = ph.memory_journal()
    ph.run({ journal = j }, function()
      local d = lore.spawn("timers.durable", { id = "t-down" })
      d:ask({ op = "schedule", tag = "late", delay = 0.2 }, 5)
      d:ask({ op = "schedule", tag = "later", delay = 30 }, 5)
    end)
    ph.run({ journal = j }, function()
      lore.sleep(0.3) -- due while no actor runs
      local d = lore.spawn("timers.durable", { id = "t-down" })
      assert.truthy(fired(d, "late", 1))
      lore.sleep(0.2)
      assert.same({ "late" }, get(d).fired)
    end)
    ph.run({ journal = j }, function()
      local d = lore.spawn("timers.durable", { id = "t-down" })
      lore.sleep(0.2)
      assert.same({ "late" }, get(d).fired) -- never twice
    end)
  end)

  it("many due while down fire once each, before the commands that waited for recovery", function()
    local j = ph.memory_journal()
    ph.run({ journal = j }, function()
      local d = lore.spawn("timers.durable", { id = "t-many" })
      for i = 1, 30 do d:ask({ op = "schedule", tag = "m" .. i, delay = 0.1 + i / 1000 }, 5) end
    end)
    ph.run({ journal = j }, function()
      lore.sleep(0.2)
      local d = lore.spawn("timers.durable", { id = "t-many" })
      local f = get(d).fired -- a command that waited for the recovery
      assert.equal(30, #f)
      for i = 1, 30 do assert.equal("m" .. i, f[i]) end -- in the order they came due
      lore.sleep(0.2)
      assert.equal(30, #get(d).fired)
    end)
  end)

  it("firings that persist nothing also come before the commands that waited, each once", function()
    local j = ph.memory_journal()
    ph.run({ journal = j }, function()
      local d = lore.spawn("timers.durable", { id = "t-quiet" })
      -- (due well after this run has shut down: a firing during the shutdown would leave
      -- its mark in the journal and its entry in this run's memory only)
      for i = 1, 10 do d:ask({ op = "schedule", tag = "quiet:" .. i, delay = 1 + i / 1000 }, 5) end
    end)
    ph.run({ journal = j }, function()
      lore.sleep(1.1)
      local d = lore.spawn("timers.durable", { id = "t-quiet" })
      local q = get(d).quiet
      assert.equal(10, #q, table.concat(q, ","))
      for i = 1, 10 do assert.equal("quiet:" .. i, q[i]) end
    end)
    ph.run({ journal = j }, function()
      local d = lore.spawn("timers.durable", { id = "t-quiet" })
      lore.sleep(0.2)
      assert.same({}, get(d).quiet) -- their markers were stored: never again
    end)
  end)

  it("a cancellation survives a restart, also by key", function()
    local j = ph.memory_journal()
    ph.run({ journal = j }, function()
      local d = lore.spawn("timers.durable", { id = "t-cancel" })
      d:ask({ op = "schedule", tag = "by-handle", delay = 1 }, 5)
      d:ask({ op = "schedule", tag = "by-key", delay = 1, key = "payment" }, 5)
      d:ask({ op = "schedule", tag = "kept", delay = 1 }, 5)
      assert.is_true(d:ask({ op = "cancel", tag = "by-handle" }, 5))
    end)
    ph.run({ journal = j }, function()
      local d = lore.spawn("timers.durable", { id = "t-cancel" })
      assert.is_true(d:ask({ op = "cancel_key", key = "payment" }, 5)) -- after a restart: by key
      assert.is_false(d:ask({ op = "cancel_key", key = "payment" }, 5))
    end)
    ph.run({ journal = j }, function()
      local d = lore.spawn("timers.durable", { id = "t-cancel" })
      assert.truthy(fired(d, "kept", 1))
      lore.sleep(0.3)
      assert.same({ "kept" }, get(d).fired)
    end)
  end)

  it("a repeating one goes on after a restart, the periods missed collapsing into one firing", function()
    local j = ph.memory_journal()
    ph.run({ journal = j }, function()
      local d = lore.spawn("timers.durable", { id = "t-every" })
      d:ask({ op = "schedule", tag = "r", delay = 0.02, every = 0.05, key = "r" }, 5)
      assert.truthy(fired(d, "r", 2))
    end)
    local before
    ph.run({ journal = j }, function()
      local d = lore.spawn("timers.durable", { id = "t-every" })
      before = #get(d).fired
      d:ask({ op = "cancel_key", key = "r" }, 5) -- recovery re-armed it: it can be cancelled
    end)
    ph.run({ journal = j }, function()
      local d = lore.spawn("timers.durable", { id = "t-every" })
      d:ask({ op = "schedule", tag = "s", delay = 0.05, every = 0.05 }, 5)
      assert.truthy(fired(d, "s", 1))
    end)
    ph.run({ journal = j }, function()
      lore.sleep(0.4) -- about 8 periods while down
      local d = lore.spawn("timers.durable", { id = "t-every" })
      local f = fired(d, "s", 2)
      assert.truthy(f)
      local n = count(f, "s")
      lore.sleep(0.02)
      -- one catch-up firing, then the period again: never a burst of the missed ones
      assert.is_true(count(get(d).fired, "s") <= n + 1)
      assert.is_true(count(get(d).fired, "r") >= before)
    end)
  end)

  it("a snapshot carries them", function()
    local j = ph.memory_journal()
    ph.run({ journal = j, snapshots = j }, function()
      local d = lore.spawn("timers.durable", { id = "t-snap" })
      d:ask({ op = "schedule", tag = "snap", delay = 0.4 }, 5)
      d:ask({ op = "schedule", tag = "cancelled", delay = 0.4 }, 5)
      d:ask({ op = "cancel", tag = "cancelled" }, 5)
      assert.is_true(d:ask({ op = "snapshot" }, 5).ok)
      d:ask({ op = "delete_all" }, 5)
    end)
    ph.run({ journal = j, snapshots = j }, function()
      local d = lore.spawn("timers.durable", { id = "t-snap" })
      assert.truthy(fired(d, "snap", 1))
      lore.sleep(0.2)
      assert.same({ "snap" }, get(d).fired)
    end)
  end)

  it("a handler that fails before persisting fires again; after persisting, not", function()
    local j = ph.memory_journal()
    ph.run({ journal = j }, function()
      local d = lore.spawn("timers.durable", { id = "t-fail" })
      d:ask({ op = "schedule", tag = "fail:before", delay = 0.02 }, 5)
      d:ask({ op = "schedule", tag = "failafter:x", delay = 0.02 }, 5)
      assert.truthy(fired(d, "fail:before", 1)) -- fired again by the restart's recovery
      assert.truthy(fired(d, "failafter:x", 1))
      lore.sleep(0.3)
      local f = get(d).fired
      assert.equal(1, count(f, "fail:before"))
      assert.equal(1, count(f, "failafter:x")) -- its marker was stored with its event
    end)
  end)
end)

describe("durable timers and kill -9", function()
  local FIX = h.fixtures
  local APP = FIX .. "/delivery/app_kill.lua"
  local q = h.quote

  local function run_and_kill(db, mode, n, ready)
    local script = ([[
      out=$(mktemp); %s run %s %s %s %s %s >"$out" 2>&1 &
      pid=$!
      for i in $(seq 1 3000); do
        grep -q '^%s' "$out" && break
        kill -0 $pid 2>/dev/null || break
        sleep 0.01
      done
      grep -q '^%s' "$out" || { echo "never ready:"; cat "$out"; }
      kill -9 $pid; wait $pid; echo "status $?"; rm -f "$out"
    ]]):format(q(h.lore_bin()), q(APP), q(FIX), q(db), mode, tostring(n), ready, ready)
    return h.sh("bash -c " .. q(script))
  end

  it("a timer due while the process was down fires once after recovery", function()
    local uri, path = ph.sqlite_journal()
    finally(function() ph.remove_db(path) end)
    assert.equal("status 137\n", run_and_kill(path, "timer", 0.3, "scheduled"))
    ph.run({ journal = uri }, function()
      lore.sleep(0.4) -- due by now
      local d = lore.spawn("timers.durable", { id = "k-timer" })
      assert.truthy(fired(d, "due-while-down", 1))
    end)
    ph.run({ journal = uri }, function()
      local d = lore.spawn("timers.durable", { id = "k-timer" })
      lore.sleep(0.2)
      assert.same({ "due-while-down" }, get(d).fired)
    end)
    local m = stored_fired(path, "k-timer")
    assert.same({ "lore.timer", "lore.timer_fired", "fired" }, m)
  end)

  it("a timer whose firing was stored before the kill does not fire again", function()
    local uri, path = ph.sqlite_journal()
    finally(function() ph.remove_db(path) end)
    assert.equal("status 137\n", run_and_kill(path, "fired", 0, "fired"))
    ph.run({ journal = uri }, function()
      local d = lore.spawn("timers.durable", { id = "k-fired" })
      lore.sleep(0.3)
      assert.same({ "at-once" }, get(d).fired)
    end)
    -- the marker and the handler's event went into one write
    assert.same({ "lore.timer", "lore.timer_fired", "fired" }, stored_fired(path, "k-fired"))
  end)
end)
