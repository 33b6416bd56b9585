-- postgres_spec.lua: a PostgreSQL journal through `lore run`: persist, recovery and snapshots;
-- several processes on one journal (a single writer per id, kill -9 and takeover).
--
-- Needs LORE_TEST_PG, a libpq conninfo (scripts/test.sh starts a private cluster with
-- scripts/pg-cluster.sh and sets it). Without it every case fails, saying so: the PostgreSQL
-- cases are never skipped. Each case works in a schema of its own, dropped afterwards.
local h = require "helpers"

local APP = h.fixtures .. "/pg/app.lua"
local conninfo = os.getenv("LORE_TEST_PG")

local function need_postgres()
  assert(conninfo and conninfo ~= "",
    "LORE_TEST_PG is not set: run scripts/test.sh, or `eval \"$(scripts/pg-cluster.sh start)\"` first")
end

-- Without the sanitizer pass's LD_PRELOAD (libasan): psql under it hangs at exit (p11-kit).
local function psql(sql)
  local out, err, code = h.sh("env -u LD_PRELOAD psql " .. h.quote(conninfo) .. " -XAtqc " .. h.quote(sql))
  assert(code == 0, "psql failed: " .. err)
  return out
end

local counter = 0
local function new_schema()
  counter = counter + 1
  return string.format("spec_%d_%d_%d", os.time() % 100000, math.random(1, 1e6), counter)
end

-- `lore run app.lua JOURNAL ARGS...`: stdout, stderr, exit code.
local function app(journal, ...)
  return h.lore("run", APP, journal, ...)
end

-- The same in the background, output to files; returns its pid.
local function app_in_background(out, err, journal, ...)
  local parts = { h.quote(h.lore_bin()), "run", h.quote(APP), h.quote(journal) }
  for i = 1, select("#", ...) do parts[#parts + 1] = h.quote((select(i, ...))) end
  local cmd = table.concat(parts, " ") .. " >" .. h.quote(out) .. " 2>" .. h.quote(err) .. " & echo $!"
  local p = assert(io.popen(cmd, "r"))
  local pid = p:read("l")
  p:close()
  return assert(math.tointeger(tonumber(pid)), "no pid")
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end

local function alive(pid)
  local _, _, code = h.sh("kill -0 " .. pid)
  return code == 0
end

-- Waits (wall clock, without a runtime: the spec itself runs no lore) until check() is true.
local function wait_until(check, timeout, what)
  local deadline = h.now() + timeout
  while not check() do
    assert(h.now() < deadline, "timed out waiting for " .. what)
    os.execute("sleep 0.05")
  end
end

-- The last "ack N TOTAL" line of a writer's output.
local function last_ack(text)
  local n, total
  for a, t in text:gmatch("ack (%d+) (%d+)\n") do n, total = tonumber(a), tonumber(t) end
  return n, total
end

local function state_of(out)
  local n, total, replayed = out:match("state n=(%d+) total=(%d+) replayed=(%d+)")
  return tonumber(n), tonumber(total), tonumber(replayed)
end

describe("a postgres journal", function()
  local schema, journal, tmp

  before_each(function()
    need_postgres()
    schema = new_schema()
    journal = "postgres:" .. conninfo .. "?schema=" .. schema
    tmp = h.tmpdir("pg")
  end)

  after_each(function()
    if tmp then os.execute("rm -rf " .. h.quote(tmp)) end
    if conninfo and conninfo ~= "" and schema then psql("DROP SCHEMA IF EXISTS " .. schema .. " CASCADE") end
  end)

  it("persists, recovers from its snapshots and events, across processes", function()
    local out, err, code = app(journal, "write", "acct", "25")
    assert.are.equal(0, code, err)
    assert.are.same({ 25, 325 }, { last_ack(out) })
    out, err, code = app(journal, "get", "acct")
    assert.are.equal(0, code, err)
    local n, total, replayed = state_of(out)
    assert.are.equal(25, n)
    assert.are.equal(325, total)
    -- snapshots every 10 events: recovery starts from the one at seq 20
    assert.are.equal(5, replayed)
    assert.are.equal("2", psql("SELECT count(*) FROM " .. schema .. ".lore_snapshots WHERE id = 'acct'"):match("%d+"))
    assert.are.equal("25", psql("SELECT max(seq) FROM " .. schema .. ".lore_events WHERE id = 'acct'"):match("%d+"))
    -- and it goes on from there
    out, err, code = app(journal, "write", "acct", "3")
    assert.are.equal(0, code, err)
    assert.are.same({ 28, 331 }, { last_ack(out) })
  end)

  it("lets processes write different ids of one journal at once", function()
    local pids, outs = {}, {}
    for i = 1, 3 do
      outs[i] = tmp .. "/w" .. i
      pids[i] = app_in_background(outs[i], outs[i] .. ".err", journal, "write", "acct-" .. i, "60")
    end
    for i = 1, 3 do wait_until(function() return not alive(pids[i]) end, 60, "writer " .. i) end
    for i = 1, 3 do
      assert.are.same({ 60, 1830 }, { last_ack(read_file(outs[i])) }, read_file(outs[i] .. ".err"))
      local out, err, code = app(journal, "get", "acct-" .. i)
      assert.are.equal(0, code, err)
      assert.are.equal(60, (state_of(out)))
    end
  end)

  it("refuses an id another process holds, then hands it over after kill -9 with every acknowledged event", function()
    local out_a, err_a = tmp .. "/a.out", tmp .. "/a.err"
    local pid = app_in_background(out_a, err_a, journal, "forever", "acct")
    local killed = false
    finally(function() if not killed then os.execute("kill -9 " .. pid .. " 2>/dev/null") end end)
    wait_until(function() return (last_ack(read_file(out_a)) or 0) >= 30 end, 60,
      "the first process's acknowledgements (" .. read_file(err_a) .. ")")

    -- While the first process lives, a second one spawning the same id fails, saying why.
    local out, err, code = app(journal, "get", "acct")
    assert.are_not.equal(0, code)
    assert.is_truthy(err:find("id acct is held by another process", 1, true), err)
    assert.is_nil(out:match("state"))
    assert.is_true(alive(pid))

    os.execute("kill -9 " .. pid)
    killed = true
    wait_until(function() return not alive(pid) end, 10, "the first process to die")
    local acked, acked_total = last_ack(read_file(out_a))

    -- The lease went with the dead process's session: the next process takes the id over
    -- (PostgreSQL may take a moment to notice the session is gone).
    local n, total
    wait_until(function()
      out, err, code = app(journal, "get", "acct")
      if code == 0 then
        n, total = state_of(out)
        return true
      end
      assert.is_truthy(err:find("held by another process", 1, true), err)
      return false
    end, 30, "the takeover")
    -- Every acknowledged event is there; at most the one in flight at the kill is there too.
    assert.is_true(n >= acked and n <= acked + 1, string.format("recovered %d, acknowledged %d", n, acked))
    assert.are.equal(n * (n + 1) // 2, total)
    assert.is_true(total >= acked_total)
    out, err, code = app(journal, "write", "acct", "2")
    assert.are.equal(0, code, err)
    assert.are.equal(n + 2, (last_ack(out)))
  end)
end)
