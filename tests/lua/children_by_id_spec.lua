-- children_by_id_spec.lua: a parent keeps a child placed on another worker (by its id) by
-- that worker's index and the child's aid, not by a ref; stopping the parent must still
-- stop every such child (by its address). Sixteen
-- ids over two workers: the ids' hash places several on each worker (fixed ids, so the
-- placement is the same on every run).
local lore = require "lore"
local h = require "helpers"

local N = 16

describe("children placed by id", function()
  it("stop with their parent, wherever they live", function()
    h.run(function()
      local p = lore.spawn("sup.restarter")
      local before = lore.stats().alive
      for i = 1, N do p:ask({ op = "spawn", name = "c" .. i, id = "far-child-" .. i }, 10) end
      assert.equal(before + N, lore.stats().alive)
      p:stop()
      assert.truthy(h.eventually(function() return lore.stats().alive == 0 end, 10),
        "children were left running: " .. tostring(lore.stats().alive))
    end)
  end)
end)
