-- journal_cli_spec.lua: `lore journal ls|events|stats` on a journal written through the Lua API.
local helpers = require "helpers"

describe("lore journal", function()
  local db, app

  setup(function()
    db = os.tmpname() .. ".db"
    app = helpers.app_file(([[
      local lore = require "lore"
      lore.configure { scripts = { %q }, journal = "sqlite:" .. %q, log_level = "off" }
      for _, id in ipairs { "b-acct", "a-acct" } do
        local r = lore.spawn("snap.ledger", { id = id })
        for i = 1, 3 do r:ask({ type = "add", v = i * 10 }, 5) end
        r:stop()
      end
    ]]):format(helpers.fixtures, db))
    local _, err, code = helpers.lore("run", app)
    assert.equal(0, code, err)
  end)

  teardown(function()
    os.remove(app)
    for _, s in ipairs { "", "-wal", "-shm", "-lock" } do os.remove(db .. s) end
  end)

  it("ls lists ids sorted with their highest seq", function()
    local out, err, code = helpers.lore("journal", "ls", "--db", "sqlite:" .. db)
    assert.equal(0, code, err)
    assert.truthy(out:match("^a%-acct%s+3\nb%-acct%s+3\n$"), out)
  end)

  it("events prints one id's events in a range, as JSON lines with --json", function()
    local out, err, code = helpers.lore("journal", "events", "--db", "sqlite:" .. db, "a-acct",
      "--from", "2", "--to", "3", "--json")
    assert.equal(0, code, err)
    local lines = {}
    for line in out:gmatch("[^\n]+") do lines[#lines + 1] = line end
    assert.equal(2, #lines)
    assert.truthy(lines[1]:find('"seq":2', 1, true))
    assert.truthy(lines[1]:find('"type":"added"', 1, true))
    assert.truthy(lines[1]:find('"v":20', 1, true))
    assert.truthy(lines[2]:find('"seq":3', 1, true))
  end)

  it("stats counts ids and events", function()
    local out, err, code = helpers.lore("journal", "stats", "--db", "sqlite:" .. db)
    assert.equal(0, code, err)
    assert.truthy(out:find("ids%s+2\n"))
    assert.truthy(out:find("events%s+6\n"))
  end)

  it("exits 2 on bad usage and 1 on a missing database", function()
    local _, _, code = helpers.lore("journal", "frobnicate")
    assert.equal(2, code)
    local _, err, code2 = helpers.lore("journal", "ls", "--db", "sqlite:/nonexistent/x.db")
    assert.equal(1, code2)
    assert.truthy(err:find("no such database"))
  end)
end)
