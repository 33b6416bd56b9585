-- sandbox_spec.lua: behaviour scripts are not trusted: what they can and cannot reach.
local lore = require "lore"
local h = require "helpers"

-- what = the fixture's name for the attempt; name = what the error must mention
local refused = {
  { what = "os_execute", name = "execute" },
  { what = "os_exit", name = "exit" },
  { what = "os_remove", name = "remove" },
  { what = "io_open", name = "io" },
  { what = "require_debug", name = "debug" },
  { what = "debug_traceback", name = "debug" },
  { what = "package_loadlib", name = "package" },
  { what = "loadfile", name = "loadfile" },
  { what = "dofile", name = "dofile" },
  { what = "load_binary", name = "only text chunks" },
  { what = "collectgarbage", name = "collectgarbage" },
  { what = "require_io", name = "io" },
  { what = "string_dump", name = "dump" },
}

describe("the behaviour sandbox", function()
  for _, case in ipairs(refused) do
    it("refuses " .. case.what, function()
      h.run(function()
        local sb = lore.spawn("sandbox")
        local err = h.error_of(sb.ask, sb, { op = "try", what = case.what }, 5)
        assert.matches(case.name, err, 1, true)
        assert.matches("sandbox%.lua:%d+:", err)
        -- the actor restarted and still serves
        assert.is_table(sb:ask({ op = "allowed" }, 5))
      end)
    end)
  end

  it("allows string, table, math, os.time/date, utf8, coroutine, load of text and require of script modules", function()
    h.run(function()
      local sb = lore.spawn("sandbox")
      local r = sb:ask({ op = "allowed" }, 5)
      assert.same({
        upper = "ABC",
        fmt = "7-x",
        sorted = "1,2,3",
        floor = 3,
        maxint = math.maxinteger,
        time_ok = true,
        date = "1970",
        double = 42,
        same_module = true,
        loaded = 21,
        utf8 = "Hi",
        co = 5,
      }, r)
    end)
  end)

  it("gives behaviours a type() with Lua's answers and error", function()
    h.run(function()
      local sb = lore.spawn("sandbox")
      local r = sb:ask({ op = "types" }, 5)
      assert.same({ "nil", "boolean", "number", "number", "string", "table", "function",
        "userdata", "thread", false }, { table.unpack(r, 1, 10) })
      assert.equal("bad argument #1 to 'type' (value expected)", r[11])
      assert.matches("sandbox%.lua:%d+: bad argument #1 to 'type' %(value expected%)$", r[12])
      assert.matches("sandbox%.lua:%d+: bad argument #1 to 'tt' %(value expected%)$", r[13])
    end)
  end)

  it("refuses a global written in a handler, allows one written at module load", function()
    h.run(function()
      local sb = lore.spawn("sandbox")
      local err = h.error_of(sb.ask, sb, { op = "globals" }, 5)
      assert.matches("assignment to global 'leaked_global' in a handler: keep state in `state`", err, 1, true)
      assert.matches("sandbox%.lua:%d+:", err)
      assert.equal("set at load", sb:ask { op = "module_global" })
      -- two echoes: round-robin puts one of them on the sandbox's worker
      local e1, e2 = lore.spawn("echo"), lore.spawn("echo")
      assert.is_nil(e1:ask { op = "global" })
      assert.is_nil(e2:ask { op = "global" })
      assert.is_nil(rawget(_G, "leaked_global"))
    end)
  end)

  it("keeps one behaviour from changing string methods for the others", function()
    h.run(function()
      -- one worker: both actors share its Lua state
      local a, b = lore.spawn("sandbox"), lore.spawn("sandbox")
      assert.equal("ABC", b:ask { op = "upper" })
      a:ask { op = "poison_strings" }
      assert.equal("ABC", b:ask { op = "upper" })
      assert.equal("ABC", a:ask { op = "upper" })
    end, { workers = 1 })
  end)
end)
