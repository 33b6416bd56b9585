-- app.lua: the shopping cart from the command line; every run is a new
-- process that recovers the cart from its journal.
--
--   lore run examples/cart/app.lua [DB] COMMAND [ARGS...]
--
--   add SKU QTY [SKU QTY ...]   add items
--   remove SKU [QTY]            remove some (or all) of an item
--   clear                       empty the cart
--   checkout                    place the order: prints it, empties the cart
--   show                        print the cart
--   fill N [DELAY]              add item-1 .. item-N one at a time (DELAY seconds
--                               apart, default 0), printing "acked item-I" as each
--                               is durable: for the kill -9 demonstration
--
-- DB is the journal file (default cart.db in the current directory). The cart
-- id is "cart-42" unless CART_ID is set. A rejected command prints
-- "rejected: REASON" and persists nothing.
local lore = require "lore"

local here = (arg and arg[0] or ""):match("(.*/)") or "./"
local args = { ... }

local commands = { add = true, remove = true, clear = true, checkout = true, show = true, fill = true }
local db = "cart.db"
if args[1] and not commands[args[1]] then db = table.remove(args, 1) end
local cmd = table.remove(args, 1) or "show"
if not commands[cmd] then
  io.stderr:write("usage: lore run app.lua [DB] add|remove|clear|checkout|show|fill ...\n")
  error("unknown command " .. cmd, 0)
end

lore.configure {
  journal = "sqlite:" .. db,
  synchronous = "full", -- an acknowledged change survives a crash of the machine, too
  scripts = { here .. "behaviours" },
  log_level = "warn",
}

local id = os.getenv("CART_ID") or "cart-42"
local cart = lore.spawn("cart", { id = id })

local function show(r)
  local skus = {}
  for sku in pairs(r.items) do skus[#skus + 1] = sku end
  table.sort(skus, function(a, b)
    local na, nb = tonumber(a:match("^item%-(%d+)$")), tonumber(b:match("^item%-(%d+)$"))
    if na and nb then return na < nb end
    return a < b
  end)
  print(("%s: %d item(s), %d unit(s), %d order(s) placed, %d event(s) in the journal")
    :format(id, #skus, r.units, r.orders, r.seq))
  for _, sku in ipairs(skus) do print(("  %-12s x%d"):format(sku, r.items[sku])) end
end

-- "3" -> 3; anything else is passed on as it is, for the cart to reject.
local function count(s)
  local n = tonumber(s)
  return n and math.tointeger(n) or s
end

local function send(msg)
  local r = cart:ask(msg, 10)
  if r.error then
    print("rejected: " .. r.error)
    return nil
  end
  return r
end

if cmd == "show" then
  show(send { type = "get" })
elseif cmd == "add" then
  if #args == 0 then args = { "?" } end
  for i = 1, #args, 2 do
    local sku = args[i]
    local r = send { type = "add", sku = sku, qty = count(args[i + 1]) }
    if r then print(("added %s x%s: now %d"):format(sku, args[i + 1], r.items[sku])) end
  end
elseif cmd == "remove" then
  local r = send { type = "remove", sku = args[1], qty = count(args[2]) }
  if r then print(("removed %s: %d left"):format(args[1], r.items[args[1]] or 0)) end
elseif cmd == "clear" then
  if send { type = "clear" } then print("cleared") end
elseif cmd == "checkout" then
  local r = send { type = "checkout" }
  if r then
    local parts = {}
    for sku, qty in pairs(r.order) do parts[#parts + 1] = sku .. " x" .. qty end
    table.sort(parts)
    print(("order #%d placed: %d unit(s): %s"):format(r.orders, r.ordered_units, table.concat(parts, ", ")))
  end
elseif cmd == "fill" then
  local n, delay = tonumber(args[1]) or 100, tonumber(args[2]) or 0
  for i = 1, n do
    if send { type = "add", sku = "item-" .. i, qty = 1 } then
      io.stdout:write("acked item-", i, "\n")
      io.stdout:flush()
    end
    if delay > 0 then lore.sleep(delay) end
  end
end
cart:stop()
