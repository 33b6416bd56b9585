-- snapshot_spec.lua: snapshots through the Lua API: recovery equivalence, retention, fallback.
local lore = require "lore"
local helpers = require "helpers"
local ph = require "persist_helpers"

local function tmpdb()
  local _, path = ph.sqlite_journal()
  return path
end
local sql, cleanup = ph.sql, ph.remove_db

-- Runs fn(ref) against a fresh runtime on `db` with behaviour `beh` for id.
local function with_actor(db, beh, id, fn)
  return helpers.run(function()
    local ref = lore.spawn(beh, { id = id })
    return fn(ref)
  end, { journal = "sqlite:" .. db, snapshots = "sqlite:" .. db, scripts = { helpers.fixtures } })
end

local function get(ref) return ref:ask({ type = "get" }, 5) end

describe("snapshots", function()
  it("recovering from a snapshot plus later events equals a full replay (random streams)", function()
    for seed = 1, 12 do
      math.randomseed(seed)
      local db = tmpdb()
      local n = math.random(1, 60)
      local snapshots = 0
      with_actor(db, "snap.ledger", "l", function(ref)
        for _ = 1, n do
          assert.is_number(ref:ask({ type = "add", v = math.random(-1000, 1000) }, 5))
          if math.random() < 0.15 then
            ref:ask({ type = "snap" }, 5)
            snapshots = snapshots + 1
          end
        end
      end)
      local from_snapshot = with_actor(db, "snap.ledger", "l", get)
      local full = with_actor(db, "snap.ledger_nosnap", "l", get)
      assert.same(full.log, from_snapshot.log)
      assert.equal(full.total, from_snapshot.total)
      assert.equal(n, full.n)
      assert.equal(n, from_snapshot.seq)
      assert.equal(n, full.seq)
      assert.is_false(full.restored)
      assert.equal(snapshots > 0, from_snapshot.restored)
      cleanup(db)
    end
  end)

  it("snapshot_every takes a snapshot every N events", function()
    local db = tmpdb()
    with_actor(db, "snap.ledger_every", "e", function(ref)
      for i = 1, 22 do ref:ask({ type = "add", v = i }, 5) end
    end)
    assert.equal("7\n14\n21\n", sql(db, "SELECT seq FROM snapshots WHERE id='e' ORDER BY seq"))
    local state = with_actor(db, "snap.ledger_every", "e", get)
    assert.is_true(state.restored)
    assert.equal(22, state.n)
    assert.equal(253, state.total)
    cleanup(db)
  end)

  it("keep_snapshots keeps the newest K and deletes no event", function()
    local db = tmpdb()
    with_actor(db, "snap.ledger_keep", "k", function(ref)
      for i = 1, 23 do ref:ask({ type = "add", v = i }, 5) end
    end)
    assert.equal("15\n20\n", sql(db, "SELECT seq FROM snapshots WHERE id='k' ORDER BY seq"))
    assert.equal("23|1|23\n", sql(db, "SELECT count(*), min(seq), max(seq) FROM events WHERE id='k'"))
    cleanup(db)
  end)

  it("delete_events_on_snapshot deletes the events the oldest kept snapshot covers", function()
    local db = tmpdb()
    with_actor(db, "snap.ledger_trim", "t", function(ref)
      for i = 1, 23 do ref:ask({ type = "add", v = i }, 5) end
      -- the snapshot at 20 and the delete after it are asynchronous: wait for
      -- them while the actor lives (a stopping actor starts no new delete)
      assert.truthy(helpers.eventually(function()
        return sql(db, "SELECT min(seq) FROM events WHERE id='t'") == "16\n"
      end, 10))
    end)
    assert.equal("15\n20\n", sql(db, "SELECT seq FROM snapshots WHERE id='t' ORDER BY seq"))
    assert.equal("8|16|23\n", sql(db, "SELECT count(*), min(seq), max(seq) FROM events WHERE id='t'"))
    local state = with_actor(db, "snap.ledger_trim", "t", get)
    assert.equal(276, state.total)
    assert.equal(23, state.seq)
    cleanup(db)
  end)

  it("falls back to an older snapshot when the latest is corrupt", function()
    local db = tmpdb()
    with_actor(db, "snap.ledger_keep", "f", function(ref)
      for i = 1, 12 do ref:ask({ type = "add", v = i }, 5) end
    end)
    sql(db, "UPDATE snapshots SET data = x'c1c1' WHERE id='f' AND seq=10")
    local state = with_actor(db, "snap.ledger_keep", "f", get)
    assert.is_true(state.restored) -- from the one at 5
    assert.equal(78, state.total)
    assert.equal(12, state.seq)
    cleanup(db)
  end)

  it("fails recovery (not a wrong state) if the one snapshot is damaged and its events deleted", function()
    local db = tmpdb()
    with_actor(db, "snap.ledger_trim1", "d", function(ref)
      for i = 1, 12 do ref:ask({ type = "add", v = i }, 5) end
      assert.truthy(helpers.eventually(function()
        return sql(db, "SELECT min(seq) FROM events WHERE id='d'") == "11\n"
      end, 10))
    end)
    sql(db, "UPDATE snapshots SET data = x'c1c1' WHERE id='d'")
    local err = with_actor(db, "snap.ledger_trim1", "d", function(ref)
      return helpers.error_of(ref.ask, ref, { type = "get" }, 1)
    end)
    assert.truthy(err:find("dead letter") or err:find("timeout"), err)
    cleanup(db)
  end)

  it("fails recovery when a snapshot is required and none matches", function()
    local db = tmpdb()
    local err = with_actor(db, "snap.ledger_required", "r", function(ref)
      return helpers.error_of(ref.ask, ref, { type = "get" }, 1)
    end)
    assert.truthy(err:find("dead letter") or err:find("timeout"))
    cleanup(db)
  end)

  it("delete_snapshots removes what the criteria match", function()
    local db = tmpdb()
    with_actor(db, "snap.ledger", "d", function(ref)
      for i = 1, 6 do
        ref:ask({ type = "add", v = i }, 5)
        ref:ask({ type = "snap" }, 5)
      end
      ref:ask({ type = "delete_snapshots", criteria = { min_seq = 2, max_seq = 4 } }, 5)
      ref:ask({ type = "get" }, 5)
    end)
    assert.equal("1\n5\n6\n", sql(db, "SELECT seq FROM snapshots WHERE id='d' ORDER BY seq"))
    cleanup(db)
  end)

  it("reports each save to on_snapshot, and a snapshot that cannot be encoded as a failure", function()
    local db = tmpdb()
    local reports = helpers.run(function()
      local rec = lore.spawn("recorder")
      local r = lore.spawn("snap.reporter", { id = "rep", watcher = rec })
      r:ask({ type = "add" }, 5)
      r:ask({ type = "add" }, 5)
      r:ask({ type = "snap" }, 5)
      r:ask({ type = "snap", poison = true }, 5)
      assert.truthy(helpers.eventually(function() return rec:ask({ op = "count" }, 5) == 2 end))
      return rec:ask({ op = "get" }, 5)
    end, { journal = "sqlite:" .. db, snapshots = "sqlite:" .. db })
    table.sort(reports)
    assert.equal("failed: cannot encode a function at snapshot.bad", reports[1])
    assert.equal("ok seq=2 ts=integer", reports[2])
    cleanup(db)
  end)

  it("recovers from a dir: snapshot store", function()
    local db = tmpdb()
    local dir = db .. ".snaps"
    assert.truthy(os.execute("mkdir -p " .. helpers.quote(dir)))
    local cfg = { journal = "sqlite:" .. db, snapshots = "dir:" .. dir }
    helpers.run(function()
      local r = lore.spawn("snap.reporter", { id = "d1", watcher = lore.spawn("recorder") })
      for _ = 1, 5 do r:ask({ type = "add" }, 5) end
      r:ask({ type = "snap" }, 5)
      r:ask({ type = "add" }, 5)
    end, cfg)
    local state = helpers.run(function()
      local r = lore.spawn("snap.reporter", { id = "d1", watcher = lore.spawn("recorder") })
      return r:ask({ type = "get" }, 5)
    end, cfg)
    assert.is_true(state.restored)
    assert.equal(6, state.n)
    assert.equal(6, state.seq)
    os.execute("rm -rf " .. helpers.quote(dir))
    cleanup(db)
  end)
end)
