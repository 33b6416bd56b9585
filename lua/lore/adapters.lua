-- adapters.lua: event adapters on a worker: bound by event type, they give an event its stored form,
-- version and tags when it is persisted, and turn stored events back before recovery and queries
-- see them. Returns a constructor that runtime.lua calls with (core, sandbox).
--
-- Adapters come from two places, bound in this order: the files of the `adapters` folder of each
-- scripts directory (sorted by name; each returns a list of adapters), then the application's
-- lore.adapter calls, in call order (their functions arrive as bytecode: adapters_lua.c). They are
-- untrusted like behaviours: a file runs in a sandbox realm of its own, an application adapter in
-- a sandbox environment, and every call counts against the budget of the handler that makes it (a
-- command that persists, a recovery page, a query page).
return function(core, sandbox)
  local A = {}
  local type, pcall, error, tostring, ipairs, pairs, rawget, load = type, pcall, error, tostring,
    ipairs, pairs, rawget, load
  local fmt, concat, mtype = string.format, table.concat, math.type
  local blown = core.budget_blown

  local files = {} -- { {module =, path =, list = {binding, ...}, realm =}, ... } in binding order
  local app = {}   -- bindings from lore.adapter
  local chains = {} -- event type -> { binding, ... } in binding order
  local loaded, load_err = false, nil
  local staged -- a reload's files, waiting for the commit
  A.active = false -- some type has an adapter
  -- the files are loaded, without error, and no type has an adapter: a
  -- persist can skip for_persist (and the list it needs)
  A.plain = false

  local KNOWN = { type = true, to_journal = true, from_journal = true, version = true, tags = true,
    name = true }

  -- Types the runtime keeps for its own events (timers, deliveries).
  local function reserved(t) return t:sub(1, 5) == "lore." end
  A.reserved = reserved

  -- Why `tags` is not a list of tags (nil if it is).
  local function tags_problem(tags)
    if type(tags) ~= "table" then return "tags must be a list of strings" end
    local n = #tags
    for k in pairs(tags) do
      if mtype(k) ~= "integer" or k < 1 or k > n then return "tags must be a list of strings" end
    end
    for i = 1, n do
      local t = tags[i]
      if type(t) ~= "string" then return fmt("tag %d is a %s, not a string", i, type(t)) end
      if t == "" then return fmt("tag %d is empty", i) end
      if t:find("\n", 1, true) then return fmt("tag %d contains a newline", i) end
    end
    return nil
  end

  -- A binding from a spec; `where` names it in every error.
  local function make(spec, where)
    if type(spec) ~= "table" then return nil, where .. ": an adapter is a table" end
    for k in pairs(spec) do
      if not KNOWN[k] then return nil, fmt("%s: unknown field '%s'", where, tostring(k)) end
    end
    local t = spec.type
    if type(t) ~= "string" or t == "" then
      return nil, where .. ": type (the event type it binds to) must be a non-empty string"
    end
    if reserved(t) then return nil, fmt("%s: type '%s' is reserved for the runtime's own events", where, t) end
    for _, k in ipairs { "to_journal", "from_journal" } do
      if spec[k] ~= nil and type(spec[k]) ~= "function" then
        return nil, fmt("%s: %s must be a function", where, k)
      end
    end
    local v = spec.version
    if v ~= nil and (mtype(v) ~= "integer" or v < 1 or v > 2147483647) then
      return nil, where .. ": version must be a positive integer"
    end
    local tags = spec.tags
    if tags ~= nil and type(tags) ~= "function" then
      local why = tags_problem(tags)
      if why then return nil, fmt("%s: %s", where, why) end
    end
    if spec.name ~= nil and type(spec.name) ~= "string" then return nil, where .. ": name must be a string" end
    return {
      type = t, version = v, tags = tags, to_journal = spec.to_journal, from_journal = spec.from_journal,
      name = spec.name and fmt("adapter '%s' (%s)", spec.name, where) or fmt("%s (type '%s')", where, t),
    }
  end

  local function rebuild()
    chains = {}
    local function add(b)
      local c = chains[b.type]
      if not c then
        c = {}
        chains[b.type] = c
      end
      c[#c + 1] = b
    end
    for _, f in ipairs(files) do
      for _, b in ipairs(f.list) do add(b) end
    end
    for _, b in ipairs(app) do add(b) end
    A.active = next(chains) ~= nil
    A.plain = loaded and load_err == nil and not A.active
  end

  local function load_file(f)
    local value, realm = sandbox.load_plain(f.module)
    if value == nil then return nil, "adapters: " .. tostring(realm) end
    if type(value) ~= "table" then return nil, fmt("adapters: %s must return a list of adapters", f.path) end
    local n = #value
    for k in pairs(value) do
      if mtype(k) ~= "integer" or k < 1 or k > n then
        return nil, fmt("adapters: %s must return a list of adapters (found the key %s)", f.path, tostring(k))
      end
    end
    local list = {}
    for i = 1, n do
      local b, err = make(value[i], fmt("adapter #%d of %s", i, f.path))
      if not b then return nil, "adapters: " .. err end
      list[i] = b
    end
    return { module = f.module, path = f.path, list = list, realm = realm }
  end

  -- The adapter files as listed now: those `fresh(file)` picks loaded anew,
  -- the others kept as loaded before (a file not loaded yet is loaded).
  -- Returns the list, or nil and the first error.
  local function load_all(fresh)
    local before = {}
    for _, f in ipairs(files) do before[f.module] = f end
    local out = {}
    for _, f in ipairs(core.adapter_files()) do
      local entry = before[f.module]
      if not entry or entry.path ~= f.path or (fresh and fresh(entry)) then
        local err
        entry, err = load_file(f)
        if not entry then return nil, err end
      end
      out[#out + 1] = entry
    end
    return out
  end

  -- Loads the adapter files once per worker, on first need: true, or false
  -- and the error (kept until a reload of the files succeeds: until then no
  -- event is written or recovered without its adapters).
  function A.ensure()
    if loaded then return load_err == nil, load_err end
    local list, err = load_all()
    loaded = true
    if not list then
      load_err = err
      core.log(3, err)
      return false, err
    end
    files = list
    rebuild()
    return true
  end

  ---------------------------------------------------------------------------
  -- Writing: to_journal, version, tags
  ---------------------------------------------------------------------------

  -- Events are acyclic values (the codec refuses anything else): to_journal
  -- gets a copy, so the event apply sees stays the one the behaviour made.
  local function copy(v, depth)
    if type(v) ~= "table" then return v end
    if depth > 64 then error("the event is nested too deeply", 0) end
    local c = {}
    for k, x in pairs(v) do c[k] = copy(x, depth + 1) end
    return c
  end

  local function call(b, what, f, ...)
    local ok, r = pcall(f, ...)
    if not ok then
      if blown() then error(r, 0) end -- the budget is spent: the handler fails, not the event
      return false, fmt("%s: %s raised: %s", b.name, what, tostring(r))
    end
    return true, r
  end

  -- The stored form of each event of a persist: (stored, metas), where
  -- metas[i] = { version =, tags = "a\nb", list = {...} } for an event that
  -- has adapters (nil for one that has none); or nil and why the persist is
  -- refused (an adapter raised, returned nothing, or gave a bad tag).
  function A.for_persist(events)
    if not loaded then A.ensure() end
    if load_err then return nil, load_err end
    if not A.active then return events, nil end
    local stored, metas
    for i = 1, #events do
      local evt = events[i]
      local chain = type(evt) == "table" and chains[rawget(evt, "type")]
      if chain then
        if not stored then
          stored, metas = {}, {}
          for j = 1, #events do stored[j] = events[j] end
        end
        local s, version, tags, seen = evt, 1, nil, nil
        for _, b in ipairs(chain) do
          if b.to_journal then
            if s == evt then s = copy(evt, 0) end
            local ok, r = call(b, "to_journal", b.to_journal, s)
            if not ok then return nil, r end
            if r == nil then return nil, b.name .. ": to_journal returned nil" end
            s = r
          end
          if b.version and b.version > version then version = b.version end
          local t = b.tags
          if type(t) == "function" then
            local ok, r = call(b, "tags", t, evt)
            if not ok then return nil, r end
            t = r
            if t ~= nil then
              local why = tags_problem(t)
              if why then return nil, fmt("%s: tags(evt) returned a bad list: %s", b.name, why) end
            end
          end
          if t then
            tags, seen = tags or {}, seen or {}
            for _, tag in ipairs(t) do
              if not seen[tag] then
                seen[tag] = true
                tags[#tags + 1] = tag
              end
            end
          end
        end
        stored[i] = s
        metas[i] = { version = version, tags = tags and concat(tags, "\n") or nil, list = tags }
      end
    end
    return stored or events, metas
  end

  ---------------------------------------------------------------------------
  -- Reading: from_journal
  ---------------------------------------------------------------------------

  -- "a\nb" -> { "a", "b" }
  function A.split_tags(s)
    local list = {}
    if s == nil or s == "" then return list end
    for tag in s:gmatch("[^\n]+") do list[#list + 1] = tag end
    return list
  end

  -- Whether events of this type (manifest) have adapters.
  function A.adapted(manifest) return chains[manifest] ~= nil end

  -- A stored event through the adapters of its type (meta.manifest): returns
  -- the event (and false), a list of events (and true), or nil (dropped).
  -- Each adapter of the chain gets every event the one before produced. An
  -- adapter that raises raises here, naming itself, the id and the seq.
  function A.from_journal(evt, meta)
    local chain = chains[meta.manifest]
    if not chain then return evt, false end
    local cur, n = { evt }, 1
    for _, b in ipairs(chain) do
      local f = b.from_journal
      if f then
        local nxt, m = {}, 0
        for i = 1, n do
          local ok, r = pcall(f, cur[i], meta)
          if not ok then
            if blown() then error(r, 0) end
            error(fmt("%s raised at id %s seq %d: %s", b.name, tostring(meta.id), meta.seq, tostring(r)), 0)
          end
          if type(r) == "table" and rawget(r, "type") == nil and r[1] ~= nil then
            for j = 1, #r do
              m = m + 1
              nxt[m] = r[j]
            end
          elseif r ~= nil then
            m = m + 1
            nxt[m] = r
          end
        end
        cur, n = nxt, m
        if n == 0 then return nil end
      end
    end
    if n == 1 then return cur[1], false end
    return cur, true
  end

  -- A query's page (adapters_lua.c, WORKER_ADAPT_PAGE): nil when no event of
  -- it has adapters (the host reads the page as it is), else { {evt, meta}, ... }.
  local function adapt_page(mptr)
    local ok, err = A.ensure()
    if not ok then error(err, 0) end
    if not A.active then return nil end
    local needed = false
    for _, manifest in ipairs(core.qpage_manifests(mptr)) do
      if chains[manifest] then
        needed = true
        break
      end
    end
    if not needed then return nil end
    local items, n = {}, 0
    core.qpage_each(mptr, function(evt, meta)
      local out, list = A.from_journal(evt, meta)
      if list then
        for i = 1, #out do
          n = n + 1
          items[n] = { out[i], meta }
        end
      elseif out ~= nil then
        n = n + 1
        items[n] = { out, meta }
      end
    end)
    return items
  end

  ---------------------------------------------------------------------------
  -- lore.adapter: an adapter the application binds (WORKER_ADAPTER_BIND)
  ---------------------------------------------------------------------------

  -- t: { type =, name =, version =, tags = list, tags_code =, to_journal =,
  -- from_journal = } with each function as bytecode (string.dump by the
  -- application, which is trusted; the functions take no upvalue but _ENV,
  -- which becomes a sandbox environment).
  local function bind_app(t)
    A.ensure()
    local env = sandbox.new_env()
    local spec = { type = t.type, version = t.version, tags = t.tags, name = t.name }
    for _, k in ipairs { "to_journal", "from_journal", "tags_code" } do
      local code = t[k]
      if code ~= nil then
        local f, err = load(code, "=" .. tostring(t.name), "b", env)
        if not f then error(fmt("adapter '%s': %s: %s", tostring(t.name), k, tostring(err)), 0) end
        spec[k == "tags_code" and "tags" or k] = f
      end
    end
    local b, err = make(spec, "lore.adapter")
    if not b then error(err, 0) end
    app[#app + 1] = b
    rebuild()
    return true
  end

  core.adapters_entry(bind_app, adapt_page)

  ---------------------------------------------------------------------------
  -- Hot reload: a changed adapter file (or a module one requires) reloads
  -- every adapter file in the same two phases as behaviours (runtime.lua).
  ---------------------------------------------------------------------------

  function A.concerns(module)
    if module:sub(1, 9) == "adapters." then return true end
    for _, f in ipairs(files) do
      if f.realm.modules[module] ~= nil then return true end
    end
    return false
  end

  -- Loads anew the adapter file `module` is, or those that require it.
  function A.prepare(module)
    staged = nil
    local list, err = load_all(function(f) return f.module == module or f.realm.modules[module] ~= nil end)
    if not list then return nil, err end
    staged = list
    return true
  end

  function A.commit()
    if not staged then return end
    files, staged = staged, nil
    loaded, load_err = true, nil
    rebuild()
  end

  function A.abort() staged = nil end

  return A
end
