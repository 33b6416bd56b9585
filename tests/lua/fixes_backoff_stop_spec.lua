-- fixes_backoff_stop_spec.lua: a plain actor waiting out a restart back-off stops at once
-- on ref:stop() and on shutdown, instead of waiting out the back-off.
local lore = require "lore"
local helpers = require "helpers"

local cfg = { scripts = { helpers.fixtures }, shutdown_timeout = 20 }

-- A child of the slow parent that has failed twice: it now waits 30 s before its restart.
local function child_in_backoff()
  local parent = lore.spawn("fixes.slow_backoff_parent")
  local child = parent:ask({ op = "spawn", name = "c" }, 5)
  assert.equal(1, child:ask({ op = "inc" }, 5))
  helpers.error_of(child.ask, child, { op = "boom" }, 5) -- restarted at once
  helpers.error_of(child.ask, child, { op = "boom" }, 5) -- restarts after 30 s
  return parent, child
end

describe("a plain actor in its restart back-off", function()
  it("stops at once on ref:stop()", function()
    local elapsed, ended = helpers.run(function()
      local parent, child = child_in_backoff()
      local t0 = helpers.now()
      child:stop()
      local ended
      assert.truthy(helpers.eventually(function()
        ended = parent:ask({ op = "ended" }, 5)
        return #ended == 1
      end, 25))
      return helpers.now() - t0, ended
    end, cfg)
    assert.truthy(elapsed < 3, ("stopped after %.2f s"):format(elapsed))
    assert.equal("stopped", ended[1].reason)
  end)

  it("stops at once when the runtime shuts down", function()
    local t0 = helpers.run(function()
      child_in_backoff()
      return helpers.now()
    end, cfg)
    local elapsed = helpers.now() - t0
    assert.truthy(elapsed < 5, ("the shutdown took %.2f s"):format(elapsed))
  end)
end)
