-- common.lua: what the benchmark scripts share (loaded with dofile: `lore run` scripts have
-- no module path of their own): shell calls, the figures they print (each round is one
-- value; a cell shows min / median / max of the rounds), and the round scripts' marks.
local fmt = string.format
local S = {}

-- x quoted for the shell.
function S.q(x) return "'" .. tostring(x):gsub("'", "'\\''") .. "'" end

-- Runs cmd (stderr with stdout); its output, or an error naming it.
function S.sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a") or ""
  local ok, how, code = p:close()
  if not ok then error(fmt("failed (%s %s): %s\n%s", how, code, cmd, out), 0) end
  return out
end

-- A new temporary directory under $LORE_TEST_TMP (or $TMPDIR, or /tmp), named after tag.
function S.tmpdir(tag)
  local base = os.getenv("LORE_TEST_TMP")
  if not base or base == "" then base = os.getenv("TMPDIR") or "/tmp" end
  return S.sh("mktemp -d " .. S.q(base .. "/" .. tag .. ".XXXXXX")):match("[^\n]+")
end

-- A round script's "@mark NAME" line: the driver times between two of them.
function S.mark(name)
  io.stdout:write("@mark ", name, "\n")
  io.stdout:flush()
end

-- The round script's argument i (args: its { ... }) as a positive integer.
function S.int_arg(args, i)
  local v = math.tointeger(tonumber(args[i]))
  if not v or v < 1 then error(fmt("argument %d must be a positive integer, got %s", i, tostring(args[i])), 0) end
  return v
end

-- A sorted copy of xs.
function S.sorted(xs)
  local s = {}
  for i, x in ipairs(xs) do s[i] = x end
  table.sort(s)
  return s
end

-- The median of xs (NaN when empty).
function S.median(xs)
  local s = S.sorted(xs)
  local n = #s
  if n == 0 then return 0 / 0 end
  if n % 2 == 1 then return s[(n + 1) // 2] end
  return (s[n // 2] + s[n // 2 + 1]) / 2
end

-- 1234567 -> "1.23M", 12345 -> "12.3k", 1234 -> "1.23k", 123 -> "123"
function S.si(x)
  if x >= 1e6 then return fmt("%.2fM", x / 1e6) end
  if x >= 1e4 then return fmt("%.1fk", x / 1e3) end
  if x >= 1e3 then return fmt("%.2fk", x / 1e3) end
  return fmt("%.0f", x)
end

-- "min / median / max", each shown by show (S.si by default).
function S.spread(xs, show)
  show = show or S.si
  local s = S.sorted(xs)
  return fmt("%s / %s / %s", show(s[1]), show(S.median(xs)), show(s[#s]))
end

return S
