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
  local next, getmetatable = next, getmetatable
  local fmt = string.format
  local MAXINT = math.maxinteger
  local LOG_WARN, LOG_ERROR = 2, 3
  local SYS = core.SYS
  local JOURNAL_EREJECTED = core.E.JOURNAL_EREJECTED
  local SNAPSHOT_ENOTFOUND = core.E.SNAPSHOT_ENOTFOUND
  local PAGE_NO_SNAPSHOT = core.PAGE_NO_SNAPSHOT
  -- the two system messages every recovery gets (P.system tests them first)
  local SYS_PAGE, SYS_RECOVERY_PERMIT = SYS.PAGE, SYS.RECOVERY_PERMIT
  local CONFIG = core.config() -- fixed once the workers run
  local c_persist, c_current, c_set_current = core.persist, core.current, core.set_current
  local c_hold, c_release = core.hold, core.release
  local own = R.own
  local A = R.adapters -- event adapters (adapters.lua): see the [adapters] marks below
  -- [internal] Lore's own events in the stream (deliveries, durable timers):
  -- internal.lua, which hands itself over with P.use_internal. The hooks
  -- below that call X are marked [internal].
  local X
  function P.use_internal(x) X = x end

  -- A persistent actor's record keeps its hot fields in the array part, at
  -- fixed slots after runtime.lua's four (array reads by constant index are
  -- the VM's fastest, and cost no hash node per actor).
  local BEH <const>, ST <const>, CTX <const>, AID <const> = 1, 2, 3, 4
  local SEQ <const> = 5        -- the seq of the last event persisted or replayed (ctx.seq)
  local RECOVERING <const> = 6 -- replaying (ctx.recovering), or the mailbox held
  local Q <const> = 7          -- the queue of operations and its counts (a table, made on first use), or false
  -- RECOVERING's slot says two things: false, neither recovering nor the
  -- mailbox held (the internal stash); nil, held but not recovering; the
  -- shared WAITING marker before the recovery's permit, else the running
  -- recovery's own state (see begin_recovery): recovering, which always
  -- holds the mailbox. A truth test reads "recovering" (ctx.recovering reads
  -- it as a boolean); held() reads "held" (a slot of its own cost 16 bytes
  -- per actor: 8 array slots are a 128-byte block, 7 a 112-byte one). The
  -- queue's head and counts (operations, stashing ones, journal writes and
  -- deletes in flight) live in the queue table (QH, QN, QS, QI below); which
  -- record's callback runs is one variable per worker (in_callback). The
  -- persistence id is not kept in the record: its self is a ref by that id
  -- (an entity's too), and the C actor has it as its name; pid(rec) reads it
  -- from the ref (a short id is the same interned string each time). That is
  -- a string of ~40 bytes and a slot fewer per actor; it is read on cold
  -- paths only (logs, errors, a recovery's start and pages, apply's meta).
  local RC <const> = RECOVERING
  -- Only a persistent record has the slots from SEQ on: SEQ (never nil there)
  -- is what tells it from a plain one.
  local PERSISTENT <const> = SEQ
  P.AID, P.SEQ, P.RECOVERING = AID, SEQ, RECOVERING
  -- The mailbox is held (a persistent record only: a plain one has no such slot).
  local function held(rec) return rec[RC] ~= false end
  P.held = held
  -- An id given as a number (ctx:spawn takes what converts to a string) is
  -- kept as given, in the record's id_value: ctx.id answers it unchanged.
  local function pid(rec)
    local v = rec.id_value
    if v ~= nil then return v end
    return rec.self:id()
  end
  P.pid = pid

  -- A new persistent actor's record (runtime.lua's spawn), made at its final
  -- size: a constructor sizes the hash part for the fields it names, so the
  -- parent and its supervision are named only when present (two nodes for
  -- self and a parent; four with the options or the supervision too). What
  -- recovery adds lives in the array part, so nothing is rehashed and a
  -- recovered idle actor keeps no node of it. (The lease a journal with
  -- leases grants is the one field added later: rec.leased.)
  -- Options that are the id alone ({ id = "..." }, no metatable: most
  -- persistent actors) are not kept: the id is the self's, and a restart's init
  -- gets a new { id = id } (runtime.lua's init_state), which reads the same.
  -- That is an 80-byte table fewer per actor.
  local function id_only(opts)
    return next(opts) == "id" and next(opts, "id") == nil and getmetatable(opts) == nil
  end
  local record
  function P.record(b, ctx, opts, aid, self, parent, sup)
    local rec = record(b, ctx, opts, aid, self, parent, sup)
    local id = opts.id
    if type(id) ~= "string" then rec.id_value = id end
    return rec
  end
  function record(b, ctx, opts, aid, self, parent, sup)
    if id_only(opts) then
      if parent == nil then
        return { b, nil, ctx, aid, 0, false, false, self = self }
      elseif sup == nil then
        return { b, nil, ctx, aid, 0, false, false, self = self, parent = parent }
      end
      return { b, nil, ctx, aid, 0, false, false,
        self = self, parent = parent, sup = sup }
    end
    if parent == nil then
      return { b, nil, ctx, aid, 0, false, false, opts = opts, self = self }
    elseif sup == nil then
      return { b, nil, ctx, aid, 0, false, false,
        opts = opts, self = self, parent = parent }
    end
    return { b, nil, ctx, aid, 0, false, false,
      opts = opts, self = self, parent = parent, sup = sup }
  end

  local token_seq = 0
  local function next_token()
    token_seq = token_seq + 1
    return token_seq
  end

  ---------------------------------------------------------------------------
  -- The queue of operations an actor has issued and not yet seen complete:
  -- journal writes, defers and rejections, handled strictly in issue order.
  -- One flat table per actor, K slots per operation, reused from its first
  -- operation's slot whenever it empties: queuing an operation allocates
  -- nothing. Its head and count live in the queue itself (QH, QN), so a
  -- record that never queued anything keeps no slots for them.
  ---------------------------------------------------------------------------

  local K <const> = 9
  -- q[QH]: the slot before the head operation; q[QN]: operations queued;
  -- q[QS]: those of them that hold the mailbox (stashing: persist, persist_all,
  -- defer); q[QI]: journal writes and deletes not yet completed (a restart
  -- forgets the operations but not these: P.drop_pending)
  local QH <const>, QN <const>, QS <const>, QI <const> = 1, 2, 3, 4
  local QBASE <const> = 4 -- q[QH] of an empty queue (operations start at slot 5)

  -- The record's queue, made now if it has none.
  local function q_of(rec)
    local q = rec[Q]
    if not q then
      q = { QBASE, 0, 0, 0 }
      rec[Q] = q
    end
    return q
  end
  -- slot b+1: the kind, plus STASH when it holds the mailbox
  local WRITE <const>, DEFER <const>, REJECTED <const>, STASH <const>, LIST <const> = 1, 2, 3, 8, 16
  local RIDE <const> = 32 -- [internal] the write carries Lore's own events first
  -- b+2: the event (or the list of events, kind | LIST), or a defer's fn
  -- b+3: a write's callback, or false
  -- b+4: a write's token, or a rejection's error
  -- b+5: a rejection's first seq, or a RIDE write's riders
  -- b+6, b+7, b+8: the command's sender and ask (core.current)
  -- b+9: [adapters] a write's metas (the version and tags stored), or nil

  local function q_push(rec, kind, x, fn, tok, first)
    local q = q_of(rec)
    local n = q[QN]
    local b = q[QH] + n * K
    local ss, sa, sc = c_current()
    q[b + 1], q[b + 2], q[b + 3], q[b + 4], q[b + 5], q[b + 6], q[b + 7], q[b + 8] =
      kind, x, fn or false, tok, first or 0, ss, sa, sc
    q[QN] = n + 1
    return b
  end

  -- Removes the head operation (its slots cleared, so its values can be
  -- collected); returns nothing.
  local function q_pop(rec)
    local q = rec[Q]
    local b = q[QH]
    for i = b + 1, b + K do q[i] = nil end
    local n = q[QN] - 1
    q[QN] = n
    q[QH] = n == 0 and QBASE or b + K
  end

  -- Operations queued (0 when the record has no queue).
  local function queued(rec)
    local q = rec[Q]
    return q and q[QN] or 0
  end

  -- The mailbox is held (the internal stash) while recovering, restarting or
  -- while a stashing persist or defer is outstanding.
  local function set_hold(rec)
    local q = rec[Q]
    local want = rec[RECOVERING] or rec.restarting or (q and q[QS] > 0)
    if want then
      if rec[RC] == false then
        rec[RC] = nil -- held, not recovering
        c_hold()
      end
    elseif rec[RC] == nil then
      rec[RC] = false
      c_release()
    end
  end

  local function call_hook(rec, name, ...)
    local f = rec[BEH].M[name]
    if f == nil or type(f) ~= "function" then return false end -- (most hooks are absent)
    f(...)
    return true
  end

  -- apply(state, evt, meta): meta only for an apply that takes it (a table
  -- per event is a cost most behaviours do not want).
  local function apply_meta(rec)
    local b = rec[BEH]
    local apply = b.M.apply
    if b.apply_fn ~= apply then
      b.apply_fn, b.apply_wants_meta = apply, core.nparams(apply) >= 3
    end
    return b.apply_wants_meta
  end

  local function maybe_stop(rec)
    local q = rec[Q]
    if rec.stop_when_idle and (not q or q[QN] == 0 and q[QI] == 0)
      and not rec[RECOVERING] and not rec.restarting then
      R.stop_actor(rec)
    end
  end

  -- The record whose persist callback or deferred handler is running on this
  -- worker (ctx:stash refuses to run in one), or false.
  -- A raise in the callback must not leave it marked (the actor's restart
  -- would refuse ctx:stash for good, and a script's pcall around a defer that
  -- runs at once goes on with it marked): the mark is restored by a
  -- to-be-closed variable, which runs on an error's unwinding too.
  local callback_of = false
  local outer, depth = {}, 0
  local unmark = setmetatable({}, {
    __close = function()
      callback_of = outer[depth]
      outer[depth] = nil
      depth = depth - 1
    end,
  })
  local function in_callback(rec, fn, ...)
    depth = depth + 1
    outer[depth] = callback_of
    callback_of = rec
    local _ <close> = unmark
    fn(...)
  end
  function P.in_callback(rec) return callback_of == rec end

  -- An event that never got stored: the hook sees (as ctx.seq) the seq it
  -- would have had; afterwards ctx.seq is the last persisted one again.
  local function rejected(rec, err, events, first_seq)
    local seq = rec[SEQ]
    for i, evt in ipairs(events) do
      rec[SEQ] = first_seq + i - 1
      local ok, herr = pcall(call_hook, rec, "on_persist_rejected", rec[ST], err, evt, rec[CTX])
      rec[SEQ] = seq
      if not ok then error(herr, 0) end
      if not herr then core.log(LOG_WARN, fmt("%s: event rejected: %s", pid(rec), err)) end
    end
  end

  -- An ask whose command lost an event is answered with the error, unless
  -- the actor answers it itself (its hook, or a defer of the same command).
  local function owe_error(rec, ss, sa, sc, err)
    if sc == 0 then return end
    rec.owed = rec.owed or {}
    rec.owed[#rec.owed + 1] = { ss = ss, sa = sa, sc = sc, err = err }
  end

  local function settle_owed(rec)
    local owed = rec.owed
    if not owed then return end
    local q = rec[Q]
    local head_sc = q and q[QN] > 0 and q[q[QH] + 8] or nil
    local keep = {}
    for _, o in ipairs(owed) do
      if head_sc == o.sc then
        keep[#keep + 1] = o -- the command still has operations to run
      elseif not core.was_answered(o.sc) then
        c_set_current(o.ss, o.sa, o.sc)
        core.reply_error(o.err)
      end
    end
    rec.owed = #keep > 0 and keep or nil
  end

  local function as_list(kind, x)
    if kind & LIST ~= 0 then return x end
    return { x }
  end

  -- Runs the operations at the head that need no journal answer.
  local function drain(rec)
    while true do
      local q = rec[Q] -- (a callback below may restart the actor: a new queue)
      if not q or q[QN] == 0 then break end
      local b = q[QH]
      local kind = q[b + 1]
      local what = kind & 7
      if what == WRITE then break end -- a journal write still in flight
      local x, err, first = q[b + 2], q[b + 4], q[b + 5]
      local ss, sa, sc = q[b + 6], q[b + 7], q[b + 8]
      q_pop(rec)
      if kind & STASH ~= 0 then q[QS] = q[QS] - 1 end
      c_set_current(ss, sa, sc)
      if what == DEFER then
        in_callback(rec, x, rec[ST])
      else -- rejected before storage: the actor continues
        owe_error(rec, ss, sa, sc, err)
        rejected(rec, err, as_list(kind, x), first)
      end
    end
    if rec.owed then settle_owed(rec) end
    set_hold(rec)
    if rec.stop_when_idle then maybe_stop(rec) end
  end

  -- x is one event (list false) or a list of events (list true).
  local function submit(rec, x, list, fn, stashing, what)
    if rec[RECOVERING] then error(fmt("ctx:%s: cannot persist while recovering", what), 3) end
    if fn ~= nil and type(fn) ~= "function" then error(fmt("ctx:%s: the callback must be a function", what), 3) end
    local kind = list and WRITE | LIST or WRITE
    if stashing then kind = kind | STASH end
    local token = next_token()
    -- [internal] Lore's own events of this turn go first in the same write
    -- (all or none with the behaviour's events)
    local riders = rec.riders
    -- [adapters] each event's stored form, version and tags; an adapter that
    -- raises (or a bad tag) refuses the persist before storage, as an event
    -- that cannot be encoded does: on_persist_rejected, and the actor goes on
    local adapt = not A.plain
    local first, ts, metas
    if adapt or riders then
      local stored = list and x or { x }
      if adapt then stored, metas = A.for_persist(stored) end
      if not stored then
        ts, metas = metas, nil -- why the adapters refused it
      elseif riders then
        first, ts = X.persist_riding(rec, riders, stored, token, metas)
      else
        first, ts = c_persist(stored, metas, token, false)
      end
    else
      first, ts = c_persist(x, nil, token, not list)
    end
    if first then
      local b
      if riders then
        b = q_push(rec, kind | RIDE, x, fn, token, riders)
      else
        b = q_push(rec, kind, x, fn, token)
      end
      local q = rec[Q]
      if metas then q[b + 9] = metas end
      q[QI] = q[QI] + 1
    else
      q_push(rec, kind - WRITE + REJECTED, x, fn, ts, core.next_seq())
    end
    if stashing then
      local q = rec[Q]
      q[QS] = q[QS] + 1
      if rec[RC] == false then -- (never while recovering: persist refuses it)
        rec[RC] = nil -- held, not recovering
        c_hold()
      end
    end
  end

  -- [internal] Lore's own events of this turn that rode in no write of the
  -- behaviour's are written alone, without holding commands. Refused before
  -- storage (the circuit breaker is open, say), they wait for the next write.
  local NO_EVENTS = {}
  function P.write_riders(rec)
    local riders = rec.riders
    if not riders or rec[RECOVERING] or rec.restarting then return end
    local token = next_token()
    local first, ts = X.persist_riding(rec, riders, NO_EVENTS, token)
    if not first then return ts end
    local b = q_push(rec, WRITE | LIST | RIDE, NO_EVENTS, false, token, riders)
    local q = rec[Q]
    q[QI] = q[QI] + 1
    q[b + 6], q[b + 7], q[b + 8] = 0, 0, 0 -- no command waits on it
  end

  function ctx_methods:persist(evt, fn)
    local rec = own(self, "persist")
    if not rec[PERSISTENT] then error("ctx:persist: this actor is not persistent (no apply)", 2) end
    if evt == nil then error("ctx:persist(event [, fn]): the event is nil", 2) end
    submit(rec, evt, false, fn, true, "persist")
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
    return n
  end

  function ctx_methods:persist_all(list, fn)
    local rec = own(self, "persist_all")
    if not rec[PERSISTENT] then error("ctx:persist_all: this actor is not persistent", 2) end
    if type(list) ~= "table" then error("ctx:persist_all(list, fn): list must be a table", 2) end
    if check_list(list) == 0 then return end
    submit(rec, list, true, fn, true, "persist_all")
  end

  function ctx_methods:persist_async(evt, fn)
    local rec = own(self, "persist_async")
    if not rec[PERSISTENT] then error("ctx:persist_async: this actor is not persistent", 2) end
    if evt == nil then error("ctx:persist_async(event [, fn]): the event is nil", 2) end
    submit(rec, evt, false, fn, false, "persist_async")
  end

  -- Akka: with nothing pending, a deferred handler runs at once; during replay
  -- it is refused (there is nothing to defer to).
  local function defer(rec, fn, stashing, what)
    if type(fn) ~= "function" then error(fmt("ctx:%s(fn): expects a function", what), 3) end
    if rec[RECOVERING] then error(fmt("ctx:%s: cannot defer during replay", what), 3) end
    if queued(rec) == 0 then return in_callback(rec, fn, rec[ST]) end
    q_push(rec, stashing and DEFER | STASH or DEFER, fn)
    if stashing then
      local q = rec[Q]
      q[QS] = q[QS] + 1
    end
    set_hold(rec)
  end

  function ctx_methods:defer(fn)
    local rec = own(self, "defer")
    if not rec[PERSISTENT] then error("ctx:defer: this actor is not persistent", 2) end
    defer(rec, fn, true, "defer")
  end

  function ctx_methods:defer_async(fn)
    local rec = own(self, "defer_async")
    if not rec[PERSISTENT] then error("ctx:defer_async: this actor is not persistent", 2) end
    defer(rec, fn, false, "defer_async")
  end

  -- Refused (on_events_deleted(false, err)) above the last persisted seq,
  -- unless to_seq is math.maxinteger: everything persisted so far.
  function ctx_methods:delete_events(to_seq)
    local rec = own(self, "delete_events")
    if not rec[PERSISTENT] then error("ctx:delete_events: this actor is not persistent", 2) end
    if math.type(to_seq) ~= "integer" then
      error("ctx:delete_events(to_seq): to_seq must be an integer", 2)
    end
    local ok, err = core.delete_events(to_seq, next_token())
    if not ok then
      local done = call_hook(rec, "on_events_deleted", false, err, rec[CTX])
      if not done then core.log(LOG_WARN, fmt("%s: delete_events: %s", pid(rec), err)) end
      return
    end
    local q = q_of(rec)
    q[QI] = q[QI] + 1
  end

  ---------------------------------------------------------------------------
  -- Recovery: at most max_concurrent_recoveries in the whole process (C
  -- hands out the permits and wakes a waiting actor with SYS.RECOVERY_PERMIT).
  ---------------------------------------------------------------------------

  local begin_recovery
  local NO_CRITERIA = {} -- an empty table that is only ever read, never written to
  -- rc of an actor whose recovery waits for its lease or a permit: only read
  -- (its token matches no page, snapshot or timer)
  local WAITING = { false }

  -- A recovery's own state (rc) is an array (its slots below): made at once
  -- by one constructor, where a table of named fields would insert each key
  -- into its hash part one by one.
  local RC_PERMIT <const> = 1        -- it holds a recovery permit
  local RC_TOKEN <const> = 2         -- its pages, snapshots and timers carry it
  local RC_PROGRESS <const> = 3      -- snapshots and pages since the deadline was armed
  local RC_FROM <const> = 4          -- the first seq it replays
  local RC_REPLAY_TO <const> = 5     -- M.recovery.to_seq, or math.maxinteger
  local RC_REPLAY_LEFT <const> = 6   -- events it may still replay (M.recovery.replay_max), or -1
  local RC_LIMITED <const> = 7       -- to_seq or replay_max bounds it
  local RC_SKIP_DELETED <const> = 8  -- M.recovery.deleted == "skip"
  local RC_SNAP_CRIT <const> = 9     -- the snapshot criteria, or false (none)
  local RC_SNAP_SKIP <const> = 10    -- matching snapshots found unusable so far
  local RC_SNAP_REQUIRED <const> = 11 -- M.recovery.snapshot_required
  local RC_PREFETCH <const> = 12     -- the first page comes with the snapshot's read
  local RC_TIMER <const> = 13        -- its deadline is armed
  local RC_HIGHEST <const> = 14      -- the stream's highest seq (from the first page), or false
  local RC_EXPECT <const> = 15       -- the seq the next replayed event must have, or false/nil
  local RC_NONE <const> = 16         -- M.recovery == false: no replay at all

  -- Recovery's own state (rc) lives only while it runs: its permit, its
  -- token (pages of an earlier recovery are ignored), its timeout timer.
  local function end_recovery(rec)
    local rc = rec[RC]
    rec[RC] = nil -- (RECOVERING's slot: no longer recovering, still held until set_hold)
    if rc then
      if rc[RC_TIMER] then core.recovery_deadline_cancel(rec[AID]) end
      if rc[RC_PERMIT] then core.recovery_release() end
    end
  end

  -- The recovery must make progress (a snapshot or a page arrives) within
  -- recovery_timeout, or it fails (SYS.RECOVERY_TIMEOUT with rc[RC_TOKEN]); the
  -- deadline, one entry of the worker's list, goes when the recovery ends,
  -- so an idle actor keeps none. Arming again replaces it.
  local function arm_timeout(rc)
    core.recovery_deadline(CONFIG.recovery_timeout, rc[RC_TOKEN])
    rc[RC_TIMER] = true
  end

  local function recovery_failed(rec, err)
    core.log(LOG_ERROR, fmt("recovery of %s failed: %s; stopping the actor", pid(rec), err))
    end_recovery(rec)
    local ok, herr = pcall(call_hook, rec, "on_recovery_failure", err, rec[CTX])
    if not ok then core.log(LOG_WARN, fmt("%s: on_recovery_failure: %s", pid(rec), tostring(herr))) end
    set_hold(rec)
    R.stop_actor(rec)
  end

  function begin_recovery(rec)
    local mr = rec[BEH].M.recovery
    if mr == nil then
      -- M.recovery absent (most behaviours): the latest snapshot, then every
      -- event after it, as rc says from its constructor (the snapshot
      -- criteria NO_CRITERIA; RC_TIMER true: core.recover arms the deadline).
      local token = next_token()
      local rc = { true, token, 0, 1, MAXINT, -1, false, false, NO_CRITERIA, 0, false, false, true, false,
        false, false }
      rec[RC] = rc
      -- a page without event metadata when apply takes none (on_page reads
      -- it again whole should that change before it arrives). Whether the
      -- worker has adapters is known once their files are loaded: loaded
      -- here rather than at the first page, or every recovery that begins
      -- before a page has come back (most of a wave) reads whole pages.
      -- A failure to load is the page's to report (A.ensure keeps it).
      if not A.plain then A.ensure() end
      local prefetch = core.recover(NO_CRITERIA, MAXINT, -1, token, A.plain and not apply_meta(rec),
        CONFIG.recovery_timeout)
      rc[RC_PREFETCH] = prefetch
      if not prefetch then core.snapshot_load(NO_CRITERIA, 0, token) end
      return
    end
    -- Every field a recovery sets on its way, made at once: one allocation
    -- of the right size rather than a table that grows four times.
    local rc = { true, next_token(), 0, 1, MAXINT, -1, false, false, false, 0, false, false, false, false,
      false, false }
    rec[RC] = rc
    if mr == false then
      rc[RC_REPLAY_TO], rc[RC_REPLAY_LEFT], rc[RC_LIMITED], rc[RC_NONE] = MAXINT, 0, false, true
      core.recover(false, MAXINT, 0, rc[RC_TOKEN]) -- the bounds only
    else
      if mr ~= nil and type(mr) ~= "table" then
        return recovery_failed(rec, "M.recovery must be a table or false")
      end
      mr = mr or NO_CRITERIA -- M.recovery absent: every option its default (only read)
      if mr.deleted ~= nil and mr.deleted ~= "fail" and mr.deleted ~= "skip" then
        return recovery_failed(rec, "M.recovery.deleted must be \"fail\" or \"skip\"")
      end
      rc[RC_SKIP_DELETED] = mr.deleted == "skip"
      rc[RC_FROM] = 1
      rc[RC_REPLAY_TO] = mr.to_seq or MAXINT
      rc[RC_REPLAY_LEFT] = mr.replay_max or -1
      rc[RC_LIMITED] = mr.to_seq ~= nil or mr.replay_max ~= nil
      local sel = mr.snapshot
      if sel == nil then sel = "latest" end
      if sel == "none" then
        core.recover(false, rc[RC_REPLAY_TO], rc[RC_REPLAY_LEFT], rc[RC_TOKEN])
      else
        -- The latest snapshot that matches (and is not past to_seq) is offered first.
        -- The common case, the latest with no bound, shares one empty table (only read).
        local crit = NO_CRITERIA
        if type(sel) == "table" or mr.to_seq then crit = {} end
        if type(sel) == "table" then
          crit.max_seq, crit.max_ts, crit.min_seq, crit.min_ts = sel.max_seq, sel.max_ts, sel.min_seq, sel.min_ts
        elseif sel ~= "latest" then
          return recovery_failed(rec, "M.recovery.snapshot must be \"latest\", \"none\" or criteria")
        end
        if mr.to_seq and (crit.max_seq == nil or crit.max_seq > mr.to_seq) then crit.max_seq = mr.to_seq end
        rc[RC_SNAP_CRIT], rc[RC_SNAP_SKIP] = crit, 0
        rc[RC_SNAP_REQUIRED] = mr.snapshot_required
        -- the snapshot, the bounds and the first page after it in one read;
        -- behind snapshot operations still running, the snapshot alone
        rc[RC_PREFETCH] = core.recover(crit, rc[RC_REPLAY_TO], rc[RC_REPLAY_LEFT], rc[RC_TOKEN])
        if not rc[RC_PREFETCH] then core.snapshot_load(crit, 0, rc[RC_TOKEN]) end
      end
    end
    if rec[RC] == rc then arm_timeout(rc) end -- (not if it already failed above)
  end

  local START_PERMIT, START_LEASING = core.START_PERMIT, core.START_LEASING

  -- `fresh`: a record P.record just made (P.start), which holds nothing of
  -- an earlier recovery, nor anything of internal.lua's (M.init gets no ctx).
  local function start_recovery(rec, fresh)
    if not fresh then
      if rec[RC] then end_recovery(rec) end
      X.reset(rec) -- [internal] rebuilt by this recovery
    end
    -- Waiting for its lease or a permit (with a wave of actors waking, most
    -- of them wait): a shared marker, never written; begin_recovery makes
    -- the recovery's own table once the actor may read.
    local hold = rec[RC] == false -- set_hold's part: recovering holds the mailbox
    rec[RC] = WAITING -- (RECOVERING's slot: recovering, and held, from now on)
    -- A journal shared by processes: this process takes the id's lease first
    -- (SYS_LEASED). -1: asked already, SYS_LEASED goes on from there; a token:
    -- asked now (granted at once when the journal has no leases: nothing to
    -- give back at the stop, nothing to note; a restart asks again, at no cost).
    local lease = 0
    if not rec.leased then lease = rec.leasing and -1 or next_token() end
    -- One C call: a new incarnation (a new writer id; C forgets the old one's
    -- seqs), the mailbox held, the lease asked for, then a permit taken or
    -- queued for (SYS.RECOVERY_PERMIT arrives when one frees up).
    local started = core.recovery_start(hold, lease)
    if started == START_PERMIT then return begin_recovery(rec) end
    if started == START_LEASING then rec.leasing = true end
  end

  -- The recovery ended well: end_recovery's C half (its deadline, its
  -- permit) went with core.recovered, in the same call.
  local function complete_recovery(rec)
    rec[RC] = nil -- (RECOVERING's slot: no longer recovering, still held until set_hold)
    X.recovered(rec) -- [internal] re-send unconfirmed deliveries, arm durable timers
    call_hook(rec, "on_recovery_completed", rec[ST], rec[CTX]) -- an error here is a failure: restart
    set_hold(rec)
    maybe_stop(rec)
  end

  -- A snapshot arrived (or none matched): restore it, then replay what follows.
  -- One that fails to load or decode falls back to the next older one, then to
  -- a full replay, unless M.recovery.snapshot_required.
  local function on_snapshot_loaded(rec, token, mptr)
    local rc = rec[RC]
    if not rc or token ~= rc[RC_TOKEN] then return end
    rc[RC_PROGRESS] = rc[RC_PROGRESS] + 1
    local status, seq, ts = core.snapshot_result(mptr)
    local value, err, carried
    if status == 0 then
      value, err = core.snapshot_decode(mptr)
      -- [internal] Lore's own state saved with the snapshot, apart from the behaviour's
      if value ~= nil then value, carried = X.unwrap_snapshot(value) end
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
      local msg = fmt("snapshot of %s at seq %d unusable: %s", pid(rec), seq, err)
      if rc[RC_SNAP_REQUIRED] then return recovery_failed(rec, msg) end
      core.log(LOG_WARN, msg .. "; trying an older one")
      rc[RC_SNAP_SKIP] = rc[RC_SNAP_SKIP] + 1
      if rc[RC_PREFETCH] then
        -- a page read after this snapshot is on its way: a new token makes
        -- it (and the timeout armed with the old one) stale
        rc[RC_PREFETCH] = false
        rc[RC_TOKEN] = next_token()
        arm_timeout(rc)
      end
      return core.snapshot_load(rc[RC_SNAP_CRIT], rc[RC_SNAP_SKIP], rc[RC_TOKEN])
    end
    local from = 1
    if status == 0 then
      rec[ST] = value
      X.restore_snapshot(rec, carried) -- [internal]
      rec[SEQ] = seq
      rec.last_snap_seq = seq
      from = seq + 1
    elseif rc[RC_SNAP_REQUIRED] then
      return recovery_failed(rec, fmt("no snapshot of %s matches and one is required", pid(rec)))
    end
    rc[RC_FROM] = from
    if rc[RC_PREFETCH] then return end -- its first page follows
    core.replay(from, rc[RC_REPLAY_TO], rc[RC_REPLAY_LEFT], rc[RC_TOKEN], true)
  end

  -- The first step of a recovery found no snapshot and says so in its first
  -- page (no SYS_SNAP_LOADED came): what on_snapshot_loaded does for none.
  -- Returns false when the recovery ended here (or the page is stale).
  local function no_snapshot(rec, token)
    local rc = rec[RC]
    if not rc or token ~= rc[RC_TOKEN] then return false end
    if rc[RC_SNAP_REQUIRED] then
      recovery_failed(rec, fmt("no snapshot of %s matches and one is required", pid(rec)))
      return false
    end
    return true
  end

  -- [adapters] A page of the replay when some event type has adapters: each
  -- stored event passes through from_journal before apply (one event, a list
  -- of them: split, or none: dropped); the meta is the stored one. Returns
  -- what core.page_apply does.
  local function adapted_page(rec, mptr, expect)
    local id, apply_fn, st, last_seq = pid(rec), rec[BEH].M.apply, rec[ST], 0
    local from_journal, split_tags, adapted = A.from_journal, A.split_tags, A.adapted
    local wants_meta = apply_meta(rec)
    local function follows(seq)
      if expect and seq ~= expect then
        error(fmt("sequence gap at id %s: expected seq %d, found %d", id, expect, seq), 0)
      end
      expect, last_seq = seq + 1, seq
      rec[SEQ] = seq
    end
    local function internal(seq, evt, manifest, ts) -- [internal]
      follows(seq)
      X.replay(rec, seq, evt, manifest, ts)
    end
    core.page_each(mptr, function(seq, evt, manifest, version, tags, ts)
      follows(seq)
      local has, meta = adapted(manifest), nil
      if wants_meta or has then
        meta = { seq = seq, ts = ts, id = id, version = version, tags = split_tags(tags), manifest = manifest }
      end
      local out, list = evt, false
      if has then out, list = from_journal(evt, meta) end
      if list then
        for i = 1, #out do
          local ns = apply_fn(st, out[i], meta)
          if ns ~= nil then st = ns end
        end
      elseif out ~= nil then
        local ns = apply_fn(st, out, meta)
        if ns ~= nil then st = ns end
      end
    end, true, internal)
    return st, expect, last_seq
  end

  local function on_page(rec, token, mptr)
    local rc = rec[RC]
    if not rc or token ~= rc[RC_TOKEN] then return end -- a page for an earlier incarnation
    rc[RC_PROGRESS] = rc[RC_PROGRESS] + 1
    local status, highest, count, last, more, deleted_to, lean = core.page_info(mptr)
    if status ~= 0 then
      -- The page's events before the failing row came back with it: the row
      -- that failed (e.g. its CRC) is the one after the last of them.
      local after = count > 0 and last or rec[SEQ]
      return recovery_failed(rec, fmt("journal error at id %s reading the event after seq %d "
        .. "(expected seq %d): %s", pid(rec), after, after + 1, core.strerror(status)))
    end
    if not rc[RC_HIGHEST] then
      rc[RC_HIGHEST] = highest
      -- The journal knows how far this stream was deleted: a recovery that
      -- would need deleted events fails instead of replaying from the middle
      -- (a wrong state, silently), unless the behaviour asked to skip them.
      if not rc[RC_NONE] and deleted_to >= rc[RC_FROM] then
        if not rc[RC_SKIP_DELETED] then
          return recovery_failed(rec, fmt("events %d..%d of %s were deleted and recovery needs them "
            .. "(no usable snapshot at or after seq %d); M.recovery.deleted = \"skip\" replays what is left",
            rc[RC_FROM], deleted_to, pid(rec), deleted_to))
        end
        rc[RC_FROM] = deleted_to + 1
      end
      -- the first event must be the one recovery starts from: rows missing at
      -- the start of a stream are a gap like any other
      if not rc[RC_NONE] then rc[RC_EXPECT] = rc[RC_FROM] end
    end
    if count > 0 and not A.plain then -- (plain: loaded, without an error)
      local aok, aerr = A.ensure() -- [adapters] loaded once per worker
      if not aok then return recovery_failed(rec, aerr) end
    end
    -- A page read without event metadata (lean) serves only an apply that
    -- takes no meta and no adapters; should either have appeared since it
    -- was asked for (a hot reload, an adapter bound), it is read again whole.
    local wants_meta = apply_meta(rec)
    local plain = A.plain and not wants_meta
    if lean and count > 0 and not plain and rc[RC_EXPECT] then
      return core.replay(rc[RC_EXPECT], rc[RC_REPLAY_TO], rc[RC_REPLAY_LEFT], token, false, rc[RC_HIGHEST], false)
    end
    -- Ask for the next page before applying this one: the read (thread pool)
    -- overlaps with decoding and apply (this worker).
    if more then
      if rc[RC_REPLAY_LEFT] > 0 then rc[RC_REPLAY_LEFT] = rc[RC_REPLAY_LEFT] - count end
      core.replay(last + 1, rc[RC_REPLAY_TO], rc[RC_REPLAY_LEFT], token, false, rc[RC_HIGHEST], plain, count)
    end
    if count > 0 then
      -- The hot loop of recovery runs in C (core.page_apply); Lore's own
      -- events go to internal.lua, never to apply [internal].
      local ok, st, expect, last_seq
      if A.active then
        ok, st, expect, last_seq = pcall(adapted_page, rec, mptr, rc[RC_EXPECT] or false)
      else
        ok, st, expect, last_seq = pcall(core.page_apply, mptr, rec[BEH].M.apply, rec[ST], rec,
          rc[RC_EXPECT] or false, pid(rec), wants_meta, SEQ, X.replayer(rec))
        X.replayer(nil) -- the worker's replayer must not keep this record alive
      end
      if not ok then
        local err = tostring(st)
        if not err:find(pid(rec), 1, true) then err = fmt("at id %s: %s", pid(rec), err) end
        return recovery_failed(rec, err)
      end
      rc[RC_EXPECT], rec[ST], rec[SEQ] = expect or nil, st, last_seq
    end
    if more then return end
    if not rc[RC_LIMITED] and rc[RC_EXPECT] and rc[RC_EXPECT] - 1 < rc[RC_HIGHEST] then
      return recovery_failed(rec, fmt("events missing at id %s: replay ended at seq %d, highest is %d",
        pid(rec), rc[RC_EXPECT] - 1, rc[RC_HIGHEST]))
    end
    -- Akka: after recovery (a limited one too) the seq is the journal's
    -- highest, so a new event never reuses a stored seq.
    local stream_end = rc[RC_HIGHEST]
    if stream_end > rec[SEQ] then rec[SEQ] = stream_end end
    -- with end_recovery's C half: the deadline and the permit go in the same call
    core.recovered(rec[SEQ], rc[RC_TIMER], rc[RC_PERMIT])
    complete_recovery(rec)
  end

  ---------------------------------------------------------------------------
  -- Snapshots
  ---------------------------------------------------------------------------

  function P.save_snapshot(rec)
    local M = rec[BEH].M
    local value = rec[ST]
    if M.snapshot then value = M.snapshot(rec[ST]) end
    value = X.wrap_snapshot(rec, value) -- [internal] deliveries and durable timers go with it
    rec.last_snap_seq = rec[SEQ]
    local keep = M.keep_snapshots
    if keep ~= nil and (math.type(keep) ~= "integer" or keep < 1) then
      error("M.keep_snapshots must be a positive integer")
    end
    local ts, err = core.snapshot_save(value, keep or 0, next_token())
    if not ts then
      if not call_hook(rec, "on_snapshot", false, err, rec[CTX]) then
        core.log(LOG_WARN, fmt("%s: snapshot not saved: %s", pid(rec), err))
      end
    end
  end

  function P.snapshot_saved(rec, mptr)
    local status, seq, ts, oldest_kept, current = core.snapshot_result(mptr)
    if status ~= 0 then
      local err = core.strerror(status)
      if not call_hook(rec, "on_snapshot", false, err, rec[CTX]) then
        core.log(LOG_WARN, fmt("%s: snapshot at seq %d failed: %s", pid(rec), seq, err))
      end
      return
    end
    -- Events covered by the oldest kept snapshot are no longer needed; only
    -- the incarnation that saved it may delete them (a restarted actor may be
    -- replaying them right now).
    if rec[BEH].M.delete_events_on_snapshot and oldest_kept > 0 and current and not rec.stopping then
      local ok, derr = core.delete_events(oldest_kept, next_token())
      if ok then
        local q = q_of(rec)
        q[QI] = q[QI] + 1
      else
        core.log(LOG_WARN, fmt("%s: deleting events after a snapshot: %s", pid(rec), derr))
      end
    end
    call_hook(rec, "on_snapshot", true, { seq = seq, ts = ts, timestamp = ts }, rec[CTX]) -- timestamp: the old name
  end

  function ctx_methods:save_snapshot()
    local rec = own(self, "save_snapshot")
    if not rec[PERSISTENT] then error("ctx:save_snapshot: this actor is not persistent", 2) end
    if rec[RECOVERING] then error("ctx:save_snapshot: not while recovering", 2) end
    P.save_snapshot(rec)
  end

  function ctx_methods:delete_snapshots(criteria)
    local rec = own(self, "delete_snapshots")
    if not rec[PERSISTENT] then error("ctx:delete_snapshots: this actor is not persistent", 2) end
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
    start_recovery(rec, true)
  end

  function P.receive(rec, msg)
    rec[BEH].M.receive(rec[ST], msg, rec[CTX])
    drain(rec)
  end

  -- A journal write completed (C's entry for it: actor_lua.c); first and
  -- ts are the write's first seq and timestamp.
  function P.persisted(rec, token, status, first, ts)
    local q = q_of(rec)
    q[QI] = q[QI] - 1
    local b = q[QH]
    if q[QN] == 0 or q[b + 4] ~= token or q[b + 1] & 7 ~= WRITE then
      -- from before a restart: its events are replayed
      if rec.restarting and rec.restart_ready then P.restart_recovery(rec) end
      return
    end
    local kind, x, fn = q[b + 1], q[b + 2], q[b + 3]
    local ss, sa, sc = q[b + 6], q[b + 7], q[b + 8]
    local riders = kind & RIDE ~= 0 and q[b + 5] -- [internal]
    local metas = q[b + 9] -- [adapters] the version and tags the events were stored with
    q_pop(rec)
    if kind & STASH ~= 0 then q[QS] = q[QS] - 1 end
    c_set_current(ss, sa, sc)
    if riders then
      if status == 0 then X.stored(rec, riders, first, ts) end
      first = first + #riders
    end
    if status == 0 then
      rec.window_start = nil -- the journal works again: the next failure backs off from the start
      local M = rec[BEH].M
      local apply_fn = M.apply
      if kind & LIST == 0 then
        rec[SEQ] = first
        local ns
        if apply_meta(rec) then
          local m = metas and metas[1]
          ns = apply_fn(rec[ST], x, { seq = first, ts = ts, id = pid(rec), version = m and m.version or 1,
            tags = m and m.list or {} })
        else
          ns = apply_fn(rec[ST], x)
        end
        if ns ~= nil then rec[ST] = ns end
        if fn then in_callback(rec, fn, rec[ST], x) end
      else
        local meta = apply_meta(rec)
        for i, evt in ipairs(x) do
          local seq = first + i - 1
          rec[SEQ] = seq
          local ns
          if meta then
            local m = metas and metas[i]
            ns = apply_fn(rec[ST], evt, { seq = seq, ts = ts, id = pid(rec), version = m and m.version or 1,
              tags = m and m.list or {} })
          else
            ns = apply_fn(rec[ST], evt)
          end
          if ns ~= nil then rec[ST] = ns end
          if fn then in_callback(rec, fn, rec[ST], evt) end
        end
      end
      local every = M.snapshot_every
      if every and rec[SEQ] - (rec.last_snap_seq or 0) >= every then P.save_snapshot(rec) end
    elseif status == JOURNAL_EREJECTED then
      -- Refused by the journal before storage (e.g. too big): nothing was
      -- stored at these seqs. The journal never stores a hole, so later
      -- writes already in flight fail too; their failure restarts the actor,
      -- which recovers what is stored.
      local err = core.strerror(status)
      if riders then X.refused(rec, riders, err, kind & LIST ~= 0 and #x == 0) end -- [internal]
      owe_error(rec, ss, sa, sc, err)
      rejected(rec, err, as_list(kind, x), first)
    else
      if status == core.JOURNAL_EFENCED then rec.leased = false end -- the restart leases again
      local err = core.strerror(status)
      core.reply_error(err)
      core.log(LOG_ERROR, fmt("%s: persist failed at seq %d: %s; restarting with back-off", pid(rec),
        first, err))
      local evt1 = kind & LIST ~= 0 and x[1] or x
      -- [internal] a write of Lore's own events alone names the first one's kind
      if evt1 == nil and riders then evt1 = { type = riders[1].manifest } end
      local ok, herr = pcall(call_hook, rec, "on_persist_failure", rec[ST], err, evt1, rec[CTX])
      if not ok then core.log(LOG_WARN, fmt("%s: on_persist_failure: %s", pid(rec), tostring(herr))) end
      if not R.count_failure(rec) then
        core.log(LOG_ERROR, fmt("%s: the journal failed %d times in a row; stopping it for good", pid(rec),
          rec.restarts))
        rec.end_reason = "failed"
        return P.give_up(rec)
      end
      return P.restart(rec, err, true)
    end
    drain(rec)
    if rec.riders or rec.due then X.turn_end(rec) end -- [internal]
  end

  local function on_deleted(rec, status, seq)
    local q = q_of(rec)
    q[QI] = q[QI] - 1
    local ok = status == 0
    if not ok then
      core.log(LOG_WARN, fmt("%s: delete_events failed: %s", pid(rec), core.strerror(status)))
    end
    call_hook(rec, "on_events_deleted", ok, ok and seq or core.strerror(status), rec[CTX])
    if rec.restarting and rec.restart_ready then P.restart_recovery(rec) end
    maybe_stop(rec)
  end

  -- The system messages P.system handles (for a persistent actor), so that
  -- runtime.lua's R.system sends them here without testing every other kind.
  P.SYSTEM_KINDS = {
    [SYS.DELETED] = true, [SYS.PAGE] = true, [SYS.SNAP_LOADED] = true, [SYS.SNAP_SAVED] = true,
    [SYS.SNAP_DELETED] = true, [core.SYS_LEASED] = true, [SYS.RECOVERY_PERMIT] = true,
    [SYS.RECOVERY_TIMEOUT] = true, [SYS.RESTART_RECOVERY] = true, [SYS.IO_IDLE] = true,
    [SYS.STOP_PENDING] = true,
  }

  function P.system(rec, kind, ival, token, mptr)
    if kind == SYS_PAGE then
      if ival == PAGE_NO_SNAPSHOT and not no_snapshot(rec, token) then return end
      return on_page(rec, token, mptr)
    elseif kind == SYS_RECOVERY_PERMIT then
      local rc = rec[RC]
      if rec[RECOVERING] and rc and not rc[RC_PERMIT] and not rec.dead then
        begin_recovery(rec)
      else
        core.recovery_release() -- nobody here wants it any more: pass it on
      end
    elseif kind == SYS.DELETED then
      return on_deleted(rec, ival, core.write_seq(mptr))
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
          core.log(LOG_WARN, fmt("%s: delete_snapshots failed: %s", pid(rec), err))
        end
      else
        call_hook(rec, "on_snapshots_deleted", true, crit or {}, rec[CTX])
      end
    elseif kind == core.SYS_LEASED then
      rec.leasing = false
      local err, storage = core.lease_result(mptr) -- storage: the journal failed, not a holder
      if err and rec[RECOVERING] and storage and R.count_failure(rec) then return P.restart(rec, err, true) end
      if err then return rec[RECOVERING] and recovery_failed(rec, err) end
      rec.leased = true
      local rc = rec[RC]
      if rec[RECOVERING] and rc and not rc[RC_PERMIT] and core.recovery_acquire() then begin_recovery(rec) end
    elseif kind == SYS.RECOVERY_TIMEOUT then
      local rc = rec[RC]
      if not rc or ival ~= rc[RC_TOKEN] then return end -- a timer of an earlier recovery
      rc[RC_TIMER] = nil
      if rc[RC_PROGRESS] == 0 then
        return recovery_failed(rec, fmt("recovery of %s timed out", pid(rec)))
      end
      rc[RC_PROGRESS] = 0
      arm_timeout(rc)
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
    P.drop_pending(rec)
    if rec[RECOVERING] then
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
      core.log(LOG_ERROR, fmt("%s cannot restart: %s; stopping", pid(rec), ierr))
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
    rec[SEQ] = 0
    start_recovery(rec)
  end

  -- Failed too often: stop for good, whatever was pending.
  function P.give_up(rec)
    if rec[RECOVERING] then end_recovery(rec) end
    rec.restarting = false
    P.drop_pending(rec)
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
    if rec.restarting or rec[RECOVERING] then return P.give_up(rec) end
  end

  function P.stopped(rec)
    if rec[RC] then end_recovery(rec) end
    if rec.leased then core.unlease(pid(rec)) end
  end

  -- Forgets every queued operation (a restart or giving up).
  function P.drop_pending(rec)
    local q = rec[Q]
    rec[Q] = q and q[QI] > 0 and { QBASE, 0, 0, q[QI] } or false
  end

  return P
end
