-- recovery_permits_default_spec.lua: the default of max_concurrent_recoveries is 1024. A
-- fresh `lore run` process (the spec helpers always set the setting themselves), one
-- worker: a waker spawns N persistent actors in one turn, so each takes its permit (or
-- queues for one) before any recovery can complete; the runtime's peak of recoveries
-- at once is then N with enough permits, and the old default of 256 with fewer.
local h = require "helpers"

local N = 600

local APP = [[
local lore = require "lore"
local fixtures, n = ...
n = math.tointeger(tonumber(n))
lore.configure { journal = "memory:", workers = 1, scripts = { fixtures }, log_level = "off" }
local w = lore.spawn("wake.waker")
w:tell { op = "wake", prefix = "p-", from = 1, to = n }
local count = 0
for _ = 1, 600 do
  count = w:ask({ op = "answers" }, 30).count
  if count >= n then break end
  lore.sleep(0.1)
end
print(("ANSWERED %d PEAK %d NOW %d"):format(count, lore.stats().recoveries_peak, lore.stats().recoveries))
lore.shutdown()
]]

describe("max_concurrent_recoveries by default", function()
  it("lets 600 actors woken in one turn recover at once, all of them answering", function()
    local app = h.app_file(APP)
    local out, err, code = h.sh(table.concat({ h.quote(h.lore_bin()), "run", h.quote(app),
      h.quote(h.fixtures), tostring(N) }, " "))
    os.remove(app)
    assert.equal(0, code, err)
    local answered, peak, now = out:match("ANSWERED (%d+) PEAK (%d+) NOW (%d+)")
    assert.truthy(answered, "no result line: " .. out .. err)
    assert.equal(N, tonumber(answered))
    assert.equal(N, tonumber(peak))
    assert.equal(0, tonumber(now))
  end)
end)
