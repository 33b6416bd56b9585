-- cli_json_spec.lua: random Lua events, persisted by an actor, read back from
-- `lore journal events --json` by the documented rules.
local h = require "helpers"
local cs = require "cli_support"
local lore = require "lore"
local json = cs.json

---------------------------------------------------------------------------
-- Random Lua values: what the codec can store, with JSON's hard cases
---------------------------------------------------------------------------

local samples = { "", "a", "caf\u{e9}", "\u{20ac}", "\u{1f600}", "a\0b", "$base64", "$float", "nan",
  "1", "-0", "b64:aGk=", "\xff", "\xc0\x80", "\xed\xa0\x80", "ok\xfe", "\xf4\x90\x80\x80",
  "quote\"back\\slash", "tab\tnewline\n" }

local function rand_string()
  local k = math.random(4)
  if k == 1 then return samples[math.random(#samples)] end
  local n, bytes = math.random(0, 16), {}
  for i = 1, n do bytes[i] = k == 2 and math.random(0, 255) or math.random(32, 126) end
  return string.char(table.unpack(bytes))
end

local floats = { 0.1, -0.0, 0.0, 1.0, -1.5, 1 / 0, -1 / 0, 5e-324, 1e308, 2.5e-8, 1e21,
  0.30000000000000004, 123456789.125 }

local function rand_scalar()
  local k = math.random(12)
  if k == 1 then return math.random(2) == 1 end
  if k == 2 then return math.random(-200, 200) end
  if k == 3 then return ({ math.maxinteger, math.mininteger, 0, -1 })[math.random(4)] end
  if k == 4 then return math.random(math.mininteger, math.maxinteger) end
  if k == 5 then return floats[math.random(#floats)] end
  if k == 6 then return 0 / 0 end
  if k == 7 then return (math.random() - 0.5) * 10 ^ math.random(-20, 20) end
  if k == 8 then return lore.ref("ref-" .. math.random(100)) end
  return rand_string()
end

local function rand_key()
  local k = math.random(10)
  if k == 1 then return math.random(-2, 3) end -- collides with "1", "2"...
  if k == 2 then return ({ "1", "2", "$x", "$base64" })[math.random(4)] end
  if k == 3 then return 1.5 end
  if k == 4 then return math.random(2) == 1 end
  if k == 5 then return "k\xff" end
  if k == 6 then return math.maxinteger end
  return ({ "type", "sku", "qty", "name", "items", "x" })[math.random(6)]
end

local function rand_value(depth)
  local k = math.random(depth < 4 and 8 or 20)
  if k > 3 then return rand_scalar() end
  local t = {}
  if k == 1 then -- an array (maybe empty)
    for i = 1, math.random(0, 5) do t[i] = rand_value(depth + 1) end
  else
    for _ = 1, math.random(0, 5) do t[rand_key()] = rand_value(depth + 1) end
  end
  return t
end

-- `levels` tables inside each other; single "$k" keys make every level a $map
-- (as fixtures/cli/store.lua builds them).
local function chain(levels, dollar)
  local v = "bottom"
  for _ = 1, levels do v = dollar and { ["$k"] = v } or { v } end
  return v
end

---------------------------------------------------------------------------
-- The rules of docs/cli.md, as a comparison of a Lua value with decoded JSON
---------------------------------------------------------------------------

local function jtype(j)
  local mt = type(j) == "table" and getmetatable(j)
  return mt and mt.__jsontype
end

-- The member of a tagged value {"name": x}.
local function tag(j, name)
  if jtype(j) ~= "object" then return nil end
  local k, v = next(j)
  if k ~= name or next(j, k) ~= nil then return nil end
  return v
end

local b64chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function unbase64(s)
  assert(#s % 4 == 0, "base64 length")
  local out = {}
  for i = 1, #s, 4 do
    local n, pad = 0, 0
    for k = i, i + 3 do
      local c = s:sub(k, k)
      local d = c == "=" and 0 or assert(b64chars:find(c, 1, true), "base64 char") - 1
      if c == "=" then pad = pad + 1 end
      n = n * 64 + d
    end
    local bytes = string.char(n >> 16 & 255, n >> 8 & 255, n & 255)
    out[#out + 1] = bytes:sub(1, 3 - pad)
  end
  return table.concat(out)
end

local function is_utf8(s) return utf8.len(s) ~= nil end

local same -- (value, json, path) -> true, or false and where it differs

local function fail(path, what) return false, path .. ": " .. what end

local function same_string(s, j, path)
  if is_utf8(s) then
    return j == s or fail(path, ("expected the string %q"):format(s))
  end
  local b = tag(j, "$base64")
  return (type(b) == "string" and unbase64(b) == s) or fail(path, "expected {\"$base64\"} of the bytes")
end

-- What a key is called in an object: a UTF-8 string without NUL, or an integer's digits.
local function member_name(k)
  if type(k) == "string" then return is_utf8(k) and not k:find("\0", 1, true) and k or nil end
  if math.type(k) == "integer" then return tostring(k) end
  return nil
end

local function is_array(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  for i = 1, n do if t[i] == nil then return false end end
  return true, n
end

local function same_table(t, j, path)
  local array, n = is_array(t)
  if array and n == 0 then -- the runtime stores an empty table as an empty map
    return (jtype(j) == "object" and next(j) == nil) or fail(path, "expected {}")
  end
  if array then
    if jtype(j) ~= "array" or #j ~= n then return fail(path, "expected an array of " .. n) end
    for i = 1, n do
      local ok, why = same(t[i], j[i], path .. "[" .. i .. "]")
      if not ok then return false, why end
    end
    return true
  end
  local names, count, object = {}, 0, true
  for k in pairs(t) do
    count = count + 1
    local name = member_name(k)
    if not name or names[name] then object = false end
    if name then names[name] = k end
  end
  local only = next(t)
  if count == 1 and object and member_name(only):sub(1, 1) == "$" then object = false end
  if object then
    if jtype(j) ~= "object" then return fail(path, "expected an object") end
    local seen = 0
    for name in pairs(j) do
      seen = seen + 1
      if names[name] == nil then return fail(path, "extra member " .. name) end
    end
    if seen ~= count then return fail(path, "expected " .. count .. " members") end
    for name, k in pairs(names) do
      local ok, why = same(t[k], j[name], path .. "." .. name)
      if not ok then return false, why end
    end
    return true
  end
  local flat = tag(j, "$map")
  if jtype(flat) ~= "array" or #flat ~= 2 * count then return fail(path, "expected {\"$map\": [k1, v1, ...]}") end
  -- Lua's pairs order is the map's order, but compare as a set: each key of t
  -- has exactly one pair whose key is the same value.
  for k, v in pairs(t) do
    local found = 0
    for i = 1, #flat, 2 do
      if same(k, flat[i], path) then
        found = found + 1
        local ok, why = same(v, flat[i + 1], path .. "[" .. tostring(k) .. "]")
        if not ok then return false, why end
      end
    end
    if found ~= 1 then return fail(path, "key " .. tostring(k) .. " found " .. found .. " times") end
  end
  return true
end

same = function(v, j, path)
  local t = type(v)
  if t == "boolean" then return j == v or fail(path, "expected " .. tostring(v)) end
  if math.type(v) == "integer" then
    return (math.type(j) == "integer" and j == v) or fail(path, "expected the integer " .. v)
  end
  if t == "number" then
    if v ~= v or v == 1 / 0 or v == -1 / 0 then
      local want = v ~= v and "nan" or v > 0 and "inf" or "-inf"
      return tag(j, "$float") == want or fail(path, "expected {\"$float\": \"" .. want .. "\"}")
    end
    return (math.type(j) == "float" and j == v and 1 / j == 1 / v)
      or fail(path, ("expected the float %.17g, got %s"):format(v, tostring(j)))
  end
  if t == "string" then return same_string(v, j, path) end
  if t == "userdata" then
    local r = tag(j, "$ref")
    return (jtype(r) == "object" and r.id == v:id()) or fail(path, "expected a $ref to " .. v:id())
  end
  if t == "table" then return same_table(v, j, path) end
  return fail(path, "unexpected Lua type " .. t)
end

---------------------------------------------------------------------------

describe("lore journal events --json on random Lua events", function()
  local dir, db, events

  setup(function()
    dir = h.tmpdir("cli-json")
    db = dir .. "/fuzz.db"
    math.randomseed(tonumber(os.getenv("CLI_JSON_SEED") or "") or 20240611)
    events = {}
    for i = 1, 400 do events[i] = { type = "fuzz", i = i, v = rand_value(0) } end
    events[#events + 1] = { [1] = "a", ["1"] = "b" }             -- no type: no manifest
    events[#events + 1] = { type = "empty", v = {}, w = { {} } }
    events[#events + 1] = { type = "num", a = 1, b = 1.0, c = -0.0, d = 0.1, e = 0 / 0, f = -1 / 0,
                            g = "\xff", h = "REF" }
    h.run(function()
      events[#events].h = lore.ref("cart-1")
      local store = lore.spawn("cli.store", { id = "fuzz" })
      for i = 1, #events, 50 do
        assert.is_true(store:ask({ type = "put", evts = { table.unpack(events, i, math.min(i + 49, #events)) } }, 30))
      end
      -- the most a stored event can nest: 64 tables, the event's own included
      for _, dollar in ipairs { false, true } do
        assert.is_true(store:ask({ type = "deep", levels = 63, dollar = dollar }, 30))
        events[#events + 1] = { type = "deep", v = chain(63, dollar) }
      end
    end, { journal = "sqlite:" .. db, synchronous = "normal" })
  end)

  teardown(function()
    os.execute("rm -rf " .. h.quote(dir))
  end)

  it("prints one JSON object per event, that reads back as the event", function()
    local out, err, code = h.lore("journal", "events", "--db", db, "--json", "fuzz")
    assert.equal(0, code, err)
    local lines = cs.lines(out)
    assert.equal(#events, #lines)
    for i, line in ipairs(lines) do
      local j, _, perr = json.decode(line, 1, json.null)
      assert(jtype(j) == "object", ("line %d is not a JSON object (%s)"):format(i, tostring(perr)))
      assert.equal("fuzz", j.id)
      assert.equal(i, j.seq)
      assert.equal(1, j.version)
      assert.same({}, j.tags)
      if events[i].type then
        assert.equal(events[i].type, j.manifest)
      else
        assert.is_nil(j.manifest)
      end
      local ok, why = same(events[i], j.event, "event " .. i)
      assert(ok, why)
    end
  end)

  it("passes jq too, line by line", function()
    local out, err, code = h.sh(("%s journal events --db %s --json fuzz | jq -c 'select(type == \"object\") | .seq'")
      :format(h.quote(h.lore_bin()), h.quote(db)))
    assert.equal(0, code, err)
    assert.equal(#events, #cs.lines(out))
  end)

  it("renders the documented cases as documented", function()
    local out = h.lore("journal", "events", "--db", db, "--json", "fuzz", "--from", tostring(#events - 4),
      "--to", tostring(#events - 2))
    local raw = cs.lines(out)
    local lines = cs.json_lines(out)
    -- 1 and "1" would be one member: the map becomes {"$map": [k1, v1, k2, v2]}
    local flat = lines[1].event["$map"]
    assert.equal(4, #flat)
    local pairs_seen = { [flat[1] .. "=" .. flat[2]] = math.type(flat[1]) or "string",
                         [flat[3] .. "=" .. flat[4]] = math.type(flat[3]) or "string" }
    assert.same({ ["1=a"] = "integer", ["1=b"] = "string" }, pairs_seen)
    assert.matches('"v":{}', raw[2], 1, true) -- an empty table is an empty map
    assert.matches('"w":[{}]', raw[2], 1, true)
    -- floats always show as floats, integers never do; what JSON lacks is tagged
    for _, want in ipairs { '"a":1[,}]', '"b":1%.0[,}]', '"c":%-0%.0[,}]', '"d":0%.1[,}]',
                            '"e":{"%$float":"nan"}', '"f":{"%$float":"%-inf"}',
                            '"g":{"%$base64":"/w=="}', '"h":{"%$ref":{"id":"cart%-1"}}' } do
      assert.matches(want, raw[3])
    end
  end)
end)
