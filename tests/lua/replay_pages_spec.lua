-- replay_pages_spec.lua: long streams replayed page after page, several at once on the same
-- workers, come back whole and in order (a worker reads a long replay's next page into the
-- buffer of the page it applied last, whichever actor that page was for).
local lore = require "lore"
local ph = require "persist_helpers"

local EVENTS, BATCH, ACTORS = 30000, 1000, 4

-- Actor k's i-th value: integers of every MessagePack width, so pages differ in size.
local function value(k, i) return (i * 7919 * k) % (1 << (8 * (1 + (i + k) % 4))) end

describe("a long replay", function()
  local uri, path
  before_each(function() uri, path = ph.sqlite_journal() end)
  after_each(function() ph.remove_db(path) end)

  it("brings back every event in order, with other long replays on the same workers", function()
    local want = {}
    ph.run({ journal = uri, synchronous = "normal" }, function()
      for k = 1, ACTORS do
        local a = lore.spawn("persist.acc", { id = "long-" .. k })
        local sum = 0
        for from = 1, EVENTS, BATCH do
          local vs = {}
          for i = from, from + BATCH - 1 do
            vs[#vs + 1] = value(k, i)
            sum = sum + vs[#vs]
          end
          assert.equal(sum, a:ask({ op = "add_all", vs = vs }, 30).n)
        end
        want[k] = sum
      end
    end)
    ph.run({ journal = uri }, function()
      local refs = {}
      for k = 1, ACTORS do refs[k] = lore.spawn("persist.acc", { id = "long-" .. k }) end
      for k = 1, ACTORS do
        local got = refs[k]:ask({ op = "get" }, 60)
        assert.equal(EVENTS, got.seq)
        assert.equal(want[k], got.n)
        assert.equal(EVENTS, #got.log)
        for i = 1, EVENTS do
          if got.log[i] ~= value(k, i) then
            error(("long-%d: event %d is %s, expected %d"):format(k, i, tostring(got.log[i]), value(k, i)))
          end
        end
      end
    end)
  end)
end)
