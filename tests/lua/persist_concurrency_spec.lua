-- persist_concurrency_spec.lua: stash order with hundreds of persisting commands in flight,
-- from several senders, to several persistent actors spread over 2 workers.
local lore = require "lore"
local ph = require "persist_helpers"

-- Values in `log` that came from sender `k` (v // 10000 == k), in order.
local function from_sender(log, k)
  local out = {}
  for _, v in ipairs(log) do
    if v // 10000 == k then out[#out + 1] = v end
  end
  return out
end

describe("persistent actors on 2 workers", function()
  it("keep each sender's order with hundreds of commands in flight, and recover it", function()
    local j = ph.memory_journal()
    local ids, per = {}, 300
    for i = 1, 6 do ids[i] = "c-" .. i end
    local expected = {}
    ph.run({ journal = j, workers = 2 }, function()
      -- six ids: hashed over the two workers (both get some with near certainty)
      local refs = {}
      for i, id in ipairs(ids) do
        refs[i] = lore.spawn("persist.acc", { id = id })
      end
      -- two pumps (plain actors, spawned round-robin over the workers) and the
      -- app itself send to every actor at once
      local pumps = { lore.spawn("persist.pump"), lore.spawn("persist.pump") }
      for _, ref in ipairs(refs) do
        pumps[1]:tell { target = ref, base = 10000, count = per }
        pumps[2]:tell { target = ref, base = 20000, count = per }
        for v = 30001, 30000 + per do ref:tell { op = "add", v = v } end
      end
      for i, ref in ipairs(refs) do
        -- an ask goes behind the app's own commands only: wait for the pumps'
        local s = ph.eventually(function()
          local t = ref:ask({ op = "get" }, 30)
          return #t.log >= 3 * per and t
        end, 20) or ref:ask({ op = "get" }, 30)
        assert.equal(3 * per, #s.log, ids[i] .. " lost commands")
        assert.equal(3 * per, s.seq)
        for k = 1, 3 do
          assert.same(ph.range(k * 10000 + 1, k * 10000 + per), from_sender(s.log, k))
        end
        -- every command ran, then its callback, before the next command
        for n = 1, 3 * per do
          local cmd, cb = s.trace[2 * n], s.trace[2 * n + 1]
          assert.equal("cmd:" .. s.log[n], cmd)
          assert.equal("cb:" .. s.log[n] .. "@" .. n, cb)
        end
        expected[i] = s.log
      end
      local st = lore.stats()
      assert.equal(2, st.workers)
      -- the writer's group-commit counters: whole numbers, bounded by the commits
      assert.is_true(math.type(st.journal_cohort_waits) == "integer")
      assert.is_true(st.journal_batches > 0 and st.journal_writes >= 6 * 3 * per)
      assert.is_true(st.journal_cohort_timeouts >= 0)
      assert.is_true(st.journal_cohort_timeouts <= st.journal_cohort_waits)
      -- (a wait is counted before the commit it precedes: one may be under way)
      assert.is_true(st.journal_cohort_waits <= st.journal_batches + 1)
    end)
    ph.run({ journal = j, workers = 2 }, function()
      for i, id in ipairs(ids) do
        local s = lore.spawn("persist.acc", { id = id }):ask({ op = "get" }, 30)
        assert.same(expected[i], s.log)
        assert.equal(3 * per, s.seq)
      end
    end)
  end)
end)
