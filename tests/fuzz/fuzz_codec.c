/*
 * fuzz_codec.c: codec_decode on arbitrary bytes; whatever decodes must re-encode stably.
 *
 * input -> v1 -> first -> v2 -> second: first and second must be the same bytes, up to the
 * order of map entries (see canonical.h: codec_encode follows lua_next, and two tables with
 * the same contents but a different history iterate differently, so that order is not
 * stable even for ordinary maps). LORE_FUZZ_STRICT_ORDER=1 in the environment compares the
 * raw bytes instead, order included.
 */
#include <lauxlib.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "canonical.h"
#include "codec.h"
#include "codec_small.h"
#include "ref.h"

/* A broken invariant: libFuzzer keeps the input that led here as a crash file. */
static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "fuzz_codec: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  abort();
}

static void dump(const char *name, const msgpack_sbuffer *b) {
  fprintf(stderr, "%s (%zu bytes):", name, b->size);
  for (size_t i = 0; i < b->size && i < 512; i++)
    fprintf(stderr, " %02x", (unsigned char)b->data[i]);
  fprintf(stderr, b->size > 512 ? " ...\n" : "\n");
}

static void expect_top(lua_State *L, int want, const char *after) {
  if (lua_gettop(L) != want)
    die("%d values on the Lua stack after %s, expected %d", lua_gettop(L), after, want);
}

/* Encodes the value on top of the stack into a fresh buffer (the caller destroys it). */
static void encode_top(lua_State *L, msgpack_sbuffer *out, const char *what) {
  char err[CODEC_ERR_MAX] = "";
  int top = lua_gettop(L);
  msgpack_sbuffer_init(out);
  if (codec_encode(L, -1, "value", out, err, sizeof err) != 0)
    die("%s does not encode: %s", what, err);
  expect_top(L, top, "an encode");
}

static int raw_equal(const msgpack_sbuffer *a, const msgpack_sbuffer *b) {
  return a->size == b->size && memcmp(a->data, b->data, a->size) == 0;
}

static int same_encoding(const msgpack_sbuffer *a, const msgpack_sbuffer *b) {
  static int strict = -1;
  if (strict < 0)
    strict = getenv("LORE_FUZZ_STRICT_ORDER") && atoi(getenv("LORE_FUZZ_STRICT_ORDER"));
  if (raw_equal(a, b)) return 1;
  if (strict) return 0;
  msgpack_sbuffer ca, cb;
  msgpack_sbuffer_init(&ca);
  msgpack_sbuffer_init(&cb);
  if (canonical_msgpack(a->data, a->size, CODEC_MAX_DEPTH, &ca) != 0 ||
      canonical_msgpack(b->data, b->size, CODEC_MAX_DEPTH, &cb) != 0)
    die("codec_encode wrote malformed MessagePack");
  int same = raw_equal(&ca, &cb);
  msgpack_sbuffer_destroy(&ca);
  msgpack_sbuffer_destroy(&cb);
  return same;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* A state per input: nothing carries over between inputs, and a leak in one
   * shows up as a leak (lua_close frees everything the codec made). */
  lua_State *L = luaL_newstate();
  if (!L) return 0;
  ref_init(L);
  char err[CODEC_ERR_MAX] = "";
  if (codec_decode(L, (const char *)data, size, err, sizeof err) != 0) {
    expect_top(L, 0, "a failed decode");
    if (!err[0]) die("a failed decode gave no message");
    lua_close(L);
    return 0;
  }
  expect_top(L, 1, "a decode");

  msgpack_sbuffer first, second;
  encode_top(L, &first, "a decoded value");
  /* the small-message encoder (a tell's fast path) writes exactly the general one's bytes */
  char small[CODEC_SMALL_MAX];
  size_t small_len = codec_encode_small(L, -1, small);
  if (small_len && (small_len != first.size || memcmp(small, first.data, small_len) != 0)) {
    dump("codec_encode", &first);
    die("codec_encode_small wrote other bytes (%zu)", small_len);
  }
  if (codec_decode(L, first.data, first.size, err, sizeof err) != 0) {
    dump("first encoding", &first);
    die("the codec's own encoding does not decode: %s", err);
  }
  expect_top(L, 2, "decoding the first encoding");
  encode_top(L, &second, "the value decoded from the first encoding");
  if (!same_encoding(&first, &second)) {
    dump("first encoding", &first);
    dump("second encoding", &second);
    die("the round trip is not stable");
  }
  msgpack_sbuffer_destroy(&first);
  msgpack_sbuffer_destroy(&second);
  lua_close(L);
  return 0;
}
