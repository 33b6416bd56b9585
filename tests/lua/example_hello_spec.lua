-- example_hello_spec.lua: examples/hello runs under the lore executable and prints what its README promises.
local h = require "helpers"

local app = h.root .. "/examples/hello/app.lua"

describe("examples/hello", function()
  it("runs from the repository root", function()
    local out, err, code = h.sh(("cd %s && %s run examples/hello/app.lua")
      :format(h.quote(h.root), h.quote(h.lore_bin())))
    assert.equal("", err)
    assert.equal(0, code)
    assert.equal("hello, world\ncount: 13\ncount: 18\n", out)
  end)

  it("runs from its own directory, with a name argument", function()
    local out, err, code = h.sh(("cd %s/examples/hello && %s run app.lua Ada")
      :format(h.quote(h.root), h.quote(h.lore_bin())))
    assert.equal("", err)
    assert.equal(0, code)
    assert.equal("hello, Ada\ncount: 13\ncount: 18\n", out)
  end)

  it("runs given an absolute path", function()
    local out, _, code = h.lore("run", app, "Bob")
    assert.equal(0, code)
    assert.matches("^hello, Bob\n", out)
  end)
end)
