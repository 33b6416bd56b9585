-- turn_spec.lua: a plain actor's commands of one scheduler turn run under one
-- protected call (actor_lua.c, plain_turn), yet each is a handler call of its
-- own: a raise or a runaway fails that command alone, the instruction budget
-- restarts for each, and stashing keeps the order.
local lore = require "lore"
local h = require "helpers"

local function log_of(rec) return rec:ask({ op = "get" }, 10) end

local function wait_count(rec, n)
  return h.eventually(function() return rec:ask({ op = "count" }, 10) >= n end, 20)
end

local function upto(n, without)
  local t = {}
  for i = 1, n do
    if i ~= without then t[#t + 1] = i end
  end
  return t
end

describe("the commands of one turn", function()
  it("a raise in the middle of a turn fails that command only", function()
    h.run(function()
      local rec = lore.spawn("recorder")
      local a = lore.spawn("turn_burst", { rec = rec, fail_at = 5 })
      a:tell { op = "burst", n = 20 }
      assert.truthy(wait_count(rec, 19))
      assert.same(upto(20, 5), log_of(rec))
    end)
  end)

  it("the first and the last command of a turn can fail alone too", function()
    h.run(function()
      for _, at in ipairs { 1, 64, 65 } do
        local rec = lore.spawn("recorder")
        local a = lore.spawn("turn_burst", { rec = rec, fail_at = at })
        a:tell { op = "burst", n = 70 }
        assert.truthy(wait_count(rec, 69))
        assert.same(upto(70, at), log_of(rec))
      end
    end)
  end)

  it("the watchdog stops a command that runs away in the middle of a turn, and only it", function()
    h.run(function()
      local rec = lore.spawn("recorder")
      local a = lore.spawn("turn_burst", { rec = rec, loop_at = 3 })
      a:tell { op = "burst", n = 10 }
      assert.truthy(wait_count(rec, 9))
      assert.same(upto(10, 3), log_of(rec))
    end, { max_instructions = 2000000 })
  end)

  it("gives each command the whole instruction budget, however many share the turn", function()
    h.run(function()
      local rec = lore.spawn("recorder")
      -- each command spends about half the budget (long enough for the watchdog
      -- to put the count hook on): the turn as a whole spends several budgets
      local a = lore.spawn("turn_burst", { rec = rec, spend = 3000000 })
      a:tell { op = "burst", n = 8 }
      assert.truthy(wait_count(rec, 8))
      assert.same(upto(8), log_of(rec))
    end, { max_instructions = 20000000 })
  end)

  it("a command stashed in a turn comes back after the next one, in the same order", function()
    h.run(function()
      local rec = lore.spawn("recorder")
      local a = lore.spawn("turn_burst", { rec = rec, stash_at = 2 })
      a:tell { op = "burst", n = 5 }
      assert.truthy(wait_count(rec, 5))
      assert.same({ 1, 3, 2, 4, 5 }, log_of(rec))
    end)
  end)
end)
