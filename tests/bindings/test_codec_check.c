/* test_codec_check.c: codec_check (the host side's check, no Lua) accepts exactly what
 * codec_decode accepts, and reports the top level the host reads (raised text, opts.id). */
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
#include "ref.h"

/* Both verdicts on the same bytes. */
static void agree(const char *data, size_t len, int want_ok) {
  lua_State *L = luaL_newstate();
  assert_non_null(L);
  char err_decode[CODEC_ERR_MAX], err_check[CODEC_ERR_MAX];
  int decoded = codec_decode(L, data, len, err_decode, sizeof err_decode) == 0;
  int checked = codec_check(data, len, NULL, err_check, sizeof err_check) == 0;
  lua_close(L);
  assert_int_equal(decoded, want_ok);
  assert_int_equal(checked, want_ok);
  if (!want_ok) assert_string_equal(err_check, err_decode); /* the same words */
}

static void nested(msgpack_sbuffer *sb, int depth) {
  msgpack_packer pk;
  msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
  for (int i = 0; i < depth; i++) msgpack_pack_array(&pk, 1);
  msgpack_pack_int(&pk, 1);
}

static void depth_limit(void **state) {
  (void)state;
  for (int depth = 30; depth <= 66; depth++) {
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    nested(&sb, depth);
    agree(sb.data, sb.size, depth <= CODEC_MAX_DEPTH);
    msgpack_sbuffer_destroy(&sb);
  }
}

static void refusals(void **state) {
  (void)state;
  agree("\x81\xc0\x01", 3, 0);                      /* {nil = 1} */
  agree("\x81\xcb\x7f\xf8\0\0\0\0\0\0\x01", 11, 0); /* {NaN = 1} */
  agree("\xd4\x07\x00", 3, 0);                      /* ext type 7 */
  agree("\xd4\x01\x09", 3, 0);                      /* a ref of an unknown form */
  agree("\x92\x01", 2, 0);                          /* truncated */
  agree("\x01\x02", 2, 0);                          /* trailing bytes */
  agree("\xc1", 1, 0);                              /* never used */
  agree(
      "\x82\xa1"
      "a"
      "\x01\xa1"
      "b"
      "\x92\x01\x02",
      9, 1); /* {a = 1, b = {1, 2}} */
  char ref[16] =
      "\xc7\x0e\x01\x02"
      "cart-42"; /* ext8, 14 bytes: a ref by name */
  ref[1] = 8;
  agree(ref, 3 + 8, 1);
}

static void root_report(void **state) {
  (void)state;
  /* {"boom", {...}}: the raised text is the first item */
  const char raised[] =
      "\x92\xa4"
      "boom"
      "\x91\x01";
  codec_root root = {0};
  assert_int_equal(codec_check(raised, sizeof raised - 1, &root, NULL, 0), 0);
  assert_int_equal(root.type, CODEC_ROOT_ARRAY);
  assert_true(root.found_str);
  assert_int_equal(root.str_len, 4);
  assert_memory_equal(root.str, "boom", 4);
  /* {x = {id = "inner"}, id = "outer"}: only the top level's id counts */
  const char opts[] = "\x82\xa1x\x81\xa2id\xa5inner\xa2id\xa5outer";
  codec_root r2 = {.key = "id"};
  assert_int_equal(codec_check(opts, sizeof opts - 1, &r2, NULL, 0), 0);
  assert_int_equal(r2.type, CODEC_ROOT_MAP);
  assert_true(r2.found && r2.found_str);
  assert_int_equal(r2.str_len, 5);
  assert_memory_equal(r2.str, "outer", 5);
  /* {id = 5}: found, not a string */
  codec_root r3 = {.key = "id"};
  assert_int_equal(codec_check("\x81\xa2id\x05", 5, &r3, NULL, 0), 0);
  assert_true(r3.found);
  assert_false(r3.found_str);
  /* a scalar */
  codec_root r4 = {.key = "id"};
  assert_int_equal(codec_check("\x05", 1, &r4, NULL, 0), 0);
  assert_int_equal(r4.type, CODEC_ROOT_OTHER);
  assert_false(r4.found);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(depth_limit),
      cmocka_unit_test(refusals),
      cmocka_unit_test(root_report),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
