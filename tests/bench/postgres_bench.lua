-- postgres_bench.lua: Lore on a PostgreSQL journal beside the fastest hand-written libpq store,
-- and beside nact with nact-persistence-postgres when scripts/bench-nact.sh runs it (figures,
-- never pass/fail). What each figure means: docs/postgres.md, "Figures".
--
--   LORE_TEST_PG=CONNINFO lore run tests/bench/postgres_bench.lua [--smoke] [--rounds N]
--                                                                [--nact "node .../postgres_nact_round.js"]
--
-- Every figure runs its sides in alternating rounds (N each, default 7; 1 with --smoke, which
-- also shrinks every size), each round a fresh process on the same database: Lore rounds are
-- postgres_rounds.lua under bench_stamp, baseline rounds bench_postgres, nact rounds the
-- --nact command. Writing figures use a fresh schema per round; the recovery figure reads one
-- schema per side written before its rounds. Cells: min / median / max.
local args = { ... }
local fmt = string.format

local SMOKE, ROUNDS, NACT = false, 7, nil
do
  local i = 1
  while args[i] do
    if args[i] == "--smoke" then
      SMOKE, ROUNDS = true, 1
    elseif args[i] == "--rounds" then
      i = i + 1
      ROUNDS = math.tointeger(tonumber(args[i])) or error("--rounds needs a positive integer", 0)
    elseif args[i] == "--nact" then
      i = i + 1
      NACT = args[i] or error("--nact needs a command", 0)
    else
      error("usage: postgres_bench.lua [--smoke] [--rounds N] [--nact CMD]", 0)
    end
    i = i + 1
  end
end

local CONNINFO = os.getenv("LORE_TEST_PG")
if not CONNINFO or CONNINFO == "" then
  error("LORE_TEST_PG is not set: run me under scripts/pg-cluster.sh run, or give a conninfo", 0)
end

local LORE, script = arg and arg[-1], arg and arg[0]
assert(LORE and script, "run me with `lore run`")
local bin_dir = LORE:match("^(.*)/[^/]*$") or "."
local here = script:match("^(.*)/[^/]*$") or "."
local common = dofile(here .. "/common.lua")
local q, sh = common.q, common.sh
local STAMP, BASE = bin_dir .. "/bench_stamp", bin_dir .. "/bench_postgres"
local ROUND_SCRIPT = here .. "/postgres_rounds.lua"


local schemas = {}
local function new_schema(tag)
  local name = fmt("bench_%s_%d_%d", tag, os.time() % 100000, #schemas + 1)
  schemas[#schemas + 1] = name
  return name
end
local function drop(schema) sh(table.concat({ q(BASE), "drop", q(CONNINFO), q(schema) }, " ")) end
local function journal(schema) return "postgres:" .. CONNINFO .. "?schema=" .. schema end

---------------------------------------------------------------------------
-- One round of each side
---------------------------------------------------------------------------

local function lore_round(mode, schema, ...)
  local words = { q(STAMP), q(LORE), "run", q(ROUND_SCRIPT), mode, q(journal(schema)) }
  for _, a in ipairs { ... } do words[#words + 1] = q(a) end
  local out = sh(table.concat(words, " "))
  local t0, t1 = out:match("@mark start ([%d.]+)"), out:match("@mark end ([%d.]+)")
  return t0 and t1 and (tonumber(t1) - tonumber(t0)), out
end

local function lore_seconds(secs, out)
  if not secs then error("the Lore round printed no marks:\n" .. out, 0) end
  return secs
end

local function base_round(mode, schema, ...)
  local words = { q(BASE), mode, q(CONNINFO), q(schema) }
  for _, a in ipairs { ... } do words[#words + 1] = q(a) end
  local out = sh(table.concat(words, " "))
  return tonumber(out:match("seconds=([%d.]+)")), out
end

local function nact_round(mode, schema, ...)
  sh(table.concat({ q(BASE), "drop", q(CONNINFO), q(schema) }, " "))
  local words = { NACT, mode, q(CONNINFO), q(schema) }
  for _, a in ipairs { ... } do words[#words + 1] = q(a) end
  local out = sh(table.concat(words, " "))
  return tonumber(out:match("seconds=([%d.]+)")), out
end

local function nact_seconds(mode, schema, ...)
  local secs, out = nact_round(mode, schema, ...)
  if not secs then error("the nact round printed no time:\n" .. out, 0) end
  return secs
end

---------------------------------------------------------------------------
-- Statistics and the table
---------------------------------------------------------------------------

local stats = common
local median = stats.median

local function spread(xs)
  if not xs then return "-" end
  return stats.spread(xs)
end

local LINE = "%-40s %-26s %-26s %-26s %s"
local function header()
  print(fmt("Lore on PostgreSQL vs the fastest raw libpq store%s: 2 workers, %d round(s) of each side,"
    .. " alternating", NACT and " vs nact (nact-persistence-postgres)" or "", ROUNDS))
  print("each cell min / median / max events/s (higher is better); ratios are of medians")
  print(fmt(LINE, "figure", "Lore", "raw libpq", NACT and "nact" or "", "Lore/libpq" .. (NACT and "  Lore/nact" or "")))
end

local function row(name, lv, bv, nv, note)
  local r = fmt("%.2f", median(lv) / median(bv))
  if nv then r = r .. fmt("       %.1f", median(lv) / median(nv)) end
  print(fmt(LINE, name, spread(lv), spread(bv), nv and spread(nv) or "", r))
  if note then print("  " .. note) end
  io.stdout:flush()
end

---------------------------------------------------------------------------
-- The figures
---------------------------------------------------------------------------

local function scaled(full, smoke) return SMOKE and smoke or full end

-- N actors x M events, one persist in flight per actor.
local function chain(n, m)
  local lv, bv, nv, writes, batches = {}, {}, NACT and {} or nil, 0, 0
  for r = 1, ROUNDS do
    local s = new_schema("lore")
    local secs, out = lore_round("chain", s, n, m)
    drop(s)
    lv[r] = n * m / lore_seconds(secs, out)
    local w, b = out:match("NOTE writes=(%d+) batches=(%d+)")
    if w then writes, batches = writes + tonumber(w), batches + tonumber(b) end
    s = new_schema("base")
    local bsecs, bout = base_round("write", s, n, m, "insert")
    drop(s)
    if not bsecs then error("bench_postgres printed no time:\n" .. bout, 0) end
    bv[r] = n * m / bsecs
    if nv then
      s = new_schema("nact")
      nv[r] = n * m / nact_seconds("chain", s, n, m)
      drop(s)
    end
  end
  row(fmt("%d actor%s x %d events, persist chains", n, n > 1 and "s" or "", m), lv, bv, nv,
    fmt("libpq: %d-row INSERT per transaction; Lore's journal wrote %.1f events per commit on average",
      n, batches > 0 and writes / batches or 0))
end

-- Recovery of one actor with M events: spawn it, ask it once.
local function recovery(m)
  local ls, bs, ns = new_schema("lore"), new_schema("base"), NACT and new_schema("nact")
  lore_round("fillone", ls, m)
  base_round("fill", bs, "cart-1", m)
  if ns then nact_round("fill", ns, m) end
  local lv, bv, nv = {}, {}, ns and {} or nil
  for r = 1, ROUNDS do
    lv[r] = m / lore_seconds(lore_round("replay", ls, m))
    local secs, out = base_round("replay", bs, "cart-1", m)
    if not secs then error("bench_postgres printed no time:\n" .. out, 0) end
    bv[r] = m / secs
    if nv then
      local words = { NACT, "replay", q(CONNINFO), q(ns), m }
      local nout = sh(table.concat(words, " "))
      nv[r] = m / tonumber(nout:match("seconds=([%d.]+)") or error("nact printed no time:\n" .. nout, 0))
    end
  end
  for _, s in ipairs { ls, bs, ns } do drop(s) end
  row(fmt("recovery of 1 actor with %d events", m), lv, bv, nv,
    "Lore: spawn to first answer (pages read off-thread, applied in Lua); libpq: one SELECT, every row read")
end

local t0 = os.time()
local ok, err = pcall(function()
  for _, exe in ipairs { STAMP, BASE } do
    local f = io.open(exe, "r")
    if not f then error(exe .. " not built (CMake builds tests/bench/bench_*.c)", 0) end
    f:close()
  end
  header()
  chain(1, scaled(300, 10))
  chain(100, scaled(100, 3))
  recovery(scaled(20000, 500))
end)
for _, s in ipairs(schemas) do pcall(drop, s) end
if not ok then error(err, 0) end
print(fmt("postgres_bench: %d s", os.time() - t0))
