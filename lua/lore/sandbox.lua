-- sandbox.lua: behaviour scripts are untrusted: each module runs in its own environment,
-- with its own copy of the standard library, and reaches nothing of the runtime's.
-- Returns a constructor that runtime.lua calls with (core, lore).
return function(core, lore)

  local type, pairs, ipairs, select, error, tostring = type, pairs, ipairs, select, error, tostring
  local raw_pcall, raw_xpcall, raw_setmetatable, raw_getmetatable = pcall, xpcall, setmetatable,
    getmetatable
  local raw_rawset, raw_load = rawset, load
  local co_resume, co_close = coroutine.resume, coroutine.close
  local fmt, concat = string.format, table.concat

  local S = {}

  local dirs = core.script_dirs()
  if #dirs == 0 then dirs = { "." } end
  S.dirs = dirs


  -- While a module's main chunk runs, its top level may define globals; once
  -- loaded, a global assignment is a handler writing shared module state.
  local loading_depth = 0

  ---------------------------------------------------------------------------
  -- What the runtime guarantees whatever a script does: a budget error (the
  -- instruction budget ran out) cannot be caught, so protected calls and
  -- coroutine resumes pass it on.
  ---------------------------------------------------------------------------

  local blown = core.budget_blown

  local function pass_on(ok, ...)
    if not ok and blown() then error((...), 0) end
    return ok, ...
  end

  local function pcall_(f, ...) return pass_on(raw_pcall(f, ...)) end
  -- An error raised by a hook leaves hooks off until the protected call
  -- returns (Lua's luaD_hook never re-enables them after a longjmp), so a
  -- message handler called for a budget error would run unbounded: once the
  -- budget is spent, the script's handler is not called at all.
  local function xpcall_(f, handler, ...)
    local function guarded(e)
      if blown() then return e end
      return handler(e)
    end
    return pass_on(raw_xpcall(f, guarded, ...))
  end

  -- Coroutines a script creates carry the count hook from their first
  -- instruction (core.cocreate), so a loop inside one spends the handler's budget.
  local cocreate = core.cocreate

  local function resume_(co, ...) return pass_on(co_resume(co, ...)) end

  local function wrap_(f)
    local co = cocreate(f)
    local function result(ok, ...)
      if not ok then error((...), 0) end
      return ...
    end
    return function(...) return result(co_resume(co, ...)) end
  end

  local function close_(co) return pass_on(co_close(co)) end

  local function setmetatable_(t, mt)
    if type(mt) == "table" and mt.__gc ~= nil then
      -- A finalizer runs whenever the collector decides, outside any handler
      -- and its budget (at shutdown too): not for untrusted code.
      error("setmetatable: __gc metamethods are not allowed in behaviours", 2)
    end
    return raw_setmetatable(t, mt)
  end

  -- The shared string metatable (s:upper() goes through it) is the worker's:
  -- a script that reached it could rewrite string methods for every actor.
  local function getmetatable_(v)
    if type(v) == "string" then return nil end
    return raw_getmetatable(v)
  end

  -- A ctx is read-only: a raw field would shadow what its metatable answers.
  local function rawset_(t, k, v)
    if getmetatable_(t) == "lore.ctx" then error("ctx is read-only", 2) end
    return raw_rawset(t, k, v)
  end

  -- print writes whole lines to stdout (lines from several workers never
  -- interleave mid-line); a closed stdout is reported once, not fatal.
  local stdout = io.stdout
  local print_failed = false
  local function print_(...)
    local parts = {}
    for i = 1, select("#", ...) do parts[i] = tostring((select(i, ...))) end
    local ok, err = stdout:write(concat(parts, "\t"), "\n")
    if ok then ok, err = stdout:flush() end
    if not ok and not print_failed then
      print_failed = true
      core.log(2, "print: cannot write to stdout: " .. tostring(err) .. " (further failures are not logged)")
    end
  end

  local function copy(t)
    local c = {}
    for k, v in pairs(t) do c[k] = v end
    return c
  end

  -- The library every module gets a fresh copy of (the functions are shared,
  -- the tables holding them are not).
  local string_lib = copy(string)
  string_lib.dump = nil -- bytecode is refused by load anyway; no reason to make it
  local coroutine_lib = copy(coroutine)
  coroutine_lib.create, coroutine_lib.wrap, coroutine_lib.resume, coroutine_lib.close =
    cocreate, wrap_, resume_, close_

  local base = {
    assert = assert, error = error, ipairs = ipairs, next = next, pairs = pairs,
    select = select, tonumber = tonumber, tostring = tostring, type = core.type or type,
    rawequal = rawequal, rawget = rawget, rawlen = rawlen, _VERSION = _VERSION,
    pcall = pcall_, xpcall = xpcall_, setmetatable = setmetatable_, getmetatable = getmetatable_,
    rawset = rawset_, print = print_,
  }

  ---------------------------------------------------------------------------
  -- Module loading. A realm is what one behaviour loaded: the behaviour and
  -- the modules it requires, each in its own environment. Realms share
  -- nothing, so one behaviour cannot change a module another one uses (and a
  -- behaviour reloads together with what it requires).
  ---------------------------------------------------------------------------

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
  S.find_file = find_file

  local function valid_name(name)
    return type(name) == "string" and name ~= "" and not name:find("[^%w_%.%-]")
      and not name:find("%.%.") and name:sub(1, 1) ~= "."
  end
  S.valid_name = valid_name

  local natives = {} -- name -> module value: native modules the host preloaded (trusted)

  -- A native module is opened once per worker, so its table is one object
  -- there: a realm gets a read-only view of it instead, so a behaviour cannot
  -- replace a function (or a value in a table inside it) for the others.
  -- Views are made lazily, one per table and realm; functions and other
  -- values pass through as they are.
  local function read_only_view(realm, name, t)
    if type(t) ~= "table" then return t end
    local views = realm.views
    if not views then
      views = raw_setmetatable({}, { __mode = "k" })
      realm.views = views
    end
    local v = views[t]
    if v then return v end
    local function refuse()
      error(fmt("module '%s' is read-only (it is shared with other behaviours)", name), 2)
    end
    local function view_next(_, k)
      local nk, nv = next(t, k)
      if nk ~= nil then return nk, read_only_view(realm, name, nv) end
    end
    v = raw_setmetatable({}, {
      __index = function(_, k) return read_only_view(realm, name, t[k]) end,
      __newindex = refuse,
      __pairs = function() return view_next, v, nil end,
      __len = function() return #t end,
      __metatable = false,
    })
    views[t] = v
    return v
  end

  local load_module

  local function new_env(realm)
    local g = copy(base)
    g.string, g.table, g.math, g.utf8 = copy(string_lib), copy(table), copy(math), copy(utf8)
    g.coroutine = copy(coroutine_lib)
    g.os = { time = os.time, clock = os.clock, date = os.date, difftime = os.difftime }
    g.lore = { ref = lore.ref }
    local env = raw_setmetatable({}, {
      __index = g,
      __newindex = function(_, k, v)
        if loading_depth == 0 then
          error(fmt("assignment to global '%s' in a handler: keep state in `state`", tostring(k)), 2)
        end
        raw_rawset(g, k, v)
      end,
      __metatable = false,
    })
    g._G = env
    function g.require(name)
      local m, err = load_module(realm, name)
      if m == nil then error(err, 2) end
      return m
    end
    function g.load(chunk, chunkname, mode, chunk_env)
      if mode ~= nil and mode ~= "t" then error("only text chunks may be loaded", 2) end
      return raw_load(chunk, chunkname, "t", chunk_env or env)
    end
    return env
  end

  -- Compiles and runs one module file in a fresh environment of `realm`.
  -- Returns the module's value, or nil and an error naming file and line.
  local function run_file(realm, name, path)
    local env = new_env(realm)
    -- the runtime's text of the file, the same on every worker (reload.c)
    local text, err = core.source(path)
    if not text then return nil, err end
    local chunk
    chunk, err = raw_load(text, "@" .. path, "t", env)
    if not chunk then return nil, err end
    loading_depth = loading_depth + 1
    local ok, res = raw_pcall(chunk, name)
    loading_depth = loading_depth - 1
    if not ok then
      if blown() then error(res, 0) end
      return nil, fmt("loading %s: %s", path, tostring(res))
    end
    if res == nil then res = true end
    return res
  end

  function load_module(realm, name)
    local m = realm.modules[name]
    if m ~= nil then return m end
    if not valid_name(name) then return nil, fmt("bad module name %q", tostring(name)) end
    if natives[name] == nil then
      local open = core.native(name)
      if open then natives[name] = open(name) or true end
    end
    if natives[name] ~= nil then
      m = read_only_view(realm, name, natives[name])
      realm.modules[name] = m
      return m
    end
    if realm.loading[name] then return nil, fmt("module '%s' requires itself (a loop)", name) end
    local path = find_file(name)
    if not path then
      return nil, fmt("module '%s' not found in scripts (%s)", name, concat(dirs, ", "))
    end
    realm.loading[name] = true
    realm.files[#realm.files + 1] = path
    local res, err = run_file(realm, name, path)
    realm.loading[name] = nil
    if res == nil then return nil, err end
    realm.modules[name] = res
    return res
  end

  -- Checks that module `name` (a behaviour or a module behaviours require)
  -- loads, in a realm of its own that is then dropped: true, or nil and the
  -- error naming file and line.
  function S.check(name)
    if not valid_name(name) then return nil, fmt("bad module name %q", tostring(name)) end
    if not find_file(name) then
      return nil, fmt("behaviour or module '%s' not found in scripts (%s)", name, concat(dirs, ", "))
    end
    local m, err = load_module({ modules = {}, loading = {}, files = {} }, name)
    if m == nil then return nil, err end
    return true
  end

  -- Loads module `name` (an adapter file: adapters.lua) into a new realm of
  -- its own: its value and the realm, or nil and the error naming file and line.
  function S.load_plain(name)
    if not valid_name(name) then return nil, fmt("bad module name %q", tostring(name)) end
    local realm = { modules = {}, loading = {}, files = {} }
    local m, err = load_module(realm, name)
    if m == nil then return nil, err end
    return m, realm
  end

  -- A fresh environment (its own realm) for functions the application hands
  -- over as bytecode (lore.adapter: adapters.lua).
  function S.new_env() return new_env({ modules = {}, loading = {}, files = {} }) end

  -- Loads behaviour `name` into a new realm. Returns the module table and the
  -- realm, or nil, an error naming file and line, and why ("nobehaviour":
  -- there is no such script; "script": it does not load).
  function S.load_behaviour(name)
    if not valid_name(name) then return nil, fmt("bad behaviour name %q", tostring(name)), "nobehaviour" end
    local path = find_file(name)
    if not path then
      return nil, fmt("behaviour '%s' not found in scripts (%s)", name, concat(dirs, ", ")), "nobehaviour"
    end
    local realm = { modules = {}, loading = {}, files = {} }
    local M, err = load_module(realm, name)
    if M == nil then return nil, err, "script" end
    if type(M) ~= "table" or type(M.receive) ~= "function" then
      return nil, fmt("behaviour '%s' (%s) must return a table with a receive function", name, path), "script"
    end
    return M, realm
  end

  return S
end
