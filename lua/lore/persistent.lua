-- persistent.lua: persistent actors: persist, persist_all, persist_async, defer, recovery, failures.
-- The semantics are Akka Persistence's. Returns a constructor that runtime.lua
-- calls with (core, R, ctx_methods).
--
-- The persistence id, the writer (incarnation) and every sequence number are
-- the C side's (persist_lua.c): this file only decides WHEN to write, and what
-- runs when a write completes. Nothing a script does to its ctx can make a
-- write land in another stream or at another seq.
return function(core, R, ctx_methods)
  local P = {}
  local type, pcall, tostring, ipairs, pairs, error = type, pcall, tostring, ipairs, pairs, error
  local fmt = string.format
  local MAXINT = math.maxinteger
  local LOG_WARN, LOG_ERROR = 2, 3
  local SYS = core.SYS
  local JOURNAL_EREJECTED = core.E.JOURNAL_EREJECTED
  local SNAPSHOT_ENOTFOUND = core.E.SNAPSHOT_ENOTFOUND
  local BEH <const>, ST <const>, CTX <const> = 1, 2, 3
  local own = R.own

  local token_seq = 0
  local function next_token()
    token_seq = token_seq + 1
    return token_seq
  end

  -- ctx.seq and ctx.recovering read these (runtime.lua's ctx).
  local function set_seq(rec, seq) rec.seq = seq end
  local function set_recovering(rec, on) rec.recovering = on end

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
    local want = rec.recovering or rec.restarting or rec.stashing > 0
    if want and not rec.holding then
      rec.holding = true
      core.hold()
    elseif not want and rec.holding then
      rec.holding = false
      core.release()
    end
  end

  local function call_hook(rec, name, ...)
    local f = rec[BEH].M[name]
    if type(f) ~= "function" then return false end
    f(...)
    return true
  end

  -- apply(state, evt, meta): meta only for an apply that takes it (a table
  -- per event is a cost most behaviours do not want).
  local function apply_meta(rec)
    local M = rec[BEH].M
    if rec[BEH].apply_fn ~= M.apply then
      rec[BEH].apply_fn, rec[BEH].apply_wants_meta = M.apply, core.nparams(M.apply) >= 3
    end
    return rec[BEH].apply_wants_meta
  end

  local function maybe_stop(rec)
    if rec.stop_when_idle and q_empty(rec.pending) and rec.inflight == 0
      and not rec.recovering and not rec.restarting then
      R.stop_actor(rec)
    end
  end

  local function in_callback(rec, fn, ...)
    local was = rec.in_callback
    rec.in_callback = true
    fn(...)
    rec.in_callback = was
  end

  -- An event that never got stored: the hook sees (as ctx.seq) the seq it
  -- would have had; afterwards ctx.seq is the last persisted one again.
  local function rejected(rec, err, events, first_seq)
    local seq = rec.seq
    for i, evt in ipairs(events) do
      rec.seq = first_seq + i - 1
      local ok, herr = pcall(call_hook, rec, "on_persist_rejected", rec[ST], err, evt, rec[CTX])
      rec.seq = seq
      if not ok then error(herr, 0) end
      if not herr then core.log(LOG_WARN, fmt("%s: event rejected: %s", rec.pid, err)) end
    end
  end

  -- An ask whose command lost an event is answered with the error, unless
  -- the actor answers it itself (its hook, or a defer of the same command).
  local function owe_error(rec, op, err)
    if op.sc == 0 then return end
    rec.owed = rec.owed or {}
    rec.owed[#rec.owed + 1] = { ss = op.ss, sa = op.sa, sc = op.sc, err = err }
  end

  local function settle_owed(rec)
    local owed, q = rec.owed, rec.pending
    if not owed then return end
    local keep = {}
    for _, o in ipairs(owed) do
      local head = q_head(q)
      if head and head.sc == o.sc then
        keep[#keep + 1] = o -- the command still has operations to run
      elseif not core.was_answered(o.sc) then
        core.set_current(o.ss, o.sa, o.sc)
        core.reply_error(o.err)
      end
    end
    rec.owed = #keep > 0 and keep or nil
  end

  -- Runs the operations at the head that need no journal answer.
  local function drain(rec)
    local q = rec.pending
    while not q_empty(q) do
      local op = q_head(q)
      if op.token then break end -- a journal write still in flight
      q_pop(q)
      if op.stashing then rec.stashing = rec.stashing - 1 end
      core.set_current(op.ss, op.sa, op.sc)
      if op.defer then
        in_callback(rec, op.defer, rec[ST])
      else -- rejected before storage: the actor continues
        owe_error(rec, op, op.rejected)
        rejected(rec, op.rejected, op.events, op.first)
      end
    end
    settle_owed(rec)
    set_hold(rec)
    maybe_stop(rec)
  end

  local function submit(rec, events, fn, stashing, what)
    if rec.recovering then error(fmt("ctx:%s: cannot persist while recovering", what), 3) end
    if fn ~= nil and type(fn) ~= "function" then error(fmt("ctx:%s: the callback must be a function", what), 3) end
    local n = #events
    if n == 0 then return end
    local ss, sa, sc = core.current()
    local op = { events = events, fn = fn, stashing = stashing, ss = ss, sa = sa, sc = sc }
    local token = next_token()
    local first, ts = core.persist(events, nil, token)
    if first then
      op.token, op.first, op.ts = token, first, ts
      rec.inflight = rec.inflight + 1
    else
      op.rejected, op.first = ts, core.next_seq()
    end
    q_push(rec.pending, op)
    if stashing then rec.stashing = rec.stashing + 1 end
    set_hold(rec)
  end

  function ctx_methods:persist(evt, fn)
    local rec = own(self, "persist")
    if not rec.persistent then error("ctx:persist: this actor is not persistent (no apply)", 2) end
    if evt == nil then error("ctx:persist(event [, fn]): the event is nil", 2) end
    submit(rec, { evt }, fn, true, "persist")
  end

  -- A list with holes ({a, nil, c}) would silently lose events past the hole.
  local function check_list(list)
    local n, max = 0, 0
    for k in pairs(list) do
      if math.type(k) ~= "integer" or k < 1 then
        error("ctx:persist_all(list, fn): list must be a sequence of events (found key " .. tostring(k) .. ")", 3)
      end
      n = n + 1
      if k > max then max = k end
    end
    if n ~= max then
      for i = 1, max do
        if list[i] == nil then error(fmt("ctx:persist_all: event %d of %d is nil", i, max), 3) end
      end
    end
  end

  function ctx_methods:persist_all(list, fn)
    local rec = own(self, "persist_all")
    if not rec.persistent then error("ctx:persist_all: this actor is not persistent", 2) end
    if type(list) ~= "table" then error("ctx:persist_all(list, fn): list must be a table", 2) end
    check_list(list)
    submit(rec, list, fn, true, "persist_all")
  end

  function ctx_methods:persist_async(evt, fn)
    local rec = own(self, "persist_async")
    if not rec.persistent then error("ctx:persist_async: this actor is not persistent", 2) end
    if evt == nil then error("ctx:persist_async(event [, fn]): the event is nil", 2) end
    submit(rec, { evt }, fn, false, "persist_async")
  end

  -- Akka: with nothing pending, a deferred handler runs at once; during replay
  -- it is refused (there is nothing to defer to).
  local function defer(rec, fn, stashing, what)
    if type(fn) ~= "function" then error(fmt("ctx:%s(fn): expects a function", what), 3) end
    if rec.recovering then error(fmt("ctx:%s: cannot defer during replay", what), 3) end
    if q_empty(rec.pending) then return in_callback(rec, fn, rec[ST]) end
    local ss, sa, sc = core.current()
    q_push(rec.pending, { defer = fn, stashing = stashing, ss = ss, sa = sa, sc = sc })
    if stashing then rec.stashing = rec.stashing + 1 end
    set_hold(rec)
  end

  function ctx_methods:defer(fn)
    local rec = own(self, "defer")
    if not rec.persistent then error("ctx:defer: this actor is not persistent", 2) end
    defer(rec, fn, true, "defer")
  end

  function ctx_methods:defer_async(fn)
    local rec = own(self, "defer_async")
    if not rec.persistent then error("ctx:defer_async: this actor is not persistent", 2) end
    defer(rec, fn, false, "defer_async")
  end

  -- Refused (on_events_deleted(false, err)) above the last persisted seq,
  -- unless to_seq is math.maxinteger: everything persisted so far.
  function ctx_methods:delete_events(to_seq)
    local rec = own(self, "delete_events")
    if not rec.persistent then error("ctx:delete_events: this actor is not persistent", 2) end
    if math.type(to_seq) ~= "integer" then
      error("ctx:delete_events(to_seq): to_seq must be an integer", 2)
    end
    local ok, err = core.delete_events(to_seq, next_token())
    if not ok then
      local done = call_hook(rec, "on_events_deleted", false, err, rec[CTX])
      if not done then core.log(LOG_WARN, fmt("%s: delete_events: %s", rec.pid, err)) end
      return
    end
    rec.inflight = rec.inflight + 1
  end

  ---------------------------------------------------------------------------
  -- Recovery: at most max_concurrent_recoveries in the whole process (C
  -- hands out the permits and wakes a waiting actor with SYS.RECOVERY_PERMIT).
  ---------------------------------------------------------------------------

  local begin_recovery

  local function release_permit(rec)
    if rec.has_permit then
      rec.has_permit = false
      core.recovery_release()
    end
  end

  local function end_recovery(rec)
    set_recovering(rec, false)
    rec.rc = nil
    release_permit(rec)
  end

  local function recovery_failed(rec, err)
    core.log(LOG_ERROR, fmt("recovery of %s failed: %s; stopping the actor", rec.pid, err))
    end_recovery(rec)
    local ok, herr = pcall(call_hook, rec, "on_recovery_failure", err, rec[CTX])
    if not ok then core.log(LOG_WARN, fmt("%s: on_recovery_failure: %s", rec.pid, tostring(herr))) end
    set_hold(rec)
    R.stop_actor(rec)
  end

  function begin_recovery(rec)
    rec.has_permit = true
    local rc = rec.rc
    rc.token = next_token()
    rc.progress = 0
    local mr = rec[BEH].M.recovery
    if mr == false then
      rc.replay_to, rc.replay_left, rc.limited, rc.none = MAXINT, 0, false, true
      core.replay(1, MAXINT, 0, rc.token, true)
    else
      if mr ~= nil and type(mr) ~= "table" then
        return recovery_failed(rec, "M.recovery must be a table or false")
      end
      mr = mr or {}
      if mr.deleted ~= nil and mr.deleted ~= "fail" and mr.deleted ~= "skip" then
        return recovery_failed(rec, "M.recovery.deleted must be \"fail\" or \"skip\"")
      end
      rc.skip_deleted = mr.deleted == "skip"
      rc.from = 1
      rc.replay_to = mr.to_seq or MAXINT
      rc.replay_left = mr.replay_max or -1
      rc.limited = mr.to_seq ~= nil or mr.replay_max ~= nil
      local sel = mr.snapshot
      if sel == nil then sel = "latest" end
      if sel == "none" then
        core.replay(1, rc.replay_to, rc.replay_left, rc.token, true)
      else
        -- The latest snapshot that matches (and is not past to_seq) is offered first.
        local crit = {}
        if type(sel) == "table" then
          crit.max_seq, crit.max_ts, crit.min_seq, crit.min_ts = sel.max_seq, sel.max_ts, sel.min_seq, sel.min_ts
        elseif sel ~= "latest" then
          return recovery_failed(rec, "M.recovery.snapshot must be \"latest\", \"none\" or criteria")
        end
        if mr.to_seq and (crit.max_seq == nil or crit.max_seq > mr.to_seq) then crit.max_seq = mr.to_seq end
        rc.snap_crit, rc.snap_skip = crit, 0
        rc.snap_required = mr.snapshot_required
        core.snapshot_load(crit, 0, rc.token)
      end
    end
    -- One timeout timer per actor at a time: a restart's recovery would
    -- otherwise add a second chain of checks. A timer armed by an earlier
    -- recovery counts this start as progress, so this one gets a full period.
    if rec.timeout_armed then
      rc.progress = 1
    else
      rec.timeout_armed = true
      core.schedule_system(core.config().recovery_timeout, SYS.RECOVERY_TIMEOUT)
    end
  end

  local function start_recovery(rec)
    core.new_incarnation() -- a new writer id; C forgets the old incarnation's seqs
    rec.rc = {}
    set_recovering(rec, true)
    set_hold(rec)
    -- A journal shared by processes: this process takes the id's lease first (SYS_LEASED).
    if not rec.leased then
      if not rec.leasing then rec.leasing = true; rec.leased = core.lease(next_token()) end
      if not rec.leased then return end
    end
    if core.recovery_acquire() then begin_recovery(rec) end
    -- else: SYS.RECOVERY_PERMIT arrives when a permit frees up
  end

  local function complete_recovery(rec)
    end_recovery(rec)
    rec.restart_ok = true
    call_hook(rec, "on_recovery_completed", rec[ST], rec[CTX]) -- an error here is a failure: restart
    set_hold(rec)
    maybe_stop(rec)
  end

  -- A snapshot arrived (or none matched): restore it, then replay what follows.
  -- One that fails to load or decode falls back to the next older one, then to
  -- a full replay, unless M.recovery.snapshot_required.
  local function on_snapshot_loaded(rec, token, mptr)
    local rc = rec.rc
    if not rc or token ~= rc.token then return end
    rc.progress = rc.progress + 1
    local status, seq, ts = core.snapshot_result(mptr)
    local value, err
    if status == 0 then
      value, err = core.snapshot_decode(mptr)
      local restore = rec[BEH].M.restore
      if value ~= nil and restore then
        local ok, r = pcall(restore, value, { seq = seq, ts = ts })
        if ok then value = r else value, err = nil, "M.restore: " .. tostring(r) end
      end
      if value == nil and not err then err = "the snapshot is empty" end
    elseif status ~= SNAPSHOT_ENOTFOUND then
      err = core.strerror(status)
    end
    if err then
      local msg = fmt("snapshot of %s at seq %d unusable: %s", rec.pid, seq, err)
      if rc.snap_required then return recovery_failed(rec, msg) end
      core.log(LOG_WARN, msg .. "; trying an older one")
      rc.snap_skip = rc.snap_skip + 1
      return core.snapshot_load(rc.snap_crit, rc.snap_skip, token)
    end
    local from = 1
    if status == 0 then
      rec[ST] = value
      set_seq(rec, seq)
      rec.last_snap_seq = seq
      from = seq + 1
    elseif rc.snap_required then
      return recovery_failed(rec, fmt("no snapshot of %s matches and one is required", rec.pid))
    end
    rc.from = from
    core.replay(from, rc.replay_to, rc.replay_left, token, true)
  end

  local function on_page(rec, token, mptr)
    local rc = rec.rc
    if not rc or token ~= rc.token then return end -- a page for an earlier incarnation
    rc.progress = rc.progress + 1
    local status, highest, count, last, more, deleted_to = core.page_info(mptr)
    if status ~= 0 then
      -- The page's events before the failing row came back with it: the row
      -- that failed (e.g. its CRC) is the one after the last of them.
      local after = count > 0 and last or rec.seq
      return recovery_failed(rec, fmt("journal error at id %s reading the event after seq %d "
        .. "(expected seq %d): %s", rec.pid, after, after + 1, core.strerror(status)))
    end
    if not rc.highest then
      rc.highest = highest
      -- The journal knows how far this stream was deleted: a recovery that
      -- would need deleted events fails instead of replaying from the middle
      -- (a wrong state, silently), unless the behaviour asked to skip them.
      if not rc.none and deleted_to >= rc.from then
        if not rc.skip_deleted then
          return recovery_failed(rec, fmt("events %d..%d of %s were deleted and recovery needs them "
            .. "(no usable snapshot at or after seq %d); M.recovery.deleted = \"skip\" replays what is left",
            rc.from, deleted_to, rec.pid, deleted_to))
        end
        rc.from = deleted_to + 1
      end
      -- the first event must be the one recovery starts from: rows missing at
      -- the start of a stream are a gap like any other
      if not rc.none then rc.expect = rc.from end
    end
    -- Ask for the next page before applying this one: the read (thread pool)
    -- overlaps with decoding and apply (this worker).
    if more then
      if rc.replay_left > 0 then rc.replay_left = rc.replay_left - count end
      core.replay(last + 1, rc.replay_to, rc.replay_left, token, false)
    end
    if count > 0 then
      local id, M = rec.pid, rec[BEH].M
      -- The hot loop of recovery: locals, not table fields, per event.
      local expect, st, last_seq, apply_fn = rc.expect, rec[ST], rec.seq, M.apply
      local ok, err
      if apply_meta(rec) then
        ok, err = pcall(core.page_each, mptr, function(seq, evt, manifest, version, tags, ts)
          if expect and seq ~= expect then
            error(fmt("sequence gap at id %s: expected seq %d, found %d", id, expect, seq), 0)
          end
          expect, last_seq = seq + 1, seq
          rec.seq = seq
          local ns = apply_fn(st, evt, { seq = seq, ts = ts, id = id, version = version, tags = tags,
            manifest = manifest })
          if ns ~= nil then st = ns end
        end, true)
      else
        ok, err = pcall(core.page_each, mptr, function(seq, evt)
          if expect and seq ~= expect then
            error(fmt("sequence gap at id %s: expected seq %d, found %d", id, expect, seq), 0)
          end
          expect, last_seq = seq + 1, seq
          rec.seq = seq
          local ns = apply_fn(st, evt)
          if ns ~= nil then st = ns end
        end)
      end
      rc.expect, rec[ST] = expect, st
      set_seq(rec, last_seq)
      if not ok then
        err = tostring(err)
        if not err:find(id, 1, true) then err = fmt("at id %s: %s", id, err) end
        return recovery_failed(rec, err)
      end
    end
    if more then return end
    if not rc.limited and rc.expect and rc.expect - 1 < rc.highest then
      return recovery_failed(rec, fmt("events missing at id %s: replay ended at seq %d, highest is %d",
        rec.pid, rc.expect - 1, rc.highest))
    end
    -- Akka: after recovery (a limited one too) the seq is the journal's
    -- highest, so a new event never reuses a stored seq.
    set_seq(rec, math.max(rec.seq, rc.highest))
    core.recovered(rec.seq)
    complete_recovery(rec)
  end

  ---------------------------------------------------------------------------
  -- Snapshots
  ---------------------------------------------------------------------------

  function P.save_snapshot(rec)
    local M = rec[BEH].M
    local value = rec[ST]
    if M.snapshot then value = M.snapshot(rec[ST]) end
    rec.last_snap_seq = rec.seq
    local keep = M.keep_snapshots
    if keep ~= nil and (math.type(keep) ~= "integer" or keep < 1) then
      error("M.keep_snapshots must be a positive integer")
    end
    local ts, err = core.snapshot_save(value, keep or 0, next_token())
    if not ts then
      if not call_hook(rec, "on_snapshot", false, err, rec[CTX]) then
        core.log(LOG_WARN, fmt("%s: snapshot not saved: %s", rec.pid, err))
      end
    end
  end

  function P.snapshot_saved(rec, mptr)
    local status, seq, ts, oldest_kept, current = core.snapshot_result(mptr)
    if status ~= 0 then
      local err = core.strerror(status)
      if not call_hook(rec, "on_snapshot", false, err, rec[CTX]) then
        core.log(LOG_WARN, fmt("%s: snapshot at seq %d failed: %s", rec.pid, seq, err))
      end
      return
    end
    -- Events covered by the oldest kept snapshot are no longer needed; only
    -- the incarnation that saved it may delete them (a restarted actor may be
    -- replaying them right now).
    if rec[BEH].M.delete_events_on_snapshot and oldest_kept > 0 and current and not rec.stopping then
      local ok, derr = core.delete_events(oldest_kept, next_token())
      if ok then
        rec.inflight = rec.inflight + 1
      else
        core.log(LOG_WARN, fmt("%s: deleting events after a snapshot: %s", rec.pid, derr))
      end
    end
    call_hook(rec, "on_snapshot", true, { seq = seq, timestamp = ts }, rec[CTX])
  end

  function ctx_methods:save_snapshot()
    local rec = own(self, "save_snapshot")
    if not rec.persistent then error("ctx:save_snapshot: this actor is not persistent", 2) end
    if rec.recovering then error("ctx:save_snapshot: not while recovering", 2) end
    P.save_snapshot(rec)
  end

  function ctx_methods:delete_snapshots(criteria)
    local rec = own(self, "delete_snapshots")
    if not rec.persistent then error("ctx:delete_snapshots: this actor is not persistent", 2) end
    if type(criteria) ~= "table" then
      error("ctx:delete_snapshots(criteria): { max_seq=, min_seq=, max_ts=, min_ts= }", 2)
    end
    local token = next_token()
    rec.snap_deletes = rec.snap_deletes or {}
    rec.snap_deletes[token] = criteria
    core.snapshot_delete(criteria, token)
  end

  ---------------------------------------------------------------------------
  -- Entry points for runtime.lua
  ---------------------------------------------------------------------------

  function P.start(rec)
    rec.pid = rec.opts.id
    rec.pending = q_new()
    rec.stashing = 0
    rec.inflight = 0
    rec.seq = 0
    local M = rec[BEH].M
    local cap = M.stash_capacity
    if cap ~= nil then
      if math.type(cap) ~= "integer" or cap < 1 then error("M.stash_capacity must be a positive integer") end
      core.set_capacity(cap)
    end
    local s = M.stash_overflow
    if s ~= nil and s ~= "fail" and s ~= "drop" and s ~= "reply" then
      error("M.stash_overflow must be \"fail\", \"drop\" or \"reply\"")
    end
    start_recovery(rec)
  end

  function P.receive(rec, msg)
    rec[BEH].M.receive(rec[ST], msg, rec[CTX])
    drain(rec)
  end

  local function on_persisted(rec, token, status)
    rec.inflight = rec.inflight - 1
    local q = rec.pending
    local op = q_head(q)
    if not op or op.token ~= token then -- from before a restart: its events are replayed
      if rec.restarting and rec.restart_ready then P.restart_recovery(rec) end
      return
    end
    q_pop(q)
    if op.stashing then rec.stashing = rec.stashing - 1 end
    core.set_current(op.ss, op.sa, op.sc)
    if status == 0 then
      rec.window_start = nil -- the journal works again: the next failure backs off from the start
      local fn, M = op.fn, rec[BEH].M
      local apply_fn, meta = M.apply, apply_meta(rec)
      for i, evt in ipairs(op.events) do
        local seq = op.first + i - 1
        set_seq(rec, seq)
        local ns
        if meta then
          ns = apply_fn(rec[ST], evt, { seq = seq, ts = op.ts, id = rec.pid, version = 1, tags = "" })
        else
          ns = apply_fn(rec[ST], evt)
        end
        if ns ~= nil then rec[ST] = ns end
        if fn then in_callback(rec, fn, rec[ST], evt) end
      end
      local every = M.snapshot_every
      if every and rec.seq - (rec.last_snap_seq or 0) >= every then P.save_snapshot(rec) end
    elseif status == JOURNAL_EREJECTED then
      -- Refused by the journal before storage (e.g. too big): nothing was
      -- stored at these seqs. The journal never stores a hole, so later
      -- writes already in flight fail too; their failure restarts the actor,
      -- which recovers what is stored.
      local err = core.strerror(status)
      owe_error(rec, op, err)
      rejected(rec, err, op.events, op.first)
    else
      if status == core.JOURNAL_EFENCED then rec.leased = false end -- the restart leases again
      local err = core.strerror(status)
      core.reply_error(err)
      core.log(LOG_ERROR, fmt("%s: persist failed at seq %d: %s; restarting with back-off", rec.pid,
        op.first, err))
      local ok, herr = pcall(call_hook, rec, "on_persist_failure", rec[ST], err, op.events[1], rec[CTX])
      if not ok then core.log(LOG_WARN, fmt("%s: on_persist_failure: %s", rec.pid, tostring(herr))) end
      if not R.count_failure(rec) then
        core.log(LOG_ERROR, fmt("%s: the journal failed %d times in a row; stopping it for good", rec.pid,
          rec.restarts))
        rec.end_reason = "failed"
        return P.give_up(rec)
      end
      return P.restart(rec, err, true)
    end
    drain(rec)
  end

  local function on_deleted(rec, status, seq)
    rec.inflight = rec.inflight - 1
    local ok = status == 0
    if not ok then
      core.log(LOG_WARN, fmt("%s: delete_events failed: %s", rec.pid, core.strerror(status)))
    end
    call_hook(rec, "on_events_deleted", ok, ok and seq or core.strerror(status), rec[CTX])
    if rec.restarting and rec.restart_ready then P.restart_recovery(rec) end
    maybe_stop(rec)
  end

  function P.system(rec, kind, ival, token, mptr)
    if kind == SYS.PERSISTED then
      return on_persisted(rec, token, ival)
    elseif kind == SYS.DELETED then
      return on_deleted(rec, ival, core.write_seq(mptr))
    elseif kind == SYS.PAGE then
      return on_page(rec, token, mptr)
    elseif kind == SYS.SNAP_LOADED then
      return on_snapshot_loaded(rec, token, mptr)
    elseif kind == SYS.SNAP_SAVED then
      return P.snapshot_saved(rec, mptr)
    elseif kind == SYS.SNAP_DELETED then
      local status = core.snapshot_result(mptr)
      local crit = rec.snap_deletes and rec.snap_deletes[token]
      if rec.snap_deletes then rec.snap_deletes[token] = nil end
      if status ~= 0 then
        local err = core.strerror(status)
        if not call_hook(rec, "on_snapshots_deleted", false, err, rec[CTX]) then
          core.log(LOG_WARN, fmt("%s: delete_snapshots failed: %s", rec.pid, err))
        end
      else
        call_hook(rec, "on_snapshots_deleted", true, crit or {}, rec[CTX])
      end
    elseif kind == core.SYS_LEASED then
      rec.leasing = false
      local err, storage = core.lease_result(mptr) -- storage: the journal failed, not a holder
      if err and rec.recovering and storage and R.count_failure(rec) then return P.restart(rec, err, true) end
      if err then return rec.recovering and recovery_failed(rec, err) end
      rec.leased = true
      if rec.recovering and not rec.has_permit and core.recovery_acquire() then begin_recovery(rec) end
    elseif kind == SYS.RECOVERY_PERMIT then
      if rec.recovering and not rec.has_permit and not rec.dead then
        begin_recovery(rec)
      else
        core.recovery_release() -- nobody here wants it any more: pass it on
      end
    elseif kind == SYS.RECOVERY_TIMEOUT then
      rec.timeout_armed = false
      local rc = rec.rc
      if not rec.recovering or not rec.has_permit or not rc then return end
      if rc.progress == 0 then
        return recovery_failed(rec, fmt("recovery of %s timed out", rec.pid))
      end
      rc.progress = 0
      rec.timeout_armed = true
      core.schedule_system(core.config().recovery_timeout, SYS.RECOVERY_TIMEOUT)
    elseif kind == SYS.RESTART_RECOVERY then
      -- Only a restart that has not begun its recovery may begin it: a
      -- recovery begun twice applies every event twice.
      if not rec.restarting then return end
      rec.restart_ready = true
      if core.io_pending() == 0 then P.restart_recovery(rec) end
    elseif kind == SYS.IO_IDLE then
      if rec.restarting and rec.restart_ready then P.restart_recovery(rec) end
    elseif kind == SYS.STOP_PENDING then
      -- ref:stop() while the actor waits out a failure: stop wins.
      if rec.restarting then
        rec.restarting = false
        set_hold(rec)
        R.stop_actor(rec)
      end
    end
  end

  -- A failure (a raising handler, a failed write): drop what was pending,
  -- hold the mailbox, and once every write, delete and snapshot operation of
  -- this incarnation has landed, recover again from the journal, after a
  -- back-off when failures repeat.
  function P.restart(rec, err, persist_failure)
    -- Already restarting (its back-off has not ended): one restart, one
    -- timer. Every message overflowing a "fail" stash fails the actor while
    -- it is held; each scheduling another recovery would apply the events
    -- once per recovery onto the same state.
    if rec.restarting then return err end
    rec.pending = q_new()
    rec.stashing = 0
    if rec.recovering then
      -- A failure during recovery (e.g. stash overflow "fail"): abandon this
      -- recovery. Its pages would otherwise go on being applied to the fresh
      -- state below, and the restart's own recovery would apply them again.
      end_recovery(rec)
    end
    rec.restarting = true
    rec.restart_ready = false
    set_hold(rec)
    core.abandon_incarnation() -- completions still in flight are this incarnation's
    local ok, ierr = R.init_state(rec)
    if not ok then
      core.log(LOG_ERROR, fmt("%s cannot restart: %s; stopping", rec.pid, ierr))
      rec.restarting = false
      set_hold(rec)
      return R.stop_actor(rec)
    end
    local delay = R.backoff_delay(rec)
    if persist_failure and delay == 0 then delay = 0.05 end
    core.schedule_system(delay, SYS.RESTART_RECOVERY)
    return err
  end

  function P.restart_recovery(rec)
    rec.restarting = false
    rec.restart_ready = false
    set_seq(rec, 0)
    start_recovery(rec)
  end

  -- Failed too often: stop for good, whatever was pending.
  function P.give_up(rec)
    if rec.recovering then end_recovery(rec) end
    rec.restarting = false
    rec.pending = q_new()
    rec.stashing = 0
    set_hold(rec)
    R.stop_actor(rec)
  end

  function P.stop_requested(rec)
    rec.stop_when_idle = true
    if rec.restarting then return P.give_up(rec) end
    maybe_stop(rec)
  end

  -- The runtime shuts down: an actor waiting out a failure, or still
  -- recovering, stops now (nothing it holds is lost: a recovery only reads);
  -- one with writes in flight finishes them first (its safe stop is queued).
  function P.shutdown(rec)
    if rec.restarting or rec.recovering then return P.give_up(rec) end
  end

  function P.stopped(rec)
    if rec.recovering then end_recovery(rec) end
    if rec.leased then core.unlease(rec.pid) end
  end

  return P
end
