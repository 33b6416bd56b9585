-- io_spin_spec.lua: a worker whose one I/O in flight is a journal write, with nothing else to
-- run, polls for the write's completion (io_spin_us) instead of going to sleep at once.
local lore = require "lore"
local ph = require "persist_helpers"

local function add(ref, v) return ref:ask({ op = "add", v = v }, 10) end

describe("io_spin_us", function()
  local uri, path
  before_each(function() uri, path = ph.sqlite_journal() end)
  after_each(function() ph.remove_db(path) end)

  it("has a lone actor's worker poll for each commit, and see it come", function()
    -- Each write is 1,000 events, so its commit is still running when the worker runs out of
    -- work: a one-event commit on a fast disk can end before the worker's turn does, and
    -- then there is nothing left to poll for (the spec once saw 1 poll in 20 that way).
    -- A bound far above any commit's time: every poll sees its completion.
    ph.run({ journal = uri, io_spin_us = 100000 }, function()
      local a = lore.spawn("persist.acc", { id = "spin-lone" })
      local vs = {}
      for i = 1, 1000 do vs[i] = 1 end
      for _ = 1, 20 do a:ask({ op = "add_all", vs = vs }, 10) end
      assert.equal(20000, a:ask({ op = "get" }, 10).n)
      local s = lore.stats()
      assert.is_true(s.io_spins >= 10, ("only %d of 20 commits were polled for"):format(s.io_spins))
      assert.is_true(s.io_spin_hits >= 10 and s.io_spin_hits <= s.io_spins,
        ("%d polls saw their commit, of %d"):format(s.io_spin_hits, s.io_spins))
    end)
  end)

  it("never polls when it is 0", function()
    ph.run({ journal = uri, io_spin_us = 0 }, function()
      local a = lore.spawn("persist.acc", { id = "spin-off" })
      for i = 1, 20 do add(a, i) end
      assert.equal(210, a:ask({ op = "get" }, 10).n)
      assert.equal(0, lore.stats().io_spins)
    end)
  end)

  it("does not poll for a thread-pool read (a recovery), whose completion it could not see", function()
    ph.run({ journal = uri, io_spin_us = 100000 }, function()
      add(lore.spawn("persist.acc", { id = "spin-read" }), 5)
    end)
    ph.run({ journal = uri, io_spin_us = 100000 }, function()
      local a = lore.spawn("persist.acc", { id = "spin-read" })
      assert.equal(5, a:ask({ op = "get" }, 10).n)
      assert.equal(0, lore.stats().io_spins)
    end)
  end)

  it("is checked by lore.configure", function()
    assert.has_error(function() lore.configure { io_spin_us = -1 } end)
    assert.has_error(function() lore.configure { io_spin_us = 100001 } end)
    assert.has_error(function() lore.configure { io_spin_us = "fast" } end)
  end)
end)
