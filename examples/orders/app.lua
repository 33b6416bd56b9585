-- app.lua: orders delivered at least once to a warehouse and to billing, across kill -9.
--
--   lore run examples/orders/app.lua                 the demo: runs itself three times
--                                                    (two of them killed with kill -9),
--                                                    checks the outcome, exits 0 or 1
--   lore run examples/orders/app.lua DB place ORDER SECONDS   place an order, pay within
--   lore run examples/orders/app.lua DB pay ORDER             pay it
--   lore run examples/orders/app.lua DB status [ORDER...]     what everyone knows
--
-- The demo's steps are this script again, run as a child process with a step name:
--   DB step-place        orders 1 and 2 are placed while the warehouse and billing are
--                        down (every delivery is a dead letter); killed with kill -9
--   DB step-store        the warehouse and billing run, store what they are sent but
--                        never confirm it; killed with kill -9 once they have stored it
local lore = require "lore"

local here = (arg and arg[0] or ""):match("(.*/)") or "./"
local lore_bin = arg and arg[-1] or "lore"
local args = { ... }

local function say(fmt, ...)
  io.stdout:write(fmt:format(...), "\n")
  io.stdout:flush()
end

local function configure(db)
  lore.configure {
    journal = "sqlite:" .. db,
    scripts = { here .. "behaviours" },
    log_level = os.getenv("LORE_LOG") or "error",
  }
end

local function wait_for(what, check, timeout)
  local waited = 0
  while waited < (timeout or 20) do
    local v = check()
    if v then return v end
    lore.sleep(0.05)
    waited = waited + 0.05
  end
  error("timed out waiting for " .. what, 0)
end

local ORDERS = {
  { id = "order-1", items = { apple = 2 }, amount = 30, pay_within = 60 }, -- paid in time
  { id = "order-2", items = { pear = 3 }, amount = 45, pay_within = 0.5 }, -- never paid
}

local steps = {}

-- The warehouse and billing are down: every delivery goes to dead letters, and stays
-- unconfirmed in the orders' journals. Then the process is killed.
function steps.place(db)
  configure(db)
  for _, o in ipairs(ORDERS) do
    local order = lore.spawn("order", { id = o.id })
    local r = order:ask({ type = "place", items = o.items, amount = o.amount, pay_within = o.pay_within }, 10)
    assert(r.status == "placed", "placing " .. o.id .. " answered " .. tostring(r.status))
    assert(order:ask({ type = "status" }, 10).unconfirmed == 2)
  end
  say("placed")
  lore.sleep(60) -- killed here
end

-- The orders recover and deliver again; the warehouse and billing store what they get,
-- but their confirmations never leave: the process is killed first.
function steps.store(db)
  configure(db)
  local warehouse = lore.spawn("warehouse", { id = "warehouse", confirm = false })
  local billing = lore.spawn("billing", { id = "billing", confirm = false })
  lore.spawn("order", { id = "order-1" })
  lore.spawn("order", { id = "order-2" })
  wait_for("the reservations", function()
    return warehouse:ask({ type = "status" }, 10).reservations == 2
      and billing:ask({ type = "status" }, 10).invoices == 2
  end)
  say("stored")
  lore.sleep(60) -- killed here
end

-- Runs this script with `step` as a child process, waits for its line `ready`, and kills it.
local function run_and_kill(db, step, ready)
  local q = function(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
  local script = ([[
    out=$(mktemp); %s run %s %s %s >"$out" 2>&1 &
    pid=$!
    for i in $(seq 1 6000); do
      grep -q '^%s' "$out" && break
      kill -0 $pid 2>/dev/null || break
      sleep 0.01
    done
    grep -q '^%s' "$out" && echo ready || cat "$out"
    kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null; rm -f "$out"
  ]]):format(q(lore_bin), q(here .. "app.lua"), q(db), "step-" .. step, ready, ready)
  local p = assert(io.popen("bash -c " .. q(script), "r"))
  local out = p:read("a")
  p:close()
  if out ~= "ready\n" then error(("step %s failed:\n%s"):format(step, out), 0) end
  say("step %-6s killed with kill -9 after %q", step, ready)
end

local function demo()
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p '" .. dir .. "'"))
  local db = dir .. "/orders.db"
  local ok, err = pcall(function()
    run_and_kill(db, "place", "placed")
    run_and_kill(db, "store", "stored")

    -- Everyone recovers. The orders deliver again what is unconfirmed; the warehouse and
    -- billing recognise the copies, apply nothing twice and confirm. order-2's payment
    -- timeout came due while nothing ran: it fires once, cancels the order, and the
    -- warehouse is told to release its items.
    configure(db)
    local warehouse = lore.spawn("warehouse", { id = "warehouse" })
    local billing = lore.spawn("billing", { id = "billing" })
    local orders = {}
    for _, o in ipairs(ORDERS) do orders[o.id] = lore.spawn("order", { id = o.id }) end
    local r = billing:ask({ type = "pay", order = "order-1" }, 10)
    assert(r.status == "paid", "paying order-1: " .. tostring(r.status or r.error))

    local settled = wait_for("the orders to settle", function()
      local a, b = orders["order-1"]:ask({ type = "status" }, 10), orders["order-2"]:ask({ type = "status" }, 10)
      return a.status == "paid" and a.unconfirmed == 0 and b.status == "cancelled" and b.released
        and b.unconfirmed == 0 and { a, b }
    end)
    local s1, s2 = settled[1], settled[2]
    local w = warehouse:ask({ type = "status" }, 10)
    local b = wait_for("billing to settle", function()
      local x = billing:ask({ type = "status" }, 10)
      return x.unconfirmed == 0 and x
    end)
    say("order-1: %s (reserved %s, invoiced %s)", s1.status, tostring(s1.reserved), tostring(s1.invoiced))
    say("order-2: %s (reserved %s, invoiced %s, released %s)", s2.status, tostring(s2.reserved),
      tostring(s2.invoiced), tostring(s2.released))
    say("warehouse: apple %d, pear %d; %d reservations, %d changes applied", w.stock.apple, w.stock.pear,
      w.reservations, w.applied)
    say("billing: %d invoices", b.invoices)
    -- each delivery applied exactly once, whatever was re-sent
    assert(s1.reserved and s1.invoiced and s2.reserved and s2.invoiced, "a confirmation is missing")
    assert(w.stock.apple == 8, "apple stock " .. w.stock.apple .. ", expected 8")
    assert(w.stock.pear == 10, "pear stock " .. w.stock.pear .. ", expected 10 (reserved, then released)")
    assert(w.reservations == 2 and w.applied == 3, "the warehouse applied " .. w.applied .. " changes, expected 3")
    assert(b.invoices == 2, "billing has " .. b.invoices .. " invoices, expected 2")
  end)
  os.execute("rm -rf '" .. dir .. "'")
  if not ok then error(err, 0) end
  say("ok")
end

-- Everyone recovers (and finishes what is due: deliveries, timers), then reports.
local function status(db, ids)
  configure(db)
  local warehouse = lore.spawn("warehouse", { id = "warehouse" })
  lore.spawn("billing", { id = "billing" })
  local orders = {}
  for i, id in ipairs(ids) do orders[i] = lore.spawn("order", { id = id }) end
  local states = wait_for("the deliveries", function()
    local list = {}
    for i, o in ipairs(orders) do
      list[i] = o:ask({ type = "status" }, 10)
      if list[i].unconfirmed > 0 then return nil end
    end
    return list
  end)
  local w = warehouse:ask({ type = "status" }, 10)
  say("warehouse: apple %d, pear %d", w.stock.apple or 0, w.stock.pear or 0)
  for i, id in ipairs(ids) do say("%s: %s, %d deliveries unconfirmed", id, states[i].status, states[i].unconfirmed) end
end

local db, cmd = args[1], args[2]
if not db then
  demo()
elseif cmd == "step-place" then
  steps.place(db)
elseif cmd == "step-store" then
  steps.store(db)
elseif cmd == "place" and args[3] then
  configure(db)
  lore.spawn("warehouse", { id = "warehouse" })
  lore.spawn("billing", { id = "billing" })
  local order = lore.spawn("order", { id = args[3] })
  local r = order:ask({ type = "place", items = { apple = 1 }, amount = 10, pay_within = tonumber(args[4]) or 60 }, 10)
  say("%s: %s", args[3], r.status)
  wait_for("the deliveries", function() return order:ask({ type = "status" }, 10).unconfirmed == 0 end)
elseif cmd == "pay" and args[3] then
  configure(db)
  lore.spawn("order", { id = args[3] })
  local billing = lore.spawn("billing", { id = "billing" })
  local r = billing:ask({ type = "pay", order = args[3] }, 10)
  say("%s: %s", args[3], r.status or r.error)
  wait_for("the order", function() return billing:ask({ type = "status" }, 10).unconfirmed == 0 end)
elseif cmd == "status" then
  status(db, { table.unpack(args, 3) })
else
  io.stderr:write("usage: lore run app.lua [DB place ORDER SECONDS | DB pay ORDER | DB status ORDER...]\n")
  error("unknown command " .. tostring(cmd), 0)
end
lore.shutdown()
