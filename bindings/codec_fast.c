/* codec_fast.c: a direct MessagePack -> Lua decoder for well-formed input, the fast path of
 * codec_decode_cached. */
#include "codec_fast.h"

#include <stdint.h>
#include <string.h>

#include "codec_bytes.h"
#include "codec_strings.h"
#include "ref.h"

/*
 * libmsgpack's parser (codec.c) is a generic state machine: a callback per value, a switch on
 * its state per byte. For the small events of a replay it was most of the decoding's cost.
 * This decoder reads the same format by recursive descent and builds exactly what codec.c's
 * callbacks build: the same values, the same table pre-sizes (the same budget), the same
 * string cache. It never reports an error: on anything it does not accept (truncated or
 * malformed input, a nil or NaN map key, an extension other than a well-formed ref, nesting
 * deeper than FAST_MAX_DEPTH, trailing bytes) it gives up, and codec.c decodes the input
 * again with the parser, which accepts or refuses it with its own message. So the fast path
 * can only ever make a decode faster, never change its outcome.
 */

/* Deep enough for any usual message; well below CODEC_MAX_DEPTH, so whatever nests within
 * it, the parser accepts as well. */
#define FAST_MAX_DEPTH 16

typedef struct fast {
  lua_State *L;
  const unsigned char *p, *end;
  size_t budget; /* as dec_user.budget in codec.c */
  codec_strings *strings;
  int anchor;
} fast;

/* codec.c's dec_presize. */
static inline int presize(fast *f, uint32_t n) {
  size_t want = n < f->budget ? n : f->budget;
  if (want > INT32_MAX) want = INT32_MAX;
  f->budget -= want;
  return (int)want;
}

/* codec.c's dec_cb_str. */
static inline int push_str(fast *f, uint32_t l) {
  if ((size_t)(f->end - f->p) < l) return -1;
  const char *p = (const char *)f->p;
  f->p += l;
  codec_strings *c = f->strings;
  if (!c || l > CODEC_STRING_MAX) {
    lua_pushlstring(f->L, p, l);
    return 0;
  }
  size_t i = codec_string_slot(p, l);
  if (c->slot[i].p && c->slot[i].len == l && codec_same(c->slot[i].p, p, l)) {
    lua_rawgeti(f->L, f->anchor, (lua_Integer)i + 1);
    return 0;
  }
  c->slot[i].p = lua_pushlstring(f->L, p, l);
  c->slot[i].len = l;
  lua_pushvalue(f->L, -1);
  lua_rawseti(f->L, f->anchor, (lua_Integer)i + 1);
  return 0;
}

/* An extension of `l` data bytes after its type byte: a ref, or give up. */
static int push_ext(fast *f, uint32_t l) {
  if ((size_t)(f->end - f->p) < (size_t)l + 1) return -1;
  const unsigned char *p = f->p;
  f->p += (size_t)l + 1;
  if ((int8_t)p[0] != REF_EXT_TYPE) return -1;
  return ref_push_serialized(f->L, (const char *)p + 1, l) != 0 ? -1 : 0;
}

static int value(fast *f, int depth);

static int array(fast *f, uint32_t n, int depth) {
  if (depth >= FAST_MAX_DEPTH) return -1;
  lua_createtable(f->L, presize(f, n), 0);
  for (uint32_t i = 1; i <= n; i++) {
    if (value(f, depth + 1)) return -1;
    lua_rawseti(f->L, -2, (lua_Integer)i);
  }
  return 0;
}

static int map(fast *f, uint32_t n, int depth) {
  if (depth >= FAST_MAX_DEPTH) return -1;
  lua_State *L = f->L;
  lua_createtable(L, 0, presize(f, n));
  for (uint32_t i = 0; i < n; i++) {
    if (f->p < f->end && (*f->p & 0xe0) == 0xa0) { /* a fixstr key, as most keys are */
      f->p++;
      if (push_str(f, f->p[-1] & 0x1f) || value(f, depth + 1)) return -1;
      lua_rawset(L, -3);
      continue;
    }
    if (value(f, depth + 1)) return -1;
    int kt = lua_type(L, -1);
    if (kt == LUA_TNIL) return -1;
    if (kt == LUA_TNUMBER && !lua_isinteger(L, -1)) {
      lua_Number x = lua_tonumber(L, -1);
      if (x != x) return -1;
    }
    if (value(f, depth + 1)) return -1;
    lua_rawset(L, -3);
  }
  return 0;
}

/* Pushes the value at f->p and moves past it; -1: give up (the stack is the caller's to
 * restore). */
static int value(fast *f, int depth) {
  lua_State *L = f->L;
  if (f->p >= f->end) return -1;
  unsigned t = *f->p++;
  if (t <= 0x7f) {
    lua_pushinteger(L, (lua_Integer)t);
    return 0;
  }
  if (t >= 0xe0) {
    lua_pushinteger(L, (lua_Integer)(int8_t)t);
    return 0;
  }
  if (t >= 0xa0 && t <= 0xbf) return push_str(f, t & 0x1f);
  if (t >= 0x90 && t <= 0x9f) return array(f, t & 0x0f, depth);
  if (t >= 0x80 && t <= 0x8f) return map(f, t & 0x0f, depth);
  static const unsigned char size[32] = {
      /* c0 */ 0, 0, 0, 0, 1, 2, 4, 1, 2,  4, 4, 8, 1, 2, 4, 8,
      /* d0 */ 1, 2, 4, 8, 2, 3, 5, 9, 17, 1, 2, 4, 2, 4, 2, 4};
  size_t need = size[t - 0xc0];
  if ((size_t)(f->end - f->p) < need) return -1;
  const unsigned char *p = f->p;
  switch (t) {
    case 0xc0:
      lua_pushnil(L);
      return 0;
    case 0xc2:
      lua_pushboolean(L, 0);
      return 0;
    case 0xc3:
      lua_pushboolean(L, 1);
      return 0;
    case 0xc4: /* bin: a Lua string like str */
    case 0xd9:
      f->p += 1;
      return push_str(f, p[0]);
    case 0xc5:
    case 0xda:
      f->p += 2;
      return push_str(f, be16(p));
    case 0xc6:
    case 0xdb:
      f->p += 4;
      return push_str(f, be32(p));
    case 0xc7: /* ext 8/16/32: length, then the type byte */
      f->p += 1;
      return push_ext(f, p[0]);
    case 0xc8:
      f->p += 2;
      return push_ext(f, be16(p));
    case 0xc9: {
      uint32_t l = be32(p);
      if (l == UINT32_MAX) return -1; /* the parser's wrap-around case: malformed */
      f->p += 4;
      return push_ext(f, l);
    }
    case 0xca: {
      uint32_t u = be32(p);
      float x;
      memcpy(&x, &u, 4);
      f->p += 4;
      lua_pushnumber(L, (lua_Number)x);
      return 0;
    }
    case 0xcb: {
      uint64_t u = be64(p);
      double x;
      memcpy(&x, &u, 8);
      f->p += 8;
      lua_pushnumber(L, (lua_Number)x);
      return 0;
    }
    case 0xcc:
      f->p += 1;
      lua_pushinteger(L, (lua_Integer)p[0]);
      return 0;
    case 0xcd:
      f->p += 2;
      lua_pushinteger(L, (lua_Integer)be16(p));
      return 0;
    case 0xce:
      f->p += 4;
      lua_pushinteger(L, (lua_Integer)be32(p));
      return 0;
    case 0xcf: {
      uint64_t u = be64(p);
      f->p += 8;
      if (u <= (uint64_t)LUA_MAXINTEGER)
        lua_pushinteger(L, (lua_Integer)u);
      else
        lua_pushnumber(L, (lua_Number)u);
      return 0;
    }
    case 0xd0:
      f->p += 1;
      lua_pushinteger(L, (lua_Integer)(int8_t)p[0]);
      return 0;
    case 0xd1:
      f->p += 2;
      lua_pushinteger(L, (lua_Integer)(int16_t)be16(p));
      return 0;
    case 0xd2:
      f->p += 4;
      lua_pushinteger(L, (lua_Integer)(int32_t)be32(p));
      return 0;
    case 0xd3:
      f->p += 8;
      lua_pushinteger(L, (lua_Integer)(int64_t)be64(p));
      return 0;
    case 0xd4: /* fixext 1/2/4/8/16: the type byte, then the data */
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8:
      return push_ext(f, (uint32_t)need - 1);
    case 0xdc:
      f->p += 2;
      return array(f, be16(p), depth);
    case 0xdd:
      f->p += 4;
      return array(f, be32(p), depth);
    case 0xde:
      f->p += 2;
      return map(f, be16(p), depth);
    case 0xdf:
      f->p += 4;
      return map(f, be32(p), depth);
    default: /* 0xc1: never used */
      return -1;
  }
}

int codec_decode_fast(lua_State *L, codec_strings *c, int anchor, const char *data, size_t len) {
  if (len == 0 || !lua_checkstack(L, 2 * FAST_MAX_DEPTH + 8)) return -1;
  fast f = {L, (const unsigned char *)data, (const unsigned char *)data + len, len, c, anchor};
  if (value(&f, 0)) return -1;
  return f.p == f.end ? 0 : -1;
}

/* A nil, boolean or number: what most messages are. Pushing one allocates nothing and needs
 * neither the string cache nor the deep stack check. Integers and floats are read here as
 * value() reads them; the rest of the scalars go through value(). */
static int is_scalar(unsigned t) {
  return t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3 || (t >= 0xca && t <= 0xd3);
}

int codec_decode_scalar(lua_State *L, const char *data, size_t len) {
  if (len == 0 || !is_scalar((unsigned char)data[0]) || !lua_checkstack(L, 1)) return -1;
  return codec_decode_scalar_in_room(L, data, len);
}

int codec_decode_scalar_in_room(lua_State *L, const char *data, size_t len) {
  if (len == 0 || !is_scalar((unsigned char)data[0])) return -1;
  const unsigned char *p = (const unsigned char *)data + 1;
  switch ((unsigned char)data[0]) {
    case 0xcc:
      if (len != 2) return -1;
      lua_pushinteger(L, (lua_Integer)p[0]);
      return 0;
    case 0xcd:
      if (len != 3) return -1;
      lua_pushinteger(L, (lua_Integer)be16(p));
      return 0;
    case 0xce:
      if (len != 5) return -1;
      lua_pushinteger(L, (lua_Integer)be32(p));
      return 0;
    case 0xd3:
      if (len != 9) return -1;
      lua_pushinteger(L, (lua_Integer)(int64_t)be64(p));
      return 0;
    case 0xcb: {
      if (len != 9) return -1;
      uint64_t u = be64(p);
      double x;
      memcpy(&x, &u, 8);
      lua_pushnumber(L, (lua_Number)x);
      return 0;
    }
    default:
      break;
  }
  fast f = {L, (const unsigned char *)data, (const unsigned char *)data + len, len, NULL, 0};
  int base = lua_gettop(L);
  if (value(&f, 0) == 0 && f.p == f.end) return 0;
  lua_settop(L, base); /* trailing bytes: the parser reports them */
  return -1;
}
