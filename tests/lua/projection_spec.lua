-- projection_spec.lua: lore.projection: SQL and offset in one transaction per batch, resuming
-- after a restart (and after kill -9) without missing or repeating an event, live, failures,
-- resets, and the memory journal.
local lore = require "lore"
local helpers = require "helpers"
local ph = require "persist_helpers"

local SCRIPTS = { helpers.fixtures .. "/adapt", helpers.fixtures }

local function run(uri, fn, extra)
  local cfg = { journal = uri, scripts = SCRIPTS, synchronous = "normal" }
  for k, v in pairs(extra or {}) do cfg[k] = v end
  return ph.run(cfg, fn)
end

local function tag_items()
  lore.adapter("item", { tags = function(evt) return evt.tags end })
  lore.adapter("tick", { tags = function(evt) return evt.tags end })
end

-- Writes n events {type = "item", n = base + i} tagged `tag` for id.
local function write(id, n, base, tag)
  local list = {}
  for i = 1, n do list[i] = { type = "item", n = base + i, tags = { tag } } end
  local ok, ref = pcall(lore.spawn, "ledger", { id = id })
  if not ok then ref = lore.ref(id) end -- live already in this run
  local r = ref:ask({ op = "persist_all", evts = list }, 30)
  assert(r.ok, tostring(r.rejected))
end

-- A projection counting events per id into its own table.
local function counter(name, tag, extra)
  local spec = {
    tag = tag,
    init = function(ctx)
      ctx:exec("CREATE TABLE IF NOT EXISTS " .. name .. "(id TEXT PRIMARY KEY, n INTEGER, total INTEGER)")
    end,
    handle = function(evt, meta, ctx)
      ctx:exec("INSERT INTO " .. name .. "(id, n, total) VALUES (?1, 1, ?2)"
        .. " ON CONFLICT(id) DO UPDATE SET n = n + 1, total = total + ?2", meta.id, evt.n)
    end,
    reset = function(ctx) ctx:exec("DELETE FROM " .. name) end,
  }
  for k, v in pairs(extra or {}) do spec[k] = v end
  return lore.projection(name, spec)
end

local function counts(p, tbl)
  local out = {}
  for _, row in ipairs(p:query("SELECT id, n, total FROM " .. tbl .. " ORDER BY id")) do
    out[row.id] = { row.n, row.total }
  end
  return out
end

describe("projections", function()
  local uri, path
  before_each(function() uri, path = ph.sqlite_journal() end)
  after_each(function() ph.remove_db(path) end)

  it("handle every event of the tag once, writing through ctx:exec, read back with p:query", function()
    run(uri, function()
      tag_items()
      write("pa", 5, 0, "t")
      write("pb", 3, 10, "t")
      write("pc", 4, 100, "other")
      local p = counter("basic", "t")
      local offset = p:wait(10)
      assert.is_true(offset > 0)
      assert.same({ pa = { 5, 15 }, pb = { 3, 36 } }, counts(p, "basic"))
      local st = p:status()
      assert.equal("running", st.state)
      assert.equal(offset, st.offset)
      assert.equal("t", st.tag)
      -- live: events written now are handled too
      write("pc", 2, 200, "t")
      p:wait(10)
      assert.same({ pa = { 5, 15 }, pb = { 3, 36 }, pc = { 2, 403 } }, counts(p, "basic"))
      assert.equal(1, p:query("SELECT count(*) AS c FROM projection_offsets WHERE name = ?1", "basic")[1].c)
    end)
  end)

  it("resume after a restart from their stored offset: no event handled twice or missed", function()
    local calls = 0
    run(uri, function()
      tag_items()
      write("ra", 10, 0, "r")
      local p = counter("resumed", "r", {
        handle = function(evt, meta, ctx)
          calls = calls + 1
          ctx:exec("INSERT INTO resumed(id, n, total) VALUES (?1, 1, ?2)"
            .. " ON CONFLICT(id) DO UPDATE SET n = n + 1, total = total + ?2", meta.id, evt.n)
        end,
      })
      p:wait(10)
    end)
    assert.equal(10, calls)
    calls = 0
    run(uri, function()
      tag_items()
      write("ra", 5, 10, "r")
      local p = counter("resumed", "r", {
        handle = function(evt, meta, ctx)
          calls = calls + 1
          ctx:exec("UPDATE resumed SET n = n + 1, total = total + ?2 WHERE id = ?1", meta.id, evt.n)
        end,
      })
      p:wait(10)
      assert.same({ ra = { 15, 120 } }, counts(p, "resumed"))
    end)
    assert.equal(5, calls)
  end)

  it("commit a batch of events per transaction: a raising handler stops it, its batch not committed", function()
    run(uri, function()
      tag_items()
      write("ba", 120, 0, "b")
      local p = counter("batched", "b", {
        batch = 50,
        handle = function(evt, meta, ctx)
          if evt.n == 75 then error("no 75 here") end
          ctx:exec("INSERT INTO batched(id, n, total) VALUES (?1, 1, ?2)"
            .. " ON CONFLICT(id) DO UPDATE SET n = n + 1, total = total + ?2", meta.id, evt.n)
        end,
      })
      local err = helpers.error_of(p.wait, p, 10)
      assert.matches("stopped", err)
      assert.matches("handle raised for the event at offset %d+ %(id ba seq 75%)", err)
      assert.matches("no 75 here", err)
      local st = p:status()
      assert.equal("failed", st.state)
      assert.matches("no 75 here", st.error)
      -- events 1..50 committed; 51..74 were handled, in the batch that failed
      assert.same({ ba = { 50, 1275 } }, counts(p, "batched"))
      local stored = p:query("SELECT \"offset\" AS o FROM projection_offsets WHERE name = 'batched'")[1].o
      assert.equal(st.offset, stored)
      local fiftieth
      for offset, evt in lore.query.by_tag("b") do
        if evt.n == 50 then fiftieth = offset end
      end
      assert.equal(fiftieth, stored)
    end)
    -- the next run resumes at event 51
    run(uri, function()
      local p = counter("batched", "b", { batch = 50 })
      p:wait(10)
      assert.same({ ba = { 120, 7260 } }, counts(p, "batched"))
    end)
  end)

  it("an SQL error stops it, naming the event, and leaves its offset", function()
    run(uri, function()
      tag_items()
      write("sq", 3, 0, "s")
      local p = lore.projection("bad-sql", {
        tag = "s",
        handle = function(evt, _, ctx)
          ctx:exec(evt.n == 2 and "INSERT INTO no_such_table VALUES (1)" or "SELECT 1")
        end,
      })
      local err = helpers.error_of(p.wait, p, 10)
      assert.matches("SQL failed for the event at offset %d+ %(id sq seq 2%)", err)
      assert.matches("no_such_table", err)
      assert.equal("failed", p:status().state)
    end)
  end)

  it("rebuild from scratch: p:reset and lore.projection_reset clear their tables and start over", function()
    run(uri, function()
      tag_items()
      write("rs", 4, 0, "x")
      local seen = 0
      local p = counter("rebuilt", "x", {
        handle = function(evt, meta, ctx)
          seen = seen + 1
          ctx:exec("INSERT INTO rebuilt(id, n, total) VALUES (?1, 1, ?2)"
            .. " ON CONFLICT(id) DO UPDATE SET n = n + 1, total = total + ?2", meta.id, evt.n)
        end,
      })
      p:wait(10)
      assert.equal(4, seen)
      assert.is_true(lore.projection_reset("rebuilt"))
      p:wait(10)
      assert.equal(8, seen)
      assert.same({ rs = { 4, 10 } }, counts(p, "rebuilt"))
      assert.is_true(p:reset())
      p:wait(10)
      assert.same({ rs = { 4, 10 } }, counts(p, "rebuilt"))
      assert.equal(12, seen)
    end)
    -- not running: only its offset goes back to 0; `rebuild = true` clears at start
    run(uri, function()
      assert.is_true(lore.projection_reset("rebuilt"))
      local p = counter("rebuilt", "x", { rebuild = true })
      p:wait(10)
      assert.same({ rs = { 4, 10 } }, counts(p, "rebuilt"))
    end)
  end)

  it("splits from from_journal commit together, at one offset", function()
    run(uri, function()
      lore.adapter("pair", {
        tags = { "pairs" },
        from_journal = function(evt) return { { type = "half", n = evt.n }, { type = "half", n = evt.n } } end,
      })
      local a = lore.spawn("ledger", { id = "sp" })
      for i = 1, 3 do a:ask({ op = "persist", evt = { type = "pair", n = i } }, 5) end
      local handled = {}
      local p = lore.projection("halves", {
        tag = "pairs", batch = 1,
        handle = function(evt, meta) handled[#handled + 1] = { evt.n, meta.offset } end,
      })
      p:wait(10)
      assert.equal(6, #handled)
      for i = 1, 6, 2 do
        assert.equal(handled[i][2], handled[i + 1][2])
        assert.equal(handled[i][1], handled[i + 1][1])
      end
    end)
  end)

  it("refuse a second projection of the same name, bad specs, and SQL outside a handler", function()
    run(uri, function()
      local p = lore.projection("once", { tag = "o", handle = function() end })
      assert.matches("runs already", helpers.error_of(lore.projection, "once", { tag = "o", handle = print }))
      assert.matches("unknown field 'tags'", helpers.error_of(lore.projection, "x", { tags = "o" }))
      assert.matches("handle must be a function", helpers.error_of(lore.projection, "x", { tag = "o" }))
      assert.matches("batch", helpers.error_of(lore.projection, "x", { tag = "o", handle = print, batch = 0 }))
      p:stop()
      assert.equal("stopped", p:status().state)
      local q = lore.projection("once", { tag = "o", handle = function() end }) -- the name is free again
      assert.equal("o", q:status().tag)
    end)
  end)
end)

describe("projections on the memory journal", function()
  it("keep their offset per run, and ctx:exec says SQL needs sqlite", function()
    local uri = ph.memory_journal()
    local seen = {}
    run(uri, function()
      tag_items()
      write("mm", 3, 0, "m")
      local p = lore.projection("mem", { tag = "m", handle = function(evt) seen[#seen + 1] = evt.n end })
      p:wait(10)
      write("mm", 2, 3, "m")
      p:wait(10)
      local failing = lore.projection("mem-sql", {
        tag = "m", handle = function(_, _, ctx) ctx:exec("SELECT 1") end,
      })
      local err = helpers.error_of(failing.wait, failing, 10)
      assert.matches("needs sqlite", err)
    end)
    assert.same({ 1, 2, 3, 4, 5 }, seen)
    run(uri, function() -- the same named store: the offset was kept
      tag_items()
      write("mm", 1, 5, "m")
      local p = lore.projection("mem", { tag = "m", handle = function(evt) seen[#seen + 1] = evt.n end })
      p:wait(10)
    end)
    assert.same({ 1, 2, 3, 4, 5, 6 }, seen)
  end)
end)

describe("a projection killed with SIGKILL in the middle of a run", function()
  it("counts each event exactly once after it runs again", function()
    local uri, path = ph.sqlite_journal()
    finally(function() ph.remove_db(path) end)
    local N, IDS = 3000, 4
    run(uri, function()
      lore.adapter("item", { tags = function(evt) return evt.tags end })
      for i = 1, IDS do write("k-" .. i, N / IDS, 0, "k") end
    end)
    local app = helpers.fixtures .. "/proj/count_app.lua"
    local q = helpers.quote
    -- Start it, wait until it has committed some batches, kill it, note how far it got.
    local script = string.format([[
      %s run %s %s 1 > /dev/null 2>&1 &
      pid=$!
      for i in $(seq 1 1500); do
        o=$(sqlite3 %s "SELECT \"offset\" FROM projection_offsets WHERE name = 'k-count'" 2>/dev/null)
        [ -n "$o" ] && [ "$o" -ge 100 ] && break
        sleep 0.02
      done
      kill -9 $pid
      wait $pid
      echo "status=$?"
      sqlite3 %s "SELECT \"offset\" FROM projection_offsets WHERE name = 'k-count'"
    ]], q(helpers.lore_bin()), q(app), q(path), q(path), q(path))
    local out = helpers.sh("bash -c " .. q(script))
    assert.matches("status=137", out) -- it was killed, not finished
    local killed_at = tonumber(out:match("\n(%d+)%s*$"))
    if os.getenv("PSPEC_KILL") then print("killed at offset " .. tostring(killed_at) .. " of " .. N) end
    assert.is_true(killed_at and killed_at >= 100, "too little was committed before the kill: " .. out)
    assert.is_true(killed_at < N, "it finished before the kill: " .. out)
    -- Each row of `seen` was written in the transaction of its event's offset.
    local rows = tonumber(ph.sql(path, "SELECT count(*) FROM seen;"):match("%d+"))
    assert.equal(killed_at, rows)
    -- Run it again to the end.
    local stdout, stderr, code = helpers.lore("run", app, path, "7")
    assert.equal(0, code, stderr)
    assert.matches("caught up at offset " .. N, stdout)
    assert.equal(tostring(N), ph.sql(path, "SELECT count(*) FROM seen;"):match("%d+"))
    assert.equal(tostring(N), ph.sql(path, "SELECT count(DISTINCT off) FROM seen;"):match("%d+"))
    assert.equal(tostring(N), ph.sql(path, "SELECT sum(n) FROM counts;"):match("%d+"))
    for line in ph.sql(path, "SELECT n FROM counts;"):gmatch("%d+") do
      assert.equal(N / IDS, tonumber(line))
    end
  end)
end)
