-- journal_cli_spec.lua: `lore journal ls|events|stats|snapshots|tail`: output, options, errors, exit status.
local h = require "helpers"
local cs = require "cli_support"

-- Writes two accounts of three events each (and a snapshot of a-acct after its
-- third) into `dir`/`name` through `lore run`.
local function make_journal(dir, name)
  local app = h.app_file(([[
    local lore = require "lore"
    lore.configure { scripts = { %q }, journal = "sqlite:" .. %q, log_level = "off" }
    for _, id in ipairs { "b-acct", "a-acct" } do
      local r = lore.spawn("snap.ledger", { id = id })
      for i = 1, 3 do r:ask({ type = "add", v = i * 10 }, 5) end
      if id == "a-acct" then r:ask({ type = "snap" }, 5) end
      r:stop()
    end
  ]]):format(h.fixtures, dir .. "/" .. name))
  local _, err, code = h.lore("run", app)
  os.remove(app)
  assert(code == 0, err)
end

describe("lore journal", function()
  local dir, db

  setup(function()
    dir = h.tmpdir("journal-cli")
    db = dir .. "/board.db"
    make_journal(dir, "board.db")
  end)

  teardown(function()
    os.execute("rm -rf " .. h.quote(dir))
  end)

  describe("ls", function()
    it("lists ids sorted with their highest seq", function()
      local out, err, code = h.lore("journal", "ls", "--db", "sqlite:" .. db)
      assert.equal(0, code, err)
      assert.equal("", err)
      assert.truthy(out:match("^a%-acct%s+3\nb%-acct%s+3\n$"), out)
    end)

    it("takes a plain path for --db, and prints JSON lines with --json", function()
      local out, err, code = h.lore("journal", "ls", "--json", "--db", db)
      assert.equal(0, code, err)
      assert.same({ { id = "a-acct", highest_seq = 3 }, { id = "b-acct", highest_seq = 3 } },
        cs.json_lines(out))
    end)

    it("reads ./lore.db by default", function()
      local sub = dir .. "/default"
      os.execute("mkdir -p " .. h.quote(sub))
      make_journal(sub, "lore.db")
      local out, err, code = cs.lore_in(sub, "journal", "ls")
      assert.equal(0, code, err)
      assert.truthy(out:match("^a%-acct"), out)
      local _, err2, code2 = cs.lore_in(dir, "journal", "ls")
      assert.equal(1, code2)
      assert.matches("no such journal: lore.db", err2, 1, true)
    end)

    it("refuses operands", function()
      local out, err, code = h.lore("journal", "ls", "--db", db, "extra")
      assert.equal(2, code)
      assert.equal("", out)
      assert.matches("unexpected argument 'extra'", err, 1, true)
    end)
  end)

  describe("events", function()
    it("prints one id's events as text: seq, time, type, version, event", function()
      local out, err, code = h.lore("journal", "events", "--db", db, "a-acct")
      assert.equal(0, code, err)
      local lines = cs.lines(out)
      assert.equal(3, #lines)
      assert.matches("^%s+1  %d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ  added%s+v1%s+{", lines[1])
      assert.matches('"v":10', lines[1], 1, true)
      assert.matches("^%s+3 ", lines[3])
    end)

    it("prints a range as JSON lines with id, seq, offset, ts, version, tags, manifest, event", function()
      -- options before and after the ID, in any order
      local out, err, code = h.lore("journal", "events", "--from", "2", "a-acct", "--db", db,
        "--to", "3", "--json")
      assert.equal(0, code, err)
      local evs = cs.json_lines(out)
      assert.equal(2, #evs)
      for i, e in ipairs(evs) do
        assert.equal("a-acct", e.id)
        assert.equal(i + 1, e.seq)
        assert.equal("integer", math.type(e.offset))
        assert.is_true(e.ts > 1.5e12, "ts in milliseconds")
        assert.equal(1, e.version)
        assert.same({}, e.tags)
        assert.equal("added", e.manifest)
        assert.same({ type = "added", v = (i + 1) * 10 }, e.event)
      end
      assert.is_true(evs[2].offset > evs[1].offset)
    end)

    it("accepts --from 0 and a --to beyond the end", function()
      local out, _, code = h.lore("journal", "events", "--db", db, "b-acct", "--from", "0", "--to", "99")
      assert.equal(0, code)
      assert.equal(3, #cs.lines(out))
    end)

    it("says so on stderr with exit status 1 for an unknown id", function()
      local out, err, code = h.lore("journal", "events", "--db", db, "nobody")
      assert.equal(1, code)
      assert.equal("", out)
      assert.matches("no such id", err, 1, true)
      assert.matches("'nobody'", err, 1, true)
    end)

    local bad = {
      { { "a-acct", "--from", "x" }, "--from needs a whole number >= 0, not 'x'" },
      { { "a-acct", "--from", "-1" }, "not '-1'" },
      { { "a-acct", "--to", "3x" }, "--to needs a whole number >= 0, not '3x'" },
      { { "a-acct", "--from", "" }, "--from needs a whole number" },
      { { "a-acct", "--from", "99999999999999999999" }, "not '99999999999999999999'" },
      { { "a-acct", "--from", "3", "--to", "2" }, "--to 2 is below --from 3" },
      { { "a-acct", "--from" }, "option '--from' needs a value" },
      { { "a-acct", "--frob" }, "unknown option '--frob'" },
      { { "a-acct", "-x" }, "unknown option '-x'" },
      { { "a-acct", "--json=yes" }, "option '--json' takes no value" },
      { {}, "missing the persistence ID" },
      { { "a-acct", "b-acct" }, "unexpected argument 'b-acct'" },
    }
    for _, case in ipairs(bad) do
      it("exits 2 naming the problem: " .. case[2], function()
        local args = { "journal", "events", "--db", db }
        for _, a in ipairs(case[1]) do args[#args + 1] = a end
        local out, err, code = h.lore(table.unpack(args))
        assert.equal(2, code)
        assert.equal("", out)
        assert.matches(case[2], err, 1, true)
        assert.matches("Try 'lore journal events --help'", err, 1, true)
      end)
    end

    it("exits 1 naming the seq when a stored event fails its checksum", function()
      local copy = dir .. "/corrupt.db"
      os.execute(("cp %s %s"):format(h.quote(db), h.quote(copy)))
      cs.sqlite(copy, "UPDATE events SET payload = X'c0' WHERE id = 'b-acct' AND seq = 2;")
      local out, err, code = h.lore("journal", "events", "--db", copy, "b-acct")
      assert.equal(1, code)
      assert.equal(1, #cs.lines(out)) -- the event before it was printed
      assert.matches("after seq 1 fails its checksum", err, 1, true)
      -- stats counts with the database's aggregates: no event is read, so none fails
      local sout, serr, scode = h.lore("journal", "stats", "--db", copy, "--json")
      assert.equal(0, scode, serr)
      assert.equal(6, cs.json_lines(sout)[1].events)
    end)
  end)

  describe("stats", function()
    it("prints counts, size, oldest/newest times and the highest offset", function()
      local out, err, code = h.lore("journal", "stats", "--db", db)
      assert.equal(0, code, err)
      assert.matches("ids%s+2\n", out)
      assert.matches("events%s+6\n", out)
      assert.matches("size%s+%d+ bytes\n", out)
      assert.matches("oldest%s+%d%d%d%d%-%d%d%-%d%dT[%d:.]+Z\n", out)
      assert.matches("newest%s+%d%d%d%d%-", out)
      assert.matches("max offset%s+6\n", out)
    end)

    it("prints one JSON object with --json", function()
      local out, err, code = h.lore("journal", "stats", "--json", "--db", db)
      assert.equal(0, code, err)
      local s = cs.json_lines(out)
      assert.equal(1, #s)
      s = s[1]
      assert.equal(2, s.ids)
      assert.equal(6, s.events)
      assert.equal(6, s.max_offset)
      assert.is_true(s.bytes > 0)
      assert.is_true(s.oldest_ts <= s.newest_ts and s.oldest_ts > 1.5e12)
    end)

    it("shows an empty journal as zeros and nulls", function()
      local empty = dir .. "/empty.db"
      local _, ferr, fcode = h.sh(("%s write %s 1 0"):format(h.quote(cs.fuzz_bin()), h.quote(empty)))
      assert.equal(0, fcode, ferr)
      local out, err, code = h.lore("journal", "stats", "--json", "--db", empty)
      assert.equal(0, code, err)
      local s = cs.json_lines(out)[1]
      assert.equal(0, s.events)
      assert.equal(0, s.ids)
      assert.equal(0, s.max_offset)
      assert.equal(cs.json.null, s.oldest_ts)
      assert.equal(cs.json.null, s.newest_ts)
      out = h.lore("journal", "stats", "--db", empty)
      assert.matches("oldest%s+%-\n", out)
      out, err, code = h.lore("journal", "ls", "--db", empty)
      assert.equal(0, code, err)
      assert.equal("", out)
    end)
  end)

  describe("snapshots", function()
    it("lists one id's snapshots: seq, time and size", function()
      local out, err, code = h.lore("journal", "snapshots", "--db", db, "a-acct")
      assert.equal(0, code, err)
      assert.matches("^%s+3  %d%d%d%d%-[%d%-T:.]+Z  %d+ bytes\n$", out)
      local js = cs.json_lines((h.lore("journal", "snapshots", "a-acct", "--db", db, "--json")))
      assert.equal(1, #js)
      assert.equal(3, js[1].seq)
      assert.is_true(js[1].size > 0)
      assert.is_true(js[1].ts > 1.5e12)
    end)

    it("takes --snapshots as a URI or a plain path", function()
      local out, err, code = h.lore("journal", "snapshots", "a-acct", "--snapshots", db)
      assert.equal(0, code, err)
      assert.equal(1, #cs.lines(out))
      out, err, code = h.lore("journal", "snapshots", "a-acct", "--snapshots", "sqlite:" .. db)
      assert.equal(0, code, err)
      assert.equal(1, #cs.lines(out))
    end)

    it("prints nothing for a known id without snapshots, and exits 1 for an unknown id", function()
      local out, err, code = h.lore("journal", "snapshots", "--db", db, "b-acct")
      assert.equal(0, code, err)
      assert.equal("", out)
      out, err, code = h.lore("journal", "snapshots", "--db", db, "nobody")
      assert.equal(1, code)
      assert.equal("", out)
      assert.matches("no such id", err, 1, true)
    end)

    it("marks a snapshot that fails its checksum", function()
      local copy = dir .. "/snapcorrupt.db"
      os.execute(("cp %s %s"):format(h.quote(db), h.quote(copy)))
      cs.sqlite(copy, "UPDATE snapshots SET data = X'00' WHERE id = 'a-acct';")
      local out, err, code = h.lore("journal", "snapshots", "--db", copy, "a-acct")
      assert.equal(0, code, err)
      assert.matches("corrupt", out, 1, true)
      local js = cs.json_lines((h.lore("journal", "snapshots", "--db", copy, "a-acct", "--json")))
      assert.is_true(js[1].corrupt)
      assert.equal(cs.json.null, js[1].size)
    end)

    it("never creates a store: a missing one is an error", function()
      local missing = dir .. "/nope/snaps.db"
      local _, err, code = h.lore("journal", "snapshots", "a-acct", "--snapshots", missing)
      assert.equal(1, code)
      assert.matches("no such snapshot store", err, 1, true)
      _, err, code = h.lore("journal", "snapshots", "a-acct", "--snapshots", "dir:" .. dir .. "/nodir")
      assert.equal(1, code)
      assert.matches("no such snapshot directory", err, 1, true)
      assert.is_nil(cs.read(dir .. "/nodir"))
      assert.equal(1, select(3, h.lore("journal", "snapshots", "a-acct", "--snapshots", "memory:x")))
    end)

    it("exits 2 without an ID or with an unknown option", function()
      local _, err, code = h.lore("journal", "snapshots", "--db", db)
      assert.equal(2, code)
      assert.matches("missing the persistence ID", err, 1, true)
      _, err, code = h.lore("journal", "snapshots", "--db", db, "a-acct", "--snapshot", "x", "--bogus")
      assert.equal(2, code)
      assert.matches("unknown option '--bogus'", err, 1, true)
    end)
  end)

  describe("on what is not a Lore journal", function()
    it("says so, exits 1 and leaves a text file untouched", function()
      local path = dir .. "/notes.txt"
      cs.write(path, "hello, not a database\n")
      local before = cs.listing(dir)
      for _, cmd in ipairs { "ls", "stats" } do
        local out, err, code = h.lore("journal", cmd, "--db", path)
        assert.equal(1, code)
        assert.equal("", out)
        assert.matches("notes.txt is not a Lore journal", err, 1, true)
      end
      local _, err, code = h.lore("journal", "events", "--db", path, "x")
      assert.equal(1, code)
      assert.matches("not a Lore journal", err, 1, true)
      assert.equal("hello, not a database\n", cs.read(path))
      assert.equal(before, cs.listing(dir))
    end)

    it("says so, exits 1 and leaves another program's SQLite database untouched", function()
      local path = dir .. "/other.db"
      cs.sqlite(path, "CREATE TABLE people(name TEXT); INSERT INTO people VALUES ('ada');")
      local bytes, before = cs.read(path), cs.listing(dir)
      local _, err, code = h.lore("journal", "ls", "--db", path)
      assert.equal(1, code)
      assert.matches("other.db is not a Lore journal", err, 1, true)
      _, err, code = h.lore("journal", "snapshots", "x", "--snapshots", path)
      assert.equal(1, code)
      assert.matches("not a Lore snapshot store", err, 1, true)
      assert.equal(bytes, cs.read(path))
      assert.equal(before, cs.listing(dir))
      assert.equal("ada\n", cs.sqlite(path, "SELECT name FROM people;"))
    end)

    it("names a directory, a missing file and a bad URI", function()
      local _, err, code = h.lore("journal", "ls", "--db", dir)
      assert.equal(1, code)
      assert.matches("is a directory", err, 1, true)
      _, err, code = h.lore("journal", "ls", "--db", "sqlite:/nonexistent/x.db")
      assert.equal(1, code)
      assert.matches("no such journal: /nonexistent/x.db", err, 1, true)
      _, err, code = h.lore("journal", "ls", "--db", "sqlite:" .. db .. "?frob=1")
      assert.equal(2, code)
      assert.matches("--db: not a journal URI", err, 1, true)
      _, err, code = h.lore("journal", "ls", "--db", "memory:")
      assert.equal(1, code)
      assert.matches("memory journal", err, 1, true)
    end)
  end)

  describe("tail", function()
    local function lines_of(p, n)
      return cs.wait_for(function()
        local l = cs.lines(p.out())
        return #l >= n and l
      end, 20)
    end

    it("prints the events another process commits, until SIGINT (exit 0)", function()
      local p = cs.start(dir, "journal", "tail", "--db", "board.db", "--json")
      finally(p.cleanup)
      cs.sleep(0.3) -- it may print nothing: only events committed from now on
      local app = h.app_file(([[
        local lore = require "lore"
        lore.configure { scripts = { %q }, journal = "sqlite:" .. %q, log_level = "off" }
        local r = lore.spawn("snap.ledger", { id = "c-acct" })
        for i = 1, 3 do r:ask({ type = "add", v = i }, 5); lore.sleep(0.1) end
        r:stop()
      ]]):format(h.fixtures, db))
      local _, err, code = h.lore("run", app)
      os.remove(app)
      assert.equal(0, code, err)
      local lines = lines_of(p, 3)
      assert.truthy(lines, "tail printed: " .. p.out() .. p.err())
      local evs = cs.json_lines(table.concat(lines, "\n"))
      assert.equal(3, #evs)
      for i, e in ipairs(evs) do
        assert.equal("c-acct", e.id)
        assert.equal(i, e.seq)
        assert.equal(i, e.event.v)
      end
      assert.is_true(evs[1].offset > 6, "only events committed after the start")
      p.signal("INT")
      assert.equal(0, p.wait(10))
      assert.equal("", p.err())
    end)

    it("follows one tag from an offset, and ends on SIGTERM with exit 0", function()
      local tagged = dir .. "/tagged.db"
      local fuzz = cs.fuzz_bin()
      local function append(id, tag, n, delay)
        local _, err, code = h.sh(("%s append %s %s %s %d %d"):format(h.quote(fuzz), h.quote(tagged),
          h.quote(id), h.quote(tag), n, delay))
        assert.equal(0, code, err)
      end
      append("p", "red", 2, 0)  -- offsets 1, 2
      append("q", "blue", 1, 0) -- offset 3
      local p = cs.start(dir, "journal", "tail", "--db", tagged, "--tag", "red", "--from", "2")
      finally(p.cleanup)
      local first = lines_of(p, 1)
      assert.truthy(first, p.err())
      assert.matches("^%s+2  p%s+2 ", first[1]) -- offset 2 (inclusive), id p, seq 2
      append("q", "blue", 2, 20)
      append("p", "red\nblue", 2, 50)
      local lines = lines_of(p, 3)
      assert.truthy(lines, "tail printed: " .. p.out() .. p.err())
      cs.sleep(0.3)
      lines = cs.lines(p.out())
      assert.equal(3, #lines, p.out())
      assert.matches("^%s+6  p%s+3 .* tick%s+v1%s+%[red,blue%]", lines[2])
      assert.matches("^%s+7  p%s+4 ", lines[3])
      p.signal("TERM")
      assert.equal(0, p.wait(10))
    end)

    it("exits 2 on a bad --from or an operand, 1 on a missing journal", function()
      local _, err, code = h.lore("journal", "tail", "--db", db, "--from", "soon")
      assert.equal(2, code)
      assert.matches("--from needs a whole number >= 0, not 'soon'", err, 1, true)
      _, err, code = h.lore("journal", "tail", "--db", db, "a-acct")
      assert.equal(2, code)
      assert.matches("unexpected argument 'a-acct'", err, 1, true)
      _, err, code = h.lore("journal", "tail", "--db", dir .. "/missing.db")
      assert.equal(1, code)
      assert.matches("no such journal", err, 1, true)
      assert.is_nil(cs.read(dir .. "/missing.db"))
    end)
  end)

  describe("usage", function()
    it("prints help on stdout with exit 0, for journal and each command", function()
      for _, args in ipairs {
        { "journal", "--help" }, { "journal", "-h" }, { "journal", "ls", "--help" },
        { "journal", "events", "--help" }, { "journal", "stats", "-h" },
        { "journal", "snapshots", "--help" }, { "journal", "tail", "--help" },
        { "help", "journal" },
      } do
        local out, err, code = h.lore(table.unpack(args))
        assert.equal(0, code, table.concat(args, " "))
        assert.equal("", err)
        assert.matches("^usage: lore journal", out)
      end
    end)

    it("exits 2 without a command or with an unknown one", function()
      local out, err, code = h.lore("journal")
      assert.equal(2, code)
      assert.equal("", out)
      assert.matches("missing what to do", err, 1, true)
      out, err, code = h.lore("journal", "frobnicate")
      assert.equal(2, code)
      assert.matches("unknown command 'frobnicate'", err, 1, true)
      out, err, code = h.lore("journal", "--db", db, "ls")
      assert.equal(2, code)
      assert.matches("unknown option '--db'", err, 1, true)
    end)
  end)
end)
