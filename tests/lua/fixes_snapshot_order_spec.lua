-- fixes_snapshot_order_spec.lua: one actor's snapshot saves and deletes take
-- effect in the order it issued them, however many are in flight at once.
local lore = require "lore"
local helpers = require "helpers"
local ph = require "persist_helpers"

local function tmpdb()
  local _, path = ph.sqlite_journal()
  return path
end
local sql, cleanup = ph.sql, ph.remove_db

-- A random program of events, saves and deletes, and the snapshot seqs it
-- must leave when every operation takes effect in issue order.
local function program(seed, steps)
  math.randomseed(seed)
  local ops, kept, seq, issued = {}, {}, 0, 0
  local burst
  for _ = 1, steps do
    local r = math.random()
    local op
    if r < 0.3 then
      seq = seq + 1
      ops[#ops + 1] = { type = "add" }
      burst = nil
    elseif r < 0.65 then
      op = { type = "save" }
      kept[seq] = true
    else
      local lo = math.random(0, seq + 1)
      local hi = lo + math.random(0, 3)
      op = { type = "delete", criteria = { min_seq = lo, max_seq = hi } }
      for s = lo, hi do kept[s] = nil end
    end
    if op then
      issued = issued + 1
      -- about half the snapshot operations go out in bursts from one handler
      if math.random() < 0.5 then
        if not burst then
          burst = { type = "ops", ops = {} }
          ops[#ops + 1] = burst
        end
        burst.ops[#burst.ops + 1] = op
      else
        ops[#ops + 1] = op
        burst = nil
      end
    end
  end
  local expected = {}
  for s in pairs(kept) do expected[#expected + 1] = s end
  table.sort(expected)
  return ops, expected, issued
end

describe("snapshot operations of one actor", function()
  it("take effect in issue order (random save/delete interleavings)", function()
    local cfg_scripts = { helpers.fixtures }
    for seed = 1, 12 do
      local db = tmpdb()
      local ops, expected, issued = program(seed, 120)
      helpers.run(function()
        local ref = lore.spawn("fixes.snap_orderer", { id = "o" .. seed })
        for _, op in ipairs(ops) do ref:tell(op) end
        local ok = helpers.eventually(function()
          local p = ref:ask({ type = "progress" }, 5)
          return p.done + p.failed == issued
        end, 30)
        assert.truthy(ok, "every snapshot operation answered")
        assert.equal(0, ref:ask({ type = "progress" }, 5).failed)
      end, { journal = "sqlite:" .. db, snapshots = "sqlite:" .. db, scripts = cfg_scripts })
      local rows = sql(db, ("SELECT seq FROM snapshots WHERE id='o%d' ORDER BY seq"):format(seed))
      local got = {}
      for s in rows:gmatch("%d+") do got[#got + 1] = tonumber(s) end
      assert.same(expected, got, "seed " .. seed)
      cleanup(db)
    end
  end)
end)
