-- persistent.lua: persistent actors: persist, persist_all, persist_async, defer, recovery, failures.
-- The semantics are Akka Persistence's (API.md section 3). Returns a constructor
-- that runtime.lua calls with (core, R, ctx_methods).
return function(core, R, ctx_methods)
  local P = {}
  local type, pcall, tostring, ipairs, error = type, pcall, tostring, ipairs, error
  local fmt = string.format
  local MAXINT = math.maxinteger
  local LOG_INFO, LOG_WARN, LOG_ERROR = 1, 2, 3

  -- System message subtypes: persist_lua.c owns 16..18; these are timers.
  local SYS_PERSISTED, SYS_DELETED, SYS_PAGE = 16, 17, 18
  local SYS_RECOVERY_TIMEOUT, SYS_RESTART_RECOVERY = 19, 20
  -- snapshot_lua.c owns 21..23.
  local SYS_SNAP_SAVED, SYS_SNAP_LOADED, SYS_SNAP_DELETED = 21, 22, 23
  local JOURNAL_EREJECTED = -5002
  local SNAPSHOT_ENOTFOUND = -5102

  local token_seq = 0
  local function next_token()
    token_seq = token_seq + 1
    return token_seq
  end

  ---------------------------------------------------------------------------
  -- The queue of operations an actor has issued and not yet seen complete:
  -- journal writes, defers and rejections, handled strictly in issue order.
  ---------------------------------------------------------------------------

  local function q_new() return { first = 1, last = 0 } end
  local function q_push(q, v)
    q.last = q.last + 1
    q[q.last] = v
  end
  local function q_head(q) return q[q.first] end
  local function q_pop(q)
    local v = q[q.first]
    q[q.first] = nil
    q.first = q.first + 1
    return v
  end
  local function q_empty(q) return q.first > q.last end

  -- The mailbox is held (the internal stash) while recovering, restarting or
  -- while a stashing persist or defer is outstanding.
  local function set_hold(rec)
    local want = rec._recovering or rec._restarting or rec._stashing > 0
    if want and not rec._holding then
      rec._holding = true
      core.hold(rec._aid)
    elseif not want and rec._holding then
      rec._holding = false
      core.release(rec._aid)
    end
  end

  local function call_hook(rec, name, ...)
    local f = rec._m[name]
    if type(f) ~= "function" then return false end
    f(...)
    return true
  end

  local function apply(rec, evt)
    local ns = rec._m.apply(rec._st, evt)
    if ns ~= nil then rec._st = ns end
  end

  local function maybe_stop(rec)
    if rec._stop_when_idle and q_empty(rec._pending) and rec._inflight == 0
      and not rec._recovering and not rec._restarting then
      R.stop_actor(rec)
    end
  end

  -- Runs the operations at the head that need no journal answer.
  local function drain(rec)
    local q = rec._pending
    while not q_empty(q) do
      local op = q_head(q)
      if op.token then break end -- a journal write still in flight
      q_pop(q)
      if op.stashing then rec._stashing = rec._stashing - 1 end
      core.set_current(op.ss, op.sa, op.sc)
      if op.defer then
        rec._in_callback = true
        op.defer(rec._st)
        rec._in_callback = false
      else -- rejected before storage: the actor continues
        for _, evt in ipairs(op.events) do
          if not call_hook(rec, "on_persist_rejected", rec._st, op.rejected, evt, rec) then
            core.log(LOG_WARN, fmt("%s: event rejected: %s", rec.id, op.rejected))
          end
        end
      end
    end
    set_hold(rec)
    maybe_stop(rec)
  end

  local function submit(rec, events, fn, stashing)
    if rec._recovering then error("cannot persist while recovering", 3) end
    if fn ~= nil and type(fn) ~= "function" then error("persist: the callback must be a function", 3) end
    local n = #events
    local ss, sa, sc = core.current()
    local op = { events = events, fn = fn, stashing = stashing, ss = ss, sa = sa, sc = sc }
    if n == 0 then return end
    local first = rec._next_seq + 1
    local token = next_token()
    local ok, err = core.persist(rec._aid, rec.id, rec._writer, first, events, nil, token)
    if ok then
      op.token, op.first = token, first
      rec._next_seq = rec._next_seq + n
      rec._inflight = rec._inflight + 1
    else
      op.rejected = err
    end
    q_push(rec._pending, op)
    if stashing then rec._stashing = rec._stashing + 1 end
    set_hold(rec)
  end

  function ctx_methods:persist(evt, fn)
    if not self._persistent then error("ctx:persist: this actor is not persistent (no apply)", 2) end
    submit(self, { evt }, fn, true)
  end

  function ctx_methods:persist_all(list, fn)
    if not self._persistent then error("ctx:persist_all: this actor is not persistent", 2) end
    if type(list) ~= "table" then error("ctx:persist_all(list, fn): list must be a table", 2) end
    submit(self, list, fn, true)
  end

  function ctx_methods:persist_async(evt, fn)
    if not self._persistent then error("ctx:persist_async: this actor is not persistent", 2) end
    submit(self, { evt }, fn, false)
  end

  local function defer(rec, fn, stashing)
    if type(fn) ~= "function" then error("defer: expects a function", 3) end
    local ss, sa, sc = core.current()
    q_push(rec._pending, { defer = fn, stashing = stashing, ss = ss, sa = sa, sc = sc })
    if stashing then rec._stashing = rec._stashing + 1 end
    set_hold(rec)
  end

  function ctx_methods:defer(fn) defer(self, fn, true) end
  function ctx_methods:defer_async(fn) defer(self, fn, false) end

  function ctx_methods:delete_events(to_seq)
    if type(to_seq) ~= "number" or math.type(to_seq) ~= "integer" then
      error("ctx:delete_events(to_seq): to_seq must be an integer", 2)
    end
    local ok, err = core.delete_events(self._aid, self.id, to_seq, next_token())
    if not ok then error("delete_events: " .. err, 2) end
    self._inflight = self._inflight + 1
  end

  ---------------------------------------------------------------------------
  -- Recovery, at most max_concurrent_recoveries at once (split over workers).
  ---------------------------------------------------------------------------

  local running, waiting = 0, q_new()
  local quota

  local function recovery_quota()
    if not quota then
      local _, workers = core.worker()
      local max = core.config().max_concurrent_recoveries
      quota = math.max(1, (max + workers - 1) // workers)
    end
    return quota
  end

  local begin_recovery

  local function recovery_slot_freed(rec)
    if rec._has_slot then
      rec._has_slot = false
      running = running - 1
    end
    while running < recovery_quota() and not q_empty(waiting) do
      local next_rec = q_pop(waiting)
      -- A rec queued twice (a restart abandoned its first turn, see P.restart)
      -- begins once.
      if not next_rec._dead and next_rec._recovering and not next_rec._has_slot then
        begin_recovery(next_rec)
      end
    end
  end

  local function recovery_failed(rec, err)
    core.log(LOG_ERROR, fmt("recovery of %s failed: %s; stopping the actor", rec.id, err))
    rec._recovering = false
    rec.recovering = false
    rec._rec_token = nil
    recovery_slot_freed(rec)
    local ok, herr = pcall(call_hook, rec, "on_recovery_failure", err, rec)
    if not ok then core.log(LOG_WARN, fmt("%s: on_recovery_failure: %s", rec.id, tostring(herr))) end
    set_hold(rec)
    R.stop_actor(rec)
  end

  function begin_recovery(rec)
    running = running + 1
    rec._has_slot = true
    rec._rec_token = next_token()
    rec._rec_progress = 0
    rec._expect = nil
    rec._first_page = true
    local rc = rec._m.recovery
    if rc == false then
      rec._replay_left = 0
      rec._limited = false
      core.replay(rec._aid, rec.id, 1, MAXINT, 0, rec._rec_token, true)
    else
      if rc ~= nil and type(rc) ~= "table" then
        return recovery_failed(rec, "M.recovery must be a table or false")
      end
      rc = rc or {}
      rec._replay_to = rc.to_seq or MAXINT
      rec._replay_left = rc.replay_max or -1
      rec._limited = rc.to_seq ~= nil or rc.replay_max ~= nil
      local sel = rc.snapshot
      if sel == nil then sel = "latest" end
      if sel == "none" then
        core.replay(rec._aid, rec.id, 1, rec._replay_to, rec._replay_left, rec._rec_token, true)
      else
        -- The latest snapshot that matches (and is not past to_seq) is offered first.
        local crit = {}
        if type(sel) == "table" then
          crit.max_seq, crit.max_ts, crit.min_seq, crit.min_ts = sel.max_seq, sel.max_ts, sel.min_seq, sel.min_ts
        elseif sel ~= "latest" then
          return recovery_failed(rec, "M.recovery.snapshot must be \"latest\", \"none\" or criteria")
        end
        if rc.to_seq and (crit.max_seq == nil or crit.max_seq > rc.to_seq) then crit.max_seq = rc.to_seq end
        rec._snap_crit, rec._snap_skip = crit, 0
        rec._snap_required = rc.snapshot_required
        core.snapshot_load(rec._aid, rec.id, crit, 0, rec._rec_token)
      end
    end
    -- One timeout timer per actor at a time: a restart's recovery would
    -- otherwise add a second chain of checks, and one chain finding no
    -- progress just after another reset the count would fail a recovery
    -- that is progressing. A timer armed by an earlier recovery counts
    -- this start as progress, so this one gets a full period too.
    if rec._timeout_armed then
      rec._rec_progress = 1
    else
      rec._timeout_armed = true
      core.schedule(rec._aid, core.config().recovery_timeout, nil, SYS_RECOVERY_TIMEOUT)
    end
  end

  local function start_recovery(rec)
    rec._writer = core.uuid() -- a new incarnation writes under a new writer id
    rec._recovering = true
    rec.recovering = true
    set_hold(rec)
    if running < recovery_quota() then
      begin_recovery(rec)
    else
      q_push(waiting, rec)
    end
  end

  local function complete_recovery(rec)
    rec._recovering = false
    rec.recovering = false
    rec._rec_token = nil
    recovery_slot_freed(rec)
    rec._failures_in_recovery = 0
    call_hook(rec, "on_recovery_completed", rec._st, rec) -- an error here is a failure: restart
    set_hold(rec)
    maybe_stop(rec)
  end

  -- A snapshot arrived (or none matched): restore it, then replay what follows.
  -- One that fails to load or decode falls back to the next older one, then to
  -- a full replay, unless M.recovery.snapshot_required.
  local function on_snapshot_loaded(rec, token, mptr)
    if token ~= rec._rec_token then return end
    rec._rec_progress = rec._rec_progress + 1
    local status, seq, ts = core.snapshot_result(mptr)
    local value, err
    if status == 0 then
      value, err = core.snapshot_decode(mptr)
      if value ~= nil and rec._m.restore then
        local ok, r = pcall(rec._m.restore, value)
        if ok then value = r else value, err = nil, "M.restore: " .. tostring(r) end
      end
      if value == nil and not err then err = "the snapshot is empty" end
    elseif status ~= SNAPSHOT_ENOTFOUND then
      err = core.snapshot_strerror(status)
    end
    if err then
      local msg = fmt("snapshot of %s at seq %d unusable: %s", rec.id, seq, err)
      if rec._snap_required then return recovery_failed(rec, msg) end
      core.log(LOG_WARN, msg .. "; trying an older one")
      rec._snap_skip = rec._snap_skip + 1
      return core.snapshot_load(rec._aid, rec.id, rec._snap_crit, rec._snap_skip, token)
    end
    local from = 1
    if status == 0 then
      rec._st = value
      rec.seq = seq
      rec._last_snap_seq = seq
      from = seq + 1
    elseif rec._snap_required then
      return recovery_failed(rec, fmt("no snapshot of %s matches and one is required", rec.id))
    end
    core.replay(rec._aid, rec.id, from, rec._replay_to, rec._replay_left, token, true)
  end

  local function on_page(rec, token, mptr)
    if token ~= rec._rec_token then return end -- a page for an earlier incarnation
    rec._rec_progress = rec._rec_progress + 1
    local status, highest, count, last, more = core.page_info(mptr)
    if status ~= 0 then
      -- The page's events before the failing row came back with it: the row
      -- that failed (e.g. its CRC) is the one after the last of them.
      local after = count > 0 and last or rec.seq
      return recovery_failed(rec, fmt("journal error at id %s reading the event after seq %d "
        .. "(expected seq %d): %s", rec.id, after, after + 1, core.journal_strerror(status)))
    end
    if rec._first_page then
      rec._first_page = false
      rec._highest = highest
    end
    -- Ask for the next page before applying this one: the read (thread pool)
    -- overlaps with decoding and apply (this worker).
    if more then
      if rec._replay_left > 0 then rec._replay_left = rec._replay_left - count end
      core.replay(rec._aid, rec.id, last + 1, rec._replay_to, rec._replay_left, token, false)
    end
    if count > 0 then
      local id, M = rec.id, rec._m
      -- The hot loop of recovery: locals, not table fields, per event.
      local expect, st, last_seq, apply_fn = rec._expect, rec._st, rec.seq, M.apply
      local ok, err = pcall(core.page_each, mptr, function(seq, evt)
        if expect and seq ~= expect then
          error(fmt("sequence gap at id %s: expected seq %d, found %d", id, expect, seq), 0)
        end
        expect = seq + 1
        last_seq = seq
        local ns = apply_fn(st, evt)
        if ns ~= nil then st = ns end
      end)
      rec._expect, rec._st, rec.seq = expect, st, last_seq
      if not ok then
        err = tostring(err)
        if not err:find(id, 1, true) then err = fmt("at id %s: %s", id, err) end
        return recovery_failed(rec, err)
      end
    end
    if more then return end
    if not rec._limited and rec._expect and rec.seq < rec._highest then
      return recovery_failed(rec, fmt("events missing at id %s: replay ended at seq %d, highest is %d",
        rec.id, rec.seq, rec._highest))
    end
    if not rec._limited then rec.seq = math.max(rec.seq, rec._highest) end
    -- Never reuse a stored seq, even after a partial (to_seq) recovery.
    rec._next_seq = math.max(rec.seq, rec._highest)
    complete_recovery(rec)
  end

  ---------------------------------------------------------------------------
  -- Entry points for runtime.lua
  ---------------------------------------------------------------------------

  ---------------------------------------------------------------------------
  -- Snapshots
  ---------------------------------------------------------------------------

  function P.save_snapshot(rec)
    local M = rec._m
    local value = rec._st
    if M.snapshot then value = M.snapshot(rec._st) end
    rec._last_snap_seq = rec.seq
    local keep = M.keep_snapshots
    if keep ~= nil and (math.type(keep) ~= "integer" or keep < 1) then
      error("M.keep_snapshots must be a positive integer")
    end
    local ts, err = core.snapshot_save(rec._aid, rec.id, rec.seq, value, keep or 0, next_token())
    if not ts then
      if not call_hook(rec, "on_snapshot", false, err, rec) then
        core.log(LOG_WARN, fmt("%s: snapshot not saved: %s", rec.id, err))
      end
    end
  end

  function P.snapshot_saved(rec, mptr)
    local status, seq, ts, oldest_kept = core.snapshot_result(mptr)
    if status ~= 0 then
      local err = core.snapshot_strerror(status)
      if not call_hook(rec, "on_snapshot", false, err, rec) then
        core.log(LOG_WARN, fmt("%s: snapshot at seq %d failed: %s", rec.id, seq, err))
      end
      return
    end
    -- Events covered by the oldest kept snapshot are no longer needed.
    if rec._m.delete_events_on_snapshot and oldest_kept > 0 and not rec._stopping then
      local ok, derr = core.delete_events(rec._aid, rec.id, oldest_kept, next_token())
      if ok then
        rec._inflight = rec._inflight + 1
      else
        core.log(LOG_WARN, fmt("%s: deleting events after a snapshot: %s", rec.id, derr))
      end
    end
    call_hook(rec, "on_snapshot", true, { seq = seq, timestamp = ts }, rec)
  end

  function ctx_methods:save_snapshot()
    if not self._persistent then error("ctx:save_snapshot: this actor is not persistent", 2) end
    if self._recovering then error("ctx:save_snapshot: not while recovering", 2) end
    P.save_snapshot(self)
  end

  function ctx_methods:delete_snapshots(criteria)
    if not self._persistent then error("ctx:delete_snapshots: this actor is not persistent", 2) end
    if type(criteria) ~= "table" then
      error("ctx:delete_snapshots(criteria): { max_seq=, min_seq=, max_ts=, min_ts= }", 2)
    end
    core.snapshot_delete(self._aid, self.id, criteria, next_token())
  end

  function P.start(rec)
    rec._pending = q_new()
    rec._stashing = 0
    rec._inflight = 0
    rec._next_seq = 0
    local cap = rec._m.stash_capacity
    if cap ~= nil then
      if math.type(cap) ~= "integer" or cap < 1 then error("M.stash_capacity must be a positive integer") end
      core.set_capacity(rec._aid, cap)
    end
    local s = rec._m.stash_overflow
    if s ~= nil and s ~= "fail" and s ~= "drop" and s ~= "reply" then
      error("M.stash_overflow must be \"fail\", \"drop\" or \"reply\"")
    end
    start_recovery(rec)
  end

  function P.receive(rec, msg)
    rec._m.receive(rec._st, msg, rec)
    drain(rec)
  end

  local function on_persisted(rec, token, status)
    core.io_end(rec._aid)
    rec._inflight = rec._inflight - 1
    local q = rec._pending
    local op = q_head(q)
    if not op or op.token ~= token then -- from before a restart: its events are replayed
      if rec._restarting and rec._inflight == 0 and rec._restart_ready then P.restart_recovery(rec) end
      return
    end
    q_pop(q)
    if op.stashing then rec._stashing = rec._stashing - 1 end
    if status == 0 then
      rec._failures = 0 -- the journal works again: the next failure backs off from the start
      core.set_current(op.ss, op.sa, op.sc)
      local fn = op.fn
      for i, evt in ipairs(op.events) do
        rec.seq = op.first + i - 1
        apply(rec, evt)
        if fn then
          rec._in_callback = true
          fn(rec._st, evt)
          rec._in_callback = false
        end
      end
      local every = rec._m.snapshot_every
      if every and rec.seq - (rec._last_snap_seq or 0) >= every then P.save_snapshot(rec) end
    elseif status == JOURNAL_EREJECTED then
      local err = core.journal_strerror(status)
      -- Refused by the journal (e.g. a constraint): nothing was stored at
      -- these seqs. If no later write has taken a seq after them, give them
      -- back, as for an event refused before submission. Otherwise the
      -- journal refuses those later writes too (it never stores a hole), and
      -- their failure restarts the actor, which recovers what is stored.
      local last = op.first + #op.events - 1
      if rec._next_seq == last then
        rec._next_seq = op.first - 1
      else
        core.log(LOG_WARN, fmt("%s: seqs %d..%d were refused while later writes were in flight: "
          .. "those will fail and the actor will recover", rec.id, op.first, last))
      end
      for _, evt in ipairs(op.events) do
        if not call_hook(rec, "on_persist_rejected", rec._st, err, evt, rec) then
          core.log(LOG_WARN, fmt("%s: event rejected: %s", rec.id, err))
        end
      end
    else
      local err = core.journal_strerror(status)
      core.log(LOG_ERROR, fmt("%s: persist failed at seq %d: %s; restarting with back-off", rec.id,
        op.first, err))
      local ok, herr = pcall(call_hook, rec, "on_persist_failure", rec._st, err, op.events[1], rec)
      if not ok then core.log(LOG_WARN, fmt("%s: on_persist_failure: %s", rec.id, tostring(herr))) end
      rec._failures = (rec._failures or 0) + 1
      return P.restart(rec, err, true)
    end
    drain(rec)
  end

  function P.system(rec, kind, ival, token, mptr)
    if kind == SYS_PERSISTED then
      return on_persisted(rec, token, ival)
    elseif kind == SYS_DELETED then
      core.io_end(rec._aid)
      rec._inflight = rec._inflight - 1
      local ok = ival == 0
      if not ok then
        core.log(LOG_WARN, fmt("%s: delete_events failed: %s", rec.id, core.journal_strerror(ival)))
      end
      call_hook(rec, "on_events_deleted", ok, ok and rec.seq or core.journal_strerror(ival), rec)
      if rec._restarting and rec._inflight == 0 and rec._restart_ready then P.restart_recovery(rec) end
      maybe_stop(rec)
    elseif kind == SYS_PAGE then
      return on_page(rec, token, mptr)
    elseif kind == SYS_SNAP_LOADED then
      return on_snapshot_loaded(rec, token, mptr)
    elseif kind == SYS_SNAP_SAVED then
      return P.snapshot_saved(rec, mptr)
    elseif kind == SYS_SNAP_DELETED then -- (snapshot_lua.c ended the I/O itself)
      local status = core.snapshot_result(mptr)
      if status ~= 0 then
        core.log(LOG_WARN, fmt("%s: delete_snapshots failed: %s", rec.id, core.snapshot_strerror(status)))
      end
    elseif kind == SYS_RECOVERY_TIMEOUT then
      rec._timeout_armed = false
      if not rec._recovering or not rec._has_slot then return end
      if rec._rec_progress == 0 then
        return recovery_failed(rec, fmt("recovery of %s timed out", rec.id))
      end
      rec._rec_progress = 0
      rec._timeout_armed = true
      core.schedule(rec._aid, core.config().recovery_timeout, nil, SYS_RECOVERY_TIMEOUT)
    elseif kind == SYS_RESTART_RECOVERY then
      -- Only a restart that has not begun its recovery may begin it: a
      -- recovery begun twice applies every event twice.
      if not rec._restarting then return end
      rec._restart_ready = true
      if rec._inflight == 0 then P.restart_recovery(rec) end
    end
  end

  -- A failure (a raising handler, a failed write): drop what was pending,
  -- hold the mailbox, and once writes in flight have landed, recover again
  -- from the journal, after a back-off when failures repeat.
  function P.restart(rec, err, persist_failure)
    -- Already restarting (its back-off has not ended): one restart, one
    -- timer. Every message overflowing a "fail" stash fails the actor while
    -- it is held; each scheduling another recovery would apply the events
    -- once per recovery onto the same state.
    if rec._restarting then return err end
    rec._pending = q_new()
    rec._stashing = 0
    if rec._recovering then
      -- A failure during recovery (e.g. stash overflow "fail"): abandon this
      -- recovery. Its pages would otherwise go on being applied to the fresh
      -- state below, and the restart's own recovery would apply them again.
      rec._recovering = false
      rec.recovering = false
      rec._rec_token = nil -- its pages in flight are ignored (on_page)
      recovery_slot_freed(rec)
    end
    rec._restarting = true
    rec._restart_ready = false
    set_hold(rec)
    local ok, ierr = R.init_state(rec)
    if not ok then
      core.log(LOG_ERROR, fmt("%s cannot restart: %s; stopping", rec.id, ierr))
      rec._restarting = false
      set_hold(rec)
      return R.stop_actor(rec)
    end
    local n = rec._failures or 1
    local delay = 0
    if persist_failure or n > 1 then delay = math.min(0.05 * 2 ^ (n - 1), 10) end
    core.schedule(rec._aid, delay, nil, SYS_RESTART_RECOVERY)
    return err
  end

  function P.restart_recovery(rec)
    rec._restarting = false
    rec._restart_ready = false
    rec.seq = 0
    start_recovery(rec)
  end

  function P.stop_requested(rec)
    rec._stop_when_idle = true
    maybe_stop(rec)
  end

  function P.stopped(rec)
    if rec._recovering then
      rec._recovering = false
      recovery_slot_freed(rec)
    end
  end

  return P
end
