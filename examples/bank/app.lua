-- app.lua: bank accounts from the command line; every run is a new process
-- that recovers the accounts it touches from the journal.
--
--   lore run examples/bank/app.lua [DB] COMMAND [ARGS...]
--
--   deposit ACCOUNT AMOUNT        put money in
--   withdraw ACCOUNT AMOUNT       take money out (refused: insufficient funds)
--   balance [ACCOUNT]             print the balance and the last transactions
--                                 (the default command; account "1" if none)
--   drip ACCOUNT N [DELAY]        deposit 1, N times (DELAY seconds apart),
--                                 printing "acked deposit I balance B" as each
--                                 is durable: for the kill -9 demonstration
--
-- DB is the journal file (default bank.db in the current directory). Each
-- account is a persistent actor whose persistence id is "account-ACCOUNT".
-- A refused command prints "rejected: REASON" and persists nothing.
local lore = require "lore"

local here = (arg and arg[0] or ""):match("(.*/)") or "./"
local args = { ... }

local commands = { deposit = true, withdraw = true, balance = true, drip = true }
local db = "bank.db"
if args[1] and not commands[args[1]] then db = table.remove(args, 1) end
local cmd = table.remove(args, 1) or "balance"
if not commands[cmd] then
  io.stderr:write("usage: lore run app.lua [DB] deposit|withdraw|balance|drip ACCOUNT ...\n")
  error("unknown command " .. cmd, 0)
end
-- With no arguments at all: the balance of the demo account "1".
local number = args[1] or (cmd == "balance" and "1" or nil)
if not number then
  io.stderr:write("usage: lore run app.lua [DB] " .. cmd .. " ACCOUNT ...\n")
  error("which account?", 0)
end

lore.configure {
  journal = "sqlite:" .. db,
  synchronous = "full",
  scripts = { here .. "behaviours" },
  log_level = "warn",
}

local account = lore.spawn("account", { id = "account-" .. number })

-- "100" -> 100; anything else is passed on as it is, for the account to reject.
local function amount(s)
  local n = tonumber(s)
  return n and math.tointeger(n) or s
end

local function send(msg)
  local r = account:ask(msg, 10)
  if r.error then
    print("rejected: " .. r.error)
    return nil
  end
  return r
end

if cmd == "deposit" or cmd == "withdraw" then
  local r = send { type = cmd, amount = amount(args[2]) }
  if r then print(("%s %s: balance %d"):format(cmd == "deposit" and "deposited" or "withdrew", args[2], r.balance)) end
elseif cmd == "balance" then
  local r = send { type = "balance" }
  print(("account %s: balance %d (%d deposits, %d withdrawals; %d events in the journal)")
    :format(number, r.balance, r.deposits, r.withdrawals, r.seq))
  for _, h in ipairs(r.history) do print(("  %-10s %8d  -> %d"):format(h[1], h[2], h[3])) end
elseif cmd == "drip" then
  local n, delay = tonumber(args[2]) or 100, tonumber(args[3]) or 0
  for i = 1, n do
    local r = send { type = "deposit", amount = 1 }
    if r then
      io.stdout:write(("acked deposit %d balance %d\n"):format(i, r.balance))
      io.stdout:flush()
    end
    if delay > 0 then lore.sleep(delay) end
  end
end
account:stop()
