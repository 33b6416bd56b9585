-- fixes_deep_values_spec.lua: a value nested deeper than msgpack-c's own limit (32) but
-- within the codec's (64) goes from an app script to an actor and back.
local lore = require "lore"
local helpers = require "helpers"

local function nested(depth)
  local v = 7
  for _ = 1, depth do v = { v } end
  return v
end

local function depth_of(v)
  local d = 0
  while type(v) == "table" do
    d = d + 1
    v = v[1]
  end
  return d, v
end

describe("deep values through the host", function()
  it("a 40-deep ask and its 40-deep reply", function()
    local d, leaf = helpers.run(function()
      local echo = lore.spawn("echo")
      echo:tell(nested(40)) -- a tell takes it too
      return depth_of(echo:ask(nested(40), 5))
    end)
    assert.equal(40, d)
    assert.equal(7, leaf)
  end)

  it("a 40-deep value raised by the actor reaches the asker intact", function()
    local err = helpers.run(function()
      local echo = lore.spawn("fixes.raiser")
      local ok, e = pcall(echo.ask, echo, { v = nested(40) }, 5)
      assert.is_false(ok)
      return e
    end)
    assert.equal(40, (depth_of(err)))
  end)

  it("spawn options 40 deep", function()
    local d = helpers.run(function()
      local echo = lore.spawn("echo", { id = "deep-opts", deep = nested(40) })
      return depth_of(echo:ask({ op = "opts" }, 5).deep)
    end)
    assert.equal(40, d)
  end)

  it("refuses what the codec refuses, at the send", function()
    local err = helpers.run(function()
      local echo = lore.spawn("echo")
      return helpers.error_of(echo.ask, echo, nested(70), 5)
    end)
    assert.truthy(err:find("nesting deeper than 64"), err)
  end)
end)
