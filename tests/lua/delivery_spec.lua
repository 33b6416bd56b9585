-- delivery_spec.lua: at-least-once delivery: ctx:deliver / confirm_delivery / unconfirmed,
-- redelivery, burst limit, warnings, max_unconfirmed, recovery and snapshots of the
-- unconfirmed set, and kill -9 of the sender and of the receiver.
local lore = require "lore"
local h = require "helpers"
local ph = require "persist_helpers"

local eventually = ph.eventually

local function get(ref) return ref:ask({ op = "get" }, 10) end

-- Waits for the sender to have nothing unconfirmed; returns its summary.
local function settled(sender, timeout)
  return eventually(function()
    local s = get(sender)
    return s.unconfirmed == 0 and s
  end, timeout or 10)
end

local function range(n)
  local t = {}
  for i = 1, n do t[i] = i end
  return t
end

local function sorted(list)
  local t = {}
  for i, v in ipairs(list) do t[i] = v end
  table.sort(t)
  return t
end

-- The manifests stored for an id, in seq order (sqlite journals).
local function manifests(path, id)
  local out = ph.sql(path, "SELECT manifest FROM events WHERE id = '" .. id .. "' ORDER BY seq;")
  local list = {}
  for m in out:gmatch("[^\n]+") do list[#list + 1] = m end
  return list
end

local function count(list, v)
  local n = 0
  for _, x in ipairs(list) do if x == v then n = n + 1 end end
  return n
end

describe("ctx:deliver", function()
  it("sends after the intent is durable, and stops re-sending once confirmed", function()
    local uri, path = ph.sqlite_journal()
    finally(function() ph.remove_db(path) end)
    ph.run({ journal = uri }, function()
      local r = lore.spawn("delivery.receiver", { id = "rcv" })
      local s = lore.spawn("delivery.sender", { id = "snd" })
      for i = 1, 3 do assert.equal(i, s:ask({ op = "send", to = r, tag = "t" .. i }, 10)) end
      local sum = settled(s)
      assert.same({ 1, 2, 3 }, sorted(sum.confirmed))
      assert.same({}, sum.unknown) -- confirmed once each: nothing re-sent after the confirmation
      assert.same({ "sent", "sent", "sent" }, sum.seen) -- apply saw the behaviour's events only
      local got = get(r)
      assert.equal(3, #got.got)
      assert.equal(3, #got.arrivals)
    end)
    -- each intent went into the journal in the same write as its "sent" event, just before it
    local m = manifests(path, "snd")
    assert.equal(3, count(m, "sent"))
    for i, v in ipairs(m) do
      if v == "sent" then assert.equal("lore.deliver", m[i - 1]) end
    end
    assert.equal(3, count(m, "lore.deliver"))
    assert.equal(3, count(m, "lore.confirm"))
  end)

  it("re-sends to a receiver that drops the first attempts until it confirms", function()
    ph.run({}, function()
      local r = lore.spawn("delivery.receiver", { id = "rcv-drop", drop = 2 })
      local s = lore.spawn("delivery.sender", { id = "snd-drop" })
      s:ask({ op = "send", to = r, tag = "a" }, 10)
      s:ask({ op = "send", to = r, tag = "b" }, 10)
      local sum = settled(s)
      assert.same({ 1, 2 }, sorted(sum.confirmed))
      local got = get(r)
      assert.equal(2, #got.got) -- stored once each
      assert.equal(3, count(got.arrivals, 1)) -- two dropped, the third confirmed
      assert.equal(3, count(got.arrivals, 2))
    end)
  end)

  it("reaches a receiver that crashes on the first arrival and restarts", function()
    ph.run({}, function()
      local r = lore.spawn("delivery.receiver", { id = "rcv-crash", crash_first = true })
      local s = lore.spawn("delivery.sender", { id = "snd-crash" })
      s:ask({ op = "send", to = r, tag = "x" }, 10)
      local sum = settled(s)
      assert.same({ 1 }, sum.confirmed)
      assert.same({ "ref(snd-crash)#1" }, get(r).got)
    end)
  end)

  it("reaches a receiver that was stopped and is started again", function()
    ph.run({}, function()
      local r = lore.spawn("delivery.receiver", { id = "rcv-later" })
      local s = lore.spawn("delivery.sender", { id = "snd-later" })
      r:stop()
      assert.truthy(h.eventually(function()
        return not pcall(r.ask, r, { op = "get" }, 0.2)
      end, 5), "the receiver did not stop")
      s:ask({ op = "send", to = lore.ref("rcv-later"), tag = "while-down" }, 10)
      lore.sleep(0.3)
      assert.equal(1, get(s).unconfirmed)
      r = lore.spawn("delivery.receiver", { id = "rcv-later" })
      local sum = settled(s)
      assert.same({ 1 }, sum.confirmed)
      assert.equal(1, #get(r).got)
    end)
  end)

  it("confirm_delivery of an unknown, a confirmed or a malformed id returns false", function()
    ph.run({}, function()
      local r = lore.spawn("delivery.receiver", { id = "rcv-unknown" })
      local s = lore.spawn("delivery.sender", { id = "snd-unknown" })
      assert.is_false(s:ask({ op = "confirm", id = 1 }, 5)) -- nothing delivered yet
      s:ask({ op = "send", to = r, tag = "x" }, 10)
      settled(s)
      assert.is_false(s:ask({ op = "confirm", id = 1 }, 5)) -- confirmed already
      assert.is_false(s:ask({ op = "confirm", id = 99 }, 5))
      assert.is_false(s:ask({ op = "confirm", id = "1" }, 5))
      assert.is_false(s:ask({ op = "confirm", id = 1.5 }, 5))
      assert.same({ 1 }, get(s).confirmed)
    end)
  end)

  it("raises a clear error at the call beyond max_unconfirmed", function()
    ph.run({}, function()
      local s = lore.spawn("delivery.sender_max", { id = "snd-max" })
      local nobody = lore.ref("nobody-max")
      for i = 1, 3 do
        local r = s:ask({ op = "try_send", to = nobody, tag = "t" .. i }, 5)
        assert.is_true(r.ok)
        assert.equal(i, r.id)
      end
      local r = s:ask({ op = "try_send", to = nobody, tag = "t4" }, 5)
      assert.is_false(r.ok)
      assert.matches("3 deliveries are unconfirmed", r.err)
      assert.matches("max_unconfirmed %(3%)", r.err)
      assert.equal(3, get(s).unconfirmed)
      -- one confirmed frees a place; the next id follows without a gap
      assert.is_true(s:ask({ op = "confirm", id = 2 }, 5))
      r = s:ask({ op = "try_send", to = nobody, tag = "t5" }, 5)
      assert.is_true(r.ok)
      assert.equal(4, r.id)
    end)
  end)

  it("refuses a bad destination, a missing fn and a message that cannot be sent, at the call", function()
    ph.run({}, function()
      local s = lore.spawn("delivery.sender", { id = "snd-bad" })
      assert.matches("dest must be a ref", s:ask({ op = "try", to = "nobody" }, 5).err)
      assert.matches("fn must be a function", s:ask({ op = "try", to = lore.ref("x") }, 5).err)
      assert.matches("returned nil", s:ask({ op = "try", to = lore.ref("x"), fn_nil = true }, 5).err)
      assert.equal(0, get(s).unconfirmed)
      -- no id was used up by the refusals
      assert.equal(1, s:ask({ op = "send", to = lore.ref("x"), tag = "t" }, 10))
    end)
  end)

  it("is refused to a plain actor (there is no journal to keep its promises)", function()
    ph.run({}, function()
      local p = lore.spawn("delivery.plain")
      local r = p:ask({ op = "deliver", to = lore.ref("x") }, 5)
      assert.is_false(r.ok)
      assert.matches("needs a persistent actor", r.err)
      assert.equal(0, r.unconfirmed)
      assert.is_false(r.confirm)
    end)
  end)

  it("keeps a behaviour from writing an event with one of Lore's own types", function()
    ph.run({}, function()
      local s = lore.spawn("delivery.sender", { id = "snd-type" })
      local r = s:ask({ op = "bad_event_type" }, 5)
      assert.is_true(r.ok) -- refused before storage: on_persist_rejected, not a raise
      assert.equal(0, r.seq)
      assert.equal(0, get(s).seq)
    end)
  end)

  it("writes the intent even when the turn's own event is refused", function()
    ph.run({}, function()
      local r = lore.spawn("delivery.receiver", { id = "rcv-refused" })
      local s = lore.spawn("delivery.sender", { id = "snd-refused" })
      assert.equal(1, s:ask({ op = "send_bad_event", to = r, tag = "x" }, 10))
      local sum = settled(s)
      assert.same({ 1 }, sum.confirmed)
      assert.equal(1, #get(r).got)
    end)
  end)
end)

describe("entities", function()
  it("delivers to an entity's address, waking it up", function()
    ph.run({ journal = ph.memory_journal() }, function()
      local receivers = lore.entities("delivery.receiver", { name = "rcvs" })
      local s = lore.spawn("delivery.sender", { id = "snd-ent" })
      s:ask({ op = "send", to = { manager = "rcvs", id = "r1" }, tag = "x" }, 10)
      local sum = settled(s)
      assert.same({ 1 }, sum.confirmed)
      assert.same({ "ref(snd-ent)#1" }, receivers:ask("r1", { op = "get" }, 5).got)
    end)
  end)

  it("an entity with unconfirmed deliveries is not passivated until they are confirmed", function()
    ph.run({ journal = ph.memory_journal() }, function()
      local r = lore.spawn("delivery.receiver", { id = "rcv-ent", silent = true })
      local senders = lore.entities("delivery.sender", { name = "snds", passivate_after = 0.3 })
      senders:ask("e1", { op = "send", to = r, tag = "x" }, 10)
      lore.sleep(1)
      local st = senders:stats()
      assert.equal(0, st.passivated)
      assert.equal(1, st.live)
      assert.is_true(#get(r).arrivals >= 3) -- still re-sending
      r:ask({ op = "talk" }, 5)
      assert.truthy(h.eventually(function() return senders:stats().passivated == 1 end, 5),
        "never passivated after the confirmation")
      assert.equal(0, senders:ask("e1", { op = "get" }, 5).unconfirmed) -- woken: nothing left
    end)
  end)
end)

describe("redelivery", function()
  it("sends at most burst_limit per round, oldest first", function()
    ph.run({}, function()
      local r = lore.spawn("delivery.receiver", { id = "rcv-burst", silent = true })
      local s = lore.spawn("delivery.sender_burst", { id = "snd-burst" })
      assert.same({ 1, 2, 3, 4, 5 }, s:ask({ op = "send_many", to = r, tag = "t", n = 5 }, 10))
      local arrivals = eventually(function()
        local a = get(r).arrivals
        return #a >= 9 and a
      end, 15)
      assert.truthy(arrivals, "no redelivery")
      assert.same({ 1, 2, 3, 4, 5 }, sorted({ table.unpack(arrivals, 1, 5) })) -- the first sends
      assert.same({ 1, 2 }, { arrivals[6], arrivals[7] }) -- one round: the two oldest
      assert.same({ 3, 4 }, { arrivals[8], arrivals[9] }) -- the next round: the next two
    end)
  end)

  it("tells on_unconfirmed once per delivery after warn_after sends", function()
    ph.run({}, function()
      local r = lore.spawn("delivery.receiver", { id = "rcv-warn", silent = true })
      local s = lore.spawn("delivery.sender", { id = "snd-warn" })
      s:ask({ op = "send", to = r, tag = "w1" }, 10)
      s:ask({ op = "send", to = r, tag = "w2" }, 10)
      local warnings = eventually(function()
        local w = get(s).warnings
        return #w >= 2 and w
      end, 10)
      assert.truthy(warnings, "on_unconfirmed did not run")
      table.sort(warnings, function(a, b) return a.id < b.id end)
      assert.same({ id = 1, attempts = 4, tag = "w1", dest = "ref(rcv-warn)" }, warnings[1])
      assert.same({ id = 2, attempts = 4, tag = "w2", dest = "ref(rcv-warn)" }, warnings[2])
      -- re-sending goes on; the warning is not repeated
      eventually(function() return #get(r).arrivals >= 12 end, 10)
      assert.equal(2, #get(s).warnings)
      r:ask({ op = "talk" }, 5)
      settled(s)
    end)
  end)
end)

describe("recovery", function()
  it("rebuilds the unconfirmed set and re-sends it before the commands that waited", function()
    local j = ph.memory_journal()
    ph.run({ journal = j }, function()
      local s = lore.spawn("delivery.sender_slow", { id = "snd-rec" })
      for i = 1, 2 do s:ask({ op = "send", to = lore.ref("rcv-rec"), tag = "t" .. i }, 10) end
      assert.equal(2, get(s).unconfirmed) -- nobody there: dead letters
    end)
    ph.run({ journal = j }, function()
      local r = lore.spawn("delivery.receiver", { id = "rcv-rec" })
      local s = lore.spawn("delivery.sender_slow", { id = "snd-rec" })
      s:tell { op = "ping", to = r, tag = "after-recovery" } -- waits for the recovery
      local sum = settled(s)
      assert.same({ 1, 2 }, sorted(sum.confirmed))
      local got = get(r)
      assert.same({ tag = "after-recovery", after = 2 }, got.pings[1]) -- both re-sent before it
      -- the next id follows the recovered ones
      assert.equal(3, s:ask({ op = "send", to = r, tag = "t3" }, 10))
      settled(s)
    end)
    ph.run({ journal = j }, function()
      local s = lore.spawn("delivery.sender_slow", { id = "snd-rec" })
      assert.equal(0, get(s).unconfirmed) -- the confirmations were journalled too
      assert.equal(4, s:ask({ op = "send_only", to = lore.ref("nobody"), tag = "t4" }, 10))
    end)
  end)

  it("re-sends after recovery at most burst_limit at once", function()
    local j = ph.memory_journal()
    ph.run({ journal = j }, function()
      local s = lore.spawn("delivery.sender_slow", { id = "snd-rburst" })
      for i = 1, 5 do s:ask({ op = "send", to = lore.ref("rcv-rburst"), tag = "t" .. i }, 10) end
    end)
    ph.run({ journal = j }, function()
      local r = lore.spawn("delivery.receiver", { id = "rcv-rburst", silent = true })
      local s = lore.spawn("delivery.sender_slow", { id = "snd-rburst" })
      assert.equal(5, get(s).unconfirmed)
      local a = eventually(function()
        local x = get(r).arrivals
        return #x >= 2 and x
      end)
      lore.sleep(0.3)
      assert.same({ 1, 2 }, get(r).arrivals) -- burst_limit 2; the rest in 30 s
      assert.same({ 1, 2 }, a)
    end)
  end)

  it("a snapshot carries the unconfirmed set and the next id", function()
    local j = ph.memory_journal()
    ph.run({ journal = j, snapshots = j }, function()
      local s = lore.spawn("delivery.sender_snap", { id = "snd-snap" })
      for i = 1, 3 do s:ask({ op = "send", to = lore.ref("rcv-snap"), tag = "t" .. i }, 10) end
      assert.is_true(s:ask({ op = "confirm", id = 1 }, 5))
      assert.is_true(s:ask({ op = "snapshot" }, 5).ok)
      s:ask({ op = "delete_all" }, 5) -- recovery now has the snapshot alone
    end)
    ph.run({ journal = j, snapshots = j }, function()
      local r = lore.spawn("delivery.receiver", { id = "rcv-snap" })
      local s = lore.spawn("delivery.sender_snap", { id = "snd-snap" })
      local first = get(s)
      assert.equal("restored", first.snap) -- M.restore got the behaviour's own value
      assert.same({ "t1", "t2", "t3" }, first.sent)
      local sum = settled(s)
      assert.same({ 2, 3 }, sorted(sum.confirmed))
      assert.equal(4, s:ask({ op = "send", to = r, tag = "t4" }, 10))
      settled(s)
    end)
  end)
end)

describe("kill -9", function()
  local FIX = h.fixtures
  local APP = FIX .. "/delivery/app_kill.lua"
  local q = h.quote

  -- Runs the app in MODE in the background, waits for its line `ready`, kills it with
  -- SIGKILL; returns the shell's report ("status 137").
  local function run_and_kill(db, mode, n, ready)
    local script = ([[
      out=$(mktemp); %s run %s %s %s %s %d >"$out" 2>&1 &
      pid=$!
      for i in $(seq 1 3000); do
        grep -q '^%s' "$out" && break
        kill -0 $pid 2>/dev/null || break
        sleep 0.01
      done
      grep -q '^%s' "$out" || { echo "never ready:"; cat "$out"; }
      kill -9 $pid; wait $pid; echo "status $?"; rm -f "$out"
    ]]):format(q(h.lore_bin()), q(APP), q(FIX), q(db), mode, n, ready, ready)
    return h.sh("bash -c " .. q(script))
  end

  it("a sender killed between deliver and confirm delivers after its restart, confirmed once", function()
    local uri, path = ph.sqlite_journal()
    finally(function() ph.remove_db(path) end)
    assert.equal("status 137\n", run_and_kill(path, "sender", 4, "acked"))
    ph.run({ journal = uri }, function()
      local r = lore.spawn("delivery.receiver", { id = "k-receiver" })
      local s = lore.spawn("delivery.sender_kill", { id = "k-sender" })
      local sum = settled(s)
      assert.same(range(4), sorted(sum.confirmed))
      assert.same({}, sum.unknown)
      assert.equal(4, #get(r).got)
    end)
    ph.run({ journal = uri }, function()
      local s = lore.spawn("delivery.sender_kill", { id = "k-sender" })
      assert.equal(0, get(s).unconfirmed)
    end)
    local m = manifests(path, "k-sender")
    assert.equal(4, count(m, "lore.deliver"))
    assert.equal(4, count(m, "sent"))
  end)

  it("a receiver killed after storing, before its confirmation counted, stores each once", function()
    local uri, path = ph.sqlite_journal()
    finally(function() ph.remove_db(path) end)
    assert.equal("status 137\n", run_and_kill(path, "receiver", 3, "stored"))
    assert.equal(3, count(manifests(path, "kr-receiver"), "got"))
    ph.run({ journal = uri }, function()
      local r = lore.spawn("delivery.receiver", { id = "kr-receiver" })
      local s = lore.spawn("delivery.sender_kill", { id = "kr-sender" })
      local sum = settled(s)
      assert.same(range(3), sorted(sum.confirmed))
      local got = get(r)
      assert.equal(3, #got.got) -- duplicates confirmed again, stored once
      assert.equal(3, #got.arrivals)
    end)
    assert.equal(3, count(manifests(path, "kr-receiver"), "got"))
  end)
end)
