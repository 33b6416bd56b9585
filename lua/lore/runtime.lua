-- runtime.lua: a worker's Lua side: behaviour loading, the sandbox, ctx, dispatch, failure and restart.
-- Loaded once per worker state with (core, binding_state); returns the entry points C calls.
local core = ...
local lore = require "lore"

local type, pairs, ipairs, setmetatable, tostring, error, pcall, select = type, pairs, ipairs,
  setmetatable, tostring, error, pcall, select
local fmt, concat = string.format, table.concat

local LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR = 0, 1, 2, 3

-- System message subtypes (MSG_SYSTEM.sub); persistence adds its own from 16 up.
local SYS_RESTART = 1

local R = {}
local P -- persistence (persistent.lua), set at the end of this file

---------------------------------------------------------------------------
-- The sandbox: behaviour scripts are not trusted (ARCHITECTURE.md, Safety).
---------------------------------------------------------------------------

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

local dirs = core.script_dirs()
if #dirs == 0 then dirs = { "." } end

local safe = {
  assert = assert, error = error, ipairs = ipairs, next = next, pairs = pairs, pcall = pcall,
  select = select, tonumber = tonumber, tostring = tostring, type = type, xpcall = xpcall,
  setmetatable = setmetatable, rawequal = rawequal,
  rawget = rawget, rawset = rawset, rawlen = rawlen, _VERSION = _VERSION,
  -- copies, so one behaviour changing string.format cannot change another's
  string = copy(string), table = copy(table), math = copy(math), utf8 = copy(utf8),
  coroutine = copy(coroutine),
  os = { time = os.time, clock = os.clock, date = os.date, difftime = os.difftime },
  lore = { ref = lore.ref },
}

-- print writes whole lines to stdout, as skynet's does: lines from several
-- workers never interleave mid-line.
local stdout = io.stdout
function safe.print(...)
  local parts = {}
  for i = 1, select("#", ...) do parts[i] = tostring((select(i, ...))) end
  stdout:write(concat(parts, "\t") .. "\n")
  stdout:flush()
end

local function find_file(name)
  local rel = name:gsub("%.", "/")
  for _, d in ipairs(dirs) do
    for _, path in ipairs { d .. "/" .. rel .. ".lua", d .. "/" .. rel .. "/init.lua" } do
      local f = io.open(path, "r")
      if f then
        f:close()
        return path
      end
    end
  end
  return nil
end

local modules = {} -- name -> module value, per worker state
local loading = {}

local function new_env()
  local env = setmetatable({}, { __index = safe })
  return env
end

-- Loads a behaviour (or a module a behaviour requires) into its own sandboxed
-- environment. Returns the module or nil and an error naming file and line.
local function load_module(name)
  local m = modules[name]
  if m ~= nil then return m end
  if type(name) ~= "string" or name == "" or name:find("[^%w_%.%-]") then
    return nil, fmt("bad module name %q", tostring(name))
  end
  if loading[name] then return nil, fmt("module '%s' requires itself (a loop)", name) end
  local path = find_file(name)
  if not path then
    return nil, fmt("behaviour '%s' not found in scripts (%s)", name, concat(dirs, ", "))
  end
  local env = new_env()
  local chunk, err = loadfile(path, "t", env)
  if not chunk then return nil, err end
  loading[name] = true
  local ok, res = pcall(chunk, name)
  loading[name] = nil
  if not ok then return nil, fmt("loading %s: %s", path, tostring(res)) end
  if res == nil then res = true end
  modules[name] = res
  return res
end

-- The string metatable is the worker's own (s:upper() goes through it): a
-- behaviour must not reach it, or it could rewrite methods for every actor.
function safe.getmetatable(v)
  if type(v) == "string" then return nil end
  return getmetatable(v)
end

function safe.require(name)
  local m, err = load_module(name)
  if not m then error(err, 2) end
  return m
end

function safe.load(chunk, chunkname, mode, env)
  if mode ~= nil and mode ~= "t" then error("only text chunks may be loaded", 2) end
  return load(chunk, chunkname, "t", env or new_env())
end

---------------------------------------------------------------------------
-- ctx: one table per actor, which is also the actor's record.
---------------------------------------------------------------------------

local ctx_methods = {}
-- ctx.sender is computed: only the message being handled knows it.
local plain_defaults = { seq = 0, recovering = false }
setmetatable(ctx_methods, {
  __index = function(_, k)
    if k == "sender" then return core.sender() end
    return plain_defaults[k]
  end,
})
local ctx_mt = { __index = ctx_methods, __name = "lore.ctx" }
R.ctx_methods = ctx_methods

function ctx_methods:reply(v) core.reply(v) end

local timer_mt = { __index = {} }
function timer_mt.__index:cancel() return core.cancel(self.id) end

function ctx_methods:schedule(seconds, msg)
  if type(seconds) ~= "number" then error("ctx:schedule(seconds, msg): seconds must be a number", 2) end
  return setmetatable({ id = core.schedule(self._aid, seconds, msg) }, timer_mt)
end

function ctx_methods:stash()
  if self._in_callback then error("ctx:stash() is for the command being received", 2) end
  core.stash(self._aid)
end

function ctx_methods:unstash_all() core.unstash_all(self._aid) end

local function stop_actor(rec)
  if rec._stopping then return end
  rec._stopping = true
  local M = rec._m
  if M.on_stop then
    local ok, err = pcall(M.on_stop, rec._st, rec)
    if not ok then core.log(LOG_WARN, fmt("%s: on_stop: %s", tostring(rec.self), tostring(err))) end
  end
  core.stop(rec._aid)
end
R.stop_actor = stop_actor

function ctx_methods:stop()
  -- A persistent actor first finishes what it has in flight.
  if self._persistent then return P.stop_requested(self) end
  stop_actor(self)
end

function ctx_methods:spawn(behaviour, opts)
  if type(behaviour) ~= "string" then error("ctx:spawn(behaviour, opts): behaviour must be a name", 2) end
  opts = opts or {}
  if type(opts) ~= "table" then error("ctx:spawn: opts must be a table", 2) end
  local id = opts.id
  if id ~= nil and (type(id) ~= "string" or id == "") then error("ctx:spawn: opts.id must be a non-empty string", 2) end
  local aid = core.new_aid()
  local here = core.worker()
  local target = id and core.sched_for(id) or here
  if target == here then
    local ok, err = R.spawn(aid, { behaviour, opts })
    if not ok then error(err, 2) end
  else
    core.spawn_remote(target, aid, behaviour, opts) -- errors are logged on that worker
  end
  return id and lore.ref(id) or core.addr_ref(aid)
end

---------------------------------------------------------------------------
-- Lifecycle
---------------------------------------------------------------------------

local function init_state(rec)
  local M = rec._m
  if M.init then
    local ok, st = pcall(M.init, rec._opts)
    if not ok then return nil, fmt("%s init: %s", rec._beh, tostring(st)) end
    if st == nil then st = {} end
    rec._st = st
  else
    rec._st = {}
  end
  return true
end
R.init_state = init_state

-- spec = { behaviour, opts }. Returns true, or nil and a message.
function R.spawn(aid, spec)
  local name, opts = spec[1], spec[2] or {}
  local M, err = load_module(name)
  if not M then return nil, err end
  if type(M) ~= "table" or type(M.receive) ~= "function" then
    return nil, fmt("behaviour '%s' must return a table with a receive function", name)
  end
  local persistent = type(M.apply) == "function"
  if persistent and opts.id == nil then
    return nil, fmt("behaviour '%s' is persistent (it defines apply) and needs opts.id", name)
  end
  local rec = setmetatable({
    -- Only what this actor needs: every field costs an idle actor memory
    -- (ctx.seq and ctx.recovering of a plain actor come from ctx_methods).
    id = opts.id, _m = M, _beh = name, _opts = opts, _aid = aid,
  }, ctx_mt)
  if persistent then rec._persistent, rec.seq, rec.recovering = true, 0, false end
  rec.self = opts.id and lore.ref(opts.id) or core.addr_ref(aid)
  local ok, cerr = init_state(rec)
  if not ok then return nil, cerr end
  -- A plain actor's commands go from C straight to rec._recv (see actor_lua.c).
  if not persistent then rec._recv = M.receive end
  ok, cerr = core.actor_create(aid, opts.id, rec, not persistent)
  if not ok then return nil, cerr end
  if persistent then
    ok, cerr = pcall(P.start, rec)
    if not ok then
      core.stop(aid)
      return nil, tostring(cerr)
    end
  end
  return true
end

-- Commands of persistent actors (plain actors' go from C straight to their
-- receive: actor_lua.c, plain_receive).
function R.dispatch(rec, msg) return P.receive(rec, msg) end

function R.system(rec, kind, ival, token, mptr)
  if kind == "stop" then
    if rec._persistent then return P.stop_requested(rec) end
    return stop_actor(rec)
  elseif kind == SYS_RESTART then
    core.release(rec._aid)
  else
    return P.system(rec, kind, ival, token, mptr)
  end
end

-- A handler raised: log it with file and line, answer an ask in progress,
-- and restart the actor (new state from init, or recovery for a persistent
-- actor), with exponential back-off when failures repeat.
function R.failed(rec, err)
  err = tostring(err)
  core.reply_error(err)
  if rec._stopping then return end
  local now = os.clock()
  if rec._last_failure and now - rec._last_failure < 1.0 then
    rec._failures = (rec._failures or 0) + 1
  else
    rec._failures = 1
  end
  rec._last_failure = now
  core.log(LOG_ERROR, fmt("actor %s (%s) failed: %s; restarting", tostring(rec.self), rec._beh, err))
  if rec._persistent then return P.restart(rec, err) end
  local ok, ierr = init_state(rec)
  if not ok then
    core.log(LOG_ERROR, fmt("actor %s cannot restart: %s; stopping", tostring(rec.self), ierr))
    return stop_actor(rec)
  end
  R.backoff(rec)
end

-- Holds the mailbox for 50 ms * 2^(n-2) (at most 10 s) after the n-th quick failure.
function R.backoff(rec)
  if (rec._failures or 0) > 1 then
    local delay = math.min(0.05 * 2 ^ (rec._failures - 2), 10)
    core.hold(rec._aid)
    core.schedule(rec._aid, delay, nil, SYS_RESTART)
  end
end

function R.stopped(rec)
  rec._dead = true
  if rec._persistent then P.stopped(rec) end
end

-- The internal stash is full: 0 fail, 1 drop, 2 reply with an error.
function R.overflow(rec, is_ask)
  local s = rec._m.stash_overflow or "fail"
  if s == "drop" then return 1 end
  if s == "reply" then return 2 end
  R.failed(rec, fmt("stash overflow (capacity %d): the message went to dead letters",
    rec._m.stash_capacity or 0))
  return 1
end

P = require("lore.persistent")(core, R, ctx_methods)

return R
