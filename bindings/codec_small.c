/* codec_small.c: a message that is one small value, encoded without the general encoder. */
#include "codec_small.h"

#include <msgpack.h>
#include <string.h>

#include "ref.h"

/* Most messages are a number, a short string or a small flat map ({ type = "get",
 * reply_to = ref }, { count = 5 }): the general encoder's setup (a stack check, its
 * traversal state, a growable buffer written a few bytes at a time) costs more
 * than packing them. libmsgpack's own packer writes here into a fixed buffer, so
 * the bytes are codec_encode's, by construction. */
typedef struct {
  char *out;
  size_t len;
} small_buf;

static int small_write(void *data, const char *buf, size_t len) {
  small_buf *b = data;
  if (len > CODEC_SMALL_MAX - b->len) return -1; /* does not fit: the caller declines */
  memcpy(b->out + b->len, buf, len);
  b->len += len;
  return 0;
}

/* Packs one value of Lua type `type` that is not a table (as codec.c's
 * enc_value does); -1 for anything it does not take or that does not fit.
 * Inlined where the packer is a local: its write callback is then a direct
 * call the compiler inlines (a self tell of a number is ~90 instructions
 * cheaper than through the callback pointer). */
static inline __attribute__((always_inline)) int small_value(lua_State *L, int idx, int type,
                                                             msgpack_packer *pk) {
  switch (type) {
    case LUA_TNIL:
      return msgpack_pack_nil(pk);
    case LUA_TBOOLEAN:
      return lua_toboolean(L, idx) ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
    case LUA_TNUMBER: /* as codec.c's enc_value: integers smallest form, floats float64 */
      if (lua_isinteger(L, idx)) return msgpack_pack_int64(pk, (int64_t)lua_tointeger(L, idx));
      return msgpack_pack_double(pk, (double)lua_tonumber(L, idx));
    case LUA_TSTRING: {
      size_t n;
      const char *s = lua_tolstring(L, idx, &n);
      if (n > CODEC_SMALL_MAX - 2) return -1; /* str8's header is 2 bytes */
      if (msgpack_pack_str(pk, n)) return -1;
      return n > 0 ? msgpack_pack_str_body(pk, s, n) : 0;
    }
    case LUA_TUSERDATA: { /* as codec.c's enc_ref */
      const lore_ref *r = ref_test(L, idx);
      char bytes[CODEC_SMALL_MAX];
      size_t n = r ? ref_serialize(r, bytes, sizeof bytes) : 0;
      if (n == 0) return -1;
      if (msgpack_pack_ext(pk, n, REF_EXT_TYPE)) return -1;
      return msgpack_pack_ext_body(pk, bytes, n);
    }
    default:
      return -1;
  }
}

/* A table with no t[1] (codec.c's map) of at most 15 entries, none of them a
 * table: codec.c's enc_map_onepass writes a fixmap header and the entries in
 * lua_next's order, as here. */
#define SMALL_MAP_MAX 15

static int small_map(lua_State *L, int idx, msgpack_packer *pk, small_buf *b) {
  if (lua_rawlen(L, idx) != 0 || !lua_checkstack(L, 4)) return -1; /* (ref_test: 2) */
  size_t start = b->len, count = 0;
  if (msgpack_pack_map(pk, 0)) return -1; /* its place; the count goes in below */
  int top = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    if (++count > SMALL_MAP_MAX || small_value(L, top + 1, lua_type(L, top + 1), pk) ||
        small_value(L, top + 2, lua_type(L, top + 2), pk)) {
      lua_settop(L, top);
      return -1;
    }
    lua_pop(L, 1);
  }
  b->out[start] = (char)(0x80 | count); /* fixmap */
  return 0;
}

size_t codec_encode_small(lua_State *L, int idx, char *out) {
  small_buf b = {out, 0};
  msgpack_packer pk;
  msgpack_packer_init(&pk, &b, small_write);
  int rc, type = lua_type(L, idx);
  switch (type) {
    case LUA_TNIL:
    case LUA_TBOOLEAN:
    case LUA_TNUMBER:
    case LUA_TSTRING:
      rc = small_value(L, idx, type, &pk);
      break;
    case LUA_TTABLE:
      rc = small_map(L, lua_absindex(L, idx), &pk, &b);
      break;
    default:
      return 0; /* a ref alone, a function, no value: the general encoder's (or its error) */
  }
  return rc ? 0 : b.len;
}
