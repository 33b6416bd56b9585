-- test_runner.lua: `lore test`: busted over the specs, each spec file inside a fresh runtime.
-- Called by test_cli.c with { paths, filters, output?, pattern?, defaults }; returns the exit status.
local config = ...
local lore = require "lore"

local function say(fmt, ...)
  io.stderr:write("lore test: ", fmt:format(...), "\n")
end

-- Behaviour modules and a spec directory's own helper modules are requirable.
local extra = {}
for _, dir in ipairs(config.defaults.scripts) do
  extra[#extra + 1] = dir .. "/?.lua"
  extra[#extra + 1] = dir .. "/?/init.lua"
end
for _, p in ipairs(config.paths) do
  local dir = p:match("%.lua$") and (p:match("^(.*)/[^/]*$") or ".") or p
  extra[#extra + 1] = dir .. "/?.lua"
end
package.path = table.concat(extra, ";") .. ";" .. package.path

local ok_busted, make_core = pcall(require, "busted.core")
if not ok_busted then
  say("busted is not installed (Debian: apt-get install lua-busted)")
  return 1
end

-- What busted reports that the runtime adds: shutdowns that needed force.
local files, runtime_errors = 0, 0

-- A spec's lore.shutdown() would end its file's runtime with the file half
-- run: each file's runtime stops when the file is done, and only then.
local shutdown = lore.shutdown
lore.shutdown = function() -- luacheck: ignore 122
  error("lore.shutdown() is not for specs: `lore test` stops each spec file's runtime when the file ends", 2)
end

-- busted runs each spec file's whole tree (the file's chunk, its describes
-- and its tests) through busted.safe("file", ...) from busted.execute: that
-- call runs here as the application coroutine of a new lore.run, so tests can
-- block on ask and the actors a file leaves are stopped before the next one.
package.loaded["busted.core"] = function(...)
  local busted = make_core(...)
  local safe, in_file = busted.safe, false
  function busted.safe(descriptor, run, element)
    if descriptor ~= "file" or in_file then return safe(descriptor, run, element) end
    in_file, files = true, files + 1
    lore.configure(config.defaults)
    local results
    local context = busted.context.get()
    local ok, done, why = pcall(lore.run, function()
      results = table.pack(safe(descriptor, run, element))
      shutdown()
    end)
    in_file = false
    if not results then -- the runtime ended under the file (a signal): it never finished
      while busted.context.get() ~= context do busted.context.pop() end
      ok, done = false, "the runtime stopped before the spec file finished"
    end
    if not ok or not done then
      runtime_errors = runtime_errors + 1
      say("%s: %s", tostring(element.name), tostring(ok and why or done))
    end
    if results then return table.unpack(results, 1, results.n) end
    return busted.status("error")
  end
  return busted
end

-- busted's command line, as if it had been typed.
local args = { [0] = "lore test" }
if config.output then args[#args + 1] = "--output=" .. config.output end
if config.pattern then args[#args + 1] = "--pattern=" .. config.pattern end
for _, f in ipairs(config.filters) do args[#args + 1] = "--filter=" .. f end
for _, p in ipairs(config.paths) do args[#args + 1] = p end
_G.arg = args

-- busted ends with os.exit(failures + errors): caught here, so the status is
-- 0 or 1 (a count of 256 must not wrap to 0) and the runtime closes normally.
local exit_signal = {}
local real_exit = os.exit
os.exit = function(code) -- luacheck: ignore 122
  error(setmetatable({ code = code }, exit_signal), 0)
end
local ok, err = pcall(require "busted.runner", { standalone = false })
os.exit = real_exit -- luacheck: ignore 122

local code
if ok then
  code = 0
elseif getmetatable(err) == exit_signal then
  code = (err.code == 0 or err.code == true) and 0 or 1
else
  say("%s", tostring(err))
  return 1
end
if files == 0 then
  say("no spec files found in %s", table.concat(config.paths, ", "))
  return 1
end
if runtime_errors > 0 then return 1 end
return code
