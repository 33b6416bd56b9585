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
    finally(function()
      for _, pid in pairs(pids) do os.execute("kill -9 " .. pid .. " 2>/dev/null") end
    end)
    for i = 1, 3 do
      wait_until(function() return not alive(pids[i]) end, 60, "writer " .. i)
      pids[i] = nil
    end
    for i = 1, 3 do
      assert.are.same({ 60, 1830 }, { last_ack(read_file(outs[i])) }, read_file(outs[i] .. ".err"))
      local out, err, code = app(journal, "get", "acct-" .. i)
      assert.are.equal(0, code, err)
      assert.are.equal(60, (state_of(out)))
    end
  end)

  it("refuses an id another process holds; after kill -9 of the holder, the other takes it over"
    .. " with every acknowledged event", function()
    local out_a, err_a = tmp .. "/a.out", tmp .. "/a.err"
    local out_b, err_b = tmp .. "/b.out", tmp .. "/b.err"
    local pid_a = app_in_background(out_a, err_a, journal, "forever", "acct")
    local pid_b
    local running = { [pid_a] = true } -- never kill a pid once its process is known gone
    finally(function()
      for pid in pairs(running) do os.execute("kill -9 " .. pid .. " 2>/dev/null") end
    end)
    wait_until(function() return (last_ack(read_file(out_a)) or 0) >= 30 end, 60,
      "the first process's acknowledgements (" .. read_file(err_a) .. ")")

    -- A process that spawns the id while the first lives fails, saying why.
    local out, err, code = app(journal, "get", "acct")
    assert.are_not.equal(0, code)
    assert.is_truthy(err:find("id acct is held by another process", 1, true), err)
    assert.is_nil(out:match("state"))

    -- A second one that keeps trying is refused as long as the first lives...
    pid_b = app_in_background(out_b, err_b, journal, "takeover", "acct", "2")
    running[pid_b] = true
    wait_until(function() return read_file(out_b):find("refused", 1, true) end, 60, "a refusal")
    assert.is_truthy(read_file(err_b):find("id acct is held by another process", 1, true), read_file(err_b))
    assert.is_true(alive(pid_a))
    assert.is_nil(read_file(out_b):match("state"))

    -- ...and takes the id over once the first dies: its lease went with its session.
    os.execute("kill -9 " .. pid_a)
    wait_until(function() return not alive(pid_a) end, 10, "the first process to die")
    running[pid_a] = nil
    local acked, acked_total = last_ack(read_file(out_a))
    wait_until(function() return not alive(pid_b) end, 90, "the second process to finish")
    running[pid_b] = nil
    local n, total = state_of(read_file(out_b))
    assert.is_truthy(n, read_file(out_b) .. read_file(err_b))
    -- Every acknowledged event is there; at most the one in flight at the kill is there too.
    assert.is_true(n >= acked and n <= acked + 1, string.format("recovered %d, acknowledged %d", n, acked))
    assert.are.equal(n * (n + 1) // 2, total)
    assert.is_true(total >= acked_total)
    -- and it writes on from there
    assert.are.equal(n + 2, (last_ack(read_file(out_b))))
    out, err, code = app(journal, "get", "acct")
    assert.are.equal(0, code, err)
    assert.are.equal(n + 2, (state_of(out)))
  end)
end)
