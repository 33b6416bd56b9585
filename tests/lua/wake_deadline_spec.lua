-- wake_deadline_spec.lua: a recovery that makes no progress within recovery_timeout fails
-- (the deadline each recovering actor has in its worker's list), and recoveries that end
-- in time are not failed by theirs.
local lore = require "lore"
local ph = require "persist_helpers"

local function hex(s) return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end)) end

describe("the recovery timeout", function()
  it("fails a recovery stuck on its first read, and only that one", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert.truthy(os.execute("mkdir " .. dir))
    -- The snapshot store finds a snapshot of "stall" whose file is a FIFO: reading it
    -- blocks a pool thread until someone opens the other end.
    local fifo = dir .. "/" .. hex("stall") .. "-1-1.snap"
    assert.truthy(os.execute("mkfifo " .. fifo))
    local failed, others
    ph.run({ journal = ph.memory_journal(), snapshots = "dir:" .. dir, recovery_timeout = 1,
      workers = 2 }, function()
      local inbox = lore.spawn("wake.inbox")
      -- first, recoveries that end in time (their deadlines must go with them)
      local refs = {}
      for i = 1, 20 do refs[i] = lore.spawn("wake.stall", { id = "fine-" .. i, observer = inbox }) end
      for i = 1, 20 do assert.equal(0, refs[i]:ask("n?", 10)) end
      -- then the stuck one (alone in its read: a read waits behind the one before it)
      lore.spawn("wake.stall", { id = "stall", observer = inbox })
      failed = ph.eventually(function()
        local got = inbox:ask({ op = "list" }, 10)
        return #got > 0 and got
      end, 20)
      lore.sleep(2.5) -- over two timeouts more: the recovered ones must not fail
      others = inbox:ask({ op = "list" }, 10)
      for i = 1, 20 do assert.equal(0, refs[i]:ask("n?", 10)) end
      -- let the blocked read end (it finds no snapshot data: the actor is gone by now)
      os.execute("timeout 5 sh -c 'exec 3>" .. fifo .. "'")
    end)
    os.remove(fifo)
    os.remove(dir)
    assert.truthy(failed, "the stuck recovery never failed")
    assert.equal(1, #others, "only the stuck recovery fails")
    assert.matches("recovery of stall timed out", others[1].failed)
  end)
end)
