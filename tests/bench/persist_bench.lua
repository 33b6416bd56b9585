-- persist_bench.lua: Lore's persistence and recovery beside the fastest hand-written SQLite
-- store (figures, never pass/fail). See tests/bench/README.md for what each figure means.
--
--   lore run tests/bench/persist_bench.lua [--smoke] [--rounds N] [--only ROWS]
--
-- --only takes a comma-separated list of chain, one, wake, replay, idle (default: all).
--
-- Every figure runs Lore rounds and baseline rounds alternately (N each, default 6; 1 with
-- --smoke, which also shrinks every size), each round a fresh process: Lore rounds are
-- persist_rounds.lua under bench_stamp (which clocks the "@mark" lines), baseline rounds
-- are bench_sqlite_baseline (and, for the replay rows' second baseline, bench_replay_fold).
-- These programs are found beside the lore executable. Writing
-- figures use a fresh file per round; reading figures read one file written before
-- their rounds (one for Lore, one for the baseline, the same events in both).
local args = { ... }
local fmt = string.format

local SMOKE, ROUNDS, ONLY = false, 6, nil
do
  local i = 1
  while args[i] do
    if args[i] == "--smoke" then
      SMOKE, ROUNDS = true, 1
    elseif args[i] == "--rounds" then
      i = i + 1
      ROUNDS = math.tointeger(tonumber(args[i])) or error("--rounds needs a positive integer", 0)
    elseif args[i] == "--only" then
      i = i + 1
      ONLY = {}
      for w in (args[i] or ""):gmatch("[^,]+") do ONLY[w] = true end
    else
      error("usage: persist_bench.lua [--smoke] [--rounds N] [--only chain,one,wake,replay,idle]", 0)
    end
    i = i + 1
  end
end

local LORE, script = arg and arg[-1], arg and arg[0]
assert(LORE and script, "run me with `lore run`")
local bin_dir = LORE:match("^(.*)/[^/]*$") or "."
local here = script:match("^(.*)/[^/]*$") or "."
local common = dofile(here .. "/common.lua")
local q, sh = common.q, common.sh
local STAMP, BASE = bin_dir .. "/bench_stamp", bin_dir .. "/bench_sqlite_baseline"
local FOLD = bin_dir .. "/bench_replay_fold"
local ROUND_SCRIPT = here .. "/persist_rounds.lua"
local CART_LUA = here .. "/behaviours/cart.lua"


local base_dir = os.getenv("LORE_TEST_TMP")
if not base_dir or base_dir == "" then base_dir = os.getenv("TMPDIR") or "/tmp" end
local dir = sh("mktemp -d " .. q(base_dir .. "/persist-bench.XXXXXX")):match("[^\n]+")
local files = 0
local function new_db(name)
  files = files + 1
  return fmt("%s/%03d-%s.db", dir, files, name)
end
local function remove_db(path)
  for _, s in ipairs { "", "-wal", "-shm" } do os.remove(path .. s) end
end

---------------------------------------------------------------------------
-- One round of each side
---------------------------------------------------------------------------

-- A Lore round: persist_rounds.lua MODE DB ... in a fresh process; returns the
-- seconds between its marks (nil if it prints none) and its output.
local function lore_round(mode, db, ...)
  local words = { q(STAMP), q(LORE), "run", q(ROUND_SCRIPT), mode, q(db) }
  for _, a in ipairs { ... } do words[#words + 1] = q(a) end
  local out = sh(table.concat(words, " "))
  local t0, t1 = out:match("@mark start ([%d.]+)"), out:match("@mark end ([%d.]+)")
  return t0 and t1 and (tonumber(t1) - tonumber(t0)), out
end

local function base_round(mode, path, ...)
  local words = { q(BASE), mode, q(path) }
  for _, a in ipairs { ... } do words[#words + 1] = q(a) end
  return sh(table.concat(words, " "))
end

local function base_seconds(out)
  local secs = out:match("seconds=([%d.]+)")
  if not secs then error("bench_sqlite_baseline printed no time:\n" .. out, 0) end
  return tonumber(secs)
end

local function lore_seconds(secs, out)
  if not secs then error("the Lore round printed no marks:\n" .. out, 0) end
  return secs
end

---------------------------------------------------------------------------
-- Statistics and the table
---------------------------------------------------------------------------

local stats = common
local median, si = stats.median, stats.si

-- 10000 -> "10,000"
local function count(n)
  local s = tostring(math.tointeger(n) or n)
  repeat
    local k
    s, k = s:gsub("^(%d+)(%d%d%d)", "%1,%2")
  until k == 0
  return s
end

local UNITS = {
  ["events/s"] = si, ["actors/s"] = si,
  s = function(x) -- three significant digits, never an exponent
    local decimals = math.max(2, math.min(6, 2 - math.floor(math.log(math.max(x, 1e-6), 10))))
    return fmt("%." .. decimals .. "f", x)
  end,
  B = function(x) return fmt("%.0f", x) end,
}

local function spread(xs, unit) return stats.spread(xs, UNITS[unit]) .. " " .. unit end

local LINE = "%-52s %-34s %-34s %s"
local function header()
  print(fmt("Lore persistence and recovery vs the fastest raw SQLite store: synchronous=FULL, 2 workers, %s",
    _VERSION))
  print(fmt("%d round(s) of each side, alternating; each cell min / median / max; ratio = Lore median /"
    .. " baseline median (range: the per-round ratios Lore/baseline)", ROUNDS))
  print("In /s rows a ratio below 1 means Lore is slower; in s and B rows a ratio above 1 means Lore is"
    .. " slower / bigger.")
  print(fmt(LINE, "figure", "Lore", "baseline", "ratio (range)"))
end

-- One row: per-round values of Lore and the baseline (paired by round).
local function row(name, unit, lore_vals, base_vals, note)
  local lo, hi = math.huge, -math.huge
  for i = 1, #lore_vals do
    local r = lore_vals[i] / base_vals[i]
    lo, hi = math.min(lo, r), math.max(hi, r)
  end
  local ratio = median(lore_vals) / median(base_vals)
  print(fmt(LINE, name, spread(lore_vals, unit), spread(base_vals, unit),
    fmt("%.2f (%.2f-%.2f)", ratio, lo, hi)))
  if note then print(fmt("  %s", note)) end
  io.stdout:flush()
end

---------------------------------------------------------------------------
-- The figures
---------------------------------------------------------------------------

local function scaled(full, smoke) return SMOKE and smoke or full end

-- N actors x M events, each actor's next persist sent from the previous one's callback.
local function chain(n, m)
  local lv, bv, writes, batches, payload = {}, {}, 0, 0, 0
  for r = 1, ROUNDS do
    local db = new_db("chain")
    local secs, out = lore_round("chain", db, n, m)
    remove_db(db)
    lv[r] = n * m / lore_seconds(secs, out)
    local w, b = out:match("NOTE writes=(%d+) batches=(%d+)")
    if w then writes, batches = writes + tonumber(w), batches + tonumber(b) end
    local bout = base_round("write", new_db("base-chain"), n, m)
    bv[r] = n * m / base_seconds(bout)
    payload = tonumber(bout:match("payload_bytes=(%d+)")) / (n * m)
  end
  row(fmt("%s actors x %d events, ctx:persist chains", count(n), m), "events/s", lv, bv,
    fmt("baseline: %s-row transactions, %.1f-byte payloads on average%s", count(n), payload,
      batches > 0 and fmt("; Lore's journal wrote %.0f events per commit on average", writes / batches) or ""))
end

-- One actor, the app asking "add" M times (ask -> persist -> reply).
local function one(m)
  local lv, bv = {}, {}
  for r = 1, ROUNDS do
    local db = new_db("one")
    local secs, out = lore_round("one", db, m)
    remove_db(db)
    lv[r] = m / lore_seconds(secs, out)
    bv[r] = m / base_seconds(base_round("write", new_db("base-one"), 1, m))
  end
  row(fmt("1 actor, %s x (ask -> persist -> reply)", count(m)), "events/s", lv, bv,
    "baseline: 1 row per transaction")
end

-- N actors with M events each, woken: spawned and asked a first question.
local function wake(n, m)
  local db, bdb = new_db("wake"), new_db("base-wake")
  lore_round("fill", db, n, m)
  base_round("fill", bdb, n, m)
  local lv, lav, bv = {}, {}, {}
  for r = 1, ROUNDS do
    lv[r] = n / lore_seconds(lore_round("wake", db, n, m))
    bv[r] = n / base_seconds(base_round("wake", bdb, n, m))
    lav[r] = n / lore_seconds(lore_round("wakeapp", db, n, m))
  end
  remove_db(db)
  remove_db(bdb)
  row(fmt("waking %s actors x %d events (spawn + first ask)", count(n), m), "actors/s", lv, bv,
    "baseline: one prepared SELECT per id; Lore: two waker actors spawn and ask, answers counted")
  row("  the same from the app (lore.spawn, ref:ask each)", "actors/s", lav, bv,
    "the app script's spawns and asks are sequential round trips to the runtime")
end

-- Replay of one actor with M events: spawn it and ask it once. Two baselines on the
-- same file: the raw read (the issue's yardstick), then the whole job done by hand
-- (bench_replay_fold: the same read, each payload decoded and folded by cart.lua's apply).
local function replay(m)
  local db, bdb = new_db("replay"), new_db("base-replay")
  lore_round("fillone", db, m)
  base_round("fill", bdb, 1, m)
  local lv, bv, fv = {}, {}, {}
  for r = 1, ROUNDS do
    lv[r] = lore_seconds(lore_round("replay", db, m))
    bv[r] = base_seconds(base_round("replay", bdb, "cart-1", m))
    fv[r] = base_seconds(sh(table.concat({ q(FOLD), q(bdb), "cart-1", m, q(CART_LUA) }, " ")))
  end
  remove_db(db)
  remove_db(bdb)
  row(fmt("replay of 1 actor with %s events", count(m)), "s", lv, bv,
    fmt("Lore %s events/s, baseline %s rows/s (medians); baseline: one SELECT ordered by seq",
      si(m / median(lv)), si(m / median(bv))))
  row("  the same, baseline: read + msgpack-c + Lua apply", "s", lv, fv,
    fmt("baseline %s events/s (median): the same SELECT, each payload decoded by msgpack-c into a"
      .. " Lua table, folded by cart.lua's M.apply in bare Lua", si(m / median(fv))))
end

-- Bytes per idle actor: N recovered persistent carts vs N plain ones, RSS delta / N.
local function idle(n)
  local db = new_db("idle")
  lore_round("fill", db, n, 1)
  local lv, bv, li, bi = {}, {}, {}, {}
  local function bytes(kind)
    local _, out = lore_round("idle", db, n, kind)
    local actors, before, after, at_idle =
      out:match("IDLE actors=(%d+) rss_before=(%d+) rss_after=(%d+) rss_idle=(%d+)")
    if not actors then error("the idle round printed no IDLE line:\n" .. out, 0) end
    actors, before = tonumber(actors), tonumber(before)
    return (tonumber(after) - before) / actors, (tonumber(at_idle) - before) / actors
  end
  for r = 1, ROUNDS do
    lv[r], li[r] = bytes("persistent")
    bv[r], bi[r] = bytes("plain")
  end
  remove_db(db)
  row(fmt("bytes per idle persistent actor (%s recovered)", count(n)), "B", lv, bv,
    "baseline: bytes per idle plain actor (the same state, no persistence), same script;"
    .. " RSS read 50 ms after the wake-up")
  row("  the same, read once the workers' idle collection is done", "B", li, bi,
    "both sides wait alike: until the workers' Lua heaps stop shrinking (at most 5 s)")
end

local t0 = os.time()
local ok, err = pcall(function()
  for _, exe in ipairs { STAMP, BASE, FOLD } do
    local f = io.open(exe, "r")
    if not f then error(exe .. " not built (CMake builds tests/bench/bench_*.c)", 0) end
    f:close()
  end
  header()
  local function wanted(name) return not ONLY or ONLY[name] end
  local events = scaled(100, 2)
  if wanted("chain") then
    chain(1000, events)
    chain(10, events)
    chain(100, events)
    chain(10000, events)
  end
  if wanted("one") then one(scaled(1000, 20)) end
  if wanted("wake") then wake(scaled(2000, 200), 5) end
  if wanted("replay") then
    for _, m in ipairs(SMOKE and { 100, 1000, 10000 } or { 10000, 100000, 1000000 }) do replay(m) end
  end
  if wanted("idle") then idle(scaled(100000, 2000)) end
end)
os.execute("rm -rf " .. q(dir))
if not ok then error(err, 0) end
print(fmt("persist_bench: %d s", os.time() - t0))
