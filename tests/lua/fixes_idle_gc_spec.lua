-- fixes_idle_gc_spec.lua: a worker left with garbage and nothing to run frees it on its own
-- (Lua's collector otherwise advances only while something allocates).
local lore = require "lore"
local helpers = require "helpers"

describe("an idle worker", function()
  it("collects the garbage its last work left, with no message arriving", function()
    helpers.run(function()
      local a = lore.spawn("fixes.hoarder")
      local base = lore.stats().lua_memory
      assert.is_true(a:ask({ op = "hoard", n = 200000 }, 30))
      local hoarding = lore.stats().lua_memory
      assert.is_true(hoarding - base > 16 * 1024 * 1024, ("hoarding only %d bytes"):format(hoarding - base))
      assert.is_true(a:ask({ op = "drop" }, 30)) -- garbage now, and the worker goes quiet
      local freed = helpers.eventually(function()
        return lore.stats().lua_memory < base + (hoarding - base) / 4
      end, 30)
      assert.is_true(freed, ("lua_memory %d bytes, %d before hoarding, %d while hoarding"):format(
        lore.stats().lua_memory, base, hoarding))
    end)
  end)
end)
