/* test_codec.c: round trips, exact encodings and error handling of the Lua <-> MessagePack codec */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <lauxlib.h>
#include <lualib.h>

#include "codec.h"
#include "codec_fast.h"
#include "codec_small.h"
#include "ref.h"

#include "../lua_deep_equal.h"

static const char *DEQ_LUA = LUA_DEEP_EQUAL_SRC;

static int setup(void **state) {
  lua_State *L = luaL_newstate();
  assert_non_null(L);
  luaL_openlibs(L);
  ref_init(L);
  assert_int_equal(luaL_dostring(L, DEQ_LUA), LUA_OK);
  ref_push_name(L, "cart-1", 6);
  lua_setglobal(L, "R_NAME");
  ref_push_addr(L, 3, 0x1234567890abcdefULL);
  lua_setglobal(L, "R_ADDR");
  *state = L;
  return 0;
}

static int teardown(void **state) {
  lua_close(*state);
  return 0;
}

/* Pushes the value of a Lua chunk ("return ..." is added when missing). */
static void push_lua(lua_State *L, const char *chunk) {
  char code[4096];
  if (strstr(chunk, "return"))
    snprintf(code, sizeof code, "%s", chunk);
  else
    snprintf(code, sizeof code, "return %s", chunk);
  int top = lua_gettop(L);
  if (luaL_dostring(L, code) != LUA_OK) fail_msg("Lua error in %s: %s", chunk, lua_tostring(L, -1));
  lua_settop(L, top + 1);
}

/* Encodes the value of `expr`, decodes it and checks the result is deep-equal. */
static void roundtrip(lua_State *L, const char *expr) {
  int base = lua_gettop(L);
  char err[CODEC_ERR_MAX] = "";
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  push_lua(L, expr);
  if (codec_encode(L, -1, "message", &sb, err, sizeof err) != 0)
    fail_msg("encode %s: %s", expr, err);
  assert_int_equal(lua_gettop(L), base + 1);
  if (codec_decode(L, sb.data, sb.size, err, sizeof err) != 0) fail_msg("decode %s: %s", expr, err);
  assert_int_equal(lua_gettop(L), base + 2);
  lua_getglobal(L, "deq");
  lua_pushvalue(L, -3);
  lua_pushvalue(L, -3);
  lua_call(L, 2, 1);
  if (!lua_toboolean(L, -1)) fail_msg("round trip changed %s", expr);
  lua_settop(L, base);
  msgpack_sbuffer_destroy(&sb);
}

/* Encodes the value of `expr` into sb (reset first); returns codec_encode's result. */
static int encode_expr(lua_State *L, const char *expr, const char *root, msgpack_sbuffer *sb,
                       char *err) {
  int base = lua_gettop(L);
  msgpack_sbuffer_clear(sb);
  push_lua(L, expr);
  int rc = codec_encode(L, -1, root, sb, err, CODEC_ERR_MAX);
  assert_int_equal(lua_gettop(L), base + 1);
  lua_settop(L, base);
  return rc;
}

static void expect_bytes(lua_State *L, const char *expr, const char *bytes, size_t n) {
  char err[CODEC_ERR_MAX] = "";
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  if (encode_expr(L, expr, "message", &sb, err) != 0) fail_msg("encode %s: %s", expr, err);
  if (sb.size != n || memcmp(sb.data, bytes, n) != 0) {
    fprintf(stderr, "%s encoded as", expr);
    for (size_t i = 0; i < sb.size; i++) fprintf(stderr, " %02x", (unsigned char)sb.data[i]);
    fprintf(stderr, "\n");
    fail_msg("unexpected encoding of %s", expr);
  }
  msgpack_sbuffer_destroy(&sb);
}

/* Encoding must fail, with `want` in the message and the stack untouched. */
static void expect_encode_error(lua_State *L, const char *expr, const char *root,
                                const char *want) {
  char err[CODEC_ERR_MAX] = "";
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  if (encode_expr(L, expr, root, &sb, err) != -1) fail_msg("encoding %s succeeded", expr);
  if (!strstr(err, want)) fail_msg("encoding %s: got \"%s\", want \"%s\"", expr, err, want);
  assert_true(strlen(err) < CODEC_ERR_MAX);
  msgpack_sbuffer_destroy(&sb);
}

/* Decoding must fail, with `want` in the message and nothing pushed. */
static void expect_decode_error(lua_State *L, const char *data, size_t len, const char *want) {
  char err[CODEC_ERR_MAX] = "";
  int base = lua_gettop(L);
  if (codec_decode(L, data, len, err, sizeof err) != -1) fail_msg("decoding succeeded");
  assert_int_equal(lua_gettop(L), base);
  if (want && !strstr(err, want)) fail_msg("decode error \"%s\", want \"%s\"", err, want);
  assert_true(err[0] != '\0');
}

/* Decodes bytes that must be valid and leaves the value on the stack. */
static void decode_ok(lua_State *L, const char *data, size_t len) {
  char err[CODEC_ERR_MAX] = "";
  int base = lua_gettop(L);
  if (codec_decode(L, data, len, err, sizeof err) != 0) fail_msg("decode: %s", err);
  assert_int_equal(lua_gettop(L), base + 1);
}

/* Checks that Lua `pred`, a function of the value on top of the stack, returns true; pops it. */
static void check_top(lua_State *L, const char *pred) {
  char code[1024];
  snprintf(code, sizeof code, "return %s", pred);
  assert_int_equal(luaL_dostring(L, code), LUA_OK);
  lua_pushvalue(L, -2);
  lua_call(L, 1, 1);
  if (!lua_toboolean(L, -1)) fail_msg("check failed: %s", pred);
  lua_pop(L, 2);
}

static void test_scalars(void **state) {
  lua_State *L = *state;
  static const char *const values[] = {"nil",
                                       "true",
                                       "false",
                                       "0",
                                       "1",
                                       "-1",
                                       "127",
                                       "128",
                                       "255",
                                       "256",
                                       "65535",
                                       "65536",
                                       "-31",
                                       "-32",
                                       "-33",
                                       "-128",
                                       "-129",
                                       "-32768",
                                       "-32769",
                                       "-2147483648",
                                       "-2147483649",
                                       "1 << 31",
                                       "1 << 32",
                                       "2147483647",
                                       "4294967295",
                                       "4294967296",
                                       "math.maxinteger",
                                       "math.mininteger",
                                       "0.0",
                                       "-0.0",
                                       "1.0",
                                       "-1.0",
                                       "1.5",
                                       "1e308",
                                       "-1e308",
                                       "5e-324",
                                       "math.huge",
                                       "-math.huge",
                                       "0/0",
                                       "0.1",
                                       "2^53",
                                       "2^63",
                                       "math.pi"};
  for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) roundtrip(L, values[i]);
}

static void test_strings(void **state) {
  lua_State *L = *state;
  roundtrip(L, "''");
  roundtrip(L, "'a'");
  roundtrip(L, "'a\\0b\\0\\0c\\0'");
  roundtrip(L, "'\\0'");
  roundtrip(L,
            "(function() local t = {} for i = 0, 255 do t[#t + 1] = string.char(i) end "
            "return table.concat(t) end)()");
  roundtrip(L, "string.rep('x', 31)");
  roundtrip(L, "string.rep('x', 32)");
  roundtrip(L, "string.rep('x', 255)");
  roundtrip(L, "string.rep('x', 256)");
  roundtrip(L, "string.rep('x', 65535)");
  roundtrip(L, "string.rep('x', 65536)");
  roundtrip(L, "string.rep('ab\\0\\255', 262144)"); /* 1 MiB */
}

static void test_exact_encodings(void **state) {
  lua_State *L = *state;
  /* integers take the smallest form; floats are always float64 */
  expect_bytes(L, "0", "\x00", 1);
  expect_bytes(L, "127", "\x7f", 1);
  expect_bytes(L, "128", "\xcc\x80", 2);
  expect_bytes(L, "255", "\xcc\xff", 2);
  expect_bytes(L, "256", "\xcd\x01\x00", 3);
  expect_bytes(L, "65535", "\xcd\xff\xff", 3);
  expect_bytes(L, "65536", "\xce\x00\x01\x00\x00", 5);
  expect_bytes(L, "1 << 32", "\xcf\x00\x00\x00\x01\x00\x00\x00\x00", 9);
  expect_bytes(L, "-1", "\xff", 1);
  expect_bytes(L, "-32", "\xe0", 1);
  expect_bytes(L, "-33", "\xd0\xdf", 2);
  expect_bytes(L, "math.mininteger", "\xd3\x80\x00\x00\x00\x00\x00\x00\x00", 9);
  expect_bytes(L, "math.maxinteger", "\xcf\x7f\xff\xff\xff\xff\xff\xff\xff", 9);
  expect_bytes(L, "1.0", "\xcb\x3f\xf0\x00\x00\x00\x00\x00\x00", 9);
  expect_bytes(L, "-0.0", "\xcb\x80\x00\x00\x00\x00\x00\x00\x00", 9);
  expect_bytes(L, "0.0", "\xcb\x00\x00\x00\x00\x00\x00\x00\x00", 9);
  expect_bytes(L, "nil", "\xc0", 1);
  expect_bytes(L, "false", "\xc2", 1);
  expect_bytes(L, "true", "\xc3", 1);
  expect_bytes(L, "'ab'",
               "\xa2"
               "ab",
               3);
  /* tables: empty -> empty map, 1..n -> array, anything else -> map */
  expect_bytes(L, "{}", "\x80", 1);
  expect_bytes(L, "{1, 2}", "\x92\x01\x02", 3);
  expect_bytes(L, "{[2] = 'b', [1] = 'a'}",
               "\x92\xa1"
               "a"
               "\xa1"
               "b",
               5);
  expect_bytes(L, "{x = 1}", "\x81\xa1x\x01", 4);
  expect_bytes(L, "{[2] = 1}", "\x81\x02\x01", 3);
  expect_bytes(L, "{[0] = 1}", "\x81\x00\x01", 3);
  expect_bytes(L, "{[1.5] = 1}", "\x81\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00\x01", 11);
  expect_bytes(L, "{1, 2, x = 3}", "\x83\x01\x01\x02\x02\xa1x\x03", 8);
  /* a map's header is patched in after its entries: check the 3-byte map16 form */
  char err[CODEC_ERR_MAX];
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  assert_int_equal(encode_expr(L,
                               "return (function() local t = {} for i = 1, 16 do "
                               "t['k' .. i] = true end return {m = t} end)()",
                               "message", &sb, err),
                   0);
  assert_int_equal(sb.size, 1 + 2 + 3 + 9 * 4 + 7 * 5); /* k1..k9, k10..k16 = true */
  assert_memory_equal(sb.data, "\x81\xa1m\xde\x00\x10", 6);
  msgpack_sbuffer_destroy(&sb);
}

static void test_tables(void **state) {
  lua_State *L = *state;
  roundtrip(L, "{}");
  roundtrip(L, "{{}, {{}}, x = {}}");
  roundtrip(L, "{1, 2, 3}");
  roundtrip(L, "{'a', 1.5, true, false, -7, {1, 2}, {x = 1}}");
  roundtrip(L, "(function() local t = {} for i = 1, 70000 do t[i] = i * 3 end return t end)()");
  /* holes make a map that round-trips key by key */
  roundtrip(L, "{1, nil, 3}");
  roundtrip(L, "{nil, 2}");
  roundtrip(L, "{[1] = 'a', [3] = 'c', [4] = 'd'}");
  roundtrip(L, "{1, 2, 3, x = 'extra'}");
  roundtrip(L, "{[1] = 1, [2] = 2, [-1] = 0}");
  roundtrip(L, "{[0] = 'zero'}");
  /* maps with integer, float, boolean and string keys */
  roundtrip(L,
            "{[7] = 'i', [-3] = 'n', [2.5] = 'f', [-0.25] = 'g', [1e300] = 'h', "
            "[math.huge] = 'inf', [true] = 't', [false] = 'f', s = 's', ['odd key'] = 1, "
            "[''] = 'empty', ['\\0'] = 'nul', [math.mininteger] = 1, [math.maxinteger] = 2}");
  roundtrip(L, "{type = 'add', sku = 'apple', qty = 3}");
  /* maps past fixmap size (map16, map32 headers), also nested and after other values */
  static const char *const big_maps[] = {"15", "16", "17", "255", "65535", "65536", "70000"};
  for (size_t i = 0; i < sizeof big_maps / sizeof big_maps[0]; i++) {
    char expr[512];
    snprintf(expr, sizeof expr,
             "return (function() local t = {} for i = 1, %s do t['k' .. i] = i end "
             "return {'first', {pre = 1, m = t, inner = {a = t, b = {x = 1, y = t}}, post = 2}, "
             "t, 'last'} end)()",
             big_maps[i]);
    roundtrip(L, expr);
  }
  roundtrip(L, "{a = {b = {c = {d = {1, 2, {e = 'f'}}}}}}");
  /* a table seen twice off the same path (a DAG) is fine and encoded twice */
  roundtrip(L, "return (function() local s = {1, {2}} return {a = s, b = s, c = {s, s}} end)()");
  /* a table as a map key is encodable; it comes back as an equal but new table */
  msgpack_sbuffer sb;
  char err[CODEC_ERR_MAX];
  msgpack_sbuffer_init(&sb);
  assert_int_equal(encode_expr(L, "{[{1, 2}] = 'v'}", "message", &sb, err), 0);
  decode_ok(L, sb.data, sb.size);
  check_top(L,
            "function(t) local k, v = next(t) "
            "return type(k) == 'table' and k[1] == 1 and k[2] == 2 and #k == 2 and v == 'v' "
            "and next(t, k) == nil end");
  msgpack_sbuffer_destroy(&sb);
}

static void test_numbers_stay_distinct(void **state) {
  lua_State *L = *state;
  roundtrip(L, "{a = {b = {1, 1.0, 2, 2.0, {x = 0, y = 0.0, z = -0.0, [3] = 3.0, [4] = 4}}}}");
  msgpack_sbuffer sb;
  char err[CODEC_ERR_MAX];
  msgpack_sbuffer_init(&sb);
  assert_int_equal(
      encode_expr(L, "{m = {i = 1, f = 1.0, n = {3, 3.0, -0.0}}}", "message", &sb, err), 0);
  decode_ok(L, sb.data, sb.size);
  check_top(L,
            "function(t) return math.type(t.m.i) == 'integer' and math.type(t.m.f) == 'float'"
            " and math.type(t.m.n[1]) == 'integer' and math.type(t.m.n[2]) == 'float'"
            " and 1 / t.m.n[3] == -math.huge end");
  msgpack_sbuffer_destroy(&sb);
}

static void test_nesting_limits(void **state) {
  lua_State *L = *state;
  roundtrip(L,
            "return (function() local t = 'leaf' for i = 1, 60 do t = {a = t} end return t "
            "end)()");
  roundtrip(L, "return (function() local t = 1 for i = 1, 64 do t = {t} end return t end)()");
  roundtrip(L, "return (function() local t = {} for i = 1, 63 do t = {k = t} end return t end)()");
  expect_encode_error(L,
                      "return (function() local t = 1 for i = 1, 65 do t = {a = t} end "
                      "return t end)()",
                      "message", "nesting deeper than 64 at message.a.a.a.a");
  expect_encode_error(L,
                      "return (function() local t = {} for i = 1, 64 do t = {t} end "
                      "return t end)()",
                      "message", "nesting deeper than 64 at message[1][1][1]");
  /* long paths are cut short, with ... */
  char err[CODEC_ERR_MAX];
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  assert_int_equal(encode_expr(L,
                               "return (function() local t = 1 for i = 1, 100 do "
                               "t = {abcdefghijklmnop = t} end return t end)()",
                               "message", &sb, err),
                   -1);
  assert_non_null(strstr(err, "nesting deeper than 64 at message.abcdefghijklmnop.abcdef"));
  assert_non_null(strstr(err, "..."));
  assert_true(strlen(err) < 220);
  msgpack_sbuffer_destroy(&sb);
}

static void test_refs(void **state) {
  lua_State *L = *state;
  roundtrip(L, "R_NAME");
  roundtrip(L, "R_ADDR");
  roundtrip(L, "{to = R_NAME, from = R_ADDR, list = {R_ADDR, R_NAME}}");
  msgpack_sbuffer sb;
  char err[CODEC_ERR_MAX];
  msgpack_sbuffer_init(&sb);
  assert_int_equal(encode_expr(L, "{by_name = R_NAME, by_addr = R_ADDR}", "message", &sb, err), 0);
  decode_ok(L, sb.data, sb.size);
  lua_getfield(L, -1, "by_name");
  lore_ref *r = ref_test(L, -1);
  assert_non_null(r);
  assert_int_equal(r->name_len, 6);
  assert_memory_equal(r->name, "cart-1", 6);
  assert_int_equal(r->aid, 0);
  lua_getfield(L, -2, "by_addr");
  r = ref_test(L, -1);
  assert_non_null(r);
  assert_int_equal(r->name_len, 0);
  assert_int_equal(r->sched, 3);
  assert_true(r->aid == 0x1234567890abcdefULL);
  lua_pop(L, 3);
  /* the wire form is ext type REF_EXT_TYPE around ref_serialize's bytes */
  ref_push_name(L, "ab", 2);
  msgpack_sbuffer_clear(&sb);
  assert_int_equal(codec_encode(L, -1, "message", &sb, err, sizeof err), 0);
  lua_pop(L, 1);
  assert_int_equal(sb.size, 6);
  assert_memory_equal(sb.data,
                      "\xc7\x03\x01\x02"
                      "ab",
                      6);
  /* a name too long for the wire is refused with its path */
  char *big = malloc(REF_SERIALIZED_MAX + 10);
  memset(big, 'n', REF_SERIALIZED_MAX + 10);
  ref_push_name(L, big, REF_SERIALIZED_MAX + 10);
  lua_setglobal(L, "R_BIG");
  free(big);
  expect_encode_error(L, "{x = {R_BIG}}", "message", "at message.x[1]");
  msgpack_sbuffer_destroy(&sb);
}

static void test_encode_errors(void **state) {
  lua_State *L = *state;
  expect_encode_error(L, "{items = {1, 2, {f = print}}}", "message",
                      "cannot encode a function at message.items[3].f");
  lua_newuserdatauv(L, 16, 0);
  lua_setglobal(L, "U");
  expect_encode_error(L, "{x = U}", "event", "cannot encode a userdata at event.x");
  expect_encode_error(L, "coroutine.create(print)", "message", "cannot encode a thread at message");
  expect_encode_error(L, "print", "reply", "cannot encode a function at reply");
  expect_encode_error(L, "return (function() local t = {a = {}} t.a.b = t return t end)()",
                      "message", "cycle at message.a.b (table refers to itself)");
  expect_encode_error(L, "return (function() local t = {} t.self = t return t end)()", "message",
                      "cycle at message.self (table refers to itself)");
  expect_encode_error(L, "return (function() local t = {1, 2} t[3] = t return t end)()", "message",
                      "cycle at message[3]");
  expect_encode_error(L, "return (function() local t = {} t[t] = 1 return t end)()", "message",
                      "cycle at message[?]");
  /* key rendering: identifiers, integers, other strings, other types */
  expect_encode_error(L, "{['odd key'] = {[3] = {[true] = {x = print}}}}", "message",
                      "at message[\"odd key\"][3][?].x");
  expect_encode_error(L, "{['end'] = {['a\"b\\n'] = print}}", "message",
                      "at message[\"end\"][\"a\\\"b\\x0a\"]");
  expect_encode_error(L, "{[print] = 1}", "message", "cannot encode a function at message[?]");
  expect_encode_error(L, "{[-5] = {[1.5] = print}}", "message", "at message[-5][?]");
  expect_encode_error(L, "{_ok9 = {x = {1, {y = io.stdout}}}}", "message",
                      "cannot encode a userdata at message._ok9.x[2].y");
  /* after an error the same state and a fresh buffer work normally */
  roundtrip(L, "{fine = true}");
}

/* A nested message with every kind of value, for the truncation and mutation tests. */
static const char *SAMPLE =
    "{type = 'add', items = {{sku = 'apple', qty = 3, price = 1.25}, {sku = 'pear', "
    "qty = -70000, tags = {}}}, ok = true, no = false, ref = R_NAME, at = R_ADDR, "
    "big = 1 << 40, neg = math.mininteger, s = string.rep('z', 300), arr = {1, 2.0, 'x'}, "
    "[5] = 0.5, [2.5] = {[true] = 'yes'}}";

static void test_decode_errors(void **state) {
  lua_State *L = *state;
  char err[CODEC_ERR_MAX];
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  assert_int_equal(encode_expr(L, SAMPLE, "message", &sb, err), 0);
  /* every proper prefix is truncated */
  for (size_t n = 0; n < sb.size; n++) expect_decode_error(L, sb.data, n, NULL);
  expect_decode_error(L, sb.data, 0, "truncated");
  expect_decode_error(L, sb.data, sb.size - 1, "truncated");
  expect_decode_error(L, NULL, 0, "truncated");
  /* trailing bytes */
  char *more = malloc(sb.size + 3);
  memcpy(more, sb.data, sb.size);
  memcpy(more + sb.size, "\x00\x01\x02", 3);
  expect_decode_error(L, more, sb.size + 1, "trailing");
  expect_decode_error(L, more, sb.size + 3, "trailing");
  free(more);
  expect_decode_error(L, "\x01\x02", 2, "trailing");
  decode_ok(L, sb.data, sb.size);
  lua_pop(L, 1);
  /* invalid lead byte */
  expect_decode_error(L, "\xc1", 1, "malformed");
  expect_decode_error(L, "\x92\x01\xc1", 3, "malformed");
  /* extensions: unknown type, malformed refs */
  expect_decode_error(L, "\xd4\x05\x00", 3, "unknown MessagePack extension type 5");
  expect_decode_error(L, "\x91\xd4\x7f\x00", 4, "extension type 127");
  expect_decode_error(L, "\xd4\x01\x07", 3, "malformed ref");
  expect_decode_error(L, "\xd4\x01\x02", 3, "malformed ref");         /* name ref, empty name */
  expect_decode_error(L, "\xc7\x02\x01\x01\x00", 5, "malformed ref"); /* short address ref */
  expect_decode_error(L, "\xc7\x00\x01", 3, "malformed ref");
  /* keys a Lua table cannot hold */
  expect_decode_error(L, "\x81\xc0\x01", 3, "nil map key");
  expect_decode_error(L, "\x81\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00\x01", 11, "NaN map key");
  /* huge claimed sizes do not allocate, they are just truncated */
  expect_decode_error(L, "\xdd\xff\xff\xff\xff\x01", 6, "truncated");
  expect_decode_error(L, "\xdf\xff\xff\xff\xff\x01\x02", 7, "truncated");
  expect_decode_error(L,
                      "\xdb\xff\xff\xff\xff"
                      "abc",
                      8, "truncated");
  expect_decode_error(L, "\xc9\xff\xff\xff\xff\x01", 6, NULL);
  msgpack_sbuffer_destroy(&sb);
}

static void test_decode_depth(void **state) {
  lua_State *L = *state;
  size_t bomb = 100000;
  char *buf = malloc(bomb + 1);
  memset(buf, 0x91, bomb);
  buf[bomb] = 0x01;
  expect_decode_error(L, buf, bomb + 1, "nesting deeper than 64");
  expect_decode_error(L, buf, bomb, "nesting deeper than 64");
  /* the limit is exactly CODEC_MAX_DEPTH containers, as for encoding */
  buf[CODEC_MAX_DEPTH] = 0x01;
  decode_ok(L, buf, CODEC_MAX_DEPTH + 1);
  check_top(L, "function(t) for i = 1, 63 do t = t[1] end return t[1] == 1 end");
  buf[CODEC_MAX_DEPTH] = (char)0x91;
  buf[CODEC_MAX_DEPTH + 1] = 0x01;
  expect_decode_error(L, buf, CODEC_MAX_DEPTH + 2, "nesting deeper than 64");
  /* an empty container at depth 65 is still too deep */
  memset(buf, 0x91, 64);
  buf[64] = (char)0x90;
  expect_decode_error(L, buf, 65, "nesting deeper");
  buf[63] = (char)0x90;
  decode_ok(L, buf, 64);
  lua_pop(L, 1);
  /* maps count the same: {[0] = {[0] = ... 1}} */
  for (int i = 0; i < 70; i++) buf[2 * i] = (char)0x81, buf[2 * i + 1] = 0x00;
  buf[128] = 0x01;
  decode_ok(L, buf, 129);
  check_top(L, "function(t) for i = 1, 63 do t = t[0] end return t[0] == 1 end");
  buf[128] = (char)0x81;
  buf[130] = 0x01;
  expect_decode_error(L, buf, 131, "nesting deeper than 64");
  free(buf);
}

static void test_decode_other_forms(void **state) {
  lua_State *L = *state;
  /* bin decodes to a string, float32 to a float, a uint64 above maxinteger to a float */
  decode_ok(L,
            "\xc4\x03"
            "a\0c",
            5);
  check_top(L, "function(v) return v == 'a\\0c' end");
  decode_ok(L, "\xca\x3f\xc0\x00\x00", 5);
  check_top(L, "function(v) return math.type(v) == 'float' and v == 1.5 end");
  decode_ok(L, "\xcf\xff\xff\xff\xff\xff\xff\xff\xff", 9);
  check_top(L, "function(v) return math.type(v) == 'float' and v == 2.0^64 end");
  decode_ok(L, "\xcf\x7f\xff\xff\xff\xff\xff\xff\xff", 9);
  check_top(L, "function(v) return v == math.maxinteger end");
  decode_ok(L, "\xd0\x05", 2); /* non-minimal forms are accepted */
  check_top(L, "function(v) return math.type(v) == 'integer' and v == 5 end");
  decode_ok(L, "\xdc\x00\x02\x01\x02", 5);
  check_top(L, "function(v) return #v == 2 and v[2] == 2 end");
  decode_ok(L, "\x82\xa1x\x01\xa1x\x02", 7); /* a repeated key: the last one wins */
  check_top(L, "function(v) return v.x == 2 end");
  decode_ok(L, "\x90", 1);
  check_top(L, "function(v) return type(v) == 'table' and next(v) == nil end");
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rng(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

/* Decodes bytes that may or may not be valid. What decodes must encode again (every decodable
 * value is encodable) and decode once more. */
static void fuzz_one(lua_State *L, const char *data, size_t len, int *ok) {
  char err[CODEC_ERR_MAX];
  int base = lua_gettop(L);
  if (codec_decode(L, data, len, err, sizeof err) != 0) {
    assert_int_equal(lua_gettop(L), base);
    assert_true(err[0] != '\0');
    return;
  }
  (*ok)++;
  assert_int_equal(lua_gettop(L), base + 1);
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  if (codec_encode(L, -1, "message", &sb, err, sizeof err) != 0) fail_msg("re-encode: %s", err);
  decode_ok(L, sb.data, sb.size);
  lua_settop(L, base);
  msgpack_sbuffer_destroy(&sb);
}

static void test_fuzz(void **state) {
  lua_State *L = *state;
  char buf[256];
  int ok = 0;
  for (int i = 0; i < 10000; i++) {
    size_t len = rng() % 64;
    for (size_t j = 0; j < len; j++) buf[j] = (char)rng();
    fuzz_one(L, buf, len, &ok);
  }
  /* random bytes mostly die on the first byte; mutations of a real message get deeper */
  char err[CODEC_ERR_MAX];
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  assert_int_equal(encode_expr(L, SAMPLE, "message", &sb, err), 0);
  char *m = malloc(sb.size);
  for (int i = 0; i < 10000; i++) {
    memcpy(m, sb.data, sb.size);
    int flips = 1 + (int)(rng() % 4);
    for (int f = 0; f < flips; f++) m[rng() % sb.size] = (char)rng();
    size_t len = rng() % 4 == 0 ? rng() % sb.size : sb.size;
    fuzz_one(L, m, len, &ok);
  }
  free(m);
  msgpack_sbuffer_destroy(&sb);
  assert_true(ok > 0);
}

/* The fast path (codec_fast.c) against the parser alone: whatever the fast path accepts, the
 * parser accepts too, as the same value; with a string cache as well. `*fast_ok` counts the
 * inputs the fast path took. */
static void compare_one(lua_State *L, codec_strings *c, const char *data, size_t len,
                        int *fast_ok) {
  char err[CODEC_ERR_MAX];
  int base = lua_gettop(L);
  int anchor = 0;
  if (c) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->ref);
    anchor = lua_gettop(L);
  }
  int fast = codec_decode_fast(L, c, anchor, data, len);
  if (fast != 0) {
    lua_settop(L, base);
    return;
  }
  (*fast_ok)++;
  assert_int_equal(lua_gettop(L), anchor ? base + 2 : base + 1);
  if (anchor) lua_remove(L, anchor);
  if (codec_decode_parser(L, c, data, len, err, sizeof err) != 0)
    fail_msg("the fast path took an input the parser refuses: %s", err);
  /* deq matches keys with rawget, so a value with table or ref keys (found by address, not
   * by contents) is only checked for having them on both sides. */
  assert_int_equal(
      luaL_dostring(L,
                    "local function odd(v)\n"
                    "  if type(v) ~= 'table' then return false end\n"
                    "  for k, x in next, v do\n"
                    "    if type(k) == 'table' or type(k) == 'userdata' or odd(k) or odd(x)"
                    " then return true end\n"
                    "  end\n"
                    "  return false\n"
                    "end\n"
                    "return function(a, b)\n"
                    "  if odd(a) then return odd(b) end\n"
                    "  return deq(a, b)\n"
                    "end"),
      LUA_OK);
  lua_pushvalue(L, -3);
  lua_pushvalue(L, -3);
  lua_call(L, 2, 1);
  if (!lua_toboolean(L, -1)) fail_msg("the fast path and the parser decoded different values");
  lua_settop(L, base);
}

static void test_fast_path_matches_parser(void **state) {
  lua_State *L = *state;
  codec_strings cache;
  assert_int_equal(codec_strings_init(L, &cache), 0);
  char err[CODEC_ERR_MAX];
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  int fast_ok = 0;
  /* the sample (refs, floats, nesting, every integer width) is taken whole */
  assert_int_equal(encode_expr(L, SAMPLE, "message", &sb, err), 0);
  compare_one(L, NULL, sb.data, sb.size, &fast_ok);
  compare_one(L, &cache, sb.data, sb.size, &fast_ok);
  compare_one(L, &cache, sb.data, sb.size, &fast_ok); /* the cache's strings this time */
  assert_int_equal(fast_ok, 3);
  /* what it gives up on, codec_decode still decides through the parser */
  static const struct {
    const char *bytes;
    size_t len;
  } refused[] = {
      {"\x81\xc0\x01", 3},                      /* a nil key */
      {"\x81\xcb\x7f\xf8\0\0\0\0\0\0\x01", 11}, /* a NaN key */
      {"\x92\x01", 2},                          /* truncated */
      {"\x01\x02", 2},                          /* trailing bytes */
      {"\xd4\x07\x00", 3},                      /* an unknown extension */
      {"\xc1", 1},                              /* a byte never used */
  };
  for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
    int base = lua_gettop(L);
    assert_int_not_equal(codec_decode_fast(L, NULL, 0, refused[i].bytes, refused[i].len), 0);
    lua_settop(L, base);
    assert_int_not_equal(codec_decode(L, refused[i].bytes, refused[i].len, err, sizeof err), 0);
    assert_int_equal(lua_gettop(L), base);
  }
  /* nesting past the fast path's depth: the parser takes it */
  char deep[40];
  memset(deep, 0x91, 39);
  deep[39] = 0x01;
  int base = lua_gettop(L);
  assert_int_not_equal(codec_decode_fast(L, NULL, 0, deep, sizeof deep), 0);
  lua_settop(L, base);
  decode_ok(L, deep, sizeof deep);
  lua_settop(L, base);
  /* random mutations of the sample */
  char *m = malloc(sb.size);
  assert_non_null(m);
  int before = fast_ok;
  for (int i = 0; i < 20000; i++) {
    memcpy(m, sb.data, sb.size);
    int flips = 1 + (int)(rng() % 3);
    for (int f = 0; f < flips; f++) m[rng() % sb.size] = (char)rng();
    size_t len = rng() % 8 == 0 ? rng() % sb.size : sb.size;
    compare_one(L, i % 2 ? &cache : NULL, m, len, &fast_ok);
  }
  assert_true(fast_ok > before); /* some mutations stay valid and were compared */
  free(m);
  msgpack_sbuffer_destroy(&sb);
  codec_strings_free(L, &cache);
}

/* The string cache hashes a string by its ends: strings of every cached length that differ
 * in one byte anywhere (their middle too, so they share a slot) each decode as themselves,
 * through codec_decode_anchored (one anchor for many values, as a replay page uses it) as
 * through codec_decode_cached. */
static void test_string_cache_is_exact(void **state) {
  lua_State *L = *state;
  codec_strings cache;
  assert_int_equal(codec_strings_init(L, &cache), 0);
  char err[CODEC_ERR_MAX];
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  int base = lua_gettop(L);
  int anchor = codec_strings_push(L, &cache);
  assert_int_equal(anchor, base + 1);
  int checked = 0;
  for (int len = 0; len <= CODEC_STRING_MAX + 1; len++) {
    for (int at = 0; at < len || (len == 0 && at == 0); at++) {
      for (int variant = 0; variant < 3; variant++) {
        char expr[160];
        /* { s, s }: a map key and a value, so the fixstr key path is taken as well */
        snprintf(expr, sizeof expr,
                 "(function() local s = string.rep('k', %d) "
                 "if %d > 0 then s = s:sub(1, %d) .. string.char(97 + %d) .. s:sub(%d + 2) end "
                 "return { [s] = s } end)()",
                 len, len, at, variant, at);
        assert_int_equal(encode_expr(L, expr, "message", &sb, err), 0);
        for (int round = 0; round < 2; round++) {
          int rc =
              round ? codec_decode_cached(L, &cache, sb.data, sb.size, err, sizeof err)
                    : codec_decode_anchored(L, &cache, anchor, sb.data, sb.size, err, sizeof err);
          assert_int_equal(rc, 0);
          assert_int_equal(lua_gettop(L), anchor + 1);
          push_lua(L, expr);
          lua_getglobal(L, "deq");
          lua_insert(L, -3);
          lua_call(L, 2, 1);
          if (!lua_toboolean(L, -1)) fail_msg("the cache changed a string of length %d", len);
          lua_pop(L, 1);
          checked++;
        }
      }
    }
  }
  assert_true(checked > 3000);
  lua_settop(L, base);
  msgpack_sbuffer_destroy(&sb);
  codec_strings_free(L, &cache);
  /* without a cache, nothing is pushed and decoding works uncached */
  assert_int_equal(codec_strings_push(L, NULL), 0);
  assert_int_equal(lua_gettop(L), base);
}

/* The buffer is appended to, so a caller can frame several values in one buffer. */
static void test_appends(void **state) {
  lua_State *L = *state;
  char err[CODEC_ERR_MAX];
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  msgpack_sbuffer_write(&sb, "HDR", 3);
  lua_pushinteger(L, 5);
  assert_int_equal(codec_encode(L, -1, "message", &sb, err, sizeof err), 0);
  lua_pop(L, 1);
  assert_int_equal(sb.size, 4);
  assert_memory_equal(sb.data, "HDR\x05", 4);
  /* a map whose header grows after its entries are written stays after what came before */
  push_lua(L,
           "return (function() local t = {} for i = 1, 40 do t['k' .. i] = i end "
           "return t end)()");
  assert_int_equal(codec_encode(L, -1, "message", &sb, err, sizeof err), 0);
  assert_memory_equal(sb.data, "HDR\x05\xde\x00\x28", 7);
  decode_ok(L, sb.data + 4, sb.size - 4);
  lua_getglobal(L, "deq");
  lua_insert(L, -3);
  lua_call(L, 2, 1);
  assert_true(lua_toboolean(L, -1));
  lua_pop(L, 1);
  msgpack_sbuffer_destroy(&sb);
}

/* Pushes the value of the Lua expression src, packs it with codec_encode_small into
 * small and checks that it took it, left the stack alone and wrote codec_encode's
 * bytes; returns the length (the value stays pushed). */
static size_t small_taken(lua_State *L, const char *src, msgpack_sbuffer *sb, char *small) {
  char err[CODEC_ERR_MAX];
  push_lua(L, src);
  int top = lua_gettop(L);
  size_t n = codec_encode_small(L, -1, small);
  assert_int_equal(lua_gettop(L), top);
  sb->size = 0;
  assert_int_equal(codec_encode(L, -1, "message", sb, err, sizeof err), 0);
  if (n == 0) fail_msg("declined %s", src);
  if (n != sb->size || memcmp(small, sb->data, n) != 0) fail_msg("other bytes for %s", src);
  return n;
}

/* ...and that it declines src, with the stack as it was. */
static void small_declined(lua_State *L, const char *src) {
  int base = lua_gettop(L);
  push_lua(L, src);
  char small[CODEC_SMALL_MAX];
  if (codec_encode_small(L, -1, small) != 0) fail_msg("took %s", src);
  assert_int_equal(lua_gettop(L), base + 1);
  lua_settop(L, base);
}

/* A tell's fast paths: codec_encode_small writes codec_encode's bytes for every value it
 * takes (and declines the rest), and codec_decode_scalar decodes them as the parser does,
 * giving up on anything else, truncated or trailing bytes included. */
/* ...and small flat maps (a request with its reply_to, an answer) likewise; an
 * array, a nested table, a 16th entry or an encoding past CODEC_SMALL_MAX go to the
 * general encoder, and a declined map leaves the stack as it was. */
static void test_small_maps(void **state) {
  lua_State *L = *state;
  static const char *taken[] = {
      "{}",
      "{count = 5}",
      "{type = 'get', reply_to = R_ADDR}",
      "{type = 'get', reply_to = R_NAME}",
      "{[1.5] = true, [false] = 'no', [-7] = -0.0, x = 1/0}",
      "{[0] = 'zero', [2] = 'two'}",
      "{[R_ADDR] = 1}",
      "{a=1,b=2,c=3,d=4,e=5,f=6,g=7,h=8,i=9,j=10,k=11,l=12,m=13,n=14,o=15}",
      "setmetatable({k = 'v'}, {__index = function() return 1 end, __pairs = error})",
  };
  static const char *declined[] = {
      "{1, 2}",
      "{[1] = 'x', y = 2}",
      "{t = {}}",
      "{f = print}",
      "{a=1,b=2,c=3,d=4,e=5,f=6,g=7,h=8,i=9,j=10,k=11,l=12,m=13,n=14,o=15,p=16}",
      "{s = string.rep('x', 40), t = string.rep('y', 40)}",
      "{[string.rep('k', 70)] = 1}",
      "{r = R_ADDR, s = R_ADDR, t = R_ADDR, u = R_ADDR}",
  };
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  for (size_t i = 0; i < sizeof taken / sizeof taken[0]; i++) {
    int base = lua_gettop(L);
    char small[CODEC_SMALL_MAX];
    small_taken(L, taken[i], &sb, small);
    lua_settop(L, base);
  }
  for (size_t i = 0; i < sizeof declined / sizeof declined[0]; i++) small_declined(L, declined[i]);
  msgpack_sbuffer_destroy(&sb);
}

static void test_small_values(void **state) {
  lua_State *L = *state;
  static const char *taken[] = {"nil",
                                "true",
                                "false",
                                "0",
                                "1",
                                "127",
                                "128",
                                "255",
                                "256",
                                "65535",
                                "65536",
                                "4294967295",
                                "4294967296",
                                "math.maxinteger",
                                "-1",
                                "-32",
                                "-33",
                                "-128",
                                "-129",
                                "-32768",
                                "-32769",
                                "-2147483648",
                                "-2147483649",
                                "math.mininteger",
                                "0.0",
                                "-0.0",
                                "1.5",
                                "1e300",
                                "1/0",
                                "-1/0",
                                "0/0",
                                "''",
                                "'tick'",
                                "string.rep('x', 31)",
                                "string.rep('y', 32)",
                                "string.rep('z', 62)"};
  static const char *declined[] = {"{1}", "R_NAME", "string.rep('w', 63)", "print"};
  char err[CODEC_ERR_MAX];
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  for (size_t i = 0; i < sizeof taken / sizeof taken[0]; i++) {
    int base = lua_gettop(L);
    char small[CODEC_SMALL_MAX];
    size_t n = small_taken(L, taken[i], &sb, small);
    int scalar = lua_type(L, -1) != LUA_TSTRING;
    assert_int_equal(codec_decode_scalar(L, small, n), scalar ? 0 : -1);
    if (scalar) {
      assert_int_equal(codec_decode(L, small, n, err, sizeof err), 0);
      lua_pushvalue(L, -3);
      /* the same value and subtype; NaN is only itself as NaN */
      assert_int_equal(luaL_dostring(L,
                                     "return function(a, b, c) return math.type(a) == "
                                     "math.type(b) and math.type(b) == math.type(c) and "
                                     "(a == b and b == c or a ~= a and b ~= b and c ~= c) end"),
                       LUA_OK);
      lua_insert(L, -4);
      lua_call(L, 3, 1);
      if (!lua_toboolean(L, -1)) fail_msg("%s decodes to another value", taken[i]);
    }
    assert_int_equal(lua_gettop(L), base + 1 + scalar);
    lua_settop(L, base);
  }
  for (size_t i = 0; i < sizeof declined / sizeof declined[0]; i++) small_declined(L, declined[i]);
  static const struct {
    const char *bytes;
    size_t len;
  } refused[] = {
      {"", 0},         {"\x01\x02", 2},     {"\xcd\x01", 2}, {"\xcd\x01\x02\x03", 4},
      {"\xcb\0\0", 3}, {"\xa1x", 2},        {"\x90", 1},     {"\xc3\xc3", 2},
      {"\xc1", 1},     {"\xd3\0\0\0\0", 5}, {"\xca\0", 2},
  };
  for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
    int base = lua_gettop(L);
    assert_int_equal(codec_decode_scalar(L, refused[i].bytes, refused[i].len), -1);
    assert_int_equal(lua_gettop(L), base);
  }
  msgpack_sbuffer_destroy(&sb);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_scalars, setup, teardown),
      cmocka_unit_test_setup_teardown(test_strings, setup, teardown),
      cmocka_unit_test_setup_teardown(test_exact_encodings, setup, teardown),
      cmocka_unit_test_setup_teardown(test_tables, setup, teardown),
      cmocka_unit_test_setup_teardown(test_numbers_stay_distinct, setup, teardown),
      cmocka_unit_test_setup_teardown(test_nesting_limits, setup, teardown),
      cmocka_unit_test_setup_teardown(test_refs, setup, teardown),
      cmocka_unit_test_setup_teardown(test_encode_errors, setup, teardown),
      cmocka_unit_test_setup_teardown(test_decode_errors, setup, teardown),
      cmocka_unit_test_setup_teardown(test_decode_depth, setup, teardown),
      cmocka_unit_test_setup_teardown(test_decode_other_forms, setup, teardown),
      cmocka_unit_test_setup_teardown(test_fuzz, setup, teardown),
      cmocka_unit_test_setup_teardown(test_fast_path_matches_parser, setup, teardown),
      cmocka_unit_test_setup_teardown(test_string_cache_is_exact, setup, teardown),
      cmocka_unit_test_setup_teardown(test_appends, setup, teardown),
      cmocka_unit_test_setup_teardown(test_small_values, setup, teardown),
      cmocka_unit_test_setup_teardown(test_small_maps, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
