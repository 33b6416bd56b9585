-- cli_support.lua: what the command-line specs share: lore in a directory, background processes, files.
local h = require "helpers"
local json = require "dkjson"

local M = {}

-- Runs `lore ARGS...` with `dir` as the working directory; returns as h.sh.
function M.lore_in(dir, ...)
  local parts = { "cd", h.quote(dir), "&&", h.quote(h.lore_bin()) }
  for i = 1, select("#", ...) do parts[#parts + 1] = h.quote((select(i, ...))) end
  return h.sh(table.concat(parts, " "))
end

-- The journal_fuzz tool built beside lore (tests/cli/journal_fuzz.c).
function M.fuzz_bin()
  return (h.lore_bin():match("^(.*)/[^/]*$") or ".") .. "/cli_journal_fuzz"
end

function M.read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

function M.write(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

function M.lines(s)
  local out = {}
  for l in s:gmatch("[^\n]+") do out[#out + 1] = l end
  return out
end

-- Every line of `s` decoded as JSON (JSON null as json.null); raises on a bad line.
function M.json_lines(s)
  local out = {}
  for _, l in ipairs(M.lines(s)) do
    local v, _, err = json.decode(l, 1, json.null)
    assert(v ~= nil, ("not JSON (%s): %s"):format(tostring(err), l))
    out[#out + 1] = v
  end
  return out
end

M.json = json

function M.sleep(seconds)
  os.execute(("sleep %.3f"):format(seconds))
end

-- Polls check() until it returns a true value (returned) or `timeout` seconds pass (nil).
function M.wait_for(check, timeout)
  local deadline = h.now() + (timeout or 10)
  repeat
    local v = check()
    if v then return v end
    M.sleep(0.05)
  until h.now() > deadline
  return check()
end

-- Starts `lore ARGS...` in the background in `dir`; returns a handle whose
-- out(), err(), signal(name) and wait(timeout) (the exit status, or nil if it
-- has not ended in time) follow it.
function M.start(dir, ...)
  local base = os.tmpname()
  local files = { out = base .. ".out", err = base .. ".err", pid = base .. ".pid", rc = base .. ".rc" }
  local parts = { h.quote(h.lore_bin()) }
  for i = 1, select("#", ...) do parts[#parts + 1] = h.quote((select(i, ...))) end
  os.execute(("cd %s && (%s >%s 2>%s </dev/null & echo $! >%s; wait $!; echo $? >%s.tmp; mv %s.tmp %s) &")
    :format(h.quote(dir), table.concat(parts, " "), h.quote(files.out), h.quote(files.err),
      h.quote(files.pid), h.quote(files.rc), h.quote(files.rc), h.quote(files.rc)))
  local pid = M.wait_for(function()
    local s = M.read(files.pid)
    return s and tonumber(s:match("%d+"))
  end, 10)
  assert(pid, "the background lore did not start")
  local p = { pid = pid }
  function p.out() return M.read(files.out) or "" end
  function p.err() return M.read(files.err) or "" end
  function p.signal(name) os.execute(("kill -%s %d 2>/dev/null"):format(name, pid)) end
  function p.wait(timeout)
    local rc = M.wait_for(function()
      local s = M.read(files.rc)
      return s and tonumber(s:match("%d+"))
    end, timeout or 10)
    return rc
  end
  function p.cleanup()
    if not M.read(files.rc) then
      p.signal("KILL")
      p.wait(5)
    end
    os.remove(base)
    for _, f in pairs(files) do os.remove(f) end
  end
  return p
end

-- Runs an SQL script on an SQLite file with the sqlite3 shell; returns its output.
function M.sqlite(path, sql)
  local out, err, code = h.sh(("sqlite3 %s %s"):format(h.quote(path), h.quote(sql)))
  assert(code == 0, "sqlite3: " .. err)
  return out
end

-- The files in a directory, sorted (to show that nothing new appeared).
function M.listing(dir)
  local out = h.sh("ls -A " .. h.quote(dir))
  return out
end

return M
