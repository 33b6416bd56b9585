-- stats.lua: the figures benchmark scripts print (loaded with dofile: `lore run` scripts
-- have no module path of their own). Each round is one value; a cell shows min / median /
-- max of the rounds.
local fmt = string.format
local S = {}

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
