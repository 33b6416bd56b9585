-- counter_spec.lua: the counter behaviour, tested with `lore test` (run it from examples/hello).
-- luacheck: std +busted
local lore = require "lore"
local counter = require "counter" -- the behaviour module itself: behaviours/ is on the path

describe("counter", function()
  it("starts from opts.start (a plain function call, no actor)", function()
    assert.same({ n = 10 }, counter.init { start = 10 })
    assert.same({ n = 0 }, counter.init {})
  end)

  it("adds what it is told and answers get", function()
    local c = lore.spawn("counter", { start = 10 })
    c:tell { type = "add", by = 2 }
    c:tell { type = "add" }
    assert.equal(13, c:ask({ type = "get" }, 2))
  end)

  it("keeps one count per actor", function()
    local a, b = lore.spawn("counter"), lore.spawn("counter", { start = 100 })
    a:tell { type = "add", by = 5 }
    assert.equal(5, a:ask({ type = "get" }, 2))
    assert.equal(100, b:ask({ type = "get" }, 2))
  end)
end)
