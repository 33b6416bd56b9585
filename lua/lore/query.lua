-- query.lua: lore.query.events, lore.query.by_tag, lore.query.ids and lore.adapter, in the
-- application script's Lua state (not a worker's). query_module.c runs it with (qcore, lore).
--
-- A query is an iterator over pages a cursor reads on libuv's thread pool (query_lua.c); the
-- application's coroutine is suspended while a page loads, and never holds more than one page.
local qcore, lore = ...

local type, error, pairs, tostring = type, error, pairs, tostring
local fmt = string.format

-- The options a call knows; anything else is an error (a typo must not
-- silently mean the default).
local function options(opts, known, what)
  if opts == nil then return {} end
  if type(opts) ~= "table" then error(what .. ": options must be a table", 3) end
  for k in pairs(opts) do
    if not known[k] then error(fmt("%s: unknown option '%s'", what, tostring(k)), 3) end
  end
  return opts
end

local function integer_opt(v, default, what, name)
  if v == nil then return default end
  if math.type(v) ~= "integer" then error(fmt("%s: %s must be an integer", what, name), 3) end
  return v
end

-- An iterator over cursor `c`: shape(item) gives the loop's values, or nil
-- to skip the item. Returns the four values of a generic for, the cursor
-- last as its to-be-closed value: leaving the loop early (break, an error)
-- closes the cursor at once.
local function iterate(c, what, shape)
  local items, i = nil, 0
  local function step()
    while true do
      if items then
        i = i + 1
        local item = items[i]
        if item == nil then
          items = nil
        else
          local a, b, m = shape(item)
          if a ~= nil then return a, b, m end
        end
      else
        local token = qcore.token()
        local started = qcore.fetch(c, function(page, err) qcore.wake(token, page, err) end)
        if not started then return nil end
        local page, err = qcore.wait(token)
        if page == nil then
          if err then error(fmt("%s: %s", what, err), 2) end
          return nil
        end
        items, i = page, 0
      end
    end
  end
  return step, nil, nil, c
end

local query = {}

local EVENTS_OPTS = { from = true, to = true, follow = true, internal = true }

-- lore.query.events(id, {from =, to =, follow =, internal =}):
-- `for seq, evt, meta in ...`: the events of one persistence id in seq order.
function query.events(id, opts)
  local what = "lore.query.events"
  if type(id) ~= "string" or id == "" then error(what .. "(id, opts): id must be a non-empty string", 2) end
  opts = options(opts, EVENTS_OPTS, what)
  local from = integer_opt(opts.from, 1, what, "from")
  local to = integer_opt(opts.to, math.maxinteger, what, "to")
  local c = qcore.cursor("events", id, from, to, opts.follow, opts.internal)
  return iterate(c, what, function(item) return item[2].seq, item[1], item[2] end)
end

local TAG_OPTS = { from = true, follow = true, internal = true }

-- lore.query.by_tag(tag, {from =, follow =, internal =}):
-- `for offset, evt, meta in ...`: the events carrying `tag`, in offset
-- (commit) order, from offset `from` on (inclusive; default: the first).
function query.by_tag(tag, opts)
  local what = "lore.query.by_tag"
  if type(tag) ~= "string" or tag == "" or tag:find("\n", 1, true) then
    error(what .. "(tag, opts): tag must be a non-empty string without a newline", 2)
  end
  opts = options(opts, TAG_OPTS, what)
  local from = integer_opt(opts.from, 0, what, "from")
  local c = qcore.cursor("tag", tag, from, nil, opts.follow, opts.internal)
  return iterate(c, what, function(item) return item[2].offset, item[1], item[2] end)
end

local IDS_OPTS = { follow = true }

-- lore.query.ids({follow =}): `for id, highest in ...`: every persistence id
-- (sorted by its bytes) with its highest seq; live, then each id written
-- for the first time afterwards (with highest 1), once.
function query.ids(opts)
  local what = "lore.query.ids"
  opts = options(opts, IDS_OPTS, what)
  local c = qcore.cursor("ids", nil, nil, nil, opts.follow, false)
  local seen = opts.follow and {} or nil -- the listing and the live part may overlap
  return iterate(c, what, function(item)
    local id = item[1]
    if seen then
      if seen[id] then return nil end
      seen[id] = true
    end
    return id, item[2]
  end)
end

lore.query = query

---------------------------------------------------------------------------
-- lore.adapter(type, {to_journal =, from_journal =, version =, tags =, name =})
---------------------------------------------------------------------------

local ADAPTER_FIELDS = { to_journal = true, from_journal = true, version = true, tags = true,
  name = true }

-- An adapter runs on every worker, in its sandbox: a function goes there as
-- bytecode, with nothing of the application but the sandbox's globals.
local function portable(f, what)
  if type(f) ~= "function" then error(fmt("lore.adapter: %s must be a function", what), 3) end
  if debug.getinfo(f, "S").what == "C" then
    error(fmt("lore.adapter: %s must be a Lua function", what), 3)
  end
  for i = 1, math.huge do
    local name = debug.getupvalue(f, i)
    if name == nil then break end
    if name ~= "_ENV" then
      error(fmt("lore.adapter: %s uses '%s', a local of the application script; an adapter runs "
        .. "on the workers, in their sandbox, and sees only its arguments and the sandbox's globals "
        .. "(string, table, math, ...): define it inside the function, or use an adapter file",
        what, name), 3)
    end
  end
  return string.dump(f)
end

-- Binds an adapter to events of type `type` on every worker; waits until
-- every worker has it (the application's coroutine only).
function lore.adapter(t, spec)
  if type(t) ~= "string" or t == "" then error("lore.adapter(type, spec): type must be a non-empty string", 2) end
  if t:sub(1, 5) == "lore." then
    error(fmt("lore.adapter: type '%s' is reserved for the runtime's own events", t), 2)
  end
  if type(spec) ~= "table" then error("lore.adapter(type, spec): spec must be a table", 2) end
  for k in pairs(spec) do
    if not ADAPTER_FIELDS[k] then error(fmt("lore.adapter: unknown field '%s'", tostring(k)), 2) end
  end
  local where = debug.getinfo(2, "Sl")
  local msg = {
    type = t, version = spec.version,
    name = spec.name or fmt("lore.adapter('%s') at %s:%d", t, where.short_src, where.currentline),
  }
  if spec.to_journal ~= nil then msg.to_journal = portable(spec.to_journal, "to_journal") end
  if spec.from_journal ~= nil then msg.from_journal = portable(spec.from_journal, "from_journal") end
  if type(spec.tags) == "function" then
    msg.tags_code = portable(spec.tags, "tags")
  else
    msg.tags = spec.tags
  end
  local token = qcore.token()
  qcore.bind_adapter(msg, function(ok, err) qcore.wake(token, ok, err) end)
  local ok, err = qcore.wait(token)
  if not ok then error(err, 2) end
  return true
end

