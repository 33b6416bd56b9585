-- cli_spec.lua: the lore executable: `lore run` arguments, options, exit codes, signals; `lore version`; `lore` itself.
local h = require "helpers"

-- Runs an app script (source text) under `lore run` with the given arguments.
local function run_app(source, ...)
  local path = h.app_file(source)
  local out, err, code, took = h.lore("run", path, ...)
  os.remove(path)
  return out, err, code, took, path
end

local function with_scripts(body)
  return ("local lore = require 'lore'\nlore.configure { scripts = { %q }, workers = 2, log_level = 'off' }\n")
    :format(h.fixtures) .. body
end

describe("lore run", function()
  it("passes its arguments as ... and in the global arg", function()
    local out, err, code, _, path = run_app([[
      local args = table.pack(...)
      print("n=" .. args.n, table.concat(args, ","))
      print("arg", #arg, arg[0] ~= nil, arg[1], arg[2], arg[3])
      print("script", arg[0])
    ]], "one", "two words", "")
    assert.equal("", err)
    assert.equal(0, code)
    local lines = {}
    for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
    assert.equal("n=3\tone,two words,", lines[1])
    assert.equal("arg\t3\ttrue\tone\ttwo words\t", lines[2])
    assert.equal("script\t" .. path, lines[3])
  end)

  it("gives the app the full standard library", function()
    local out, _, code = run_app([[
      print(type(io.open), type(os.execute), type(require "debug".traceback), type(package.loadlib))
    ]])
    assert.equal(0, code)
    assert.equal("function\tfunction\tfunction\tfunction\n", out)
  end)

  it("runs actors and can block on ask", function()
    local out, err, code = run_app(with_scripts [[
      local echo = lore.spawn("echo")
      print(echo:ask("pong"))
      local f = lore.spawn("faulty")
      print(f:ask("inc"), f:ask("inc"))
      lore.shutdown()
    ]])
    assert.equal("", err)
    assert.equal(0, code)
    assert.equal("pong\n1\t2\n", out)
  end)

  it("exits 0 when the script returns and its actors have stopped", function()
    local out, _, code = run_app(with_scripts [[
      lore.spawn("timer"):tell { op = "stop_after", delay = 0.1 }
      print("returned")
    ]])
    assert.equal(0, code)
    assert.equal("returned\n", out)
  end)

  it("exits 0 after lore.shutdown() with actors alive", function()
    local _, _, code, took = run_app(with_scripts [[
      lore.spawn("echo")
      lore.shutdown()
    ]])
    assert.equal(0, code)
    assert.is_true(took < 5)
  end)

  it("exits 1 on a script error, naming the script and line on stderr", function()
    local out, err, code, _, path = run_app("print('before')\n\nerror('it broke')\n")
    assert.equal(1, code)
    assert.equal("before\n", out)
    assert.matches(path .. ":3: it broke", err, 1, true)
  end)

  it("exits 1 promptly on a script error with actors alive", function()
    local _, err, code, took, path = run_app(with_scripts [[
      lore.spawn("echo")
      local x = nil
      print(x.field)
    ]])
    assert.equal(1, code)
    assert.matches(path .. ":5:", err, 1, true)
    assert.matches("index a nil value", err)
    assert.is_true(took < 5)
  end)

  it("exits 1 when spawn fails in the script", function()
    local _, err, code = run_app(with_scripts [[
      lore.spawn("broken")
    ]])
    assert.equal(1, code)
    assert.matches("broken%.lua:5:", err)
  end)

  it("exits 1 on a syntax error in the script, naming it", function()
    local _, err, code, _, path = run_app("local = 1\n")
    assert.equal(1, code)
    assert.matches(path .. ":1:", err, 1, true)
  end)

  it("exits 1 when the script does not exist", function()
    local _, err, code = h.lore("run", "/nonexistent/app.lua")
    assert.equal(1, code)
    assert.matches("/nonexistent/app.lua", err, 1, true)
  end)

  it("exits 2 on bad usage, naming the problem", function()
    local out, err, code = h.lore("run")
    assert.equal(2, code)
    assert.equal("", out)
    assert.matches("lore run: missing the script to run", err, 1, true)
    assert.matches("Try 'lore run --help'", err, 1, true)
    out, err, code = h.lore("run", "--bogus", "app.lua")
    assert.equal(2, code)
    assert.matches("unknown option '--bogus'", err, 1, true)
  end)

  it("prints its help for --help and -h, not a file of that name", function()
    for _, flag in ipairs { "--help", "-h" } do
      local out, err, code = h.lore("run", flag)
      assert.equal(0, code)
      assert.equal("", err)
      assert.matches("^usage: lore run APP.lua %[ARGS...%]", out)
    end
  end)

  it("runs a script named like an option after --", function()
    local _, err, code = h.lore("run", "--", "--help")
    assert.equal(1, code)
    assert.matches("cannot open --help", err, 1, true)
  end)

  it("gives the app every argument after the script, options included", function()
    local out, err, code = run_app("print(...)", "--help", "-x", "--", "plain")
    assert.equal(0, code, err)
    assert.equal("--help\t-x\t--\tplain\n", out)
  end)

  it("exits 0 promptly on SIGTERM while the app sleeps", function()
    local path = h.app_file(with_scripts [[
      lore.spawn("echo")
      print("sleeping")
      io.stdout:flush()
      lore.sleep(30)
      print("woke up")
    ]])
    local out, _, code, took = h.sh(("timeout --preserve-status -s TERM 1 %s run %s")
      :format(h.quote(h.lore_bin()), h.quote(path)))
    os.remove(path)
    assert.equal(0, code)
    assert.equal("sleeping\n", out)
    assert.is_true(took < 10, "took " .. took)
  end)

  it("exits 0 promptly on SIGINT while the app waits on an ask", function()
    local path = h.app_file(with_scripts [[
      local f = lore.spawn("faulty")
      print("asking")
      io.stdout:flush()
      f:ask("silent", 30)
    ]])
    local out, _, code, took = h.sh(("timeout --preserve-status -s INT 1 %s run %s")
      :format(h.quote(h.lore_bin()), h.quote(path)))
    os.remove(path)
    assert.equal(0, code)
    assert.equal("asking\n", out)
    assert.is_true(took < 10, "took " .. took)
  end)
end)

describe("lore version", function()
  it("prints the version", function()
    local out, _, code = h.lore("version")
    assert.equal(0, code)
    assert.matches("^lore %d+%.%d+%.%d+", out)
    local out2, _, code2 = h.lore("--version")
    assert.equal(0, code2)
    assert.equal(out, out2)
  end)

  it("has --help, and refuses operands and unknown options with exit 2", function()
    local out, err, code = h.lore("version", "--help")
    assert.equal(0, code)
    assert.equal("", err)
    assert.matches("^usage: lore version", out)
    out, err, code = h.lore("version", "extra")
    assert.equal(2, code)
    assert.equal("", out)
    assert.matches("unexpected argument 'extra'", err, 1, true)
    out, err, code = h.lore("version", "--short")
    assert.equal(2, code)
    assert.matches("unknown option '--short'", err, 1, true)
  end)
end)

describe("lore", function()
  it("without arguments prints its usage on stderr and exits 2", function()
    local out, err, code = h.lore()
    assert.equal(2, code)
    assert.equal("", out)
    assert.matches("^usage: lore ", err)
  end)

  it("prints its usage on stdout with exit 0 for --help, -h and help", function()
    for _, args in ipairs { { "--help" }, { "-h" }, { "help" } } do
      local out, err, code = h.lore(table.unpack(args))
      assert.equal(0, code)
      assert.equal("", err)
      assert.matches("^usage: lore ", out)
      for _, cmd in ipairs { "run", "test", "journal", "version" } do
        assert.matches("\n  " .. cmd .. " ", out, 1, true)
      end
    end
  end)

  it("prints a command's help for help COMMAND", function()
    for _, cmd in ipairs { "run", "test", "journal", "version" } do
      local out, err, code = h.lore("help", cmd)
      assert.equal(0, code, err)
      assert.matches("^usage: lore " .. cmd, out)
    end
  end)

  it("exits 2 naming an unknown command or option", function()
    local out, err, code = h.lore("frobnicate")
    assert.equal(2, code)
    assert.equal("", out)
    assert.matches("unknown command 'frobnicate'", err, 1, true)
    out, err, code = h.lore("--frob", "run")
    assert.equal(2, code)
    assert.matches("unknown option '--frob'", err, 1, true)
    out, err, code = h.lore("help", "frobnicate")
    assert.equal(2, code)
    assert.matches("unknown command 'frobnicate'", err, 1, true)
  end)
end)
