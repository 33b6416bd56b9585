-- messages_spec.lua: messages are values, copied at the send site; what cannot be sent raises there.
local lore = require "lore"
local h = require "helpers"

describe("messages", function()
  it("are copied at tell: later changes by the sender are not seen", function()
    h.run(function()
      local rec = lore.spawn("recorder")
      local v = { x = 1, inner = { "a" } }
      local msg = { op = "add", v = v }
      rec:tell(msg)
      v.x = 2
      v.inner[1] = "changed"
      msg.v = "replaced"
      rec:tell(msg)
      assert.same({ { x = 1, inner = { "a" } }, "replaced" }, rec:ask { op = "get" })
    end)
  end)

  it("are copied at ask", function()
    h.run(function()
      local echo = lore.spawn("echo")
      local msg = { n = 1 }
      local r = echo:ask(msg)
      assert.are_not.equal(msg, r)
      r.n = 5
      assert.equal(1, msg.n)
    end)
  end)

  it("sent by an actor are copied too", function()
    h.run(function()
      local rec = lore.spawn("recorder")
      local relay = lore.spawn("relay")
      relay:ask { op = "mutate_after_tell", to = rec }
      local log = h.eventually(function()
        local l = rec:ask { op = "get" }
        return #l == 2 and l
      end)
      assert.same({ { x = 1 }, { x = 2 } }, log)
    end)
  end)

  it("replies are copies: the receiver's state is not shared with the app", function()
    h.run(function()
      local rec = lore.spawn("recorder")
      rec:tell { op = "add", v = 1 }
      local log = rec:ask { op = "get" }
      log[1] = "mine"
      log[2] = "too"
      assert.same({ 1 }, rec:ask { op = "get" })
    end)
  end)

  it("holding a function raise at the send site, naming the key path", function()
    h.run(function()
      local echo = lore.spawn("echo")
      assert.matches("function at message%.f", h.error_of(echo.tell, echo, { f = print }))
      assert.matches("message%.a%.b", h.error_of(echo.tell, echo, { a = { b = function() end } }))
      assert.matches("message%[2%]", h.error_of(echo.tell, echo, { 1, print }))
      assert.matches("function", h.error_of(echo.ask, echo, { f = print }, 5))
      assert.matches("message", h.error_of(echo.tell, echo, print))
      assert.equal(1, echo:ask { op = "count" }) -- none of those arrived
    end)
  end)

  it("holding a coroutine, userdata or a cycle raise at the send site", function()
    h.run(function()
      local echo = lore.spawn("echo")
      local co = coroutine.create(function() end)
      assert.matches("thread at message%.co", h.error_of(echo.tell, echo, { co = co }))
      assert.matches("userdata at message%.file", h.error_of(echo.tell, echo, { file = io.stdout }))
      local cyclic = { a = {} }
      cyclic.a.back = cyclic
      local err = h.error_of(echo.tell, echo, cyclic)
      assert.matches("cycle", err)
      assert.matches("message%.a%.back", err)
      assert.equal(1, echo:ask { op = "count" })
    end)
  end)

  it("that an actor cannot send fail its handler, with the path", function()
    h.run(function()
      local relay = lore.spawn("relay")
      local echo = lore.spawn("echo")
      assert.matches("message%.f", h.error_of(relay.ask, relay, { op = "send_function" }, 5))
      assert.matches("cycle", h.error_of(relay.ask, relay, { op = "send_cycle", to = echo }, 5))
      assert.equal(relay, relay:ask { op = "self" })
    end)
  end)

  it("of any size up to a megabyte arrive intact", function()
    h.run(function()
      local echo = lore.spawn("echo")
      local big = {}
      for i = 1, 20000 do big[i] = { i = i, s = "item " .. i } end
      local r = echo:ask(big)
      assert.equal(20000, #r)
      assert.same(big[12345], r[12345])
      local s = string.rep("\0\255", 512 * 1024)
      assert.equal(s, echo:ask(s))
    end)
  end)
end)
