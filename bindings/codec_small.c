/* codec_small.c: a message that is one small value, encoded without the general encoder. */
#include "codec_small.h"

#include <msgpack.h>
#include <string.h>

/* Most messages are a number or a short string: the general encoder's setup (a
 * stack check, its traversal state, a growable buffer) costs more than packing
 * them. libmsgpack's own packer writes here into a fixed buffer, so the bytes are
 * codec_encode's, by construction. */
typedef struct {
  char *out;
  size_t len;
} small_buf;

static int small_write(void *data, const char *buf, size_t len) {
  small_buf *b = data;
  memcpy(b->out + b->len, buf, len); /* bounded: the caller sized every value's encoding */
  b->len += len;
  return 0;
}

size_t codec_encode_small(lua_State *L, int idx, char *out) {
  small_buf b = {out, 0};
  msgpack_packer pk;
  msgpack_packer_init(&pk, &b, small_write);
  switch (lua_type(L, idx)) {
    case LUA_TNIL:
      msgpack_pack_nil(&pk);
      break;
    case LUA_TBOOLEAN:
      if (lua_toboolean(L, idx))
        msgpack_pack_true(&pk);
      else
        msgpack_pack_false(&pk);
      break;
    case LUA_TNUMBER: { /* as codec.c's enc_value: integers smallest form, floats float64 */
      if (lua_isinteger(L, idx))
        msgpack_pack_int64(&pk, (int64_t)lua_tointeger(L, idx));
      else
        msgpack_pack_double(&pk, (double)lua_tonumber(L, idx));
      break;
    }
    case LUA_TSTRING: {
      size_t n;
      const char *s = lua_tolstring(L, idx, &n);
      if (n > CODEC_SMALL_MAX - 2) return 0; /* str8's header is 2 bytes */
      msgpack_pack_str(&pk, n);
      if (n > 0) msgpack_pack_str_body(&pk, s, n);
      break;
    }
    default:
      return 0;
  }
  return b.len;
}
