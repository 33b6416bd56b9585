-- fixes_shutdown_recovering_spec.lua: the runtime's shutdown gives up the recoveries in
-- progress or waiting for a permit (a recovery only reads: nothing is lost) instead of
-- finishing each one before the actor stops.
local lore = require "lore"
local helpers = require "helpers"
local ph = require "persist_helpers"

describe("a shutdown while persistent actors recover", function()
  it("gives up the recoveries instead of finishing them first", function()
    local j, n = ph.memory_journal(), 12
    ph.run({ journal = j }, function()
      for i = 1, n do
        lore.spawn("permit_probe", { id = "shut-" .. i }):ask({ op = "fill", n = 2000 }, 60)
      end
    end)
    -- One recovery at a time, each slow (permit_probe's apply is a busy loop):
    -- the first is timed, the other n - 1 are spawned and left recovering.
    local one, t_left
    ph.run({ journal = j, max_concurrent_recoveries = 1, max_instructions = 0, shutdown_timeout = 600 },
      function()
        local t0 = helpers.now()
        assert.equal(2000, lore.spawn("permit_probe", { id = "shut-1" }):ask({ op = "get" }, 120))
        one = helpers.now() - t0
        for i = 2, n do lore.spawn("permit_probe", { id = "shut-" .. i }) end
        t_left = helpers.now()
      end)
    local took = helpers.now() - t_left
    -- Finishing them would take (n - 1) recoveries; giving up takes at most the page in hand.
    assert.truthy(took < (n - 1) * one / 3,
      ("the shutdown took %.2f s; one recovery takes %.2f s"):format(took, one))
  end)
end)
