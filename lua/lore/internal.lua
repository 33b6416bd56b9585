-- internal.lua: Lore's own events in a persistent actor's stream (deliveries, confirmations,
-- durable timers): how they are written, replayed and snapshotted. apply never sees them.
-- Loaded by runtime.lua with (core, R, P, ctx_methods); connects delivery.lua and timers.lua.
--
-- An internal event has a manifest that begins with "lore." (the C side refuses that prefix
-- for a behaviour's own events, and hands such events to X.replay instead of apply; queries
-- leave them out unless asked) and a payload that is a plain table.
--
-- Riders. The internal events an actor issues during a turn (a handler call and what it
-- triggers) wait in rec.riders and go FIRST in the next journal write the actor issues in
-- that turn, in the same atomic write as the behaviour's events; those left at the end of
-- the turn are written alone (P.write_riders). So `ctx:deliver` followed by `ctx:persist`
-- in one handler is all or nothing after a crash, and a durable timer's "fired" marker is
-- stored with whatever its handler persists.
--
-- Two views of the state each kind keeps: the durable one (what the journal holds up to
-- rec.seq: changed only by replay and by a write that has been stored, and what snapshots
-- carry) and the live one (what the actor does now: unconfirmed deliveries, armed timers),
-- rebuilt from the durable one when recovery completes.
return function(core, R, P, ctx_methods)
  -- the record's array slots persistent.lua keeps its hot fields in
  local SEQ, RECOVERING, pid = P.SEQ, P.RECOVERING, P.pid
  local X = {}
  local type, ipairs, tostring, error = type, ipairs, tostring, error
  local fmt = string.format
  local LOG_ERROR = 3
  local SYS = core.SYS
  local SYS_REDELIVER, SYS_TIMER_DUE = SYS.REDELIVER, SYS.TIMER_DUE
  local PREFIX = "lore."
  local RETRY_SECONDS = 1

  local kinds = {} -- manifest -> { apply = fn(rec, payload, seq), refused = fn(rec, rider) }

  -- A kind of internal event; its manifest is PREFIX .. name.
  function X.kind(name, k)
    kinds[PREFIX .. name] = k
    return PREFIX .. name
  end

  -- Queues an internal event of the current turn. stored(rec, payload, seq) runs once it is
  -- durable (after the kind's apply), e.g. to send a delivery for the first time.
  function X.add(rec, manifest, payload, stored)
    local riders = rec.riders
    if not riders then
      riders = {}
      rec.riders = riders
    end
    riders[#riders + 1] = { manifest = manifest, payload = payload, stored = stored }
  end

  -- The rider list of the turn, if its last entry is of `manifest` (to merge into it).
  function X.last(rec, manifest)
    local riders = rec.riders
    local last = riders and riders[#riders]
    if last and last.manifest == manifest then return last end
    return nil
  end

  -- core.persist of riders then events (with their metas, if any: adapters), one atomic
  -- write: first seq, ts | nil, err.
  function X.persist_riding(rec, riders, events, token, event_metas)
    local list, metas, n = {}, {}, #riders
    for i = 1, n do
      list[i] = riders[i].payload
      metas[i] = { manifest = riders[i].manifest, internal = true }
    end
    for i = 1, #events do
      list[n + i] = events[i]
      if event_metas then metas[n + i] = event_metas[i] end
    end
    local first, ts = core.persist(list, metas, token)
    if first then rec.riders = nil end -- else they wait for the next write
    return first, ts
  end

  -- A write carrying riders is stored: each kind updates its durable view, then what waited
  -- for it runs. ctx.seq follows.
  function X.stored(rec, riders, first, ts)
    for i, r in ipairs(riders) do
      local seq = first + i - 1
      rec[SEQ] = seq
      kinds[r.manifest].apply(rec, r.payload, seq, ts)
      if r.stored then r.stored(rec, r.payload, seq) end
    end
  end

  -- The journal refused a write with riders before storage. Alone, they are the reason:
  -- dropped (logged; a delivery is given up, a timer forgotten). With the behaviour's
  -- events, those may be the reason: the riders try once more on their own.
  function X.refused(rec, riders, err, alone)
    local again = {}
    for _, r in ipairs(riders) do
      if alone or r.retried then
        core.log(LOG_ERROR, fmt("%s: the journal refused Lore's own event %s: %s; it is dropped",
          tostring(pid(rec)), r.manifest, tostring(err)))
        local refused = kinds[r.manifest].refused
        if refused then refused(rec, r.payload) end
      else
        r.retried = true
        again[#again + 1] = r
      end
    end
    if #again > 0 then
      local queued = rec.riders or {}
      for _, r in ipairs(queued) do again[#again + 1] = r end
      rec.riders = again
    end
  end

  -- Replay: an internal event read from the journal. An unknown kind (written by a newer
  -- Lore) fails the recovery rather than being skipped.
  function X.replay(rec, seq, evt, manifest, ts)
    local k = kinds[manifest]
    if not k then
      error(fmt("unknown internal event '%s' at seq %d (written by a newer Lore?)", manifest, seq), 0)
    end
    if type(evt) ~= "table" then error(fmt("malformed internal event '%s' at seq %d", manifest, seq), 0) end
    k.apply(rec, evt, seq, ts)
  end

  -- The function core.page_apply hands Lore's own events to. One for the worker, not a
  -- closure per recovery: core.page_apply calls it only while it runs, right after
  -- X.replayer named the record (a worker applies one page at a time).
  local replaying
  local function replay_current(seq, evt, manifest, ts) X.replay(replaying, seq, evt, manifest, ts) end
  function X.replayer(rec)
    replaying = rec
    return replay_current
  end

  local D = require("lore.delivery")(core, R, P, X, ctx_methods)
  local T = require("lore.timers")(core, R, P, X, ctx_methods)

  ---------------------------------------------------------------------------
  -- Snapshots: the behaviour's value and Lore's own state side by side, under a key no
  -- behaviour state should use ("lore.snapshot"). A snapshot of an actor that never used
  -- delivery or durable timers is the behaviour's value alone, as before.
  ---------------------------------------------------------------------------

  local SNAP_KEY = "lore.snapshot"
  local SNAP_VERSION = 1

  function X.wrap_snapshot(rec, value)
    local d, t = D.snapshot(rec), T.snapshot(rec)
    if d == nil and t == nil then return value end
    return { [SNAP_KEY] = SNAP_VERSION, internal = { delivery = d, timers = t }, state = value }
  end

  -- -> the behaviour's value, and Lore's part (nil for a plain snapshot)
  function X.unwrap_snapshot(value)
    if type(value) == "table" and value[SNAP_KEY] ~= nil and type(value.internal) == "table" then
      if value[SNAP_KEY] ~= SNAP_VERSION then
        error(fmt("snapshot format %s of Lore's own state is unknown (a newer Lore?)",
          tostring(value[SNAP_KEY])), 0)
      end
      return value.state, value.internal
    end
    return value, nil
  end

  function X.restore_snapshot(rec, carried)
    if carried == nil then return end
    D.restore(rec, carried.delivery)
    T.restore(rec, carried.timers)
  end

  ---------------------------------------------------------------------------
  -- Lifecycle
  ---------------------------------------------------------------------------

  -- Recovery starts (spawn, restart): nothing of an earlier incarnation stays.
  function X.reset(rec)
    if rec.riders ~= nil or rec.riders_retry ~= nil then
      rec.riders = nil
      rec.riders_retry = nil
    end
    D.reset(rec)
    T.reset(rec)
  end

  -- Recovery completed (before on_recovery_completed and the commands that waited).
  function X.recovered(rec)
    D.recovered(rec)
    T.recovered(rec)
  end

  -- The end of a turn: riders no write took are written alone; a durable timer that came
  -- due fires, in a SYS_TIMER_DUE turn (timer_turn) of its own, once the actor is free.
  local function turn_end(rec, timer_turn)
    if rec.dead or rec[RECOVERING] or rec.restarting then
      rec.riders = nil
      return
    end
    if rec.riders then P.write_riders(rec) end
    if rec.due and timer_turn then
      T.fire_due(rec) -- the firing's riders (its "fired" marker) end its turn
      if rec.riders and not (rec.dead or rec[RECOVERING] or rec.restarting) then P.write_riders(rec) end
    end
    if rec.due then T.kick_if_due(rec) end
    -- Refused before storage (the journal's circuit breaker is open, say): they wait in
    -- memory for the actor's next write, and a turn a second from now tries again.
    if rec.riders and not rec.riders_retry and not rec.dead then
      rec.riders_retry = true
      core.timer_system(RETRY_SECONDS, SYS_TIMER_DUE, 0)
    end
  end

  -- persistent.lua calls it at the end of a journal completion's turn (which has an entry
  -- of its own, not R.system), when the actor has riders or a timer due.
  X.turn_end = turn_end

  local dispatch, system, failed, stopped = R.dispatch, R.system, R.failed, R.stopped
  X.dispatch = dispatch -- a durable timer's firing is a command like any other

  function R.dispatch(rec, msg)
    dispatch(rec, msg)
    if rec.riders or rec.due then turn_end(rec) end
  end

  function R.system(rec, kind, ival, token, mptr)
    local timer_turn = kind == SYS_TIMER_DUE
    if kind == SYS_REDELIVER then
      D.tick(rec, token)
    elseif timer_turn then
      if ival == 0 then rec.riders_retry = nil end -- a turn to go on with (see turn_end)
      T.came_due(rec, ival, token)
    else
      system(rec, kind, ival, token, mptr)
    end
    if rec.riders or rec.due then turn_end(rec, timer_turn) end
  end

  -- A failed turn's riders are its effects: they go with it (recovery rebuilds the rest).
  function R.failed(rec, raised)
    rec.riders = nil
    rec.due = nil
    rec.kicked = nil
    return failed(rec, raised)
  end

  function R.stopped(rec)
    D.stopped(rec)
    T.stopped(rec)
    return stopped(rec)
  end

  -- ctx:stop(), ctx:defer(fn) and ctx:defer_async(fn) write the turn's riders first: the
  -- stop, and fn, wait for them to be durable, like for the events persisted before.
  local function riders_first(name)
    local f = ctx_methods[name]
    ctx_methods[name] = function(self, ...)
      local rec = R.own(self, name)
      if rec.riders and rec[SEQ] and not rec[RECOVERING] then P.write_riders(rec) end
      return f(self, ...)
    end
  end
  riders_first("stop")
  riders_first("defer")
  riders_first("defer_async")

  P.use_internal(X)
  return X
end
