-- delivery.lua: at-least-once delivery: ctx:deliver, ctx:confirm_delivery, ctx:unconfirmed.
-- After Akka's AtLeastOnceDelivery, except that Lore journals the intents itself: a delivery
-- and its confirmation are internal events of the sender's stream (internal.lua), so
-- recovery rebuilds the unconfirmed set without any code of the behaviour.
--
-- The order of things for one delivery:
--   ctx:deliver(dest, fn): the id is the next of this actor (strictly increasing, no gap
--     in the journal); fn(id) runs once, now, and its message is copied; the intent waits
--     as a rider of this turn (internal.lua) and goes into the journal with the turn's
--     first write, or alone at the end of the turn.
--   stored: the message is sent for the first time (never before the intent is durable).
--   every redeliver_interval / 2: what was sent redeliver_interval ago or more and is still
--     unconfirmed is sent again, at most burst_limit messages per round, oldest first;
--     on_unconfirmed hears of each delivery once it has been sent warn_after times.
--   ctx:confirm_delivery(id): no more re-sends; the confirmation is journalled the same way.
--   recovery: the deliveries stored and not confirmed in the journal (or in the snapshot it
--     started from) are sent again as soon as recovery completes, before the commands that
--     waited, then re-sent as above.
-- Returns a constructor; internal.lua calls it with (core, R, P, X, ctx_methods).
return function(core, R, P, X, ctx_methods)
  -- the record's array slots persistent.lua keeps its hot fields in
  local RECOVERING, pid = P.RECOVERING, P.pid
  local PERSISTENT = P.SEQ -- a slot only persistent records have
  local D = {}
  local type, pairs, ipairs, tostring, error, pcall, getmetatable = type, pairs, ipairs, tostring,
    error, pcall, getmetatable
  local fmt = string.format
  local mtype, tointeger = math.type, math.tointeger
  local BEH <const>, CTX <const> = 1, 3
  local SYS_REDELIVER = core.SYS.REDELIVER
  local own = R.own

  local DEFAULTS = { redeliver_interval = 5, burst_limit = 10000, warn_after = 5, max_unconfirmed = 100000 }

  -- M.delivery with the defaults filled in, checked once per behaviour version.
  local function settings(rec)
    local b = rec[BEH]
    if b.delivery_settings then return b.delivery_settings end
    local d = b.M.delivery
    local s = {}
    if d ~= nil and type(d) ~= "table" then error("M.delivery must be a table", 0) end
    for k, default in pairs(DEFAULTS) do
      local v = d and d[k]
      if v == nil then
        v = default
      elseif k == "redeliver_interval" then
        if type(v) ~= "number" or not (v > 0 and v < 1e9) then
          error("M.delivery.redeliver_interval must be a number of seconds above 0", 0)
        end
      elseif mtype(v) ~= "integer" or v < 1 then
        error(fmt("M.delivery.%s must be a positive integer", k), 0)
      end
      s[k] = v
    end
    if d then
      for k in pairs(d) do
        if DEFAULTS[k] == nil then error(fmt("M.delivery: unknown field '%s'", tostring(k)), 0) end
      end
    end
    b.delivery_settings = s
    return s
  end

  -- An actor's delivery state, made on first use.
  --   next: the id the next ctx:deliver takes
  --   live: id -> { id, dest, msg, attempts, sent_at, durable }: unconfirmed, as the actor sees it
  --   n: how many live
  --   dnext, dur, dn: the durable view: the id after the last stored delivery, and
  --     id -> { dest, msg } stored and not confirmed in the journal
  --   tick: the redelivery timer armed (its id), if any
  local function state(rec)
    local dl = rec.dl
    if not dl then
      dl = { next = 1, live = {}, n = 0, dnext = 1, dur = {}, dn = 0 }
      rec.dl = dl
    end
    return dl
  end

  -- A copy of a message value (refs are immutable and shared): the behaviour may change
  -- its table afterwards without changing what is re-sent.
  local function copy(v)
    if type(v) ~= "table" then return v end
    local t = {}
    for k, x in pairs(v) do t[k] = copy(x) end
    return t
  end
  D.copy = copy

  -- dest: a ref, or an entity's address { manager = NAME, id = ID }.
  local function destination(dest)
    if getmetatable(dest) == "lore.ref" then return dest end
    if type(dest) == "table" and type(dest.manager) == "string" and type(dest.id) == "string" then
      local ok, ref = pcall(core.entity_ref, dest.manager, dest.id)
      if ok then return ref end
    end
    return nil
  end

  local function is_ref(v) return getmetatable(v) == "lore.ref" end

  ---------------------------------------------------------------------------
  -- Sending
  ---------------------------------------------------------------------------

  local function send(d, now)
    d.attempts = d.attempts + 1
    d.sent_at = now
    d.dest:tell(d.msg)
  end

  local function arm_tick(rec, dl)
    if dl.tick or dl.n == 0 or rec.stopping or rec.dead then return end
    local s = settings(rec)
    -- Akka's burst frequency: half the interval, so a delivery waits at most 1.5 intervals.
    dl.tick = core.timer_system(s.redeliver_interval / 2, SYS_REDELIVER, 0)
  end

  local function cancel_tick(dl)
    if dl.tick then
      core.cancel(dl.tick)
      dl.tick = nil
    end
  end

  -- The live deliveries to send now: durable ones never sent, or sent at or before `before`
  -- (all of them when before is nil), oldest first, at most `limit`.
  local function overdue(dl, before, limit)
    local list = {}
    for _, d in pairs(dl.live) do
      if d.durable and (not d.sent_at or before == nil or d.sent_at <= before) then list[#list + 1] = d end
    end
    if #list > 1 then table.sort(list, function(a, b) return a.id < b.id end) end
    for i = #list, limit + 1, -1 do list[i] = nil end
    return list
  end

  -- Redelivery: what has waited redeliver_interval or more is sent again; on_unconfirmed
  -- hears of the deliveries that have now been sent warn_after times unconfirmed.
  function D.tick(rec, token)
    local dl = rec.dl
    if not dl or dl.tick ~= token then return end -- an earlier incarnation's, or cancelled
    dl.tick = nil
    if rec[RECOVERING] or rec.restarting or rec.stopping or rec.dead or dl.n == 0 then return end
    local s = settings(rec)
    local now = core.now_mono()
    -- a little slack: a tick that comes a hair early still re-sends what is due
    local list = overdue(dl, now - s.redeliver_interval + 0.001, s.burst_limit)
    local warnings
    for _, d in ipairs(list) do
      local before = d.attempts
      send(d, now)
      if before == s.warn_after then
        warnings = warnings or {}
        warnings[#warnings + 1] = { id = d.id, dest = d.dest, msg = copy(d.msg), attempts = d.attempts }
      end
    end
    core.keep_awake() -- an entity with deliveries to make is not idle
    arm_tick(rec, dl)
    local f = rec[BEH].M.on_unconfirmed
    if warnings and type(f) == "function" then f(warnings, rec[CTX]) end
  end

  ---------------------------------------------------------------------------
  -- ctx
  ---------------------------------------------------------------------------

  local DELIVER, CONFIRM = "lore.deliver", "lore.confirm"

  -- The intent is durable: the first send.
  local function deliver_stored(rec, payload)
    local dl = rec.dl
    local d = dl and dl.live[payload.id]
    if not d or d.durable then return end -- confirmed meanwhile
    d.durable = true
    if rec.dead then return end
    send(d, core.now_mono())
    arm_tick(rec, dl)
  end

  -- ctx:deliver(dest, fn) -> the delivery id
  function ctx_methods:deliver(dest, make)
    local rec = own(self, "deliver")
    if not rec[PERSISTENT] then
      error("ctx:deliver: at-least-once delivery needs a persistent actor (a behaviour with apply and "
        .. "an id): its deliveries are journalled with its events", 2)
    end
    if rec[RECOVERING] then error("ctx:deliver: not while recovering", 2) end
    if rec.stopping then error("ctx:deliver: the actor is stopping", 2) end
    local to = destination(dest)
    if not to then
      error("ctx:deliver(dest, fn): dest must be a ref (or an entity's { manager =, id = })", 2)
    end
    if type(make) ~= "function" then
      error("ctx:deliver(dest, fn): fn must be a function that makes the message from the delivery id", 2)
    end
    local ok, s = pcall(settings, rec)
    if not ok then error("ctx:deliver: " .. tostring(s), 2) end
    local dl = state(rec)
    if dl.n >= s.max_unconfirmed then
      error(fmt("ctx:deliver: %d deliveries are unconfirmed, as many as M.delivery.max_unconfirmed (%d) "
        .. "allows: confirm some (ctx:confirm_delivery) before delivering more", dl.n, s.max_unconfirmed), 2)
    end
    if dl.making then error("ctx:deliver: not inside another delivery's fn", 2) end
    local id = dl.next
    dl.making = true
    local made, msg = pcall(make, id)
    dl.making = nil
    if not made then error(msg, 0) end -- the behaviour's own error, as it raised it
    if msg == nil then error("ctx:deliver: fn(delivery_id) returned nil: it must return the message", 2) end
    local encodable, why = core.encodable(msg)
    if not encodable then error("ctx:deliver: " .. why, 2) end
    msg = copy(msg)
    dl.next = id + 1
    dl.live[id] = { id = id, dest = to, msg = msg, attempts = 0 }
    dl.n = dl.n + 1
    X.add(rec, DELIVER, { id = id, to = to, msg = msg }, deliver_stored)
    return id
  end

  -- ctx:confirm_delivery(id) -> true if that delivery was unconfirmed
  function ctx_methods:confirm_delivery(id)
    local rec = own(self, "confirm_delivery")
    if rec[RECOVERING] then error("ctx:confirm_delivery: not while recovering", 2) end
    local dl = rec.dl
    id = type(id) == "number" and tointeger(id) or nil
    local d = dl and id and dl.live[id]
    if not d then return false end
    dl.live[id] = nil
    dl.n = dl.n - 1
    if dl.n == 0 then cancel_tick(dl) end
    -- the confirmations of one turn share one event
    local last = X.last(rec, CONFIRM)
    if last and #last.payload.ids < 1000 then
      last.payload.ids[#last.payload.ids + 1] = id
    else
      X.add(rec, CONFIRM, { ids = { id } })
    end
    return true
  end

  function ctx_methods:unconfirmed()
    local rec = own(self, "unconfirmed")
    return rec.dl and rec.dl.n or 0
  end

  ---------------------------------------------------------------------------
  -- The durable view: replay, stored writes, snapshots
  ---------------------------------------------------------------------------

  local function check_id(v, manifest, seq)
    if mtype(v) ~= "integer" or v < 1 then
      error(fmt("malformed internal event %s at seq %s: bad delivery id", manifest, tostring(seq)), 0)
    end
    return v
  end

  local function put_durable(dl, id, dest, msg)
    if not dl.dur[id] then dl.dn = dl.dn + 1 end
    dl.dur[id] = { dest = dest, msg = msg }
    if id >= dl.dnext then dl.dnext = id + 1 end
  end

  assert(DELIVER == X.kind("deliver", {
    apply = function(rec, p, seq)
      local id = check_id(p.id, DELIVER, seq)
      if not is_ref(p.to) or p.msg == nil then
        error(fmt("malformed internal event %s at seq %s", DELIVER, tostring(seq)), 0)
      end
      put_durable(state(rec), id, p.to, p.msg)
    end,
    refused = function(rec, p)
      local dl = rec.dl
      if dl and dl.live[p.id] then
        dl.live[p.id] = nil
        dl.n = dl.n - 1
      end
    end,
  }))

  assert(CONFIRM == X.kind("confirm", {
    apply = function(rec, p, seq)
      if type(p.ids) ~= "table" then error(fmt("malformed internal event %s at seq %s", CONFIRM, tostring(seq)), 0) end
      local dl = state(rec)
      for _, id in ipairs(p.ids) do
        id = check_id(id, CONFIRM, seq)
        if dl.dur[id] then
          dl.dur[id] = nil
          dl.dn = dl.dn - 1
        end
      end
    end,
  }))

  -- What a snapshot carries (nil when this actor never delivered anything): the next id and
  -- the deliveries unconfirmed in the journal, oldest first.
  function D.snapshot(rec)
    local dl = rec.dl
    if not dl or dl.dnext == 1 then return nil end
    local pending = {}
    for id, e in pairs(dl.dur) do pending[#pending + 1] = { id = id, dest = e.dest, msg = e.msg } end
    table.sort(pending, function(a, b) return a.id < b.id end)
    return { next = dl.dnext, pending = pending }
  end

  function D.restore(rec, s)
    if s == nil then return end
    if type(s) ~= "table" or mtype(s.next) ~= "integer" or type(s.pending) ~= "table" then
      error("the snapshot's delivery state is malformed", 0)
    end
    local dl = state(rec)
    for _, e in ipairs(s.pending) do
      if mtype(e.id) ~= "integer" or not is_ref(e.dest) or e.msg == nil then
        error("the snapshot's delivery state is malformed", 0)
      end
      put_durable(dl, e.id, e.dest, e.msg)
    end
    if s.next > dl.dnext then dl.dnext = s.next end
  end

  ---------------------------------------------------------------------------
  -- Lifecycle
  ---------------------------------------------------------------------------

  function D.reset(rec)
    local dl = rec.dl
    if dl then
      cancel_tick(dl)
      rec.dl = nil
    end
  end

  -- Recovery completed: what the journal holds unconfirmed is live again and sent now
  -- (burst_limit of it; the rest at the next rounds).
  function D.recovered(rec)
    local dl = rec.dl
    if not dl then return end
    dl.next, dl.live, dl.n = dl.dnext, {}, 0
    for id, e in pairs(dl.dur) do
      dl.live[id] = { id = id, dest = e.dest, msg = copy(e.msg), attempts = 0, durable = true }
      dl.n = dl.n + 1
    end
    if dl.n == 0 then return end
    local ok, s = pcall(settings, rec)
    if not ok then
      core.log(2, fmt("%s: %s: its deliveries wait", tostring(pid(rec)), tostring(s)))
      return
    end
    local now = core.now_mono()
    for _, d in ipairs(overdue(dl, nil, s.burst_limit)) do send(d, now) end
    arm_tick(rec, dl)
  end

  function D.stopped(rec)
    if rec.dl then cancel_tick(rec.dl) end
  end

  return D
end
