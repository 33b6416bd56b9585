-- projection.lua: lore.projection and lore.projection_reset, in the application script's Lua state.
-- query_module.c runs it with (qcore, lore).
--
-- A projection reads the events of one tag in offset order from where it stopped, calls its
-- handler for each, and commits, per batch, what the handler wrote through ctx:exec together
-- with its new offset: one transaction in the journal's database (projection_lua.c). The handler
-- runs here, on the host loop (it is application code, trusted); every read and every commit is
-- a job on libuv's thread pool, so a slow projection never holds up an actor, and actors never
-- wait for it. A crash between two commits loses nothing acknowledged and repeats nothing
-- committed: the next run reads on from the stored offset.
local qcore, lore = ...

local type, error, pcall, tostring, select, setmetatable, pairs = type, error, pcall, tostring,
  select, setmetatable, pairs
local fmt, max = string.format, math.max
local LOG_ERROR = 3

local projections = {} -- name -> the projection of that name started last

-- Runs start(cb) and suspends the application until cb runs; returns cb's values.
local function wait_for(start)
  local token = qcore.token()
  start(function(...) qcore.wake(token, ...) end)
  return qcore.wait(token)
end

---------------------------------------------------------------------------
-- ctx: what a handler (and init, reset) writes through
---------------------------------------------------------------------------

local owner = setmetatable({}, { __mode = "k" }) -- ctx -> its projection
local ctx_methods = {}
local ctx_mt = {
  __index = ctx_methods,
  __newindex = function() error("a projection's ctx is read-only", 2) end,
  __metatable = "lore.projection_ctx",
}

-- ctx:exec(sql, ...): one statement with bound parameters (nil, booleans,
-- numbers, strings), into the projection's own tables. It runs when the
-- batch commits, in the same transaction as the projection's offset.
function ctx_methods:exec(sql, ...)
  local p = owner[self]
  if not p or not p.stmts then
    error("ctx:exec: only while this projection's handle, init or reset runs", 2)
  end
  if type(sql) ~= "string" then error("ctx:exec(sql, ...): sql must be a string", 2) end
  if not p.has_sql then
    error(fmt("ctx:exec: the journal of this run runs no SQL (projection '%s' needs sqlite:)", p.name), 2)
  end
  local n = select("#", ...)
  for i = 1, n do
    local t = type((select(i, ...)))
    if t ~= "nil" and t ~= "boolean" and t ~= "number" and t ~= "string" then
      error(fmt("ctx:exec: parameter %d is a %s: bind nil, booleans, numbers or strings", i, t), 2)
    end
  end
  local stmts = p.stmts
  stmts[#stmts + 1] = { sql, { ... }, n }
  p.owners[#stmts] = p.current
end

---------------------------------------------------------------------------
-- The driver: callbacks on the host loop
---------------------------------------------------------------------------

local P = {}
P.__index = P
P.__name = "lore.projection"

local fetch, process, do_reset

local function caught_up(p) return max(p.offset, p.scanned) end

local function wake_waiters(p, err)
  local keep = {}
  for _, w in pairs(p.waiters) do
    if err then
      qcore.wake(w.token, nil, err)
    elseif caught_up(p) >= w.target then
      qcore.wake(w.token, p.offset)
    else
      keep[#keep + 1] = w
    end
  end
  p.waiters = keep
end

local function wake_resets(p, ok, err)
  local list = p.reset_waiters
  p.reset_waiters = {}
  for _, token in pairs(list) do qcore.wake(token, ok, err) end
end

local function close_cursor(p)
  if p.cursor then qcore.close(p.cursor) end
  p.cursor = nil
end

local function fail(p, msg)
  if p.state == "failed" or p.state == "stopped" then return end
  p.state, p.error = "failed", msg
  p.pending = nil
  close_cursor(p)
  qcore.log(LOG_ERROR, fmt("projection '%s' stopped: %s; its offset stays at %d", p.name, msg, p.offset))
  wake_waiters(p, fmt("projection '%s' stopped: %s", p.name, msg))
  wake_resets(p, nil, fmt("projection '%s' stopped: %s", p.name, msg))
end

local function where(meta)
  return fmt("the event at offset %d (id %s seq %d)", meta.offset, tostring(meta.id), meta.seq)
end

-- Runs fn under ctx with a fresh batch; returns the statements and their
-- events, or nil and the error.
local function collect(p, fn, ...)
  p.stmts, p.owners = {}, {}
  local ok, err = pcall(fn, ...)
  local stmts, owners = p.stmts, p.owners
  p.stmts, p.owners = nil, nil
  if not ok then return nil, tostring(err) end
  return stmts, owners
end

-- One transaction: the statements, then the offset (unless nil); then
-- after() once it committed. A failing statement stops the projection.
local function commit(p, stmts, owners, offset, after)
  p.busy = true
  qcore.session_commit(p.session, stmts, offset, function(ok, err, index)
    p.busy = false
    if ok and offset then p.offset = offset end
    if p.state == "stopped" then
      qcore.session_close(p.session)
      return
    end
    if p.state ~= "running" then return end
    if not ok then
      local who = index and index > 0 and owners[index]
      if who then return fail(p, fmt("SQL failed for %s: %s", where(who), tostring(err))) end
      return fail(p, "the transaction failed: " .. tostring(err))
    end
    after()
  end)
end

local function start_reading(p)
  local from = p.offset > 0 and p.offset + 1 or p.from
  p.scanned = max(p.scanned, from - 1)
  p.cursor = qcore.cursor("tag", p.tag, from, nil, true, false, true)
  fetch(p)
end

function fetch(p)
  if p.state ~= "running" then return end
  if p.want_reset then return do_reset(p) end
  local cursor = p.cursor
  local started = qcore.fetch(cursor, function(items, err)
    if p.state ~= "running" or p.cursor ~= cursor then return end
    if items == false then -- at the end: every event up to `seen` was looked at
      p.scanned = max(p.scanned, (qcore.position(cursor)))
      wake_waiters(p)
      return fetch(p)
    end
    if items == nil then
      if err then return fail(p, "reading the journal: " .. err) end
      return -- the runtime stops
    end
    local seen, _, at_end = qcore.position(cursor)
    p.pending, p.idx, p.page_end, p.page_seen = items, 1, at_end, seen
    process(p)
  end)
  if not started then p.state = "stopped" end
end

-- Handles the next batch of the page in hand, commits it, and goes on.
function process(p)
  if p.state ~= "running" then return end
  if p.want_reset then return do_reset(p) end
  local items, i = p.pending, p.idx
  if not items or i > #items then
    p.pending = nil
    if p.page_end then p.scanned = max(p.scanned, p.page_seen) end
    wake_waiters(p)
    return fetch(p)
  end
  local last = i + p.batch - 1
  if last > #items then last = #items end
  local offset = items[last][2].offset
  -- the events one stored event was split into commit together
  while last < #items and items[last + 1][2].offset == offset do last = last + 1 end
  local handle, ctx = p.handle, p.ctx
  p.stmts, p.owners = {}, {}
  for k = i, last do
    local item = items[k]
    p.current = item[2]
    local ok, err = pcall(handle, item[1], item[2], ctx)
    if not ok then
      p.stmts, p.owners = nil, nil
      return fail(p, fmt("handle raised for %s: %s", where(item[2]), tostring(err)))
    end
  end
  local stmts, owners = p.stmts, p.owners
  p.stmts, p.owners, p.current = nil, nil, nil
  commit(p, stmts, owners, offset, function()
    p.idx = last + 1
    wake_waiters(p)
    process(p)
  end)
end

-- Back to the start: reset(ctx)'s statements and offset 0 in one
-- transaction, then reading again from `from`.
function do_reset(p)
  p.want_reset = false
  close_cursor(p)
  p.pending = nil
  local stmts, owners = {}, {}
  if p.reset_fn then
    local err
    stmts, err = collect(p, p.reset_fn, p.ctx)
    if not stmts then return fail(p, "reset raised: " .. err) end
    owners = {}
  end
  commit(p, stmts, owners, 0, function()
    p.offset, p.scanned = 0, 0
    wake_resets(p, true)
    start_reading(p)
  end)
end

---------------------------------------------------------------------------
-- lore.projection(name, spec) and the projection's methods
---------------------------------------------------------------------------

local SPEC = { tag = true, handle = true, init = true, reset = true, from = true, batch = true,
  rebuild = true }

local function check_spec(name, spec)
  if type(name) ~= "string" or name == "" then
    error("lore.projection(name, spec): name must be a non-empty string", 3)
  end
  if type(spec) ~= "table" then error("lore.projection(name, spec): spec must be a table", 3) end
  for k in pairs(spec) do
    if not SPEC[k] then error(fmt("lore.projection: unknown field '%s'", tostring(k)), 3) end
  end
  if type(spec.tag) ~= "string" or spec.tag == "" or spec.tag:find("\n", 1, true) then
    error("lore.projection: tag must be a non-empty string without a newline", 3)
  end
  if type(spec.handle) ~= "function" then error("lore.projection: handle must be a function", 3) end
  for _, k in pairs { "init", "reset" } do
    if spec[k] ~= nil and type(spec[k]) ~= "function" then
      error(fmt("lore.projection: %s must be a function", k), 3)
    end
  end
  local from = spec.from
  if from ~= nil and (math.type(from) ~= "integer" or from < 0) then
    error("lore.projection: from must be an offset (an integer >= 0)", 3)
  end
  local batch = spec.batch
  if batch ~= nil and (math.type(batch) ~= "integer" or batch < 1 or batch > 100000) then
    error("lore.projection: batch must be an integer from 1 to 100000", 3)
  end
end

local function alive(p)
  return (p.state == "running" or p.state == "starting") and qcore.session_alive(p.session)
end

-- lore.projection(name, {tag =, handle = function(evt, meta, ctx) end, init =, reset =, from =,
-- batch =, rebuild =}) -> a projection, started at once (it runs in the background; the
-- application goes on).
function lore.projection(name, spec)
  check_spec(name, spec)
  local running = projections[name]
  if running and alive(running) then
    error(fmt("lore.projection: a projection named '%s' runs already", name), 2)
  end
  local p = setmetatable({
    name = name, tag = spec.tag, handle = spec.handle, reset_fn = spec.reset,
    from = spec.from or 0, batch = spec.batch or 100,
    offset = 0, scanned = 0, state = "starting", waiters = {}, reset_waiters = {},
  }, P)
  p.session = qcore.session(name)
  p.has_sql = qcore.has_sql()
  p.ctx = setmetatable({ name = name }, ctx_mt)
  owner[p.ctx] = p
  projections[name] = p
  p.busy = true
  qcore.session_offset(p.session, function(offset, err)
    p.busy = false
    if p.state ~= "starting" then return end
    if not offset then return fail(p, "reading its stored offset: " .. tostring(err)) end
    p.offset = offset
    local function go()
      p.state = "running"
      if spec.rebuild or p.want_reset then return do_reset(p) end
      start_reading(p)
    end
    if not spec.init then return go() end
    local stmts, ierr = collect(p, spec.init, p.ctx)
    if not stmts then return fail(p, "init raised: " .. ierr) end
    p.state = "running" -- (commit reports only to a running projection)
    commit(p, stmts, {}, nil, go)
  end)
  return p
end

-- p:wait([timeout]) -> offset: waits (the application's coroutine) until
-- the projection has handled every event of its tag written before the
-- call. Raises when it stopped, or after `timeout` seconds (default 60).
function P:wait(timeout)
  timeout = timeout or 60
  if type(timeout) ~= "number" or timeout < 0 then error("p:wait(timeout): seconds >= 0", 2) end
  if self.error then error(fmt("projection '%s' stopped: %s", self.name, self.error), 2) end
  if not alive(self) then error(fmt("projection '%s' is not running", self.name), 2) end
  local target, err = wait_for(function(cb) qcore.max_offset(cb) end)
  if not target then error(err, 2) end
  if caught_up(self) >= target then return self.offset end
  local token = qcore.token()
  local w = { target = target, token = token }
  self.waiters[#self.waiters + 1] = w
  qcore.after(timeout, function()
    for i, x in pairs(self.waiters) do
      if x == w then
        table.remove(self.waiters, i)
        qcore.wake(token, nil, fmt("timeout: projection '%s' is at offset %d, not yet at %d after %s s",
          self.name, self.offset, target, tostring(timeout)))
        break
      end
    end
  end)
  local offset, werr = qcore.wait(token)
  if offset == nil then error(werr, 2) end
  return offset
end

-- p:status() -> { name =, tag =, state =, offset =, scanned =, error = }
-- state: "starting", "running", "failed" or "stopped".
function P:status()
  local state = self.state
  if (state == "running" or state == "starting") and not qcore.session_alive(self.session) then
    state = "stopped"
  end
  return { name = self.name, tag = self.tag, state = state, offset = self.offset,
    scanned = caught_up(self), error = self.error }
end

-- p:query(sql, ...) -> rows: a read of the projection's tables (its own
-- connection: it sees what was committed), waiting in the application.
function P:query(sql, ...)
  if type(sql) ~= "string" then error("p:query(sql, ...): sql must be a string", 2) end
  if not self.has_sql then error(fmt("p:query: the journal of this run runs no SQL"), 2) end
  if not self.reader or not qcore.session_alive(self.reader) then self.reader = qcore.session(self.name) end
  local n = select("#", ...)
  local stmt = { sql, { ... }, n }
  local rows, err = wait_for(function(cb) qcore.session_query(self.reader, stmt, cb) end)
  if not rows then error(fmt("projection '%s': %s", self.name, tostring(err)), 2) end
  return rows
end

-- p:stop(): no further event is handled (a batch being committed completes).
function P:stop()
  if self.state == "stopped" then return end
  local was = self.state
  self.state = "stopped"
  close_cursor(self)
  wake_waiters(self, fmt("projection '%s' was stopped", self.name))
  wake_resets(self, nil, fmt("projection '%s' was stopped", self.name))
  if not self.busy and was ~= "stopped" then qcore.session_close(self.session) end
end

-- p:reset(): back to the start: the spec's reset(ctx) statements (clearing
-- its tables) and offset 0 in one transaction, then it handles every event
-- again. Also restarts a projection that failed. Waits until the reset is
-- committed.
function P:reset()
  if not qcore.session_alive(self.session) then error(fmt("projection '%s' is not running", self.name), 2) end
  local token = qcore.token()
  self.reset_waiters[#self.reset_waiters + 1] = token
  if self.state == "failed" then
    self.state, self.error = "running", nil
  end
  if self.busy or self.state == "starting" then
    self.want_reset = true -- after the transaction in flight
  else
    do_reset(self)
  end
  local ok, err = qcore.wait(token)
  if not ok then error(err, 2) end
  return true
end

-- lore.projection_reset(name): resets the projection `name`: the running one
-- as p:reset() does; otherwise its stored offset goes back to 0, so it
-- starts from scratch next time (its tables are then the caller's to clear).
function lore.projection_reset(name)
  if type(name) ~= "string" or name == "" then
    error("lore.projection_reset(name): name must be a non-empty string", 2)
  end
  local p = projections[name]
  if p and alive(p) then return p:reset() end
  local s = qcore.session(name)
  local ok, err = wait_for(function(cb) qcore.session_commit(s, {}, 0, cb) end)
  qcore.session_close(s)
  if not ok then error(err, 2) end
  return true
end
