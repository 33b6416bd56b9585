-- schema_evolution_spec.lua: the examples of docs/schema-evolution.md, run: events written by
-- the first version of a shop (fixtures/evolve/v1) are read by the second (fixtures/evolve/v2)
-- through its adapter files: a renamed field, a split event, a dropped event, a changed unit.
local lore = require "lore"
local helpers = require "helpers"
local ph = require "persist_helpers"

local V1 = { helpers.fixtures .. "/evolve/v1" }
local V2 = { helpers.fixtures .. "/evolve/v2" }
local ADAPTERS = { "rename_field", "split_event", "drop_obsolete", "change_unit" }

local function read(path)
  local f = assert(io.open(path))
  local s = f:read("a")
  f:close()
  return s
end

describe("schema evolution with adapters (docs/schema-evolution.md)", function()
  local uri, path
  before_each(function() uri, path = ph.sqlite_journal() end)
  after_each(function() ph.remove_db(path) end)

  it("reads the first version's events as the second version's", function()
    ph.run({ journal = uri, scripts = V1 }, function()
      local shop = lore.spawn("shop", { id = "shop-1" })
      shop:ask({ op = "add", sku = "apple", qty = 3 })
      shop:ask({ op = "address", street = "1 Main St", city = "Springfield" })
      shop:ask({ op = "view" })
      shop:ask({ op = "price", sku = "apple", euros = 1.25 })
      shop:ask({ op = "add", sku = "apple", qty = 2 })
      shop:ask({ op = "view" })
    end)
    ph.run({ journal = uri, scripts = V2 }, function()
      local shop = lore.spawn("shop", { id = "shop-1" })
      local s = shop:ask({ op = "get" })
      assert.same({ apple = 5 }, s.items) -- qty read as count
      assert.equal("1 Main St", s.street) -- one event read as two
      assert.equal("Springfield", s.city)
      assert.same({ apple = 125 }, s.prices) -- euros read as cents
      assert.same({ "item_added", "street_changed", "city_changed", "price_set", "item_added" }, s.seen)
      -- the second version writes its own forms
      shop:ask({ op = "add", sku = "pear", count = 4 })
      shop:ask({ op = "address", street = "2 Elm St", city = "Shelbyville" })
      shop:ask({ op = "price", sku = "pear", cents = 250 })
    end)
    ph.run({ journal = uri, scripts = V2 }, function()
      local s = lore.spawn("shop", { id = "shop-1" }):ask({ op = "get" })
      assert.same({ apple = 5, pear = 4 }, s.items)
      assert.same({ apple = 125, pear = 250 }, s.prices)
      assert.equal("2 Elm St", s.street)
      assert.equal("Shelbyville", s.city)
      -- queries read through the same adapters
      local types, versions = {}, {}
      for _, evt, meta in lore.query.events("shop-1") do
        types[#types + 1] = evt.type
        assert.is_nil(evt.qty)
        if evt.type == "item_added" then versions[#versions + 1] = meta.version end
      end
      assert.same({ "item_added", "street_changed", "city_changed", "price_set", "item_added",
        "item_added", "street_changed", "city_changed", "price_set" }, types)
      assert.same({ 1, 1, 2 }, versions) -- as stored: the old ones 1, the new one 2
    end)
    -- what is stored is never rewritten: the first event still says qty
    assert.equal("1", ph.sql(path, "SELECT instr(payload, 'qty') > 0 FROM events"
      .. " WHERE id = 'shop-1' AND seq = 1;"):match("%d"))
  end)

  it("shows in the guide exactly the adapter files the test runs", function()
    local guide = read(helpers.root .. "/docs/schema-evolution.md")
    for _, name in ipairs(ADAPTERS) do
      local src = read(V2[1] .. "/adapters/" .. name .. ".lua")
      assert.truthy(guide:find(src, 1, true), name .. ".lua is not in the guide as it is")
    end
  end)
end)
