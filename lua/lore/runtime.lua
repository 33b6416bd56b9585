-- runtime.lua: a worker's Lua side: actor records, ctx, spawn, dispatch, failure and restart.
-- Loaded once per worker state with (core); returns the entry points C calls.
local core = ...
local lore = require "lore"

local type, setmetatable, tostring, error, pcall, pairs, ipairs, next = type, setmetatable, tostring,
  error, pcall, pairs, ipairs, next
local fmt = string.format

local LOG_INFO, LOG_WARN, LOG_ERROR = 1, 2, 3

-- System message subtypes (MSG_SYSTEM.sub) are C's: core.SYS lists them.
local SYS = core.SYS

-- An actor's record: the runtime's, never reachable from a script. The first
-- three slots are read by C for every command of a plain actor (actor_lua.c),
-- so they live in the array part: the behaviour version the actor runs, its
-- state, its ctx. The fourth is its aid: a slot of the array costs 16 bytes,
-- a hash node 24 (and the hash part is sized in powers of two: with self and
-- a parent, aid was the third key of four nodes; without it, two).
local BEH <const>, ST <const>, CTX <const>, AID <const> = 1, 2, 3, 4
-- A persistent record goes on with persistence's slots (persistent.lua); its
-- slot 5 (the seq, never nil there) is what tells it from a plain record.
local PERSISTENT <const> = 5
-- A behaviour version: [1] its receive (C calls it), [NEWER] the version that
-- replaced it (set by a hot reload; an actor moves to it at its next message).
local NEWER <const> = 2

local R = {}
local P -- persistence (persistent.lua), set at the end of this file
local P_KINDS -- the system messages of persistent actors that P.system handles

local sandbox = require("lore.sandbox")(core, lore)
R.sandbox = sandbox
-- Event adapters (adapters.lua): persistent.lua calls them on persist and recovery.
local adapters = require("lore.adapters")(core, sandbox)
R.adapters = adapters

---------------------------------------------------------------------------
-- ctx: what a behaviour sees of its actor: an empty table per actor, so
-- every field read goes through the metatable (writes are refused; the
-- metatable cannot be changed, and the sandbox's rawset refuses a ctx).
-- Methods are found in ctx_methods; the public fields (self, id, seq,
-- recovering, sender) are read from the record of the actor whose turn this
-- is, which C knows (core.current_rec). Everything the runtime needs lives in
-- that record, out of any script's reach.
---------------------------------------------------------------------------

local current_rec = core.current_rec
-- where each public field is kept in a plain record, and in a persistent one
-- (its slots are persistent.lua's: filled in at the end of this file)
local public = { self = "self", id = "pid", seq = "seq", recovering = "recovering" }
local persistent_public = { self = "self" }
local plain_defaults = { seq = 0, recovering = false }
-- A persistent record's RECOVERING slot also holds its recovery's state: a
-- script reads it as a boolean, never the table.
local recovering_slot

local ctx_methods = setmetatable({}, {
  __index = function(_, k)
    if k == "sender" then return core.sender() end -- only the message being handled knows it
    local field = public[k]
    if not field then return nil end
    local rec = current_rec()
    if rec and rec[PERSISTENT] then
      if k == "id" then return P.pid(rec) end -- kept by its self, not in a slot
      field = persistent_public[k]
      if field == recovering_slot then return not not rec[field] end -- (nil: held, not recovering)
    end
    local v = rec and rec[field]
    if v == nil then v = plain_defaults[k] end
    return v
  end,
})
local ctx_mt = {
  __index = ctx_methods,
  __newindex = function(_, k)
    error(fmt("ctx is read-only (ctx.%s cannot be set): keep state in `state`", tostring(k)), 2)
  end,
  __metatable = "lore.ctx",
  __name = "lore.ctx",
}
R.ctx_methods = ctx_methods

-- The record of `ctx` when it is the ctx of the actor whose turn this is. A
-- ctx kept from another actor (in a module table, say) must not act for it.
local function own(ctx, what)
  local rec = current_rec()
  if not rec or rec[CTX] ~= ctx then
    if getmetatable(ctx) ~= "lore.ctx" then error(fmt("ctx:%s: not a ctx", what), 3) end
    error(fmt("ctx:%s: this ctx belongs to another actor", what), 3)
  end
  return rec
end
R.own = own

function ctx_methods:reply(v) core.reply(v) end

-- ctx:ask(ref, msg, timeout, fn): fn(reply, err) runs later, as a turn of
-- this actor (its state is safe to touch): err is "timeout: ...", the
-- target's error (the value it raised, intact) or a dead letter.
function ctx_methods:ask(ref, msg, timeout, fn)
  local rec = own(self, "ask")
  if type(fn) ~= "function" then error("ctx:ask(ref, msg, timeout, fn): fn must be a function", 2) end
  if type(timeout) ~= "number" or timeout ~= timeout or timeout < 0 then
    error("ctx:ask: timeout must be a number of seconds >= 0", 2)
  end
  if msg == nil then error("ctx:ask: the message is nil", 2) end
  local corr, timer = core.ask(ref, msg, timeout)
  rec.asks = rec.asks or {}
  -- (the ref itself: its name is only made if the ask times out)
  rec.asks[corr] = { fn = fn, timer = timer, target = ref, timeout = timeout }
end

local later_mt = { __index = {}, __metatable = "lore.reply_handle" }
-- h:reply(v) answers the ask the handle was made for, once.
function later_mt.__index:reply(v)
  if self.done then return false end
  self.done = true
  core.reply_to(self.sched, self.aid, self.corr, true, v)
  return true
end
-- h:fail(err) answers it with an error instead.
function later_mt.__index:fail(err)
  if self.done then return false end
  self.done = true
  core.reply_to(self.sched, self.aid, self.corr, false, err)
  return true
end

-- ctx:reply_later() -> a handle for the current command's asker, answered
-- later with h:reply(v) (after this actor asked someone else, say).
function ctx_methods:reply_later()
  own(self, "reply_later")
  local sched, aid, corr = core.current()
  local h = setmetatable({ sched = sched, aid = aid, corr = corr, done = corr == 0 }, later_mt)
  core.reply_error_taken() -- the handle answers it: nothing else does
  return h
end

-- ctx:now() -> wall-clock seconds since the epoch, with millisecond resolution
function ctx_methods:now() return core.now_ms() / 1000 end

local log_levels = { debug = 0, info = 1, warn = 2, error = 3 }
-- ctx:log(level, fmt, ...): a line through the runtime's log, naming the actor
function ctx_methods:log(level, f, ...)
  local rec = own(self, "log")
  local n = log_levels[level]
  if not n then error("ctx:log(level, fmt, ...): level is \"debug\", \"info\", \"warn\" or \"error\"", 2) end
  if type(f) ~= "string" then error("ctx:log: fmt must be a string", 2) end
  local ok, line = pcall(fmt, f, ...)
  if not ok then error("ctx:log: " .. tostring(line), 2) end
  core.log(n, fmt("actor %s (%s): %s", tostring(rec.self), rec[BEH].name, line))
end

-- ctx:schedule and ctx:cancel_timer: timers.lua (loaded with delivery.lua by internal.lua).

function ctx_methods:stash()
  local rec = own(self, "stash")
  if P.in_callback(rec) then error("ctx:stash() is for the command being received", 2) end
  core.stash()
end

function ctx_methods:unstash_all()
  own(self, "unstash_all")
  core.unstash_all()
end

-- Children stop when their parent stops (or restarts: Akka's default).
local function stop_children(rec)
  if not rec.children then return end
  for aid, child in pairs(rec.children) do
    if type(child) == "number" then child = core.addr_ref(aid, child) end -- kept by its worker
    child:stop()
  end
  rec.children = nil
end

local function stop_actor(rec)
  if rec.stopping then return end
  rec.stopping = true
  local M = rec[BEH].M
  if M.on_stop then
    local ok, err = pcall(M.on_stop, rec[ST], rec[CTX])
    if not ok then core.log(LOG_WARN, fmt("%s: on_stop: %s", tostring(rec.self), tostring(err))) end
  end
  stop_children(rec)
  core.stop(rec[AID])
end
R.stop_actor = stop_actor

function ctx_methods:stop()
  local rec = own(self, "stop")
  -- A persistent actor first finishes what it has in flight.
  if rec[PERSISTENT] then return P.stop_requested(rec) end
  stop_actor(rec)
end

function ctx_methods:spawn(behaviour, opts)
  local rec = own(self, "spawn")
  if type(behaviour) ~= "string" then error("ctx:spawn(behaviour, opts): behaviour must be a name", 2) end
  opts = opts or {}
  if type(opts) ~= "table" then error("ctx:spawn: opts must be a table", 2) end
  local id = opts.id
  local aid, here, target, ref = core.spawn_slot(id) -- ref: lore.ref(id) when it has an id
  if not aid then error("ctx:spawn: opts.id " .. here, 2) end
  -- the child knows its parent and follows the parent's M.supervision
  local parent, supervision = rec.self, rec[BEH].M.supervision
  if here then
    local ok, err = R.spawn_here(aid, behaviour, opts, nil, parent, supervision, ref)
    if not ok then error(err, 2) end
    ref = err -- the child's own ref (spawn_here's second result): one ref made, not two
  else
    -- placed on another worker (by its id): a behaviour missing or broken
    -- fails here and now, as it would for a child on this worker
    local b, err = R.behaviour(behaviour)
    if not b then error(err, 2) end
    -- a later failure there (id live, init) is logged there; the family rides
    -- flat in the spec (R.spawn), without a table of its own to encode and decode
    if supervision == nil and type(id) == "string" and next(opts) == "id" and next(opts, "id") == nil then
      core.spawn_remote_id(target, aid, behaviour, id, parent) -- the same spec, as bytes
    else
      core.spawn_remote(target, aid, { behaviour, opts, false, parent, supervision or false })
    end
    -- (ref: it has an id, the id placed it there)
  end
  -- keyed by aid (unique in the runtime): the child's SYS.CHILD_STOPPED names it
  -- so. A child on another worker is kept by that worker's index (its address
  -- is the index and the aid: no string or ref kept per child) rather than by
  -- the ref the script gets, which is garbage once the script lets go of it (a
  -- child here is kept by its own self, which it keeps anyway).
  rec.children = rec.children or {}
  rec.children[aid] = here and ref or target
  return ref
end

-- ctx:watch(ref): M.on_terminated(state, ref, reason, ctx) runs when that
-- actor ends ("stopped", or "failed" when it was stopped for good after
-- failing), also at once when it is not running at all.
function ctx_methods:watch(ref)
  local rec = own(self, "watch")
  if getmetatable(ref) ~= "lore.ref" then error("ctx:watch(ref): ref must be a ref", 2) end
  rec.watching = rec.watching or {}
  rec.watching[tostring(ref)] = ref
  core.notify(ref, SYS.WATCH)
end

function ctx_methods:unwatch(ref)
  local rec = own(self, "unwatch")
  if getmetatable(ref) ~= "lore.ref" then error("ctx:unwatch(ref): ref must be a ref", 2) end
  if rec.watching then rec.watching[tostring(ref)] = nil end
  core.notify(ref, SYS.UNWATCH)
end

---------------------------------------------------------------------------
-- Behaviours: loaded once per worker, each into its own sandbox realm.
---------------------------------------------------------------------------

local behaviours = {} -- name -> the current version { receive, newer, name =, M =, realm = }

local function new_version(name, M, realm) return { M.receive, nil, name = name, M = M, realm = realm } end

local function behaviour(name)
  local b = behaviours[name]
  if b then return b end
  local M, realm, why = sandbox.load_behaviour(name)
  if not M then return nil, realm, why end
  b = new_version(name, M, realm)
  behaviours[name] = b
  return b
end
R.behaviour = behaviour

---------------------------------------------------------------------------
-- Lifecycle
---------------------------------------------------------------------------

-- opts: the spawn's own options table (at a spawn); at a restart, the ones
-- the record kept, or for a persistent record that kept none (its options
-- were the id alone: persistent.lua's P.record) a new { id = id }, for a
-- plain one (its options were empty: R.spawn_here) a new {}.
local function init_state(rec, opts)
  local M = rec[BEH].M
  local st
  if M.init then
    if opts == nil then
      opts = rec.opts
      if opts == nil then opts = rec[PERSISTENT] and { id = P.pid(rec) } or {} end
    end
    local ok, res = pcall(M.init, opts)
    if not ok then return nil, fmt("%s init: %s", rec[BEH].name, tostring(res)) end
    st = res
  end
  if st == nil then st = {} end
  rec[ST] = st
  return true
end
R.init_state = init_state

-- The parent of the last child spawned here by id from another worker, as
-- its bytes and its ref: a parent spawns its children in runs, and they share
-- one ref to it (a record's parent is the runtime's, never a script's).
local by_id_parent_bytes, by_id_parent

-- spec = { behaviour, opts [, entity manager] } or, a child spawned from another
-- worker, { behaviour, opts, false, parent, supervision or false }; a child
-- spawned there by id alone (core.spawn_remote_id) comes flat instead:
-- (aid, behaviour, opts, the parent ref's bytes, its own ref), no spec table
-- made for it.
-- Returns true, or nil, a message and why ("nobehaviour", "script", "live",
-- "shutdown").
function R.spawn(aid, spec, opts, parent_bytes, self)
  local ok, err, why
  if opts then
    if parent_bytes ~= by_id_parent_bytes then
      by_id_parent, by_id_parent_bytes = core.ref_of_bytes(parent_bytes), parent_bytes
    end
    ok, err, why = R.spawn_here(aid, spec, opts, nil, by_id_parent, nil, self)
    if ok then return true end
    return nil, err, why
  end
  local parent = spec[4]
  if parent then
    ok, err, why = R.spawn_here(aid, spec[1], spec[2] or {}, nil, parent, spec[5] or nil)
  else
    ok, err, why = R.spawn_here(aid, spec[1], spec[2] or {}, spec[3])
  end
  if ok then return true end
  return nil, err, why
end

-- R.spawn with the spec's parts as arguments (a child spawned on its
-- parent's worker makes no spec table): a child has its parent's ref and
-- follows the parent's M.supervision. self: the actor's ref by opts.id when
-- the caller made it already (core.spawn_slot, a spawn by id from another
-- worker), else made here. Returns true and the actor's ref (its self).
function R.spawn_here(aid, name, opts, manager, parent, supervision, self)
  local b, err, why = behaviour(name)
  if not b then return nil, err, why end
  local M = b.M
  local persistent = type(M.apply) == "function"
  if persistent and opts.id == nil then
    return nil, fmt("behaviour '%s' is persistent (it defines apply) and needs opts.id", name), "script"
  end
  local ctx = setmetatable({}, ctx_mt)
  if manager then
    self = core.entity_ref(manager, opts.id) -- valid across passivation
  elseif self == nil then
    self = opts.id and lore.ref(opts.id) or core.addr_ref(aid)
  end
  local rec
  if persistent then
    rec = P.record(b, ctx, opts, aid, self, parent, supervision)
  else
    -- Empty options (no metatable: most plain actors) are not kept: a
    -- restart's init gets a new {} (init_state). A table fewer per actor;
    -- the parent is named in the constructor so adding it never rehashes.
    if next(opts) == nil and getmetatable(opts) == nil then
      rec = { b, nil, ctx, aid, self = self, parent = parent }
    else
      rec = { b, nil, ctx, aid, opts = opts, self = self, pid = opts.id }
      if parent ~= nil then rec.parent = parent end
    end
    if parent ~= nil then rec.sup = supervision end
  end
  local ok, cerr = init_state(rec, opts)
  if not ok then return nil, cerr, "script" end
  local prev = core.current_aid() -- a child spawned in its parent's turn
  ok, cerr, why = core.actor_create(aid, opts.id, rec, not persistent, manager ~= nil) -- now current
  if not ok then return nil, cerr, why end
  if persistent then
    ok, cerr = pcall(P.start, rec)
    if not ok then
      core.stop(aid)
      core.set_actor(prev)
      return nil, tostring(cerr), "script"
    end
  end
  core.set_actor(prev)
  return true, self
end

-- Commands of persistent actors (plain actors' go from C straight to their
-- receive: actor_lua.c, plain_receive).
function R.dispatch(rec, msg)
  if rec[BEH][NEWER] then R.upgrade(rec) end
  return P.receive(rec, msg)
end

---------------------------------------------------------------------------
-- Hot reload: every worker loads the new file first (prepare), and only if
-- every one could, all switch (commit); each actor moves to the new version
-- at its next message, never inside a handler. Switching is one table per
-- behaviour, whatever the number of its actors.
---------------------------------------------------------------------------

local staged = {} -- name -> the version prepared, waiting for the commit
local staged_module -- the module being reloaded

-- The behaviours loaded here that `module` is (or that require it).
local function users_of(module)
  local names = {}
  for name, b in pairs(behaviours) do
    if name == module or b.realm.modules[module] ~= nil then names[#names + 1] = name end
  end
  return names
end

local function prepare(module)
  local names = users_of(module)
  if adapters.concerns(module) then -- an adapter file, or a module one requires
    local ok, err = adapters.prepare(module)
    if not ok then return nil, err end
    if #names == 0 then return true end
  end
  -- not loaded here: only check the file still loads (its error is the
  -- reload's answer); there is nothing to switch
  if #names == 0 then return sandbox.check(module) end
  for _, name in ipairs(names) do
    local M, realm = sandbox.load_behaviour(name)
    if not M then
      staged = {}
      return nil, realm
    end
    staged[name] = new_version(name, M, realm)
  end
  return true
end

-- Loads from the text the reload stages (reload.c), not the runtime's
-- current one.
function R.reload_prepare(module)
  staged, staged_module = {}, module
  core.reload_staging(true)
  local ok, res, err = pcall(prepare, module)
  core.reload_staging(false)
  if not ok then error(res, 0) end
  return res, err
end

function R.reload_commit()
  -- A behaviour this worker first loaded after the prepare was loaded from
  -- the text before this reload: it moves too (the runtime's text is the
  -- new one by now).
  for _, name in ipairs(staged_module and users_of(staged_module) or {}) do
    if not staged[name] then
      local M, realm = sandbox.load_behaviour(name)
      if M then
        staged[name] = new_version(name, M, realm)
      else
        core.log(LOG_WARN, fmt("hot reload: '%s' stays on its old code here: %s", name, tostring(realm)))
      end
    end
  end
  adapters.commit()
  local n = 0
  for name, nb in pairs(staged) do
    local old = behaviours[name]
    behaviours[name] = nb
    if old then old[NEWER] = nb end
    n = n + 1
  end
  staged, staged_module = {}, nil
  return n
end

function R.reload_abort()
  adapters.abort()
  staged, staged_module = {}, nil
  return true
end

-- The hot reload's entry point for C (worker_sched_message): phase is
-- "prepare", "commit" or "abort".
function R.reload(phase, module)
  if phase == "prepare" then return R.reload_prepare(module) end
  if phase == "commit" then return R.reload_commit() end
  return R.reload_abort()
end

-- Moves an actor to the newest version of its behaviour, converting its state
-- with on_upgrade when M.version changed. If on_upgrade raises, the actor
-- keeps the code it has (the error is logged once), the others move on.
function R.upgrade(rec)
  local b = rec[BEH]
  local new = b[NEWER]
  while new[NEWER] do new = new[NEWER] end
  if rec.upgrade_failed == new then return end
  local from, to = b.M.version, new.M.version
  if from ~= to and type(new.M.on_upgrade) == "function" then
    local ok, st = pcall(new.M.on_upgrade, rec[ST], from)
    if not ok then
      rec.upgrade_failed = new
      core.log(LOG_WARN, fmt("actor %s keeps %s version %s: on_upgrade to version %s raised: %s",
        tostring(rec.self), b.name, tostring(from), tostring(to), tostring(st)))
      return
    end
    if st ~= nil then rec[ST] = st end
  end
  rec[BEH] = new
  rec.upgrade_failed = nil
end

-- An answer to one of the actor's asks, or its timeout: the callback runs now.
local function ask_done(rec, corr, ok, v)
  local entry = rec.asks and rec.asks[corr]
  if not entry then return end -- answered already (a late reply after the timeout)
  rec.asks[corr] = nil
  if ok then return entry.fn(v, nil) end
  return entry.fn(nil, v)
end

function R.system(rec, kind, ival, token, mptr)
  if P_KINDS[kind] and rec[PERSISTENT] then return P.system(rec, kind, ival, token, mptr) end
  if kind == "reply" then
    local entry = rec.asks and rec.asks[token]
    if entry then core.cancel(entry.timer) end
    return ask_done(rec, token, core.reply_value(mptr))
  elseif kind == SYS.ASK_TIMEOUT then
    local entry = rec.asks and rec.asks[ival]
    if not entry then return end
    return ask_done(rec, ival, false, fmt("timeout: %s did not answer within %s s", tostring(entry.target),
      tostring(entry.timeout)))
  elseif kind == SYS.WATCH then
    local w = core.sender()
    if w then
      rec.watchers = rec.watchers or {}
      rec.watchers[tostring(w)] = w
    end
    return
  elseif kind == SYS.UNWATCH then
    local w = core.sender()
    if w and rec.watchers then rec.watchers[tostring(w)] = nil end
    return
  elseif kind == SYS.TERMINATED then
    local notice = core.msg_value(mptr)
    if not notice then return end
    local key = tostring(notice.ref)
    if not (rec.watching and rec.watching[key]) then return end -- unwatched since
    rec.watching[key] = nil
    local f = rec[BEH].M.on_terminated
    if type(f) == "function" then f(rec[ST], notice.ref, notice.reason, rec[CTX]) end
    return
  elseif kind == SYS.CHILD_STOPPED then
    if rec.children then rec.children[ival] = nil end -- ival: the child's aid
    return
  elseif kind == SYS.CHILD_FAILED then
    return R.failed(rec, core.msg_value(mptr) or "a child failed")
  elseif kind == "stop" then
    if rec[PERSISTENT] then return P.stop_requested(rec) end
    return stop_actor(rec)
  elseif kind == SYS.RESTART then
    if not rec.backing_off then return end -- it stopped meanwhile
    rec.backing_off = nil
    core.release(rec[AID])
  elseif kind == SYS.SHUTDOWN then
    -- the runtime stops every actor: a recovering or backing-off one now
    return R.shutdown(rec)
  elseif kind == SYS.STOP_PENDING and not rec[PERSISTENT] then
    -- ref:stop() or the shutdown while the mailbox is held for a back-off:
    -- stop wins at once (what the mailbox holds becomes dead letters), as
    -- for a persistent actor (persistent.lua)
    return R.shutdown(rec)
  else
    return P.system(rec, kind, ival, token, mptr)
  end
end

-- Supervision. A child follows its parent's M.supervision; a top-level actor
-- the runtime's default: restart, with exponential back-off (the n-th
-- restart of a series waits min * 2^(n-2) seconds, at most max, plus a
-- random part; the first none), at most max_restarts restarts within
-- `within` seconds (then the actor is stopped for good, with a logged
-- reason); a series ends `within` seconds after it began. Counted in
-- monotonic wall-clock time.
local DEFAULT_POLICY = {
  strategy = "restart", max_restarts = 10, within = 60,
  backoff = { min = 0.05, max = 10, random = 0.2 },
}

-- The parent's M.supervision with the defaults filled in; an invalid one is
-- reported once and the default used.
local function policy(rec)
  local p = rec.sup
  if p == nil then return DEFAULT_POLICY end
  if rec.sup_checked then return rec.sup_checked end
  local ok = type(p) == "table"
    and (p.strategy == nil or p.strategy == "restart" or p.strategy == "stop" or p.strategy == "escalate")
    and (p.max_restarts == nil or math.type(p.max_restarts) == "integer" and p.max_restarts >= 0)
    and (p.within == nil or type(p.within) == "number" and p.within > 0)
    and (p.backoff == nil or type(p.backoff) == "table")
  if not ok then
    core.log(LOG_WARN, fmt("%s: its parent's M.supervision is invalid: the default applies", tostring(rec.self)))
    rec.sup_checked = DEFAULT_POLICY
    return DEFAULT_POLICY
  end
  local b = p.backoff or {}
  rec.sup_checked = {
    strategy = p.strategy or "restart", max_restarts = p.max_restarts or 10, within = p.within or 60,
    backoff = { min = b.min or 0.05, max = b.max or 10, random = b.random or 0.2 },
  }
  return rec.sup_checked
end

-- Counts one failure; returns false when the actor has failed too often and
-- must stop for good.
local function count_failure(rec)
  local pol = policy(rec)
  local now = core.now_mono()
  if not rec.window_start or now - rec.window_start > pol.within then
    rec.window_start, rec.restarts = now, 0
  end
  rec.restarts = rec.restarts + 1
  return rec.restarts <= pol.max_restarts
end
R.count_failure = count_failure

-- The back-off before the current restart: none for the first of a series.
function R.backoff_delay(rec)
  local n = rec.restarts or 1
  if n <= 1 then return 0 end
  local b = policy(rec).backoff
  local delay = math.min(b.min * 2 ^ (n - 2), b.max)
  return delay * (1 + b.random * math.random())
end

-- Stops an actor that will not be restarted: its watchers hear "failed".
local function stop_for_good(rec)
  rec.end_reason = "failed"
  if rec[PERSISTENT] then return P.give_up(rec) end
  return stop_actor(rec)
end

-- A handler raised: log it with file and line, answer an ask in progress,
-- and follow the supervision: restart the actor (new state from init, or
-- recovery for a persistent actor) with back-off, stop it, or escalate.
function R.failed(rec, raised)
  core.reply_error(raised) -- the asker gets the value itself (a table stays a table)
  local err = tostring(raised)
  if rec.stopping then return end
  local name = tostring(rec.self)
  if core.shutting_down() then
    core.log(LOG_WARN, fmt("actor %s (%s) failed during shutdown: %s; stopping", name, rec[BEH].name, err))
    return stop_actor(rec)
  end
  local pol = policy(rec)
  if pol.strategy == "stop" then
    core.log(LOG_ERROR, fmt("actor %s (%s) failed: %s; stopping it (its supervision says stop)",
      name, rec[BEH].name, err))
    return stop_for_good(rec)
  elseif pol.strategy == "escalate" and rec.parent then
    core.log(LOG_ERROR, fmt("actor %s (%s) failed: %s; escalating to its parent %s", name,
      rec[BEH].name, err, tostring(rec.parent)))
    core.notify(rec.parent, SYS.CHILD_FAILED, fmt("child %s failed: %s", name, err))
    return stop_for_good(rec)
  end
  if not count_failure(rec) then
    core.log(LOG_ERROR, fmt("actor %s (%s) failed %d times within %s s: %s; stopping it for good",
      name, rec[BEH].name, rec.restarts, tostring(pol.within), err))
    return stop_for_good(rec)
  end
  core.log(LOG_ERROR, fmt("actor %s (%s) failed: %s; restarting", name, rec[BEH].name, err))
  core.unstash_all() -- Akka: a restart puts the user stash back in the mailbox
  stop_children(rec) -- Akka: a restarting parent stops its children
  if rec[PERSISTENT] then return P.restart(rec, err) end
  local ok, ierr = init_state(rec)
  if not ok then
    core.log(LOG_ERROR, fmt("actor %s cannot restart: %s; stopping", name, ierr))
    return stop_actor(rec)
  end
  R.backoff(rec)
end

-- Holds the mailbox for the back-off delay after a quick repeated failure.
function R.backoff(rec)
  local delay = R.backoff_delay(rec)
  if delay > 0 then
    rec.backing_off = true
    core.hold()
    core.schedule_system(delay, SYS.RESTART)
  end
end

-- A stop arrived while the mailbox is held (ref:stop(), or the runtime
-- shutting down, which stops every actor): a plain actor waiting out a
-- restart back-off stops now (its held commands become dead letters) rather
-- than holding the stop for up to the back-off's max.
function R.shutdown(rec)
  if rec[PERSISTENT] then return P.shutdown(rec) end
  if rec.backing_off then
    rec.backing_off = nil
    core.release(rec[AID])
    return stop_actor(rec)
  end
end

-- The actor has ended: its watchers and its parent hear of it.
function R.stopped(rec)
  rec.dead = true
  if rec[PERSISTENT] then P.stopped(rec) end
  if rec.watchers then
    local notice = { ref = rec.self, reason = rec.end_reason or "stopped" }
    for _, w in pairs(rec.watchers) do core.notify(w, SYS.TERMINATED, notice) end
  end
  if rec.parent then core.notify(rec.parent, SYS.CHILD_STOPPED, nil, rec[AID]) end
end

-- The internal stash is full: 0 fail, 1 drop, 2 reply with an error.
function R.overflow(rec)
  local M = rec[BEH].M
  local s = M.stash_overflow or "fail"
  if s == "drop" then return 1 end
  if s == "reply" then return 2 end
  R.failed(rec, fmt("stash overflow (capacity %d): the message went to dead letters",
    M.stash_capacity or 0))
  return 1
end

P = require("lore.persistent")(core, R, ctx_methods)
P_KINDS = P.SYSTEM_KINDS
R.persisted = P.persisted -- C calls it for every completed journal write
persistent_public.seq, persistent_public.recovering = P.SEQ, P.RECOVERING
recovering_slot = P.RECOVERING
-- Delivery and timers (internal.lua, delivery.lua, timers.lua): their ctx methods, and the
-- hooks around dispatch, system, failed and stopped that write and recover their events.
require("lore.internal")(core, R, P, ctx_methods)

return R
