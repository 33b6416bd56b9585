-- persist_helpers.lua: what the persist_*_spec files share, on top of helpers.lua:
-- fresh journals, sqlite access, and runs that take their config first.
local lore = require "lore"
local helpers = require "helpers"

local M = {}

M.dir, M.fixtures = helpers.dir, helpers.fixtures

-- Added to helpers.defaults for every run (PSPEC_LOG=debug shows the runtime log).
M.defaults = { log_level = os.getenv("PSPEC_LOG") or "off" }

local counter = 0

-- A journal URI nobody else uses in this process: "memory:NAME" is shared
-- per NAME, so a later run given the same URI recovers what this one wrote.
function M.memory_journal()
  counter = counter + 1
  return string.format("memory:pspec-%d-%d-%d", os.time(), math.random(1, 1e9), counter)
end

-- A fresh sqlite journal file; returns the URI and the path.
function M.sqlite_journal()
  local path = os.tmpname()
  os.remove(path) -- let the journal create it
  return "sqlite:" .. path, path
end

function M.remove_db(path)
  for _, suffix in ipairs { "", "-wal", "-shm", "-journal", "-lock" } do os.remove(path .. suffix) end
end

-- helpers.run with the config first: a fresh runtime that always shuts down.
function M.run(config, fn)
  local cfg = {}
  for k, v in pairs(M.defaults) do cfg[k] = v end
  for k, v in pairs(config or {}) do cfg[k] = v end
  return helpers.run(fn, cfg)
end

M.error_of = helpers.error_of

-- Polls check() (sleeping on the runtime) until it returns a true value or
-- `timeout` seconds pass; returns its last value.
-- (It counts its sleeps: os.clock is CPU time, not wall time.)
function M.eventually(check, timeout)
  local waited, step = 0, 0.02
  local v = check()
  while not v and waited < (timeout or 5) do
    lore.sleep(step)
    waited = waited + step
    v = check()
  end
  return v
end

-- The entries a persist.sink was told by hook `name` (fixtures/persist/base.lua).
function M.hooks(got, name)
  local out = {}
  for _, g in ipairs(got or {}) do
    if g.hook == name then out[#out + 1] = g end
  end
  return out
end

-- Polls the sink until hook `name` has reported; returns those entries (or nil).
function M.wait_hook(sink, name, timeout)
  return M.eventually(function()
    local got = M.hooks(sink:ask({ op = "get" }, 5), name)
    return #got > 0 and got
  end, timeout)
end

---------------------------------------------------------------------------
-- sqlite3 (the CLI) on a journal file, from the application side.
---------------------------------------------------------------------------

local function quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- Runs SQL on the database at path; returns the output (raises on failure).
function M.sql(path, sql)
  local p = assert(io.popen("sqlite3 " .. quote(path) .. " " .. quote(sql) .. " 2>&1", "r"))
  local out = p:read("a")
  local ok = p:close()
  if not ok then error("sqlite3 failed: " .. out, 2) end
  return out
end

-- The seqs stored for an id, in order.
function M.stored_seqs(path, id)
  local out = M.sql(path, "SELECT seq FROM events WHERE id = '" .. id .. "' ORDER BY seq;")
  local seqs = {}
  for n in out:gmatch("%d+") do seqs[#seqs + 1] = tonumber(n) end
  return seqs
end

-- 1..n as a list.
function M.range(a, b)
  local t = {}
  for i = a, b do t[#t + 1] = i end
  return t
end

return M
