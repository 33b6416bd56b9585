-- wake_many_spec.lua: hundreds of persistent actors woken in one turn (ctx:spawn, then a
-- command each): their recoveries' first reads go to the thread pool in batches, a full
-- batch at once, and with few permits most actors wait for one. Every actor must recover
-- all of its own events, and only its own, before the command stashed meanwhile runs.
local lore = require "lore"
local ph = require "persist_helpers"

local N = 300

-- Actor i holds i % 5 + 1 events (w-1 .. w-N), written by a first run.
local function filled_journal()
  local uri, path = ph.sqlite_journal()
  ph.run({ journal = uri, workers = 2 }, function()
    local refs = {}
    for i = 1, N do refs[i] = lore.spawn("wake.counter", { id = "w-" .. i }) end
    for i = 1, N do assert.equal(i % 5 + 1, refs[i]:ask({ op = "fill", n = i % 5 + 1 }, 30)) end
  end)
  return uri, path
end

local function wake_all(uri, extra)
  local cfg = { journal = uri, workers = 2 }
  for k, v in pairs(extra or {}) do cfg[k] = v end
  local answers = { got = {}, count = 0 }
  ph.run(cfg, function()
    -- two wakers (round-robin over the workers), half of the ids each
    local ws = { lore.spawn("wake.waker"), lore.spawn("wake.waker") }
    ws[1]:tell { op = "wake", prefix = "w-", from = 1, to = N // 2 }
    ws[2]:tell { op = "wake", prefix = "w-", from = N // 2 + 1, to = N }
    ph.eventually(function()
      local a, b = ws[1]:ask({ op = "answers" }, 30), ws[2]:ask({ op = "answers" }, 30)
      return a.count + b.count >= N
    end, 60)
    for _, w in ipairs(ws) do
      local a = w:ask({ op = "answers" }, 30)
      for id, v in pairs(a.got) do answers.got[id] = v end
      answers.count = answers.count + a.count
    end
  end)
  return answers
end

describe("waking many persistent actors at once", function()
  for _, case in ipairs {
    { name = "with the default permits", cfg = nil },
    { name = "with 7 recovery permits", cfg = { max_concurrent_recoveries = 7 } },
  } do
    it("recovers every one's own events " .. case.name, function()
      local uri, path = filled_journal()
      local answers = wake_all(uri, case.cfg)
      ph.remove_db(path)
      assert.equal(N, answers.count, "not every actor answered once")
      for i = 1, N do
        assert.same({ n = i % 5 + 1, seq = i % 5 + 1 }, answers.got["w-" .. i], "w-" .. i)
      end
    end)
  end

  it("spawns children by id on either worker, and stops them with their parent", function()
    ph.run({ workers = 2 }, function()
      local p = lore.spawn("wake.parent")
      assert.equal(40, p:ask({ op = "spawn", n = 40 }, 10))
      for i = 1, 40 do assert.equal("kid-" .. i, lore.ref("kid-" .. i):ask("id?", 10)) end
      assert.equal(41, lore.stats().alive)
      p:stop()
      assert.truthy(ph.eventually(function() return lore.stats().alive == 0 end, 10),
        "children outlived their parent")
    end)
  end)
end)
