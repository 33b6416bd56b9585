-- fixes_native_view_spec.lua: a preloaded native module is one table per worker; each
-- behaviour sees it read-only, so none can change it for the others.
local lore = require "lore"
local helpers = require "helpers"

-- table.pack is a C function: as a module's open function it makes the module
-- { "fixes_shared", n = 1 }, opened once per worker.
local function run(fn)
  return helpers.run(function()
    lore.preload("fixes_shared", table.pack)
    return fn()
  end, { workers = 1, scripts = { helpers.fixtures } })
end

describe("preloaded native modules", function()
  it("refuse an assignment from a behaviour", function()
    local r = run(function()
      return lore.spawn("fixes.patcher"):ask({ op = "assign" }, 5)
    end)
    assert.is_false(r.ok)
    assert.truthy(r.err:find("read%-only"), r.err)
  end)

  it("keep what one behaviour does to its view from every other behaviour", function()
    local mine, other = run(function()
      local patcher = lore.spawn("fixes.patcher")
      local reader = lore.spawn("fixes.reader")
      patcher:ask({ op = "assign" }, 5)
      local own = patcher:ask({ op = "rawset" }, 5)
      return own, reader:ask({}, 5)
    end)
    assert.equal(99, mine)
    assert.equal(1, other.n)
    assert.equal("fixes_shared", other.first)
  end)

  it("still read like the module: fields, length and pairs", function()
    local r = run(function() return lore.spawn("fixes.patcher"):ask({ op = "read" }, 5) end)
    assert.equal(1, r.n)
    assert.equal("fixes_shared", r.first)
    assert.equal(1, r.len)
    assert.same({ "1", "n" }, r.keys)
  end)
end)
