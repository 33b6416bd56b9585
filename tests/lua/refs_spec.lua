-- refs_spec.lua: refs are values: compared with ==, sent in messages, kept in state.
local lore = require "lore"
local h = require "helpers"

describe("refs", function()
  it("made by lore.ref from the same id are equal", function()
    assert.equal(lore.ref("x"), lore.ref("x"))
    assert.is_true(lore.ref("x") == lore.ref("x"))
    assert.is_false(lore.ref("x") == lore.ref("y"))
    assert.is_false(rawequal(lore.ref("x"), lore.ref("x")))
    assert.equal("x", lore.ref("x"):id())
    assert.equal("ref(x)", tostring(lore.ref("x")))
  end)

  it("lore.ref rejects a bad id", function()
    assert.has_error(function() lore.ref("") end)
    assert.has_error(function() lore.ref() end)
    assert.has_error(function() lore.ref(string.rep("x", 5000)) end)
  end)

  it("of an address compare equal after a round trip through a message", function()
    h.run(function()
      local relay = lore.spawn("relay")
      local echo = lore.spawn("echo")
      assert.is_nil(echo:id())
      local back = relay:ask { op = "self" }
      assert.equal(relay, back)
      assert.are_not.equal(echo, back)
      assert.equal(echo, echo:ask(echo))
      assert.same({ true, false, false }, relay:ask { op = "same", a = echo, b = echo })
      assert.same({ true, true, false }, relay:ask { op = "same", a = relay, b = relay })
      assert.same({ false, false, false }, relay:ask { op = "same", a = echo, b = relay })
    end)
  end)

  it("sent to an actor can be told by it", function()
    h.run(function()
      local rec = lore.spawn("recorder")
      local relay = lore.spawn("relay")
      relay:ask { op = "forward", to = rec, payload = { op = "add", v = "via relay" } }
      assert.same({ "via relay" },
        h.eventually(function() return rec:ask({ op = "get" })[1] and rec:ask { op = "get" } end))
    end)
  end)

  it("kept in an actor's state stay usable", function()
    h.run(function()
      local rec = lore.spawn("recorder")
      local relay = lore.spawn("relay")
      relay:ask { op = "keep", ref = rec }
      assert.equal(rec, relay:ask { op = "kept" })
      for i = 1, 3 do relay:ask { op = "tell_kept", payload = { op = "add", v = i } } end
      assert.same({ 1, 2, 3 }, h.eventually(function()
        local log = rec:ask { op = "get" }
        return #log == 3 and log
      end))
    end)
  end)

  it("in spawn opts reach init", function()
    h.run(function()
      local rec = lore.spawn("recorder")
      local relay = lore.spawn("relay", { keep = rec })
      assert.equal(rec, relay:ask { op = "kept" })
    end)
  end)

  it("name the sender: ctx.sender is the telling actor", function()
    h.run(function()
      local rec = lore.spawn("recorder")
      local a, b = lore.spawn("relay"), lore.spawn("relay")
      a:ask { op = "forward", to = b, payload = { op = "check_sender", expect = a, report = rec } }
      local report = h.eventually(function() return rec:ask({ op = "get" })[1] end)
      assert.same({ sender_ok = true, has_sender = true }, report)
    end)
  end)

  it("cannot be asked from inside an actor (actors tell and reply)", function()
    h.run(function()
      local relay, echo = lore.spawn("relay"), lore.spawn("echo")
      local r = relay:ask { op = "try_ask", to = echo }
      assert.is_false(r[1])
      assert.matches("ref:ask is for the application script", r[2])
    end)
  end)

  it("ctx.sender is nil for the app's asks", function()
    h.run(function()
      local relay = lore.spawn("relay")
      assert.is_true(relay:ask { op = "sender_of_ask" })
    end)
  end)

  it("of a named actor reach it from anywhere", function()
    h.run(function()
      local rec = lore.spawn("recorder", { id = "the-recorder" })
      local relay = lore.spawn("relay")
      relay:ask { op = "forward", to = lore.ref("the-recorder"), payload = { op = "add", v = 1 } }
      lore.ref("the-recorder"):tell { op = "add", v = 2 }
      local log = h.eventually(function()
        local l = rec:ask { op = "get" }
        return #l == 2 and l
      end)
      table.sort(log)
      assert.same({ 1, 2 }, log)
    end)
  end)
end)
