-- fixes_snapshot_meta_spec.lua: on_snapshot's meta names its time `ts`, in milliseconds,
-- like every other meta (restore's, apply's).
local lore = require "lore"
local helpers = require "helpers"

describe("on_snapshot's meta", function()
  it("has ts in milliseconds, the same value restore gets", function()
    local path = os.tmpname()
    os.remove(path)
    local db = path .. ".db"
    local cfg = { journal = "sqlite:" .. db, snapshots = "sqlite:" .. db, scripts = { helpers.fixtures } }
    local before = os.time()
    local saved = helpers.run(function()
      local r = lore.spawn("fixes.snap_meta", { id = "m" })
      r:ask({ op = "add" }, 5)
      r:tell { op = "snap" }
      local got
      assert.truthy(helpers.eventually(function()
        got = r:ask({ op = "get" }, 5).saved
        return got ~= nil
      end, 10))
      return got
    end, cfg)
    local after = os.time()
    assert.equal(1, saved.seq)
    assert.equal("integer", math.type(saved.ts))
    -- milliseconds since the epoch: within the seconds the run took
    assert.truthy(saved.ts >= (before - 1) * 1000 and saved.ts <= (after + 1) * 1000, tostring(saved.ts))
    assert.equal(saved.ts, saved.timestamp) -- the older name, kept
    local restored = helpers.run(function()
      return lore.spawn("fixes.snap_meta", { id = "m" }):ask({ op = "get" }, 5).restored
    end, cfg)
    assert.same({ seq = 1, ts = saved.ts }, restored)
    for _, suffix in ipairs { "", "-wal", "-shm" } do os.remove(db .. suffix) end
  end)
end)
