-- example_contacts_spec.lua: examples/contacts through the `lore` executable: it checks its
-- own results (exit 0), and a second run on the same journal carries on from the first.
local h = require "helpers"

local APP = h.root .. "/examples/contacts/app.lua"

describe("examples/contacts", function()
  it("runs, checks itself, and carries on across runs", function()
    local db = os.tmpname()
    os.remove(db)
    finally(function()
      for _, s in ipairs { "", "-wal", "-shm" } do os.remove(db .. s) end
    end)
    local out, err, code = h.lore("run", APP)
    assert.equal(0, code, err)
    assert.equal("write side: alice 2, bob 2, carol 1\nread side: caught up at offset 8, agrees\n"
      .. "rebuilt from scratch: 8 events handled again, agrees\n", out)
    assert.equal(0, select(3, h.lore("run", APP, db)))
    out, err, code = h.lore("run", APP, db)
    assert.equal(0, code, err)
    assert.equal("write side: alice 4, bob 4, carol 2\nread side: caught up at offset 16, agrees\n"
      .. "rebuilt from scratch: 16 events handled again, agrees\n", out)
  end)
end)
