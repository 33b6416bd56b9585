-- ask_spec.lua: ref:ask: reply values of every type, timeouts, late replies, dead letters.
local lore = require "lore"
local h = require "helpers"

describe("ref:ask", function()
  it("returns nil and booleans", function()
    h.run(function()
      local echo = lore.spawn("echo")
      assert.is_nil(echo:ask(nil))
      assert.equal(1, select("#", echo:ask(nil)))
      assert.is_true(echo:ask(true))
      assert.is_false(echo:ask(false))
    end)
  end)

  it("keeps integers and floats distinct", function()
    h.run(function()
      local echo = lore.spawn("echo")
      local cases = { 0, 1, -1, 42, 1.0, 0.5, -2.25, 3.0, math.maxinteger, math.mininteger,
        2 ^ 53, 1e300, math.huge, -math.huge, 255, 256, 65536, 4294967296 }
      for _, v in ipairs(cases) do
        local r = echo:ask(v)
        assert.equal(v, r)
        assert.equal(math.type(v), math.type(r), "math.type of " .. tostring(v))
      end
      local nan = echo:ask(0 / 0)
      assert.is_true(nan ~= nan)
      assert.equal(math.type(1 / 0), "float")
    end)
  end)

  it("returns strings, binary-safe", function()
    h.run(function()
      local echo = lore.spawn("echo")
      local all = {}
      for i = 0, 255 do all[#all + 1] = string.char(i) end
      local bytes = table.concat(all)
      for _, s in ipairs { "", "a", "a\0b", "\0", "\0\0\0", bytes, string.rep("x\0y", 30000) } do
        local r = echo:ask(s)
        assert.equal(#s, #r)
        assert.equal(s, r)
      end
    end)
  end)

  it("returns nested tables with every key and value type", function()
    h.run(function()
      local echo = lore.spawn("echo")
      local v = {
        1, 2.5, "three", false,
        nested = { deeper = { deepest = { "x", { y = { z = 1 } } } } },
        empty = {},
        [10] = "sparse",
        [-3] = "negative",
        [2.5] = "float key",
        [true] = "bool key",
        bin = "\0\1\2",
        list = { { 1 }, { 2 }, { 3 } },
      }
      local r = echo:ask(v)
      assert.same(v, r)
      assert.equal("integer", math.type(r[1]))
      assert.equal("float", math.type(r[2]))
      assert.equal("float key", r[2.5])
      assert.equal("bool key", r[true])
    end)
  end)

  it("copies shared subtables (a DAG) rather than failing", function()
    h.run(function()
      local echo = lore.spawn("echo")
      local shared = { 1, 2 }
      local r = echo:ask { a = shared, b = shared }
      assert.same({ a = { 1, 2 }, b = { 1, 2 } }, r)
    end)
  end)

  it("raises the actor's error when the handler fails", function()
    h.run(function()
      local f = lore.spawn("faulty")
      assert.matches("faulty%.lua:%d+: boom on purpose", h.error_of(f.ask, f, "boom"))
    end)
  end)

  it("raises when the reply cannot be encoded", function()
    h.run(function()
      local f = lore.spawn("faulty")
      local err = h.error_of(f.ask, f, "bad_reply")
      assert.matches("reply%.f", err)
      assert.equal(0, f:ask("get"))
    end)
  end)

  it("raises \"timeout\" naming the target and the seconds after the timeout, and the runtime keeps working", function()
    h.run(function()
      local f = lore.spawn("faulty")
      local t0 = h.now()
      local ok, err = pcall(f.ask, f, "silent", 0.2)
      local took = h.now() - t0
      assert.is_false(ok)
      assert.equal("timeout: " .. tostring(f) .. " did not answer within 0.2 s", err)
      assert.is_true(took >= 0.15 and took < 2, "took " .. took)
      assert.equal(1, f:ask("inc"))
      local echo = lore.spawn("echo")
      assert.equal("fine", echo:ask("fine"))
      assert.equal(2, f:ask("inc"))
    end)
  end)

  it("with timeout 0 times out at once when nothing answers", function()
    h.run(function()
      local f = lore.spawn("faulty")
      assert.matches("^timeout: ", select(2, pcall(f.ask, f, "silent", 0)))
      assert.equal(1, f:ask("inc", 5))
    end)
  end)

  it("ignores a reply that arrives after its timeout", function()
    h.run(function()
      local late = lore.spawn("late")
      assert.matches("^timeout: ", select(2, pcall(late.ask, late, "hold", 0.1)))
      late:tell("release") -- now the held ask is answered, too late
      assert.equal("pong", late:ask("ping"))
      assert.equal("pong", late:ask("ping"))
      assert.equal("late", late:ask("hold"))
    end)
  end)

  it("to a stopped actor raises a dead letter error quickly", function()
    h.run(function()
      local echo = lore.spawn("echo")
      echo:stop()
      local t0 = h.now()
      local err = h.error_of(echo.ask, echo, "anyone?", 5)
      assert.matches("dead letter", err)
      assert.is_true(h.now() - t0 < 1)
      -- and once it is certainly gone
      assert.truthy(h.eventually(function() return lore.stats().alive == 0 end))
      assert.matches("dead letter", h.error_of(echo.ask, echo, "still there?", 5))
    end)
  end)

  it("to an id nobody has spawned raises a dead letter error", function()
    h.run(function()
      lore.spawn("echo") -- the runtime is up
      assert.matches("dead letter", h.error_of(lore.ref("nobody-here").ask, lore.ref("nobody-here"), 1, 5))
    end)
  end)

  it("rejects a bad timeout", function()
    h.run(function()
      local echo = lore.spawn("echo")
      assert.matches("timeout", h.error_of(echo.ask, echo, 1, -1))
      assert.matches("timeout", h.error_of(echo.ask, echo, 1, 0 / 0))
      assert.has_error(function() echo:ask(1, "soon") end)
    end)
  end)

  it("is refused from a nested coroutine", function()
    h.run(function()
      local echo = lore.spawn("echo")
      local co = coroutine.wrap(function() return echo:ask(1) end)
      assert.matches("coroutine", h.error_of(co))
      assert.equal(2, echo:ask(2))
    end)
  end)
end)
