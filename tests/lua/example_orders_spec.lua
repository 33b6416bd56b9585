-- example_orders_spec.lua: examples/orders through the `lore` executable: the demo (two
-- kill -9s, checking its own outcome) and the command line across processes, with a
-- durable payment timeout that comes due while no process runs.
local h = require "helpers"

local APP = h.root .. "/examples/orders/app.lua"
local q = h.quote

describe("examples/orders", function()
  local dir

  before_each(function() dir = h.tmpdir("orders-spec") end)
  after_each(function() os.execute("rm -rf " .. q(dir)) end)

  local function orders(...)
    local out, err, code = h.run_app_in(dir, APP, ...)
    assert.equal(0, code, ("lore run orders %s failed:\n%s%s"):format(table.concat({ ... }, " "), out, err))
    return out
  end

  it("the demo survives a kill -9 of each side and checks its result", function()
    local out = orders()
    assert.matches("step place  killed with kill %-9", out)
    assert.matches("step store  killed with kill %-9", out)
    assert.matches("order%-1: paid", out)
    assert.matches("order%-2: cancelled %(reserved true, invoiced true, released true%)", out)
    assert.matches("warehouse: apple 8, pear 10; 2 reservations, 3 changes applied", out)
    assert.matches("\nok\n$", out)
  end)

  it("cancels an unpaid order whose timeout came due while no process ran", function()
    assert.equal("order-7: placed\n", orders("o.db", "place", "order-7", "0.5"))
    os.execute("sleep 0.7")
    assert.equal("warehouse: apple 10, pear 10\norder-7: cancelled, 0 deliveries unconfirmed\n",
      orders("o.db", "status", "order-7"))
    assert.equal("order-8: placed\n", orders("o.db", "place", "order-8", "60"))
    assert.equal("order-8: paid\n", orders("o.db", "pay", "order-8"))
    assert.equal("warehouse: apple 9, pear 10\norder-7: cancelled, 0 deliveries unconfirmed\n"
      .. "order-8: paid, 0 deliveries unconfirmed\n", orders("o.db", "status", "order-7", "order-8"))
  end)
end)
