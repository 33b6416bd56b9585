-- example_cart_spec.lua: examples/cart through the `lore` executable, across
-- processes: the cart a run leaves is the cart the next run recovers, also
-- after the process was killed with kill -9 in the middle of persisting.
local h = require "helpers"

local APP = h.root .. "/examples/cart/app.lua"
local q = h.quote

local function mktemp_dir() return h.tmpdir("cart-spec") end

-- Runs the app in `dir` (the working directory) with its arguments; returns
-- stdout, stderr and the exit status.
local function cart(dir, ...)
  local out, err, code = h.run_app_in(dir, APP, ...)
  return out, err, code
end

local function ok(dir, ...)
  local out, err, code = cart(dir, ...)
  assert.equal(0, code, ("lore run cart %s failed:\n%s%s"):format(table.concat({ ... }, " "), out, err))
  return out
end

describe("examples/cart", function()
  local dir

  before_each(function() dir = mktemp_dir() end)
  after_each(function() os.execute("rm -rf " .. q(dir)) end)

  it("keeps the cart across processes", function()
    assert.equal("added apple x3: now 3\nadded pear x2: now 2\n", ok(dir, "c.db", "add", "apple", "3", "pear", "2"))
    assert.equal("cart-42: 2 item(s), 5 unit(s), 0 order(s) placed, 2 event(s) in the journal\n" ..
      "  apple        x3\n  pear         x2\n", ok(dir, "c.db", "show"))
    assert.equal("removed apple: 1 left\n", ok(dir, "c.db", "remove", "apple", "2"))
    assert.equal("removed pear: 0 left\n", ok(dir, "c.db", "remove", "pear"))
    assert.equal("cart-42: 1 item(s), 1 unit(s), 0 order(s) placed, 4 event(s) in the journal\n" ..
      "  apple        x1\n", ok(dir, "c.db", "show"))
    assert.equal("order #1 placed: 1 unit(s): apple x1\n", ok(dir, "c.db", "checkout"))
    assert.equal("cart-42: 0 item(s), 0 unit(s), 1 order(s) placed, 5 event(s) in the journal\n",
      ok(dir, "c.db", "show"))
    ok(dir, "c.db", "add", "fig", "1")
    assert.equal("cleared\n", ok(dir, "c.db", "clear"))
    assert.matches("0 unit%(s%), 1 order%(s%) placed, 7 event%(s%)", ok(dir, "c.db", "show"))
  end)

  it("rejects bad commands without persisting anything", function()
    ok(dir, "c.db", "add", "apple", "2")
    assert.equal("rejected: qty must be a positive whole number, not 0\n", ok(dir, "c.db", "add", "kiwi", "0"))
    assert.equal("rejected: qty must be a positive whole number, not -1\n", ok(dir, "c.db", "add", "kiwi", "-1"))
    assert.equal("rejected: qty must be a positive whole number, not 1.5\n", ok(dir, "c.db", "add", "kiwi", "1.5"))
    assert.equal("rejected: qty must be a positive whole number, not lots\n", ok(dir, "c.db", "add", "kiwi", "lots"))
    assert.equal("rejected: there is no plum in the cart\n", ok(dir, "c.db", "remove", "plum"))
    assert.equal("rejected: cannot remove 3 apple: the cart holds 2\n", ok(dir, "c.db", "remove", "apple", "3"))
    assert.equal("cart-42: 1 item(s), 2 unit(s), 0 order(s) placed, 1 event(s) in the journal\n" ..
      "  apple        x2\n", ok(dir, "c.db", "show"))
    ok(dir, "c.db", "clear")
    assert.equal("rejected: cannot check out an empty cart\n", ok(dir, "c.db", "checkout"))
  end)

  it("keeps its journal in cart.db in the working directory by default", function()
    ok(dir, "add", "apple", "1")
    local f = io.open(dir .. "/cart.db", "rb")
    assert.truthy(f, "cart.db was not created in the working directory")
    f:close()
    assert.matches("apple        x1", ok(dir, "show"))
  end)

  it("loses no acknowledged item when killed with kill -9 mid-way", function()
    -- fill acknowledges each item once its event is durable; it is killed
    -- once a few have been, while it is still adding more.
    local script = ([[
      cd %s || exit 9
      %s run %s k.db fill 100000 0.002 >fill.out 2>fill.err &
      pid=$!
      for i in $(seq 1 1000); do
        [ "$(grep -c '^acked' fill.out)" -ge 20 ] && break
        kill -0 $pid 2>/dev/null || break
        sleep 0.01
      done
      kill -9 $pid
      wait $pid
      echo "status $?"
    ]]):format(q(dir), q(h.lore_bin()), q(APP))
    local out = h.sh("bash -c " .. q(script))
    assert.equal("status 137\n", out)
    local f = assert(io.open(dir .. "/fill.out", "rb"))
    local acked = {}
    for n in f:read("a"):gmatch("acked item%-(%d+)\n") do acked[#acked + 1] = tonumber(n) end
    f:close()
    assert.is_true(#acked >= 20, "the fill acknowledged only " .. #acked .. " item(s) before the kill")
    for i, n in ipairs(acked) do assert.equal(i, n) end

    local shown = ok(dir, "k.db", "show")
    local units = tonumber(shown:match("(%d+) unit%(s%)"))
    -- every acknowledged item, and at most one more (durable, not yet acknowledged)
    assert.is_true(units == #acked or units == #acked + 1,
      ("%d acknowledged, %d recovered"):format(#acked, units))
    for i = 1, units do assert.truthy(shown:find("\n  item%-" .. i .. " +x1\n"), "item-" .. i .. " missing") end

    -- and the recovered cart takes new commands after the crash
    assert.equal(("added apple x1: now 1\n"), ok(dir, "k.db", "add", "apple", "1"))
    assert.matches(("%d event%%(s%%) in the journal"):format(units + 1), ok(dir, "k.db", "show"))
  end)
end)
