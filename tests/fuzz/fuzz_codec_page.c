/*
 * fuzz_codec_page.c: a replay page's decoder (codec_page.c) against the general parser.
 *
 * The input is a page: events, each a length byte and that many bytes (the last one cut
 * short where the input ends). Every event is decoded by the page, with a string cache
 * whose slots the page keeps, and by codec_decode_parser without one: both must refuse it
 * with the same message, or both decode values that are deeply equal. After each event the
 * same bytes are also decoded once through the cache outside the page, as a behaviour's
 * apply may between two events, which replaces cached strings under the page's slots.
 */
#include <lauxlib.h>
#include <lualib.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "codec_page.h"
#include "ref.h"

#include "../lua_deep_equal.h"

/* A broken invariant: libFuzzer keeps the input that led here as a crash file. */
static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "fuzz_codec_page: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  abort();
}

static void one_event(lua_State *L, int deq, codec_page *pg, codec_strings *cache, const char *data,
                      size_t len) {
  char perr[CODEC_ERR_MAX] = "", err[CODEC_ERR_MAX] = "";
  int base = lua_gettop(L);
  int page_rc = codec_page_decode(L, pg, data, len, perr, sizeof perr);
  if (lua_gettop(L) != base + (page_rc == 0)) die("the page left the stack unbalanced");
  int rc = codec_decode_parser(L, NULL, data, len, err, sizeof err);
  if (page_rc != rc)
    die("the page %s what the parser %s", page_rc ? "refused" : "took", rc ? "refuses" : "takes");
  if (rc != 0) {
    if (strcmp(perr, err) != 0) die("different errors: page \"%s\", parser \"%s\"", perr, err);
  } else {
    lua_pushvalue(L, deq);
    lua_insert(L, -3);
    lua_call(L, 2, 1);
    if (!lua_toboolean(L, -1)) die("the page and the parser decoded different values");
  }
  lua_settop(L, base);
  if (codec_decode_cached(L, cache, data, len, err, sizeof err) == 0) lua_pop(L, 1);
  if (lua_gettop(L) != base) die("a cached decode left the stack unbalanced");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  lua_State *L = luaL_newstate(); /* a state per input: nothing carries over */
  if (!L) return 0;
  luaL_openlibs(L); /* deq needs the base and math libraries */
  ref_init(L);
  if (luaL_dostring(L, LUA_DEEP_EQUAL_SRC) != LUA_OK) die("deq: %s", lua_tostring(L, -1));
  lua_getglobal(L, "deq");
  int deq = lua_gettop(L);
  codec_strings cache;
  if (codec_strings_init(L, &cache) != 0) die("no string cache");
  codec_page pg;
  if (codec_page_open(L, &pg, &cache) != 0) die("codec_page_open failed");
  const char *p = (const char *)data, *end = p + size;
  while (p < end) {
    size_t len = (unsigned char)*p++;
    if (len > (size_t)(end - p)) len = (size_t)(end - p);
    one_event(L, deq, &pg, &cache, p, len);
    p += len;
  }
  lua_settop(L, deq);
  codec_strings_free(L, &cache);
  lua_close(L);
  return 0;
}
