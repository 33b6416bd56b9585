-- replay_runs_spec.lua: a long read of one id on sqlite takes the id's runs of consecutive rows
-- straight from the table (core/journal_sqlite.c, "Runs"). Whatever the rows' layout (runs,
-- rows interleaved with another id's, rows out of seq order along the table, another id's row
-- where the id's own should be, a corrupt row), a recovery, a full read and `lore journal
-- events` get the id's own events, each once, in seq order, or stop as corrupt as before.
local lore = require "lore"
local ph = require "persist_helpers"
local h = require "helpers"
local cs = require "cli_support"

local A, B = "run-a", "run-b"
local N = 8000         -- run-a's events: 1..3000 alone, 3001..4000 among run-b's, 4001..8000 alone
local B_N = 1500       -- run-b's events, written between run-a's 3001..4000
local LATE = { 1500, 5000, 6500 } -- seqs in run-a's long runs, for the cases below

local function get(ref) return ref:ask({ op = "get" }, 30) end

-- Appends values from..to to the stream of ref, 500 at a time (persist_all).
local function add_range(ref, from, to)
  local vs = {}
  for v = from, to do
    vs[#vs + 1] = v
    if #vs == 500 or v == to then
      ref:ask({ op = "add_all", vs = vs }, 30)
      vs = {}
    end
  end
end

-- run-a's and run-b's events; each event's value is its seq.
local function write_layout(uri)
  ph.run({ journal = uri }, function()
    local a, b = lore.spawn("persist.acc", { id = A }), lore.spawn("persist.acc", { id = B })
    add_range(a, 1, 3000)
    local bv = 0
    for v = 3001, 4000, 2 do -- 2 of run-a's rows, then 3 of run-b's: too spread for a run
      a:ask({ op = "add_all", vs = { v, v + 1 } }, 30)
      b:ask({ op = "add_all", vs = { bv + 1, bv + 2, bv + 3 } }, 30)
      bv = bv + 3
    end
    add_range(a, 4001, N)
  end)
end

local function copy_db(from, to)
  for _, suffix in ipairs { "", "-wal" } do
    local f = io.open(from .. suffix, "rb")
    if f then
      local data = f:read("a")
      f:close()
      local o = assert(io.open(to .. suffix, "wb"))
      o:write(data)
      o:close()
    end
  end
end

-- run-a's seqs as `lore journal events --json` lists them; fails on any other id's row.
local function cli_seqs(path)
  local out, err, code = h.lore("journal", "events", "--db", "sqlite:" .. path, A, "--json")
  assert.equal(0, code, err)
  local seqs = {}
  for _, e in ipairs(cs.json_lines(out)) do
    assert.equal(A, e.id)
    assert.equal(e.seq, e.event.v)
    seqs[#seqs + 1] = e.seq
  end
  return seqs
end

-- The recovery_failure run-a's recovery reports (one expected).
local function recovery_failure(uri)
  local err
  ph.run({ journal = uri }, function()
    local sink = lore.spawn("persist.sink")
    lore.spawn("persist.acc", { id = A, observer = sink })
    local f = ph.hooks(ph.wait_hook(sink, "recovery_failure"), "recovery_failure")
    assert.equal(1, #f)
    err = f[1].err
  end)
  return err
end

describe("long reads on sqlite, whatever the rows' layout", function()
  local template_uri, template
  local uri, path

  setup(function()
    template_uri, template = ph.sqlite_journal()
    write_layout(template_uri)
  end)
  teardown(function() ph.remove_db(template) end)

  before_each(function()
    uri, path = ph.sqlite_journal()
    copy_db(template, path)
  end)
  after_each(function() ph.remove_db(path) end)

  local function recovers_whole()
    ph.run({ journal = uri }, function()
      local s = get(lore.spawn("persist.acc", { id = A }))
      assert.equal(1, s.rc)
      assert.equal(N, s.seq)
      assert.same(ph.range(1, N), s.log) -- every event once, in seq order
    end)
    ph.run({ journal = uri }, function()
      local metas = lore.spawn("persist.akka", { id = A }):ask({ op = "get" }, 30).metas
      assert.equal(N, #metas)
      for i, m in ipairs(metas) do
        if m.seq ~= i or m.id ~= A then assert.same({ i, A }, { m.seq, m.id }) end -- one failure, not 8,000
      end
      local sb = get(lore.spawn("persist.acc", { id = B }))
      assert.same(ph.range(1, B_N), sb.log)
    end)
    assert.same(ph.range(1, N), cli_seqs(path))
  end

  it("a stream in runs and among another id's rows is read whole and in order", function()
    recovers_whole()
  end)

  it("rows out of seq order along the table are still read in seq order", function()
    for _, seq in ipairs(LATE) do -- swaps the offsets of seq and seq + 1
      ph.sql(path, ([[
        CREATE TEMP TABLE o AS SELECT seq, "offset" AS off FROM events
          WHERE id = '%s' AND seq IN (%d, %d);
        UPDATE events SET "offset" = -"offset" WHERE id = '%s' AND seq IN (%d, %d);
        UPDATE events SET "offset" = (SELECT off FROM o WHERE seq = %d) WHERE id = '%s' AND seq = %d;
        UPDATE events SET "offset" = (SELECT off FROM o WHERE seq = %d) WHERE id = '%s' AND seq = %d;
      ]]):format(A, seq, seq + 1, A, seq, seq + 1, seq + 1, A, seq, seq, A, seq + 1))
    end
    recovers_whole()
  end)

  for _, seq in ipairs(LATE) do
    it("another id's row in the place of seq " .. seq .. " is not read as the id's", function()
      ph.sql(path, ("UPDATE events SET id = 'run-c' WHERE id = '%s' AND seq = %d;"):format(A, seq))
      local want = ph.range(1, N)
      table.remove(want, seq)
      assert.same(want, cli_seqs(path))
      assert.matches(("expected seq %d, found %d"):format(seq, seq + 1), recovery_failure(uri))
    end)

    it("a corrupt row at seq " .. seq .. " in a run stops the read as corrupt", function()
      ph.sql(path, ("UPDATE events SET payload = x'c1' WHERE id = '%s' AND seq = %d;"):format(A, seq))
      local err = recovery_failure(uri)
      assert.matches(("after seq %d %%(expected seq %d%%)"):format(seq - 1, seq), err)
      assert.matches("corrupt", err)
      local _, cli_err, code = h.lore("journal", "events", "--db", "sqlite:" .. path, A, "--json")
      assert.are_not.equal(0, code)
      assert.matches(("after seq %d fails its checksum"):format(seq - 1), cli_err)
    end)
  end
end)
