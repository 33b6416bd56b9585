-- fixes_timer_dead_letter_spec.lua: the runtime's own timers of an actor that has stopped
-- (here an ask's timeout) end silently instead of counting as dead letters.
local lore = require "lore"
local helpers = require "helpers"

describe("an actor that stops with an ask in flight", function()
  it("leaves no dead letter when the ask's timeout comes due", function()
    helpers.run(function()
      local silent = lore.spawn("fixes.silent")
      local asker = lore.spawn("fixes.asker_stops")
      local before = lore.stats().dead_letters
      asker:tell { op = "go", to = silent }
      assert.truthy(helpers.eventually(function() return lore.stats().alive == 1 end, 10))
      lore.sleep(0.5) -- the ask's timeout (0.2 s) has come due meanwhile
      assert.equal(before, lore.stats().dead_letters)
    end)
  end)
end)
