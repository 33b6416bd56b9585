-- timers.lua: ctx:schedule and ctx:cancel_timer: timers, repeating timers, durable timers.
-- A plain timer lives in memory: it fires while its actor runs (a restart keeps it; a stop
-- ends it, and it never fires into a later actor of the same id).
-- A durable timer (opts.durable, persistent actors) is journalled as internal events
-- (internal.lua): created, fired, cancelled. Its firing is a command like any other (it waits
-- while the actor's mailbox is held) whose "fired" marker goes into the journal in the same
-- write as the first events its handler persists (or alone at the end of that turn). So,
-- relative to the actor's own journal, a firing happens exactly once: after a crash either
-- the marker and the handler's first write are both there (it does not fire again), or
-- neither is (it fires again after recovery). What the handler does outside the journal
-- (messages sent, events persisted in later writes) is at-least-once.
-- A durable timer that came due while its actor was not running (crashed, stopped,
-- passivated) fires once when the actor has recovered; a repeating one then goes on at its
-- period (the periods missed meanwhile collapse into that one firing).
-- Returns a constructor; internal.lua calls it with (core, R, P, X, ctx_methods).
return function(core, R, P, X, ctx_methods)
  -- the record's array slots persistent.lua keeps its hot fields in
  local RECOVERING, held = P.RECOVERING, P.held
  local PERSISTENT = P.SEQ -- a slot only persistent records have
  local AID = P.AID -- the record's aid
  local T = {}
  local type, pairs, ipairs, tostring, error, setmetatable = type, pairs, ipairs, tostring, error,
    setmetatable
  local fmt = string.format
  local mtype, floor, huge = math.type, math.floor, math.huge
  local SYS_TIMER_DUE = core.SYS.TIMER_DUE
  local own, current_rec = R.own, core.current_rec
  local CREATE, FIRED, CANCEL = "lore.timer", "lore.timer_fired", "lore.timer_cancel"
  local MAX_DELAY = 1e9 -- seconds

  -- A message's own copy (refs are immutable and shared): each firing gets the message as
  -- it was scheduled, whatever a handler did to an earlier copy.
  local function copy(v)
    if type(v) ~= "table" then return v end
    local t = {}
    for k, x in pairs(v) do t[k] = copy(x) end
    return t
  end

  ---------------------------------------------------------------------------
  -- Handles: { id = } tables whose :cancel() acts only for the actor that made them
  -- (a forged table, or a handle of another actor, cancels nothing of anyone's).
  ---------------------------------------------------------------------------

  local handles = setmetatable({}, { __mode = "k" }) -- handle -> { aid =, cid = | durable id = }
  local handle_mt = { __index = {}, __metatable = "lore.timer", __name = "lore.timer" }

  local cancel_durable

  -- h:cancel() -> true if the timer was still to fire
  function handle_mt.__index:cancel()
    local h = handles[self]
    if not h then error("timer:cancel(): not a timer handle", 2) end
    local rec = current_rec()
    if not rec or rec[AID] ~= h.aid then return false end
    if h.durable then return cancel_durable(rec, h.durable) end
    return core.cancel(h.cid)
  end

  local function new_handle(rec, id, cid, durable)
    local handle = setmetatable({ id = id, durable = durable and true or nil }, handle_mt)
    handles[handle] = { aid = rec[AID], cid = cid, durable = durable and id or nil }
    return handle
  end

  ---------------------------------------------------------------------------
  -- Durable timers: the state of an actor (made on first use)
  --   next: the id the next durable timer takes
  --   live: id -> { id, msg, due (ms, wall clock), every (ms) | nil, key, cid, queued }
  --   keys: key -> id (live)
  --   dnext, dur: the durable view: the id after the last stored one; id -> { msg, due,
  --     every, key } created and neither fired (once) nor cancelled in the journal
  ---------------------------------------------------------------------------

  local function state(rec)
    local tm = rec.tm
    if not tm then
      tm = { next = 1, live = {}, keys = {}, dnext = 1, dur = {} }
      rec.tm = tm
    end
    return tm
  end

  local function now_ms() return core.now_ms() end

  -- Arms the in-memory timer of a live durable timer: SYS_TIMER_DUE (ival: id, corr: the
  -- timer armed) when it is due.
  local function arm(e)
    local delay = (e.due - now_ms()) / 1000
    if delay < 0 then delay = 0 end
    if delay > MAX_DELAY then delay = MAX_DELAY end
    e.cid = core.timer_system(delay, SYS_TIMER_DUE, e.id)
  end

  local function disarm(e)
    if e.cid then
      core.cancel(e.cid)
      e.cid = nil
    end
  end

  local function queue_due(rec, e)
    if e.queued then return end
    e.queued = true
    local due = rec.due
    if not due then
      due = {}
      rec.due = due
    end
    due[#due + 1] = e.id
  end

  -- SYS_TIMER_DUE: the timer waits for the actor to be free (the end of this turn, or of
  -- the one that releases its mailbox). id 0: a turn asked for by T.kick_if_due.
  function T.came_due(rec, id, token)
    if id == 0 then
      rec.kicked = nil
      return
    end
    local tm = rec.tm
    local e = tm and tm.live[id]
    if not e or e.cid ~= token then return end -- cancelled, re-armed, or an earlier incarnation's
    e.cid = nil
    if rec[RECOVERING] or rec.restarting or rec.dead then return end
    queue_due(rec, e)
  end

  local function forget(tm, e)
    tm.live[e.id] = nil
    if e.key ~= nil and tm.keys[e.key] == e.id then tm.keys[e.key] = nil end
    disarm(e)
  end

  -- One firing, as a turn of its own: the "fired" marker rides with the turn's first write.
  local function fire(rec, e)
    local tm = rec.tm
    e.queued = nil
    local marker = { id = e.id }
    if e.every then
      local now = now_ms()
      local nxt = e.due + e.every
      if nxt <= now then nxt = e.due + e.every * ((now - e.due) // e.every + 1) end
      e.due = nxt
      marker.next = nxt
      arm(e)
    else
      forget(tm, e)
    end
    X.add(rec, FIRED, marker)
    core.set_current(core.worker(), rec[AID], 0) -- its sender is the actor itself
    core.keep_awake() -- a firing is activity, as a command is
    X.dispatch(rec, copy(e.msg))
  end

  local function busy(rec)
    return held(rec) or rec.stopping or rec.stop_when_idle or rec.dead or rec[RECOVERING] or rec.restarting
  end

  -- Asks for a turn of its own (a system message to itself, which comes before the
  -- commands waiting) to fire what came due, once the actor is free.
  function T.kick_if_due(rec)
    if rec.due and not rec.kicked and not busy(rec) then
      rec.kicked = true
      core.kick(SYS_TIMER_DUE, 0)
    end
  end

  -- In a SYS_TIMER_DUE turn: fires the timer that came due first, if the actor is free
  -- (a firing whose handler persists holds the mailbox: the rest wait for the end of
  -- that). One firing per turn, each under its own instruction budget, as a turn of its
  -- own (ctx:stash() there cannot take another command).
  function T.fire_due(rec)
    local due = rec.due
    local tm = rec.tm
    if not tm then
      rec.due = nil
      return
    end
    if busy(rec) then return end
    if #due > 1 then
      table.sort(due, function(a, b)
        local ea, eb = tm.live[a], tm.live[b]
        return (ea and ea.due or huge) < (eb and eb.due or huge)
      end)
    end
    local id = table.remove(due, 1)
    if #due == 0 then rec.due = nil end
    local e = tm.live[id]
    if e and e.queued then fire(rec, e) end
  end

  -- The timer is durable: armed from now on.
  local function create_stored(rec, p)
    local tm = rec.tm
    local e = tm and tm.live[p.id]
    if e and not e.cid and not e.queued and not rec.dead then arm(e) end
  end

  function cancel_durable(rec, id)
    local tm = rec.tm
    local e = tm and tm.live[id]
    if not e then return false end
    forget(tm, e)
    e.queued = nil
    X.add(rec, CANCEL, { id = id })
    return true
  end

  local function schedule_durable(rec, seconds, msg, every, key)
    if not rec[PERSISTENT] then
      error("ctx:schedule: opts.durable needs a persistent actor (a behaviour with apply and an id): "
        .. "the timer is journalled with its events", 3)
    end
    if rec[RECOVERING] then error("ctx:schedule: a durable timer cannot be scheduled while recovering", 3) end
    if rec.stopping then error("ctx:schedule: the actor is stopping", 3) end
    local ok, why = core.encodable(msg)
    if not ok then error("ctx:schedule: " .. why, 3) end
    local tm = state(rec)
    if key ~= nil and tm.keys[key] then cancel_durable(rec, tm.keys[key]) end
    local id = tm.next
    tm.next = id + 1
    local e = { id = id, msg = copy(msg), due = now_ms() + floor(seconds * 1000 + 0.5),
      every = every and floor(every * 1000 + 0.5), key = key }
    if e.every and e.every < 1 then e.every = 1 end
    tm.live[id] = e
    if key ~= nil then tm.keys[key] = id end
    X.add(rec, CREATE, { id = id, msg = e.msg, due = e.due, every = e.every, key = key }, create_stored)
    return new_handle(rec, id, nil, true)
  end

  ---------------------------------------------------------------------------
  -- ctx
  ---------------------------------------------------------------------------

  local function check_seconds(v, what)
    if type(v) ~= "number" or v ~= v or v < 0 or v >= MAX_DELAY then
      error(fmt("ctx:schedule: %s must be a number of seconds from 0 to 1e9", what), 3)
    end
  end

  -- ctx:schedule(seconds, msg [, opts]) -> a handle with :cancel()
  -- opts.every: repeat every that many seconds; opts.durable: journal it (persistent actors);
  -- opts.key: a name for it (scheduling another timer with the same key cancels this one;
  -- ctx:cancel_timer(key) cancels it, also after a restart for a durable one).
  function ctx_methods:schedule(seconds, msg, opts)
    local rec = own(self, "schedule")
    if type(seconds) ~= "number" then error("ctx:schedule(seconds, msg): seconds must be a number", 2) end
    check_seconds(seconds, "seconds")
    if msg == nil then error("ctx:schedule(seconds, msg): the message is nil", 2) end
    if opts ~= nil and type(opts) ~= "table" then error("ctx:schedule: opts must be a table", 2) end
    local every, key, durable = opts and opts.every, opts and opts.key, opts and opts.durable
    if every ~= nil then
      check_seconds(every, "opts.every")
      if every <= 0 then error("ctx:schedule: opts.every must be above 0 seconds", 2) end
    end
    if key ~= nil and type(key) ~= "string" and mtype(key) ~= "integer" then
      error("ctx:schedule: opts.key must be a string or an integer", 2)
    end
    if durable ~= nil and type(durable) ~= "boolean" then error("ctx:schedule: opts.durable is a boolean", 2) end
    if durable then return schedule_durable(rec, seconds, msg, every, key) end
    if key ~= nil then
      local keyed = rec.timer_keys
      if keyed and keyed[key] then core.cancel(keyed[key]) end
    end
    local cid = core.timer_start(seconds, msg, every)
    if key ~= nil then
      rec.timer_keys = rec.timer_keys or {}
      rec.timer_keys[key] = cid
    end
    return new_handle(rec, cid, cid, false)
  end

  -- ctx:cancel_timer(key) -> true if a timer of that key was still to fire
  function ctx_methods:cancel_timer(key)
    local rec = own(self, "cancel_timer")
    if key == nil then error("ctx:cancel_timer(key): key is nil", 2) end
    local tm = rec.tm
    local id = tm and tm.keys[key]
    if id then return cancel_durable(rec, id) end
    local keyed = rec.timer_keys
    local cid = keyed and keyed[key]
    if cid then
      keyed[key] = nil
      return core.cancel(cid)
    end
    return false
  end

  ---------------------------------------------------------------------------
  -- The durable view: replay, stored writes, snapshots
  ---------------------------------------------------------------------------

  local function malformed(manifest, seq)
    error(fmt("malformed internal event %s at seq %s", manifest, tostring(seq)), 0)
  end

  local function put_durable(tm, id, d)
    tm.dur[id] = d
    if id >= tm.dnext then tm.dnext = id + 1 end
  end

  local function valid_timer(id, d)
    return mtype(id) == "integer" and id >= 1 and d.msg ~= nil and mtype(d.due) == "integer"
      and (d.every == nil or mtype(d.every) == "integer" and d.every >= 1)
  end

  assert(CREATE == X.kind("timer", {
    apply = function(rec, p, seq)
      if not valid_timer(p.id, p) then malformed(CREATE, seq) end
      put_durable(state(rec), p.id, { msg = p.msg, due = p.due, every = p.every, key = p.key })
    end,
    refused = function(rec, p)
      local tm = rec.tm
      local e = tm and tm.live[p.id]
      if e then forget(tm, e) end
    end,
  }))

  assert(FIRED == X.kind("timer_fired", {
    apply = function(rec, p, seq)
      if mtype(p.id) ~= "integer" or (p.next ~= nil and mtype(p.next) ~= "integer") then malformed(FIRED, seq) end
      local tm = state(rec)
      local d = tm.dur[p.id]
      if not d then return end
      if p.next then d.due = p.next else tm.dur[p.id] = nil end
    end,
  }))

  assert(CANCEL == X.kind("timer_cancel", {
    apply = function(rec, p, seq)
      if mtype(p.id) ~= "integer" then malformed(CANCEL, seq) end
      state(rec).dur[p.id] = nil
    end,
  }))

  -- What a snapshot carries (nil when this actor never had a durable timer).
  function T.snapshot(rec)
    local tm = rec.tm
    if not tm or tm.dnext == 1 then return nil end
    local list = {}
    for id, d in pairs(tm.dur) do
      list[#list + 1] = { id = id, msg = d.msg, due = d.due, every = d.every, key = d.key }
    end
    table.sort(list, function(a, b) return a.id < b.id end)
    return { next = tm.dnext, timers = list }
  end

  function T.restore(rec, s)
    if s == nil then return end
    if type(s) ~= "table" or mtype(s.next) ~= "integer" or type(s.timers) ~= "table" then
      error("the snapshot's timer state is malformed", 0)
    end
    local tm = state(rec)
    for _, d in ipairs(s.timers) do
      if type(d) ~= "table" or not valid_timer(d.id, d) then error("the snapshot's timer state is malformed", 0) end
      put_durable(tm, d.id, { msg = d.msg, due = d.due, every = d.every, key = d.key })
    end
    if s.next > tm.dnext then tm.dnext = s.next end
  end

  ---------------------------------------------------------------------------
  -- Lifecycle
  ---------------------------------------------------------------------------

  function T.reset(rec)
    local tm = rec.tm
    if tm then
      for _, e in pairs(tm.live) do disarm(e) end
      rec.tm = nil
    end
    -- (a nil stored under a key the record lacks still costs a lookup and a
    -- miss: most records never had these)
    if rec.due ~= nil or rec.kicked ~= nil then
      rec.due = nil
      rec.kicked = nil
    end
  end

  -- Recovery completed: the journal's timers are live again; those already due fire at the
  -- end of this turn, before the commands that waited for the recovery.
  function T.recovered(rec)
    local tm = rec.tm
    if not tm then return end
    tm.next, tm.live, tm.keys = tm.dnext, {}, {}
    local now = now_ms()
    for id, d in pairs(tm.dur) do
      local e = { id = id, msg = d.msg, due = d.due, every = d.every, key = d.key }
      tm.live[id] = e
      if d.key ~= nil then tm.keys[d.key] = id end
      if e.due <= now then queue_due(rec, e) else arm(e) end
    end
  end

  function T.stopped(rec)
    local tm = rec.tm
    if tm then
      for _, e in pairs(tm.live) do disarm(e) end
    end
    rec.due = nil
  end

  return T
end
