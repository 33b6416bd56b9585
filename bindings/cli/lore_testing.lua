-- lore_testing.lua: `require "lore.testing"`: helpers for behaviour specs run by `lore test`.
local lore = require "lore"

local M = {}

-- Calls check() until it returns a true value, which it returns; sleeps `step`
-- seconds (default 0.01) on the runtime between tries, and raises after about
-- `timeout` seconds (default 5). For effects no ask can wait for.
function M.eventually(check, timeout, step)
  timeout, step = timeout or 5, step or 0.01
  local waited = 0
  while true do
    local v = check()
    if v then return v end
    if waited >= timeout then
      error(("eventually: still false after %g seconds"):format(timeout), 2)
    end
    lore.sleep(step)
    waited = waited + step
  end
end

local counter = 0

-- A persistence id no other test of this run uses: "PREFIX-N".
function M.unique_id(prefix)
  counter = counter + 1
  return ("%s-%d"):format(prefix or "test", counter)
end

-- Stops the persistent actor `ref` and spawns `behaviour` again with the same
-- id (opts.id defaults to it): the new actor recovers from the journal, as
-- after a restart of the application. Waits (up to `timeout` seconds,
-- default 5) for the old actor to be gone. Returns the new ref.
function M.restart(ref, behaviour, opts, timeout)
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  o.id = o.id or ref:id()
  ref:stop()
  return M.eventually(function()
    local ok, r = pcall(lore.spawn, behaviour, o)
    if ok then return r end
    if not tostring(r):find("already live", 1, true) then error(r, 0) end
    return nil
  end, timeout)
end

return M
