-- breaker_spec.lua: the journal's circuit breaker, with a journal made to fail (an sqlite
-- trigger that rolls every insert back): it trips after breaker_max_failures failed
-- commits, persists then fail fast (a rejection: no restart), a trial after
-- breaker_reset_timeout closes it, or opens it again if the journal still fails.
local lore = require "lore"
local ph = require "persist_helpers"

local hooks, eventually = ph.hooks, ph.eventually

local DEFAULTS = { breaker_max_failures = 5, breaker_reset_timeout = 10 }

-- ph.run with the breaker settings, put back to their defaults afterwards (configure
-- persists across runs in a process).
local function run(config, fn)
  local ok, err = pcall(ph.run, config, fn)
  lore.configure(DEFAULTS)
  if not ok then error(err, 0) end
end

local FAIL = "CREATE TRIGGER fail BEFORE INSERT ON events BEGIN SELECT RAISE(ROLLBACK, 'down'); END;"
local HEAL = "DROP TRIGGER fail;"

local function add(ref, v) return pcall(ref.ask, ref, { op = "add", v = v }, 5) end
local function get(ref) return ref:ask({ op = "get" }, 10) end

-- Fails one write of `a` (a journal failure: the actor restarts) and waits until it has
-- recovered again (its rc-th recovery).
local function fail_once(a, sink, failures)
  a:tell { op = "add", v = -1 }
  assert.truthy(eventually(function()
    return #hooks(sink:ask({ op = "get" }, 5), "persist_failure") >= failures
  end, 10), "the write did not fail")
  assert.truthy(eventually(function()
    return #hooks(sink:ask({ op = "get" }, 5), "recovered") >= failures + 1
  end, 10), "the actor did not recover")
end

describe("the journal circuit breaker", function()
  it("trips after N failed commits; persists then fail fast, without restarts", function()
    local uri, path = ph.sqlite_journal()
    finally(function() ph.remove_db(path) end)
    run({ journal = uri, breaker_max_failures = 2, breaker_reset_timeout = 60 }, function()
      local sink = lore.spawn("persist.sink")
      local a = lore.spawn("persist.acc", { id = "b-trip", observer = sink })
      assert.is_true((add(a, 1)))
      assert.equal("closed", lore.stats().journal_breaker)
      ph.sql(path, FAIL)
      fail_once(a, sink, 1)
      assert.equal("closed", lore.stats().journal_breaker) -- one failure is not enough
      fail_once(a, sink, 2)
      assert.equal("open", lore.stats().journal_breaker)
      assert.equal(1, lore.stats().journal_breaker_trips)
      -- now refused at once, before storage: the ask fails, the actor goes on
      for v = 10, 14 do
        local ok, err = add(a, v)
        assert.is_false(ok)
        assert.matches("circuit breaker open", tostring(err))
      end
      local s = get(a)
      assert.equal(5, #s.rejected) -- on_persist_rejected, five times
      assert.matches("circuit breaker", s.rejected[1].err)
      assert.same({ 1 }, s.log)
      local got = sink:ask({ op = "get" }, 5)
      assert.equal(2, #hooks(got, "persist_failure")) -- no more failures, no more restarts
      assert.equal(3, #hooks(got, "recovered"))
    end)
    assert.same({ 1 }, ph.stored_seqs(path, "b-trip"))
  end)

  it("is shared by every actor of the journal", function()
    local uri, path = ph.sqlite_journal()
    finally(function() ph.remove_db(path) end)
    run({ journal = uri, breaker_max_failures = 1, breaker_reset_timeout = 60 }, function()
      local sink = lore.spawn("persist.sink")
      local a = lore.spawn("persist.acc", { id = "b-a", observer = sink })
      local b = lore.spawn("persist.acc", { id = "b-b" })
      assert.is_true((add(b, 1)))
      ph.sql(path, FAIL)
      fail_once(a, sink, 1)
      assert.equal("open", lore.stats().journal_breaker)
      local ok, err = add(b, 2)
      assert.is_false(ok)
      assert.matches("circuit breaker open", tostring(err))
      assert.equal(1, #get(b).rejected)
    end)
  end)

  it("closes after a trial write succeeds once the reset period is over", function()
    local uri, path = ph.sqlite_journal()
    finally(function() ph.remove_db(path) end)
    run({ journal = uri, breaker_max_failures = 1, breaker_reset_timeout = 0.3 }, function()
      local sink = lore.spawn("persist.sink")
      local a = lore.spawn("persist.acc", { id = "b-close", observer = sink })
      ph.sql(path, FAIL)
      fail_once(a, sink, 1)
      assert.is_false((add(a, 2)))
      ph.sql(path, HEAL)
      lore.sleep(0.35)
      local ok, r = add(a, 3) -- the trial
      assert.is_true(ok, tostring(r))
      assert.equal("closed", lore.stats().journal_breaker)
      assert.is_true((add(a, 4)))
      assert.same({ 3, 4 }, get(a).log)
    end)
    assert.same({ 1, 2 }, ph.stored_seqs(path, "b-close"))
  end)

  it("opens again when the trial fails", function()
    local uri, path = ph.sqlite_journal()
    finally(function() ph.remove_db(path) end)
    run({ journal = uri, breaker_max_failures = 1, breaker_reset_timeout = 0.3 }, function()
      local sink = lore.spawn("persist.sink")
      local a = lore.spawn("persist.acc", { id = "b-reopen", observer = sink })
      ph.sql(path, FAIL)
      fail_once(a, sink, 1)
      lore.sleep(0.35)
      fail_once(a, sink, 2) -- the trial reaches the journal, and fails
      assert.equal("open", lore.stats().journal_breaker)
      assert.equal(2, lore.stats().journal_breaker_trips)
      local ok, err = add(a, 5) -- open for another period
      assert.is_false(ok)
      assert.matches("circuit breaker open", tostring(err))
    end)
  end)

  it("keeps a herd of actors from restarting over and over", function()
    local uri, path = ph.sqlite_journal()
    finally(function() ph.remove_db(path) end)
    run({ journal = uri, breaker_max_failures = 3, breaker_reset_timeout = 60 }, function()
      local sink = lore.spawn("persist.sink")
      local actors = {}
      for i = 1, 20 do actors[i] = lore.spawn("persist.acc", { id = "b-herd-" .. i, observer = sink }) end
      for _, a in ipairs(actors) do assert.is_true((add(a, 1))) end
      ph.sql(path, FAIL)
      -- every actor keeps writing; each waits until it has handled what it was sent
      local function round()
        for _ = 1, 5 do
          for _, a in ipairs(actors) do a:tell { op = "add", v = 2 } end
        end
        for _, a in ipairs(actors) do get(a) end
      end
      round()
      assert.equal("open", lore.stats().journal_breaker)
      -- each failed commit fails the writes in it; at most 3 commits failed
      local failures = #hooks(sink:ask({ op = "get" }, 5), "persist_failure")
      assert.is_true(failures >= 1 and failures <= 3 * 20, failures .. " restarts for 20 actors")
      round()
      round()
      assert.equal(failures, #hooks(sink:ask({ op = "get" }, 5), "persist_failure")) -- flat now
      for _, a in ipairs(actors) do
        local s = get(a)
        assert.equal(1, s.n) -- alive, with its state
        assert.is_true(#s.rejected >= 5)
      end
    end)
  end)

  it("holds a delivery in memory while open, and writes and sends it once the journal is back", function()
    local uri, path = ph.sqlite_journal()
    finally(function() ph.remove_db(path) end)
    -- (the reset period is long enough for the journal to be healed before a trial: a
    -- trial that fails would fail the sender's write, and an intent lost with its turn)
    run({ journal = uri, breaker_max_failures = 1, breaker_reset_timeout = 2 }, function()
      local sink = lore.spawn("persist.sink")
      local a = lore.spawn("persist.acc", { id = "b-trip2", observer = sink })
      local r = lore.spawn("delivery.receiver", { id = "b-rcv" })
      local s = lore.spawn("delivery.sender", { id = "b-snd" })
      ph.sql(path, FAIL)
      fail_once(a, sink, 1)
      assert.equal("open", lore.stats().journal_breaker)
      assert.equal(1, s:ask({ op = "send_only", to = r, tag = "held" }, 5))
      lore.sleep(0.1)
      assert.equal(1, get(s).unconfirmed)
      assert.same({}, get(r).arrivals) -- never sent before it is durable
      ph.sql(path, HEAL)
      -- (only the receiver is asked: the sender tries again by itself, nothing else wakes it)
      assert.truthy(eventually(function() return #get(r).got == 1 end, 10), "never delivered")
      assert.same({ "ref(b-snd)#1" }, get(r).got)
      assert.truthy(eventually(function() return get(s).unconfirmed == 0 end, 10), "never confirmed")
      assert.equal(2, s:ask({ op = "send", to = r, tag = "next" }, 5))
    end)
  end)

  it("is configured by lore.configure, and can be turned off", function()
    assert.has_error(function() lore.configure { breaker_max_failures = -1 } end)
    assert.has_error(function() lore.configure { breaker_reset_timeout = 0 } end)
    local uri, path = ph.sqlite_journal()
    finally(function() ph.remove_db(path) end)
    run({ journal = uri, breaker_max_failures = 0 }, function()
      local sink = lore.spawn("persist.sink")
      local a = lore.spawn("persist.acc", { id = "b-off", observer = sink })
      ph.sql(path, FAIL)
      for i = 1, 3 do fail_once(a, sink, i) end
      assert.equal("closed", lore.stats().journal_breaker)
      assert.equal(0, lore.stats().journal_breaker_trips)
    end)
  end)
end)
