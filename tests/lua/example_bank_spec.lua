-- example_bank_spec.lua: examples/bank through the `lore` executable, across
-- processes: balances survive a new process and a kill -9 mid-way; refused
-- commands persist nothing.
local h = require "helpers"

local APP = h.root .. "/examples/bank/app.lua"
local q = h.quote

local function mktemp_dir() return h.tmpdir("bank-spec") end

-- Runs the app in `dir`; returns its stdout, failing the test on a non-zero exit.
local function bank(dir, ...)
  local out, err, code = h.run_app_in(dir, APP, ...)
  assert.equal(0, code, ("lore run bank %s failed:\n%s%s"):format(table.concat({ ... }, " "), out, err))
  return out
end

describe("examples/bank", function()
  local dir

  before_each(function() dir = mktemp_dir() end)
  after_each(function() os.execute("rm -rf " .. q(dir)) end)

  it("keeps balances across processes, one actor per account", function()
    assert.equal("deposited 1000: balance 1000\n", bank(dir, "b.db", "deposit", "12345678", "1000"))
    assert.equal("withdrew 300: balance 700\n", bank(dir, "b.db", "withdraw", "12345678", "300"))
    assert.equal("deposited 50: balance 50\n", bank(dir, "b.db", "deposit", "999", "50"))
    assert.equal("account 12345678: balance 700 (1 deposits, 1 withdrawals; 2 events in the journal)\n" ..
      "  Deposited      1000  -> 1000\n  Withdrawn       300  -> 700\n",
      bank(dir, "b.db", "balance", "12345678"))
    assert.equal("account 999: balance 50 (1 deposits, 0 withdrawals; 1 events in the journal)\n" ..
      "  Deposited        50  -> 50\n", bank(dir, "b.db", "balance", "999"))
    assert.equal("account 5: balance 0 (0 deposits, 0 withdrawals; 0 events in the journal)\n",
      bank(dir, "b.db", "balance", "5"))
  end)

  it("refuses a withdrawal beyond the balance, and bad amounts, persisting nothing", function()
    bank(dir, "b.db", "deposit", "1", "100")
    assert.equal("rejected: insufficient funds: the balance is 100, 101 was asked for\n",
      bank(dir, "b.db", "withdraw", "1", "101"))
    assert.equal("rejected: the amount must be a positive whole number, not 0\n",
      bank(dir, "b.db", "deposit", "1", "0"))
    assert.equal("rejected: the amount must be a positive whole number, not -5\n",
      bank(dir, "b.db", "withdraw", "1", "-5"))
    assert.equal("rejected: the amount must be a positive whole number, not ten\n",
      bank(dir, "b.db", "deposit", "1", "ten"))
    assert.matches("^account 1: balance 100 %(1 deposits, 0 withdrawals; 1 events in the journal%)",
      bank(dir, "b.db", "balance", "1"))
    assert.equal("withdrew 100: balance 0\n", bank(dir, "b.db", "withdraw", "1", "100"))
    assert.equal("rejected: insufficient funds: the balance is 0, 1 was asked for\n",
      bank(dir, "b.db", "withdraw", "1", "1"))
  end)

  it("keeps its journal in bank.db in the working directory by default", function()
    bank(dir, "deposit", "42", "7")
    local f = io.open(dir .. "/bank.db", "rb")
    assert.truthy(f, "bank.db was not created in the working directory")
    f:close()
    assert.matches("balance 7 ", bank(dir, "balance", "42"))
  end)

  it("loses no acknowledged deposit when killed with kill -9 mid-way", function()
    local script = ([[
      cd %s || exit 9
      %s run %s k.db drip 7 100000 0.002 >drip.out 2>drip.err &
      pid=$!
      for i in $(seq 1 1000); do
        [ "$(grep -c '^acked' drip.out)" -ge 20 ] && break
        kill -0 $pid 2>/dev/null || break
        sleep 0.01
      done
      kill -9 $pid
      wait $pid
      echo "status $?"
    ]]):format(q(dir), q(h.lore_bin()), q(APP))
    assert.equal("status 137\n", h.sh("bash -c " .. q(script)))
    local f = assert(io.open(dir .. "/drip.out", "rb"))
    local last, count = 0, 0
    for i, b in f:read("a"):gmatch("acked deposit (%d+) balance (%d+)\n") do
      count = count + 1
      assert.equal(count, tonumber(i))
      assert.equal(count, tonumber(b))
      last = tonumber(b)
    end
    f:close()
    assert.is_true(last >= 20, "only " .. last .. " deposit(s) acknowledged before the kill")

    local out = bank(dir, "k.db", "balance", "7")
    local balance, deposits, events = out:match("balance (%d+) %((%d+) deposits, 0 withdrawals; (%d+) events")
    balance = tonumber(balance)
    -- every acknowledged deposit, and at most one more (durable, not yet acknowledged)
    assert.is_true(balance == last or balance == last + 1, ("acknowledged %d, recovered %d"):format(last, balance))
    assert.equal(balance, tonumber(deposits))
    assert.equal(balance, tonumber(events))

    -- the account goes on from there
    assert.equal(("withdrew %d: balance 0\n"):format(balance), bank(dir, "k.db", "withdraw", "7", tostring(balance)))
  end)
end)
