-- persist_opts_spec.lua: a persistent record keeps no options table when its
-- options are the id alone (persistent.lua's P.record); a restart's init must
-- still get options that read the same as the spawn's, and options with more
-- than the id are kept as they were.
local lore = require "lore"
local ph = require "persist_helpers"

local function restart(a)
  assert.matches("raised on purpose", ph.error_of(a.ask, a, { op = "raise" }, 5))
end

describe("a persistent actor's options at a restart", function()
  it("are { id = id } again when the spawn's were the id alone", function()
    ph.run({ journal = ph.memory_journal() }, function()
      local a = lore.spawn("persist.opts_seen", { id = "opts-only-id" })
      assert.equal(2, a:ask({ op = "add", v = 2 }, 5))
      restart(a)
      assert.equal(5, a:ask({ op = "add", v = 3 }, 5)) -- after the restart's replay
      local s = a:ask({ op = "seen" }, 5)
      assert.same({ "id=opts-only-id", "id=opts-only-id" }, s.inits)
      assert.equal("opts-only-id", s.id)
      assert.equal(5, s.n)
    end)
  end)

  it("keep every field when there is more than the id", function()
    ph.run({ journal = ph.memory_journal() }, function()
      local a = lore.spawn("persist.opts_seen", { id = "opts-more", colour = "red", size = 3 })
      assert.equal(1, a:ask({ op = "add", v = 1 }, 5))
      restart(a)
      assert.equal(2, a:ask({ op = "add", v = 1 }, 5))
      local s = a:ask({ op = "seen" }, 5)
      assert.same({ "colour=red,id=opts-more,size=3", "colour=red,id=opts-more,size=3" }, s.inits)
    end)
  end)

  it("are { id = id } at a later run's recovery too", function()
    local j = ph.memory_journal()
    ph.run({ journal = j }, function()
      assert.equal(4, lore.spawn("persist.opts_seen", { id = "opts-rerun" }):ask({ op = "add", v = 4 }, 5))
    end)
    ph.run({ journal = j }, function()
      local a = lore.spawn("persist.opts_seen", { id = "opts-rerun" })
      restart(a)
      local s = a:ask({ op = "seen" }, 5)
      assert.equal(4, s.n)
      assert.same({ "id=opts-rerun", "id=opts-rerun" }, s.inits)
    end)
  end)

  it("of a plain actor are an empty table again when the spawn's were empty", function()
    ph.run({ journal = ph.memory_journal() }, function()
      local a = lore.spawn("persist.plain_opts_seen")
      restart(a)
      assert.same({ "", "" }, a:ask({ op = "seen" }, 5).inits)
      local b = lore.spawn("persist.plain_opts_seen", { key = "k", colour = "red" })
      restart(b)
      assert.same({ "colour=red,key=k", "colour=red,key=k" }, b:ask({ op = "seen" }, 5).inits)
    end)
  end)
end)
