-- adapters_spec.lua: event adapters: to_journal, from_journal (drop, split), version, tags,
-- several per type in binding order, adapter files, failures, the sandbox, hot reload.
local lore = require "lore"
local helpers = require "helpers"
local ph = require "persist_helpers"

local ADAPT = helpers.fixtures .. "/adapt"
local SCRIPTS = { ADAPT, helpers.fixtures }

-- The two journals every adapter behaviour must hold for.
local backends = {
  { "memory", function() return ph.memory_journal(), nil end },
  { "sqlite", function() return ph.sqlite_journal() end },
}

local function run(uri, fn, extra)
  local cfg = { journal = uri, scripts = SCRIPTS }
  for k, v in pairs(extra or {}) do cfg[k] = v end
  return ph.run(cfg, fn)
end

local function persist(ref, evt)
  local r = ref:ask({ op = "persist", evt = evt }, 5)
  assert(r.ok, "persist refused: " .. tostring(r.rejected))
  return r
end

-- A scripts directory of its own: { ["name.lua"] = source, ["adapters/x.lua"] = source }
local function script_dir(files)
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. helpers.quote(dir .. "/adapters")))
  for name, src in pairs(files) do
    local f = assert(io.open(dir .. "/" .. name, "w"))
    f:write(src)
    f:close()
  end
  return dir
end

local function remove_dir(dir) os.execute("rm -rf " .. helpers.quote(dir)) end

-- The ledger fixture, copied into a scripts directory of a test's own.
local function ledger_source()
  local f = assert(io.open(ADAPT .. "/ledger.lua"))
  local s = f:read("a")
  f:close()
  return s
end

for _, backend in ipairs(backends) do
  local name, fresh = backend[1], backend[2]

  describe("adapters on the " .. name .. " journal", function()
    local uri, path
    before_each(function() uri, path = fresh() end)
    after_each(function() if path then ph.remove_db(path) end end)

    it("stores version 1 and no tags where no adapter is bound", function()
      run(uri, function()
        local a = lore.spawn("ledger", { id = "plain-1" })
        persist(a, { type = "unbound", n = 1 })
        local s = a:ask({ op = "get" }, 5)
        assert.equal(1, s.metas[1].version)
        assert.same({}, s.metas[1].tags)
        for seq, evt, meta in lore.query.events("plain-1") do
          assert.equal(1, seq)
          assert.same({ type = "unbound", n = 1 }, evt)
          assert.equal(1, meta.version)
          assert.same({}, meta.tags)
          assert.equal("unbound", meta.manifest)
        end
      end)
    end)

    it("gives the stored version and tags to apply, live, on recovery and to queries", function()
      run(uri, function()
        lore.adapter("scored", {
          version = 4,
          tags = function(evt) return { "scores", evt.team } end,
        })
        local a = lore.spawn("ledger", { id = "vt-1" })
        persist(a, { type = "scored", team = "red", points = 3 })
        persist(a, { type = "scored", team = "blue", points = 1 })
        local s = a:ask({ op = "get" }, 5)
        assert.equal(4, s.metas[1].version)
        assert.same({ "scores", "red" }, s.metas[1].tags)
        assert.same({ "scores", "blue" }, s.metas[2].tags)
        local seen = {}
        for offset, evt, meta in lore.query.by_tag("red") do
          seen[#seen + 1] = { offset = offset, team = evt.team, version = meta.version, id = meta.id }
        end
        assert.equal(1, #seen)
        assert.equal("red", seen[1].team)
        assert.equal(4, seen[1].version)
        assert.equal("vt-1", seen[1].id)
      end)
      run(uri, function()
        local s = lore.spawn("ledger", { id = "vt-1" }):ask({ op = "get" }, 5)
        assert.equal(2, #s.events)
        assert.equal(4, s.metas[2].version)
        assert.same({ "scores", "blue" }, s.metas[2].tags)
        assert.equal(2, s.metas[2].seq)
        assert.equal("vt-1", s.metas[2].id)
      end)
    end)

    it("stores what to_journal returns, applies the event as made, reads back through from_journal", function()
      run(uri, function()
        lore.adapter("renamed", {
          version = 2,
          to_journal = function(evt) return { type = "renamed", amount = evt.qty } end,
          from_journal = function(evt, meta)
            if meta.version == 2 then return { type = "renamed", qty = evt.amount, via = "adapter" } end
            return evt
          end,
        })
        local a = lore.spawn("ledger", { id = "rn-1" })
        persist(a, { type = "renamed", qty = 7 })
        local s = a:ask({ op = "get" }, 5)
        assert.same({ type = "renamed", qty = 7 }, s.events[1]) -- the domain event, untouched
        for _, evt in lore.query.events("rn-1") do
          assert.same({ type = "renamed", qty = 7, via = "adapter" }, evt)
        end
      end)
      run(uri, function() -- the next run binds it again: recovery reads through it
        lore.adapter("renamed", {
          from_journal = function(evt, meta)
            if meta.version == 2 then return { type = "renamed", qty = evt.amount, via = "adapter" } end
            return evt
          end,
        })
        local s = lore.spawn("ledger", { id = "rn-1" }):ask({ op = "get" }, 5)
        assert.same({ type = "renamed", qty = 7, via = "adapter" }, s.events[1])
      end)
      -- without the adapter, the stored form shows
      run(uri, function()
        local s = lore.spawn("ledger", { id = "rn-1" }):ask({ op = "get" }, 5)
        assert.same({ type = "renamed", amount = 7 }, s.events[1])
        assert.equal(2, s.metas[1].version)
      end)
    end)

    it("from_journal may drop an event (nil) or split it (a list), on recovery and in queries", function()
      run(uri, function()
        local a = lore.spawn("ledger", { id = "ds-1" })
        persist(a, { type = "obsolete", n = 1 })
        persist(a, { type = "moved", from = "a", to = "b" })
        persist(a, { type = "kept", n = 3 })
      end)
      run(uri, function()
        lore.adapter("obsolete", { from_journal = function() return nil end })
        lore.adapter("moved", {
          from_journal = function(evt)
            return { { type = "left", place = evt.from }, { type = "arrived", place = evt.to } }
          end,
        })
        local s = lore.spawn("ledger", { id = "ds-1" }):ask({ op = "get" }, 5)
        assert.same({ { type = "left", place = "a" }, { type = "arrived", place = "b" },
          { type = "kept", n = 3 } }, s.events)
        assert.same({ 2, 2, 3 }, { s.metas[1].seq, s.metas[2].seq, s.metas[3].seq })
        local got = {}
        for seq, evt in lore.query.events("ds-1") do got[#got + 1] = { seq, evt.type } end
        assert.same({ { 2, "left" }, { 2, "arrived" }, { 3, "kept" } }, got)
      end)
    end)
  end)
end

describe("adapters", function()
  it("apply in the order of binding: adapter files by name, then lore.adapter calls", function()
    local uri = ph.memory_journal()
    run(uri, function()
      lore.adapter("chained", {
        to_journal = function(evt)
          evt.trail = evt.trail .. "c"
          return evt
        end,
        from_journal = function(evt)
          evt.read = evt.read .. "C"
          return evt
        end,
      })
      local a = lore.spawn("ledger", { id = "chain-1" })
      persist(a, { type = "chained", n = 2 })
      persist(a, { type = "filed", n = 1 })
      local s = a:ask({ op = "get" }, 5)
      assert.equal(5, s.metas[1].version) -- the highest version of the chain
      assert.same({ "chain", "even" }, s.metas[1].tags) -- tags(evt) of the file, with its require
      assert.equal(3, s.metas[2].version)
      assert.same({ "filed" }, s.metas[2].tags)
      for _, evt in lore.query.events("chain-1", { to = 1 }) do
        assert.equal("abc", evt.trail) -- stored through a, b, c
        assert.equal("ABC", evt.read)  -- read back through A, B, C
      end
    end)
  end)

  it("a to_journal that raises rejects the persist: on_persist_rejected, and the actor goes on", function()
    run(ph.memory_journal(), function()
      lore.adapter("fragile", {
        to_journal = function(evt)
          if evt.bad then error("cannot store this one") end
          return evt
        end,
      })
      local a = lore.spawn("ledger", { id = "rej-1" })
      local r = a:ask({ op = "persist", evt = { type = "fragile", bad = true } }, 5)
      assert.matches("to_journal raised", r.rejected)
      assert.matches("cannot store this one", r.rejected)
      assert.matches("fragile", r.rejected)
      local ok = persist(a, { type = "fragile", bad = false })
      assert.equal(1, ok.seq) -- the rejected event used no seq
      local s = a:ask({ op = "get" }, 5)
      assert.equal(1, #s.events)
      assert.equal(1, #s.rejected)
    end)
  end)

  it("an empty tag, or a tag that is not a string, rejects the persist with a clear error", function()
    run(ph.memory_journal(), function()
      lore.adapter("tagged", { tags = function(evt) return evt.tags end })
      local a = lore.spawn("ledger", { id = "tag-1" })
      local r = a:ask({ op = "persist", evt = { type = "tagged", tags = { "ok", "" } } }, 5)
      assert.matches("tag 2 is empty", r.rejected)
      r = a:ask({ op = "persist", evt = { type = "tagged", tags = { 42 } } }, 5)
      assert.matches("tag 1 is a number", r.rejected)
      r = a:ask({ op = "persist", evt = { type = "tagged", tags = { "a\nb" } } }, 5)
      assert.matches("newline", r.rejected)
      persist(a, { type = "tagged", tags = { "fine" } })
      local s = a:ask({ op = "get" }, 5)
      assert.same({ "fine" }, s.metas[1].tags)
      assert.equal(3, #s.rejected)
    end)
  end)

  it("a from_journal that raises fails the recovery, naming the adapter, the id and the seq", function()
    local uri = ph.memory_journal()
    run(uri, function()
      local a = lore.spawn("ledger", { id = "boom-1" })
      persist(a, { type = "fine" })
      persist(a, { type = "explosive" })
    end)
    run(uri, function()
      lore.adapter("explosive", { name = "the-bomb", from_journal = function() error("kaboom") end })
      local sink = lore.spawn("persist.sink")
      lore.spawn("ledger", { id = "boom-1", observer = sink })
      local got = ph.wait_hook(sink, "recovery_failure")
      assert.truthy(got, "no recovery failure was reported")
      local err = got[1].err
      assert.matches("the%-bomb", err)
      assert.matches("kaboom", err)
      assert.matches("boom%-1", err)
      assert.matches("seq 2", err)
    end)
  end)

  it("the same error stops a query", function()
    local uri = ph.memory_journal()
    run(uri, function()
      lore.adapter("explosive", { from_journal = function() error("kaboom") end })
      persist(lore.spawn("ledger", { id = "boom-q" }), { type = "explosive" })
      local err = helpers.error_of(function()
        for _ in lore.query.events("boom-q") do end
      end)
      assert.matches("kaboom", err)
      assert.matches("boom%-q", err)
      assert.matches("seq 1", err)
    end)
  end)

  it("refuses what cannot run on a worker, and reserved types", function()
    run(ph.memory_journal(), function()
      local captured = 10
      local err = helpers.error_of(lore.adapter, "x", { from_journal = function(e) e.n = captured return e end })
      assert.matches("uses 'captured'", err)
      assert.matches("local of the application", err)
      assert.matches("reserved", helpers.error_of(lore.adapter, "lore.timer", {}))
      assert.matches("reserved", helpers.error_of(lore.adapter, "lore.delivery", {}))
      assert.matches("unknown field 'from'", helpers.error_of(lore.adapter, "x", { from = 1 }))
      assert.matches("must be a Lua function", helpers.error_of(lore.adapter, "x", { to_journal = print }))
      assert.matches("version", helpers.error_of(lore.adapter, "x", { version = 0 }))
      assert.matches("tag 1 is empty", helpers.error_of(lore.adapter, "x", { tags = { "" } }))
    end)
  end)

  it("run in the sandbox, under the instruction budget", function()
    local dir = script_dir {
      ["ledger.lua"] = ledger_source(),
      ["adapters/hostile.lua"] = [[
        return {
          { type = "peek", from_journal = function(evt) evt.io = type(io); evt.os = os.execute ~= nil; return evt end },
          { type = "spin", from_journal = function() while true do end end },
        }
      ]],
    }
    finally(function() remove_dir(dir) end)
    local uri = ph.memory_journal()
    ph.run({ journal = uri, scripts = { dir, helpers.fixtures }, max_instructions = 1000000 }, function()
      local a = lore.spawn("ledger", { id = "sand-1" })
      persist(a, { type = "peek" })
      local b = lore.spawn("ledger", { id = "sand-2" })
      persist(b, { type = "spin" })
    end)
    ph.run({ journal = uri, scripts = { dir, helpers.fixtures }, max_instructions = 1000000 }, function()
      local a = lore.spawn("ledger", { id = "sand-1" })
      local s = a:ask({ op = "get" }, 5)
      assert.equal("nil", s.events[1].io)
      assert.is_false(s.events[1].os)
      -- the runaway adapter fails that recovery with the budget error (as a
      -- runaway apply does: the actor restarts with back-off, then stops)
      local b = lore.spawn("ledger", { id = "sand-2" })
      assert.is_false(pcall(b.ask, b, { op = "get" }, 1))
      -- the worker goes on: another actor recovers there
      assert.equal(1, #a:ask({ op = "get" }, 5).events)
    end)
  end)

  it("an adapter file that does not load refuses persists and recoveries, naming the file", function()
    local dir = script_dir {
      ["ledger.lua"] = ledger_source(),
      ["adapters/broken.lua"] = "return { { type = 'x', from_journal = 42 } }",
    }
    finally(function() remove_dir(dir) end)
    ph.run({ journal = ph.memory_journal(), scripts = { dir } }, function()
      local a = lore.spawn("ledger", { id = "broken-1" })
      local r = a:ask({ op = "persist", evt = { type = "anything" } }, 5)
      assert.matches("broken%.lua", r.rejected)
      assert.matches("from_journal must be a function", r.rejected)
    end)
  end)

  it("reload with hot reload, as behaviours do: lore.reload, and a refused file keeps the old ones", function()
    local dir = script_dir {
      ["ledger.lua"] = ledger_source(),
      ["adapters/versions.lua"] = "return { { type = 'v', version = 1, tags = { 'one' } } }",
    }
    finally(function() remove_dir(dir) end)
    ph.run({ journal = ph.memory_journal(), scripts = { dir } }, function()
      local a = lore.spawn("ledger", { id = "rl-1" })
      persist(a, { type = "v" })
      local f = assert(io.open(dir .. "/adapters/versions.lua", "w"))
      f:write("return { { type = 'v', version = 2, tags = { 'two' } } }")
      f:close()
      assert.is_true(lore.reload("adapters.versions"))
      persist(a, { type = "v" })
      f = assert(io.open(dir .. "/adapters/versions.lua", "w"))
      f:write("return { { type = 'v', version = 'three' } }")
      f:close()
      local ok, err = lore.reload("adapters.versions")
      assert.is_nil(ok)
      assert.matches("version must be a positive integer", err)
      persist(a, { type = "v" })
      local s = a:ask({ op = "get" }, 5)
      assert.same({ 1, 2, 2 }, { s.metas[1].version, s.metas[2].version, s.metas[3].version })
      assert.same({ "one" }, s.metas[1].tags)
      assert.same({ "two" }, s.metas[3].tags)
      -- a new adapter file is picked up the same way
      f = assert(io.open(dir .. "/adapters/more.lua", "w"))
      f:write("return { { type = 'w', version = 9 } }")
      f:close()
      assert.is_true(lore.reload("adapters.more"))
      persist(a, { type = "w" })
      s = a:ask({ op = "get" }, 5)
      assert.equal(9, s.metas[4].version)
    end)
  end)

  it("an edited adapter file is swapped in by the hot_reload watcher", function()
    local dir = script_dir {
      ["ledger.lua"] = ledger_source(),
      ["adapters/watched.lua"] = "return { { type = 'w', version = 1 } }",
    }
    finally(function() remove_dir(dir) end)
    ph.run({ journal = ph.memory_journal(), scripts = { dir }, hot_reload = true }, function()
      local a = lore.spawn("ledger", { id = "hot-1" })
      persist(a, { type = "w" })
      local f = assert(io.open(dir .. "/adapters/watched.lua", "w"))
      f:write("return { { type = 'w', version = 7 } }")
      f:close()
      local version = ph.eventually(function()
        local r = persist(a, { type = "w" })
        local s = a:ask({ op = "get" }, 5)
        return s.metas[r.seq].version == 7 and 7
      end, 10)
      assert.equal(7, version)
    end)
  end)
end)
