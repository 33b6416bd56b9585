/* test_codec_page.c: a replay page's decoder (codec_page.c) gives exactly what the parser
 * gives, for the flat maps it takes itself and for everything it hands on. */
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
#include "codec_page.h"
#include "ref.h"

#include "../lua_deep_equal.h"

static const char *DEQ_LUA = LUA_DEEP_EQUAL_SRC;

static int setup(void **state) {
  lua_State *L = luaL_newstate();
  assert_non_null(L);
  luaL_openlibs(L);
  ref_init(L);
  assert_int_equal(luaL_dostring(L, DEQ_LUA), LUA_OK);
  *state = L;
  return 0;
}

static int teardown(void **state) {
  lua_close(*state);
  return 0;
}

static uint64_t rng_state = 0x2545f4914f6cdd1dULL;

static uint64_t rng(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

/* Decodes data with the page and with the parser (no cache): both fail with the same
 * message, or both succeed with deep-equal values. Returns whether the page decoded it. */
static int compare_one(lua_State *L, codec_page *pg, const char *data, size_t len) {
  char perr[CODEC_ERR_MAX] = "", err[CODEC_ERR_MAX] = "";
  int base = lua_gettop(L);
  int page_rc = codec_page_decode(L, pg, data, len, perr, sizeof perr);
  assert_int_equal(lua_gettop(L), base + (page_rc == 0));
  int rc = codec_decode_parser(L, NULL, data, len, err, sizeof err);
  assert_int_equal(lua_gettop(L), base + (page_rc == 0) + (rc == 0));
  if (page_rc != rc)
    fail_msg("the page %s what the parser %s", page_rc ? "refused" : "took",
             rc ? "refuses" : "takes");
  if (rc != 0) {
    assert_string_equal(perr, err);
    return 0;
  }
  lua_getglobal(L, "deq");
  lua_insert(L, -3);
  lua_call(L, 2, 1);
  if (!lua_toboolean(L, -1)) fail_msg("the page and the parser decoded different values");
  lua_settop(L, base);
  return 1;
}

static void encode(lua_State *L, const char *expr, msgpack_sbuffer *sb) {
  char code[512], err[CODEC_ERR_MAX];
  snprintf(code, sizeof code, "return %s", expr);
  if (luaL_dostring(L, code) != LUA_OK) fail_msg("%s: %s", expr, lua_tostring(L, -1));
  msgpack_sbuffer_clear(sb);
  if (codec_encode(L, -1, "event", sb, err, sizeof err)) fail_msg("%s: %s", expr, err);
  lua_pop(L, 1);
}

static const char *const EVENTS[] = {
    "{ type = 'added', sku = 'apple', qty = 3 }",
    "{ type = 'added', sku = 'pear', qty = -7, note = string.rep('x', 40) }",
    "{ a = 1.5, b = -0.0, c = 1/0, d = 0/0, e = true, f = false }",
    "{ n = math.maxinteger, m = math.mininteger, s = 300, t = 70000, u = 5000000000 }",
    "{ [string.rep('k', 31)] = string.rep('v', 32), [''] = '', z = string.rep('w', 200) }",
    "{ nested = { 1, 2, 3 }, type = 'x' }", /* not flat: handed on */
    "{ 1, 2, 3 }",
    "'just a string'",
    "42",
    "{}",
    "{ a = 1, b = 2, c = 3, d = 4, e = 5, f = 6, g = 7, h = 8, i = 9, j = 10, k = 11,"
    " l = 12, m = 13, n = 14, o = 15, p = 16 }", /* a map16: handed on */
};

/* Every kind of event, whole and mutated (truncated, bytes flipped), in one page of
 * `events` events (a short page has fewer slots than the strings it meets). */
static void page_matches_parser(lua_State *L, int64_t events) {
  codec_strings cache;
  assert_int_equal(codec_strings_init(L, &cache), 0);
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  int base = lua_gettop(L);
  codec_page pg;
  assert_int_equal(codec_page_open_for(L, &pg, &cache, events), 0);
  assert_int_equal(lua_gettop(L), base + 1 + pg.window);
  assert_true(pg.window > 0 && pg.window <= CODEC_STRINGS);
  int flat = 0;
  size_t n = sizeof EVENTS / sizeof EVENTS[0];
  for (size_t i = 0; i < n; i++) {
    encode(L, EVENTS[i], &sb);
    for (int round = 0; round < 3; round++) flat += compare_one(L, &pg, sb.data, sb.size);
  }
  assert_true(flat > 0);
  /* hand-made flat maps the encoder never writes: a nil value, float32, a uint64 above
   * maxinteger, a str8 value, a duplicate key, and maps with a str8 key or trailing bytes */
  static const char raw[][24] = {
      "\x81\xa1k\xc0",
      "\x81\xa1k\xca\x3f\xc0\x00\x00",
      "\x81\xa1k\xcf\xff\xff\xff\xff\xff\xff\xff\xff",
      "\x81\xa1k\xd9\x03"
      "abc",
      "\x82\xa1k\x01\xa1k\x02",
      "\x81\xd9\x01k\x01",
      "\x81\xa1k\x01\x01",
      "\x82\xa1k\x01",
  };
  static const size_t raw_len[] = {4, 8, 12, 8, 7, 5, 5, 4};
  for (size_t i = 0; i < sizeof raw / sizeof raw[0]; i++) compare_one(L, &pg, raw[i], raw_len[i]);
  char *m = malloc(512);
  assert_non_null(m);
  int decoded = 0;
  for (int i = 0; i < 30000; i++) {
    encode(L, EVENTS[rng() % 5], &sb); /* flat ones */
    assert_true(sb.size <= 512);
    memcpy(m, sb.data, sb.size);
    int flips = (int)(rng() % 3);
    for (int f = 0; f < flips; f++) m[rng() % sb.size] = (char)rng();
    size_t len = rng() % 8 == 0 ? rng() % sb.size : sb.size;
    decoded += compare_one(L, &pg, m, len);
  }
  assert_true(decoded > 1000);
  free(m);
  lua_settop(L, base);
  msgpack_sbuffer_destroy(&sb);
  codec_strings_free(L, &cache);
}

/* The string-cache slots a page opened for `events` events gets (INT64_MAX:
 * a page of unknown length, codec_page_open). */
static int window_for(lua_State *L, int64_t events) {
  codec_strings probe;
  assert_int_equal(codec_strings_init(L, &probe), 0);
  codec_page pg;
  int base = lua_gettop(L);
  int rc = events == INT64_MAX ? codec_page_open(L, &pg, &probe)
                               : codec_page_open_for(L, &pg, &probe, events);
  assert_int_equal(rc, 0);
  lua_settop(L, base);
  codec_strings_free(L, &probe);
  return pg.window;
}

static void test_page_matches_parser(void **state) {
  lua_State *L = *state;
  assert_int_equal(window_for(L, INT64_MAX), CODEC_STRINGS); /* unknown length: every slot */
  page_matches_parser(L, INT64_MAX);
}

/* A short page's slots run out (its events meet more strings than it has slots): the
 * strings past them still decode as the parser decodes them. */
static void test_short_page_matches_parser(void **state) {
  lua_State *L = *state;
  assert_true(window_for(L, 5) < CODEC_STRINGS);
  page_matches_parser(L, 5);
}

/* Other decodes with the same cache between a page's events (anything apply does) replace
 * cached strings; the page's slots must never push the string a slot held before. */
static void slots_follow_the_cache(lua_State *L, int64_t events) {
  codec_strings cache;
  assert_int_equal(codec_strings_init(L, &cache), 0);
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  char err[CODEC_ERR_MAX];
  int base = lua_gettop(L);
  codec_page pg;
  assert_int_equal(codec_page_open_for(L, &pg, &cache, events), 0);
  for (int i = 0; i < 5000; i++) {
    char expr[128];
    /* keys and values from a few thousand strings: every slot is replaced many times */
    snprintf(expr, sizeof expr, "{ ['k%d'] = 'v%d', kind = 'k%d' }", (int)(rng() % 3000),
             (int)(rng() % 3000), (int)(rng() % 3000));
    encode(L, expr, &sb);
    compare_one(L, &pg, sb.data, sb.size);
    snprintf(expr, sizeof expr, "{ other = 'k%d', ['v%d'] = 1 }", (int)(rng() % 3000),
             (int)(rng() % 3000));
    encode(L, expr, &sb);
    assert_int_equal(codec_decode_cached(L, &cache, sb.data, sb.size, err, sizeof err), 0);
    lua_pop(L, 1);
  }
  assert_int_equal(pg.used, pg.window); /* every slot was handed out */
  lua_settop(L, base);
  msgpack_sbuffer_destroy(&sb);
  codec_strings_free(L, &cache);
}

static void test_slots_follow_the_cache(void **state) { slots_follow_the_cache(*state, INT64_MAX); }

static void test_short_page_slots_follow_the_cache(void **state) {
  slots_follow_the_cache(*state, 5);
}

/* Without a cache the page pushes nothing and still decodes. */
static void test_without_cache(void **state) {
  lua_State *L = *state;
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  int base = lua_gettop(L);
  codec_page pg;
  assert_int_equal(codec_page_open(L, &pg, NULL), 0);
  assert_int_equal(lua_gettop(L), base);
  for (size_t i = 0; i < sizeof EVENTS / sizeof EVENTS[0]; i++) {
    encode(L, EVENTS[i], &sb);
    compare_one(L, &pg, sb.data, sb.size);
  }
  assert_int_equal(lua_gettop(L), base);
  msgpack_sbuffer_destroy(&sb);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_page_matches_parser, setup, teardown),
      cmocka_unit_test_setup_teardown(test_short_page_matches_parser, setup, teardown),
      cmocka_unit_test_setup_teardown(test_slots_follow_the_cache, setup, teardown),
      cmocka_unit_test_setup_teardown(test_short_page_slots_follow_the_cache, setup, teardown),
      cmocka_unit_test_setup_teardown(test_without_cache, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
