-- make_corpus.lua: writes the seed corpora of the fuzz targets.
--
--   lua5.4 tests/fuzz/make_corpus.lua [DIR]     DIR: tests/fuzz/corpus by default
--
-- DIR/fuzz_codec/*.mp: MessagePack values, valid and not (truncated, too deep,
-- unknown extensions, lying headers). DIR/fuzz_journal_row/*.row: inputs of
-- fuzz_journal_row (its header comment gives the format), each a row to store.
-- Existing files of the same names are overwritten; other files are left.
local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
local out = arg[1] or (here .. "/corpus")

---------------------------------------------------------------------------
-- MessagePack, written byte by byte (each function returns the encoding)
---------------------------------------------------------------------------

local mp = {}

function mp.int(n)
  if n >= 0 then
    if n <= 0x7f then return string.pack("B", n) end
    if n <= 0xff then return "\xcc" .. string.pack(">I1", n) end
    if n <= 0xffff then return "\xcd" .. string.pack(">I2", n) end
    if n <= 0xffffffff then return "\xce" .. string.pack(">I4", n) end
    return "\xcf" .. string.pack(">i8", n)
  end
  if n >= -32 then return string.pack("b", n) end
  if n >= -0x80 then return "\xd0" .. string.pack(">i1", n) end
  if n >= -0x8000 then return "\xd1" .. string.pack(">i2", n) end
  if n >= -0x80000000 then return "\xd2" .. string.pack(">i4", n) end
  return "\xd3" .. string.pack(">i8", n)
end

function mp.f32(x) return "\xca" .. string.pack(">f", x) end
function mp.f64(x) return "\xcb" .. string.pack(">d", x) end

local function sized(s, fix_base, fix_max, c8, c16, c32)
  local n = #s
  if fix_base and n <= fix_max then return string.pack("B", fix_base + n) .. s end
  if c8 and n <= 0xff then return c8 .. string.pack(">I1", n) .. s end
  if n <= 0xffff then return c16 .. string.pack(">I2", n) .. s end
  return c32 .. string.pack(">I4", n) .. s
end

function mp.str(s) return sized(s, 0xa0, 31, "\xd9", "\xda", "\xdb") end
function mp.bin(s) return sized(s, nil, nil, "\xc4", "\xc5", "\xc6") end

local function header(n, fix_base, c16, c32)
  if n <= 15 then return string.pack("B", fix_base + n) end
  if n <= 0xffff then return c16 .. string.pack(">I2", n) end
  return c32 .. string.pack(">I4", n)
end

-- items: encoded values
function mp.array(items) return header(#items, 0x90, "\xdc", "\xdd") .. table.concat(items) end

-- entries: { {key, value}, ... }, both encoded
function mp.map(entries)
  local parts = { header(#entries, 0x80, "\xde", "\xdf") }
  for _, e in ipairs(entries) do parts[#parts + 1] = e[1] .. e[2] end
  return table.concat(parts)
end

function mp.ext(typ, data)
  local fixed = { [1] = "\xd4", [2] = "\xd5", [4] = "\xd6", [8] = "\xd7", [16] = "\xd8" }
  local t = string.pack("b", typ)
  if fixed[#data] then return fixed[#data] .. t .. data end
  if #data <= 0xff then return "\xc7" .. string.pack(">I1", #data) .. t .. data end
  if #data <= 0xffff then return "\xc8" .. string.pack(">I2", #data) .. t .. data end
  return "\xc9" .. string.pack(">I4", #data) .. t .. data
end

-- Refs are extension type 1: "\2" .. name, or "\1" .. sched (4 bytes) .. actor id (8 bytes).
function mp.ref_name(name) return mp.ext(1, "\2" .. name) end
function mp.ref_addr(sched, aid) return mp.ext(1, "\1" .. string.pack(">I4>i8", sched, aid)) end

mp.null, mp.t, mp.f = "\xc0", "\xc3", "\xc2"

-- Nests `inner` `depth` containers deep: arrays of one item, or maps {a = ...}.
local function nest(depth, inner, as_map)
  local v = inner
  for _ = 1, depth do v = as_map and mp.map { { mp.str("a"), v } } or mp.array { v } end
  return v
end

---------------------------------------------------------------------------
-- CRC-32C (Castagnoli, reflected 0x82F63B78): the journal's payload checksum
---------------------------------------------------------------------------

local crc_table = {}
for i = 0, 255 do
  local c = i
  for _ = 1, 8 do c = (c & 1) ~= 0 and ((c >> 1) ~ 0x82F63B78) or (c >> 1) end
  crc_table[i] = c
end

local function crc32c(s)
  local c = 0xffffffff
  for i = 1, #s do c = crc_table[(c ~ s:byte(i)) & 0xff] ~ (c >> 8) end
  return c ~ 0xffffffff
end
assert(crc32c("123456789") == 0xe3069283, "crc32c check value")

---------------------------------------------------------------------------
-- fuzz_codec seeds
---------------------------------------------------------------------------

local event = mp.map {
  { mp.str("type"), mp.str("Deposited") },
  { mp.str("amount"), mp.int(10) },
  { mp.str("tags"), mp.array { mp.str("a"), mp.str("b") } },
  { mp.str("meta"), mp.map { { mp.str("by"), mp.ref_name("account-1") }, { mp.str("at"), mp.f64(1.5) } } },
}

local codec = {
  ["nil"] = mp.null,
  ["true"] = mp.t,
  ["false"] = mp.f,
  ["int-0"] = mp.int(0),
  ["int-127"] = mp.int(127),
  ["int-255"] = mp.int(255),
  ["int-65535"] = mp.int(65535),
  ["int-uint32-max"] = mp.int(0xffffffff),
  ["int-maxinteger"] = mp.int(math.maxinteger),
  ["int-uint64-above-maxinteger"] = "\xcf\xff\xff\xff\xff\xff\xff\xff\xff",
  ["int-minus-1"] = mp.int(-1),
  ["int-minus-33"] = mp.int(-33),
  ["int-minus-32768"] = mp.int(-32768),
  ["int-mininteger"] = mp.int(math.mininteger),
  ["float-1.0"] = mp.f64(1.0),
  ["float-minus-zero"] = mp.f64(-0.0),
  ["float-inf"] = mp.f64(math.huge),
  ["float-nan"] = mp.f64(0 / 0),
  ["float32-0.5"] = mp.f32(0.5),
  ["str-empty"] = mp.str(""),
  ["str-hello"] = mp.str("hello"),
  ["str8"] = mp.str(string.rep("x", 40)),
  ["str16"] = mp.str(string.rep("y", 300)),
  ["bin8"] = mp.bin("\0\1\2\255"),
  ["array-empty"] = mp.array {},
  ["map-empty"] = mp.map {},
  ["array-mixed"] = mp.array { mp.int(1), mp.str("two"), mp.f64(3.0), mp.t, mp.null, mp.int(-5) },
  ["array-with-holes"] = mp.array { mp.int(1), mp.null, mp.int(3) },
  ["map-int-keys"] = mp.map { { mp.int(1), mp.str("a") }, { mp.int(3), mp.str("c") }, { mp.int(-2), mp.t } },
  ["map-odd-keys"] = mp.map { { mp.f64(1.5), mp.int(1) }, { mp.t, mp.int(2) }, { mp.f64(2.0), mp.int(3) } },
  ["map-duplicate-keys"] = mp.map { { mp.str("k"), mp.int(1) }, { mp.str("k"), mp.int(2) } },
  ["map-table-key"] = mp.map { { mp.array { mp.int(1) }, mp.str("v") } },
  ["map16"] = mp.map((function()
    local e = {}
    for i = 1, 20 do e[i] = { mp.str("k" .. i), mp.int(i) } end
    return e
  end)()),
  ["event"] = event,
  ["ref-name"] = mp.ref_name("cart-1"),
  ["ref-name-fixext2"] = mp.ref_name("x"),
  ["ref-addr"] = mp.ref_addr(3, 0x1234567890abcdef),
  ["ref-as-key"] = mp.map { { mp.ref_name("k"), mp.ref_addr(0, 7) } },
  ["deep-array-63"] = nest(63, mp.int(1)),
  ["deep-array-64"] = nest(64, mp.int(1)),
  ["deep-array-65"] = nest(65, mp.int(1)),
  ["deep-map-64"] = nest(64, mp.str("leaf"), true),
  ["bad-ext-type-5"] = mp.ext(5, "abc"),
  ["bad-ref-tag"] = mp.ext(1, "\3abc"),
  ["bad-ref-addr-short"] = mp.ext(1, "\1" .. string.rep("\0", 11)),
  ["bad-ref-empty-name"] = mp.ext(1, "\2"),
  ["bad-nil-key"] = mp.map { { mp.null, mp.int(1) } },
  ["bad-nan-key"] = mp.map { { mp.f64(0 / 0), mp.int(1) } },
  ["bad-c1"] = "\xc1",
  ["bad-trailing-byte"] = mp.int(1) .. mp.int(2),
  ["bad-array32-lies"] = "\xdd\xff\xff\xff\xff" .. mp.int(1),
  ["bad-map16-lies"] = "\xde\x00\x10" .. mp.str("a") .. mp.int(1),
  ["bad-str32-lies"] = "\xdb\x7f\xff\xff\xff" .. "abc",
  ["bad-ext32-wraps"] = "\xc9\xff\xff\xff\xff\x01",
  ["trunc-event-half"] = event:sub(1, #event // 2),
  ["trunc-event-last-byte"] = event:sub(1, #event - 1),
  ["trunc-deep-64"] = nest(64, mp.int(1)):sub(1, 40),
  ["trunc-str16"] = mp.str(string.rep("y", 300)):sub(1, 100),
  ["trunc-ref-addr"] = mp.ref_addr(3, 9):sub(1, 8),
}

---------------------------------------------------------------------------
-- fuzz_journal_row seeds: columns seq, ts, version, manifest, tags, crc, payload
---------------------------------------------------------------------------

-- Column specs, encoded as fuzz_journal_row reads them.
local col = {
  keep = function() return "\0" end,
  null = function() return "\1" end,
  int = function(n) return "\2" .. string.pack("<i8", n) end,
  real = function(x) return "\3" .. string.pack("<d", x) end,
  text = function(s) return "\4" .. string.pack("B", #s) .. s end,
  blob = function(s) return "\5" .. string.pack("B", #s) .. s end,
  small = function(n) return "\6" .. string.pack("b", n) end,
  special = function() return "\7" end, -- crc: the right one; others: the original as text
}
-- The payload is last: its text or blob runs to the end of the input.
local payload = {
  keep = col.keep,
  null = col.null,
  int = col.int,
  real = col.real,
  text = function(s) return "\4" .. s end,
  blob = function(s) return "\5" .. s end,
  special = col.special,
}

-- row { seq =, ts =, version =, manifest =, tags =, crc =, payload = }: unnamed ones keep.
local function row(t)
  local parts = {}
  for i, name in ipairs { "seq", "ts", "version", "manifest", "tags", "crc" } do
    parts[i] = t[name] or col.keep()
  end
  parts[7] = t.payload or payload.keep()
  return table.concat(parts)
end

local function good(p) return row { crc = col.special(), payload = payload.blob(p) } end

local rows = {
  ["keep-all"] = row {},
  ["good-crc-event"] = good(event),
  ["good-crc-deep-64"] = good(codec["deep-array-64"]),
  ["good-crc-deep-65"] = good(codec["deep-array-65"]),
  ["good-crc-ref"] = good(codec["ref-as-key"]),
  ["good-crc-truncated"] = good(codec["trunc-event-half"]),
  ["good-crc-bad-ext"] = good(codec["bad-ext-type-5"]),
  ["good-crc-empty-payload"] = good(""),
  ["literal-good-crc"] = row { crc = col.int(crc32c(event)), payload = payload.blob(event) },
  ["wrong-crc"] = row { crc = col.int(12345) },
  ["crc-text"] = row { crc = col.text("12345") },
  ["crc-real"] = row { crc = col.real(1.5) },
  ["crc-negative"] = row { crc = col.small(-1) },
  ["crc-above-32-bits"] = row { crc = col.int((1 << 32) + crc32c(event)), payload = payload.blob(event) },
  ["crc-null"] = row { crc = col.null() },
  ["seq-text"] = row { seq = col.text("1") },
  ["seq-text-word"] = row { seq = col.text("one") },
  ["seq-real"] = row { seq = col.real(1.5) },
  ["seq-blob"] = row { seq = col.blob("\1") },
  ["seq-null"] = row { seq = col.null() },
  ["seq-zero"] = row { seq = col.small(0) },
  ["seq-negative"] = row { seq = col.small(-1) },
  ["seq-maxinteger"] = row { seq = col.int(math.maxinteger) },
  ["version-huge"] = row { version = col.int(1 << 40) },
  ["version-text"] = row { version = col.text("abc") },
  ["ts-text"] = row { ts = col.text("yesterday") },
  ["ts-null"] = row { ts = col.null() },
  ["manifest-blob-nul"] = row { manifest = col.blob("a\0b") },
  ["manifest-int"] = row { manifest = col.int(42) },
  ["manifest-null"] = row { manifest = col.null() },
  ["manifest-as-text"] = row { manifest = col.special() },
  ["tags-many"] = row { tags = col.text("a\nb\nc") },
  ["tags-null"] = row { tags = col.null() },
  ["payload-text-good-crc"] = row { crc = col.special(), payload = payload.text(event) },
  ["payload-null"] = row { payload = payload.null() },
  ["payload-int"] = row { payload = payload.int(7) },
  ["payload-real"] = row { crc = col.special(), payload = payload.real(2.5) },
  ["all-null"] = row {
    seq = col.null(), ts = col.null(), version = col.null(), manifest = col.null(),
    tags = col.null(), crc = col.null(), payload = payload.null(),
  },
}

---------------------------------------------------------------------------

local function write_all(dir, files, ext)
  assert(os.execute("mkdir -p '" .. dir:gsub("'", "'\\''") .. "'"), "cannot create " .. dir)
  local names = {}
  for name in pairs(files) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do
    local f = assert(io.open(dir .. "/" .. name .. ext, "wb"))
    f:write(files[name])
    f:close()
  end
  print(string.format("%s: %d files", dir, #names))
end

write_all(out .. "/fuzz_codec", codec, ".mp")
write_all(out .. "/fuzz_journal_row", rows, ".row")
