-- fixes_entity_ids_spec.lua: an entity's persistence id is its id, one namespace for every
-- manager; a command whose id is held by another manager's entity (or by an actor that is
-- no entity) is refused with a clear error instead of running the holder's behaviour.
local lore = require "lore"
local helpers = require "helpers"

local function run(fn)
  return helpers.run(fn, { workers = 2, scripts = { helpers.fixtures } })
end

describe("entity ids across managers", function()
  it("refuse a command for an id another manager's entity holds", function()
    local err, total, count = run(function()
      local accounts = lore.entities("ent.ledger", { name = "accounts" })
      local audits = lore.entities("echo", { name = "audits" })
      assert.equal(5, accounts:ask("x", { op = "add", amount = 5 }, 5))
      local e = helpers.error_of(audits.ask, audits, "x", { op = "add", amount = 100 }, 5)
      audits:tell("x", { op = "add", amount = 1000 }) -- refused as well, never applied
      local s = accounts:ask("x", { op = "get" }, 5)
      return e, s.total, s.count
    end)
    assert.truthy(err:find("entity id collision", 1, true), err)
    assert.truthy(err:find("'x' of entity manager 'audits'", 1, true), err)
    assert.truthy(err:find("manager 'accounts'", 1, true), err)
    assert.equal(5, total)
    assert.equal(1, count)
  end)

  it("refuse a command for an id a plain actor holds", function()
    local err, n = run(function()
      local plain = lore.spawn("echo", { id = "y" })
      local mgr = lore.entities("echo", { name = "echoes" })
      local e = helpers.error_of(mgr.ask, mgr, "y", { op = "hello" }, 5)
      return e, plain:ask({ op = "count" }, 5)
    end)
    assert.truthy(err:find("an actor that is not an entity", 1, true), err)
    assert.equal(1, n) -- only its own ask reached it
  end)

  it("let each manager's own entities through", function()
    local a, b = run(function()
      local m1 = lore.entities("echo", { name = "one" })
      local m2 = lore.entities("echo", { name = "two" })
      return m1:ask("p", { v = 1 }, 5), m2:ask("q", { v = 2 }, 5)
    end)
    assert.same({ v = 1 }, a)
    assert.same({ v = 2 }, b)
  end)
end)
