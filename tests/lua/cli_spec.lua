-- cli_spec.lua: the lore executable: `lore run` arguments, exit codes, signals, `lore version`.
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

  it("exits 2 on bad usage", function()
    local _, err, code = h.lore()
    assert.equal(2, code)
    assert.matches("usage", err)
    _, err, code = h.lore("run")
    assert.equal(2, code)
    assert.matches("usage", err)
    _, _, code = h.lore("frobnicate")
    assert.equal(2, code)
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
  end)
end)
