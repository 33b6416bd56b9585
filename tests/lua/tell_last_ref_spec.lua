-- tell_last_ref_spec.lua: ref:tell skips its metatable check for the ref it told
-- last (send.c keeps that ref alive in an upvalue); anything else is still checked.
local lore = require "lore"
local h = require "helpers"

describe("ref:tell after a tell to a ref", function()
  it("still refuses a value that is not a ref, a userdata included", function()
    h.run(function()
      local rec = lore.spawn("recorder")
      local tell = rec.tell
      rec:tell { op = "add", v = 1 }
      rec:tell { op = "add", v = 2 } -- the same ref again: the unchecked path
      assert.matches("ref", h.error_of(tell, io.stdout, { op = "add", v = 3 }))
      assert.matches("ref", h.error_of(tell, {}, { op = "add", v = 3 }))
      assert.matches("ref", h.error_of(tell, nil, { op = "add", v = 3 }))
      rec:tell { op = "add", v = 4 }
      local other = lore.spawn("recorder")
      other:tell { op = "add", v = 5 } -- another ref becomes the last one
      rec:tell { op = "add", v = 6 }
      assert.same({ 1, 2, 4, 6 }, rec:ask({ op = "get" }, 10))
      assert.same({ 5 }, other:ask({ op = "get" }, 10))
    end)
  end)
end)
