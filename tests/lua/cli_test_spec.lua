-- cli_test_spec.lua: `lore test`: busted specs with the lore module, one fresh runtime per spec file.
local h = require "helpers"
local cs = require "cli_support"

-- The fixture projects' specs are named *_check.lua, so that this suite's own
-- busted run leaves them alone: they run here with --pattern _check.
local proj = h.fixtures .. "/cli/testproj"

describe("lore test", function()
  it("runs examples/hello's specs from that directory", function()
    local out, err, code = cs.lore_in(h.root .. "/examples/hello", "test")
    assert.equal(0, code, out .. err)
    assert.matches("3 successes / 0 failures / 0 errors / 0 pending", out, 1, true)
  end)

  it("runs each spec file in a fresh runtime with the default settings", function()
    local dir = h.tmpdir("lore-test")
    finally(function() os.execute("rm -rf " .. h.quote(dir)) end)
    local db = dir .. "/c.db"
    -- a_spec and b_spec both spawn persistent id t-1 and expect it empty; c_spec
    -- configures a journal of its own, which d_spec must not inherit.
    local out, err, code = h.sh(("cd %s && LORE_TEST_DB=%s %s test -p _check"):format(h.quote(proj), h.quote(db),
      h.quote(h.lore_bin())))
    assert.equal(0, code, out .. err)
    assert.matches("6 successes / 0 failures / 0 errors / 0 pending", out, 1, true)
    local ids = h.lore("journal", "ls", "--db", db)
    assert.matches("^c%-1%s+1\n$", ids)
  end)

  it("runs the files and directories it is given, with --filter and --output", function()
    local out, err, code = cs.lore_in(proj, "test", "spec/b_check.lua")
    assert.equal(0, code, out .. err)
    assert.matches("2 successes / 0 failures", out, 1, true)
    out, err, code = cs.lore_in(proj, "test", "--filter", "restart", "-o", "TAP", "--pattern", "_check", "spec")
    assert.equal(0, code, out .. err)
    assert.matches("ok 1 %- a fresh runtime %(a%) recovers after testing.restart", out)
    assert.matches("\n1%.%.1\n", out)
  end)

  it("finds behaviours given with --scripts from another directory", function()
    local out, err, code = h.sh(("cd / && %s test -p _check --scripts %s %s"):format(h.quote(h.lore_bin()),
      h.quote(proj .. "/behaviours"), h.quote(proj .. "/spec/a_check.lua")))
    assert.equal(0, code, out .. err)
    assert.matches("2 successes / 0 failures", out, 1, true)
  end)

  it("exits 1 when a test fails or raises, naming them (tests/ is the second default)", function()
    local out, _, code = cs.lore_in(h.fixtures .. "/cli/failing", "test", "--pattern=_check")
    assert.equal(1, code)
    assert.matches("2 successes / 1 failure / 2 errors", out, 1, true)
    assert.matches("mixed fails on purpose", out, 1, true)
    assert.matches("no_such_behaviour_here", out, 1, true)
    assert.matches("lore.shutdown() is not for specs", out, 1, true)
  end)

  it("exits 1 when no spec file is found", function()
    local _, err, code = cs.lore_in(h.fixtures .. "/cli/empty", "test")
    assert.equal(1, code)
    assert.matches("lore test: no spec files found in spec", err, 1, true)
  end)

  it("exits 2 on bad usage, naming the problem", function()
    local out, err, code = cs.lore_in(h.fixtures, "test")
    assert.equal(2, code)
    assert.equal("", out)
    assert.matches("no spec/ or tests/ directory here", err, 1, true)
    out, err, code = cs.lore_in(proj, "test", "spec/nope_spec.lua")
    assert.equal(2, code)
    assert.matches("no such file or directory: 'spec/nope_spec.lua'", err, 1, true)
    out, err, code = cs.lore_in(proj, "test", "--shuffle")
    assert.equal(2, code)
    assert.matches("unknown option '--shuffle'", err, 1, true)
    out, err, code = cs.lore_in(proj, "test", "--scripts", "no/such/dir")
    assert.equal(2, code)
    assert.matches("--scripts: no such directory: 'no/such/dir'", err, 1, true)
    out, err, code = cs.lore_in(proj, "test", "--output")
    assert.equal("", out)
    assert.equal(2, code)
    assert.matches("option '--output' needs a value", err, 1, true)
  end)

  it("prints its help on stdout with exit 0", function()
    local out, err, code = h.lore("test", "--help")
    assert.equal(0, code)
    assert.equal("", err)
    assert.matches("^usage: lore test", out)
    assert.matches("fresh runtime", out, 1, true)
  end)
end)
