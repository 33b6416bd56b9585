-- persistence.lua: persistent actors fed from every worker, stopped and
-- recovered concurrently, for ThreadSanitizer.
--
--   lore run tests/tsan/persistence.lua [SCALE [WORKERS]]   (SCALE 1, WORKERS 3 by default)
--
-- A sqlite journal (and snapshot store) in a temporary file, WORKERS workers.
-- Feeders on every worker send persist, persist_async and persist_all
-- commands to accounts on the other workers (the journal's writer thread,
-- its reader pool and libuv's thread pool all at work); accounts snapshot
-- every 25 events and delete the events the snapshots cover. Then every
-- account is stopped and spawned again, so all of them recover at once
-- (snapshot + events, read off-thread), and each sum is checked against the
-- expected one. Any mismatch raises, and `lore run` exits non-zero.
local lore = require "lore"

local here = (arg and arg[0] or ""):match("(.*/)") or "./"
local args = { ... }
local SCALE = tonumber(args[1]) or 1
local WORKERS = math.max(2, math.tointeger(tonumber(args[2]) or 3) or 3)
local db = os.tmpname()
os.remove(db)
db = db .. ".db"
lore.configure {
  workers = WORKERS,
  journal = "sqlite:" .. db,
  synchronous = "normal",
  scripts = { here .. "behaviours" },
  log_level = "warn",
}

local function check(ok, fmt, ...)
  if not ok then error(string.format(fmt, ...), 2) end
end
local function wait_alive(at_most)
  for _ = 1, 10000 do
    if lore.stats().alive <= at_most then return end
    lore.sleep(0.002)
  end
  error(string.format("%d actors still alive, expected at most %d", lore.stats().alive, at_most))
end
local function remove_db()
  for _, suffix in ipairs { "", "-wal", "-shm" } do os.remove(db .. suffix) end
end

local ACCOUNTS, FEEDERS, ROUNDS = 12, WORKERS, math.max(3, math.floor(30 * SCALE + 0.5))
local base = lore.stats().alive

local function spawn_accounts()
  local accounts = {}
  for i = 1, ACCOUNTS do accounts[i] = lore.spawn("account", { id = "account-" .. i }) end
  return accounts
end

-- Feeder f adds 3 * f per round to every account: the sum each account must hold.
local expected_sum = 0
for f = 1, FEEDERS do expected_sum = expected_sum + 3 * f * ROUNDS end
-- add and add_async persist one event a round, add_all three.
local expected_n = 0
for r = 1, ROUNDS do expected_n = expected_n + (r % 3 == 2 and 3 or 1) end
expected_n = expected_n * FEEDERS

local ok, err = pcall(function()
  local accounts = spawn_accounts()
  local ack = lore.spawn("latch", { need = FEEDERS * ROUNDS * ACCOUNTS })
  local feeders = {}
  for f = 1, FEEDERS do
    feeders[f] = lore.spawn("feeder")
    feeders[f]:tell { cmd = "go", accounts = accounts, rounds = ROUNDS, v = f, ack = ack }
  end
  check(ack:ask("wait", 120) == FEEDERS * ROUNDS * ACCOUNTS, "acks")
  for i, a in ipairs(accounts) do
    local s = a:ask("get", 10)
    check(s.sum == expected_sum and s.n == expected_n and s.seq == expected_n,
      "account %d before the restart: sum %d n %d seq %d, expected sum %d n %d", i, s.sum, s.n,
      s.seq, expected_sum, expected_n)
  end

  for _, r in ipairs(feeders) do r:stop() end
  for _, r in ipairs(accounts) do r:stop() end
  wait_alive(base)

  -- Every account recovers at once, on every worker.
  accounts = spawn_accounts()
  for i, a in ipairs(accounts) do
    local s = a:ask("get", 30)
    check(s.sum == expected_sum and s.n == expected_n and s.seq == expected_n,
      "account %d after recovery: sum %d n %d seq %d, expected sum %d n %d", i, s.sum, s.n, s.seq,
      expected_sum, expected_n)
  end
  for _, r in ipairs(accounts) do r:stop() end
  wait_alive(base)
end)
lore.shutdown()
remove_db()
if not ok then error(err, 0) end
print(string.format("persistence: ok (%d accounts, %d events each, recovered)", ACCOUNTS, expected_n))
