-- helpers.lua: what the specs share: a fresh runtime per test, the fixtures' path, the lore executable.
local lore = require "lore"

local M = {}

local function dir_of(path)
  return path:match("^(.*)/[^/]*$") or "."
end

local function absolute(path)
  if path:sub(1, 1) == "/" then return path end
  local cwd = os.getenv("PWD") or "."
  return (cwd .. "/" .. path):gsub("/%./", "/")
end

-- tests/lua/, wherever busted was started from
M.dir = absolute(dir_of(debug.getinfo(1, "S").source:sub(2)))
M.fixtures = M.dir .. "/fixtures"
M.root = dir_of(dir_of(M.dir))

-- Every run starts from these (configure persists across runs in a process,
-- so a spec that changes one setting must not leak it into the next).
M.defaults = {
  journal = "memory:",
  snapshots = "memory:",
  scripts = { M.fixtures },
  workers = 2,
  max_instructions = 100000000,
  memory_limit = 0,
  max_concurrent_recoveries = 50,
  recovery_timeout = 30,
  log_level = "off",
}

-- Runs fn() as the application coroutine on a fresh runtime configured with
-- M.defaults plus `config`, then shuts the runtime down, so actors left alive
-- never hang a test, and configures M.defaults again, so `config` does not
-- leak into later runs. fn's error (a busted assertion too) is raised again
-- here, unchanged, after the runtime has stopped. Returns what fn returned.
function M.run(fn, config)
  local cfg = {}
  for k, v in pairs(M.defaults) do cfg[k] = v end
  for k, v in pairs(config or {}) do cfg[k] = v end
  lore.configure(cfg)
  local results, err
  lore.run(function()
    local packed = table.pack(pcall(fn))
    if packed[1] then
      results = table.pack(table.unpack(packed, 2, packed.n))
    else
      err = packed[2]
    end
    lore.shutdown()
  end)
  lore.configure(M.defaults)
  if err ~= nil then error(err, 0) end
  return table.unpack(results, 1, results.n)
end

-- Wall-clock seconds (10 ms resolution on Linux; stock Lua has no finer clock).
function M.now()
  local f = io.open("/proc/uptime", "r")
  if f then
    local t = f:read("n")
    f:close()
    if t then return t end
  end
  return os.time()
end

-- Calls check() until it returns a true value (returned), sleeping `step`
-- seconds between tries on the runtime; gives up after `timeout` seconds and
-- returns the last value. For effects no ask can wait for (another actor's
-- on_stop, a stop becoming visible in lore.stats).
function M.eventually(check, timeout, step)
  local deadline = M.now() + (timeout or 5)
  local v = check()
  while not v and M.now() < deadline do
    lore.sleep(step or 0.01)
    v = check()
  end
  return v
end

-- The worker a ref lives on (from its "ref(W:AID)" form), or nil.
function M.worker_of(ref)
  return tonumber(tostring(ref):match("^ref%((%d+):"))
end

-- Calls f(...) expecting it to raise; returns the error as a string.
function M.error_of(f, ...)
  local ok, err = pcall(f, ...)
  assert(not ok, "expected an error, the call succeeded")
  return tostring(err)
end

---------------------------------------------------------------------------
-- The lore executable
---------------------------------------------------------------------------

-- $LORE_BIN (scripts/run-busted.sh sets it), else `lore` beside the lore.so
-- that `require "lore"` found.
function M.lore_bin()
  local bin = os.getenv("LORE_BIN")
  if bin and bin ~= "" then return bin end
  local so = package.searchpath("lore", package.cpath)
  -- absolute: callers may run it from another working directory
  return so and absolute(dir_of(so)) .. "/lore" or "lore"
end

function M.quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function slurp(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

-- Runs a shell command line; returns stdout, stderr, exit code and the wall
-- time it took (seconds).
function M.sh(cmdline)
  local errfile = os.tmpname()
  local t0 = M.now()
  local p = assert(io.popen(cmdline .. " 2>" .. M.quote(errfile), "r"))
  local out = p:read("a")
  local _, how, code = p:close()
  local elapsed = M.now() - t0
  local err = slurp(errfile)
  os.remove(errfile)
  if how == "signal" then code = 128 + code end
  return out, err, code, elapsed
end

-- Runs `lore ARGS...` (each argument quoted); returns as M.sh.
function M.lore(...)
  local parts = { M.quote(M.lore_bin()) }
  for i = 1, select("#", ...) do parts[#parts + 1] = M.quote((select(i, ...))) end
  return M.sh(table.concat(parts, " "))
end

-- Writes `source` to a temporary app script; returns its path (remove it
-- with os.remove).
function M.app_file(source)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(source)
  f:close()
  return path
end

-- A fresh temporary directory (remove it with os.execute("rm -rf ...")).
function M.tmpdir(tag)
  local p = io.popen("mktemp -d " .. M.quote((os.getenv("TMPDIR") or "/tmp") .. "/lore-" .. tag
    .. ".XXXXXX"))
  local dir = p:read("l")
  p:close()
  assert(dir and dir ~= "", "mktemp -d failed")
  return dir
end

-- Runs `lore run APP ARGS...` with `dir` as the working directory; returns
-- stdout, stderr and the exit status, as M.sh.
function M.run_app_in(dir, app, ...)
  local parts = { "cd", M.quote(dir), "&&", M.quote(M.lore_bin()), "run", M.quote(app) }
  for i = 1, select("#", ...) do parts[#parts + 1] = M.quote((select(i, ...))) end
  return M.sh(table.concat(parts, " "))
end

return M
