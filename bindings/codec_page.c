/* codec_page.c: the events of a replay page decoded with the page's own string slots, and
 * the shape most events have (a small map of short-string keys to plain values) decoded
 * without the general decoder's recursion. */
#include "codec_page.h"

#include <stdint.h>
#include <string.h>

#include "codec_bytes.h"
#include "codec_strings.h"

/* A page of fewer events than this gets SMALL_PAGE_SLOTS slots: with a few events, making
 * a slot per cache slot (a nil each on the stack) costs more than all of its decodes. */
#define SMALL_PAGE_EVENTS 32
#define SMALL_PAGE_SLOTS 32

/* A page whose events keep failing the flat path (nested values, say) stops trying it: each
 * try costs the start of a table that is then thrown away. */
#define FLAT_GIVE_UP 16

_Static_assert(CODEC_STRINGS <= 256, "a slot hint is one byte");
_Static_assert(SMALL_PAGE_SLOTS <= CODEC_STRINGS, "a small page has fewer slots");

int codec_page_open_for(lua_State *L, codec_page *pg, codec_strings *c, int64_t events) {
  pg->strings = NULL;
  pg->anchor = pg->slots = pg->window = pg->used = 0;
  pg->flat_failures = 0;
  if (!c) return 0;
  int window = events < SMALL_PAGE_EVENTS ? SMALL_PAGE_SLOTS : CODEC_STRINGS;
  if (!lua_checkstack(L, window + CODEC_PAGE_ROOM + 1)) return -1;
  pg->anchor = codec_strings_push(L, c);
  if (!pg->anchor) return 0; /* the cache has no anchor: decoding goes uncached */
  pg->slots = pg->anchor + 1;
  pg->window = window;
  lua_settop(L, pg->anchor + window);
  memset(pg->pos, 0, sizeof pg->pos);
  memset(pg->key_hint, 0, sizeof pg->key_hint);
  memset(pg->value_hint, 0, sizeof pg->value_hint);
  pg->strings = c;
  return 0;
}

int codec_page_open(lua_State *L, codec_page *pg, codec_strings *c) {
  return codec_page_open_for(L, pg, c, INT64_MAX);
}

/* Pushes the string p[0..l), from the page's slot when the cache holds it: the same string
 * codec_fast.c's push_str would push, and the cache updated the same way on a miss. *hint
 * is the cache slot the string at the same place of the event before was found in: events
 * of one stream mostly repeat their keys in the same order, and a cache slot holding the
 * same bytes is the right string whatever slot the hash would choose, so a hit there skips
 * the hash. */
static inline __attribute__((always_inline)) void push_string(lua_State *L, codec_page *pg,
                                                              const char *p, uint32_t l,
                                                              uint8_t *hint) {
  codec_strings *c = pg->strings;
  if (!c || l > CODEC_STRING_MAX) {
    lua_pushlstring(L, p, l);
    return;
  }
  size_t i = *hint;
  const char *have = c->slot[i].p;
  int s = pg->pos[i] - 1;
  if (have && s >= 0 && pg->ptr[s] == have && c->slot[i].len == l && codec_same(have, p, l)) {
    lua_pushvalue(L, pg->slots + s);
    return;
  }
  i = codec_string_slot(p, l);
  *hint = (uint8_t)i;
  have = c->slot[i].p;
  s = pg->pos[i] - 1;
  if (have && c->slot[i].len == l && codec_same(have, p, l)) {
    if (s >= 0 && pg->ptr[s] == have) {
      lua_pushvalue(L, pg->slots + s);
      return;
    }
    lua_rawgeti(L, pg->anchor, (lua_Integer)i + 1);
  } else {
    c->slot[i].p = lua_pushlstring(L, p, l);
    c->slot[i].len = l;
    lua_pushvalue(L, -1);
    lua_rawseti(L, pg->anchor, (lua_Integer)i + 1);
  }
  if (s < 0) {
    if (pg->used == pg->window) return; /* every slot taken: fetched from the cache each time */
    s = pg->used++;
    pg->pos[i] = (uint16_t)(s + 1);
  }
  lua_pushvalue(L, -1);
  lua_replace(L, pg->slots + s);
  pg->ptr[s] = c->slot[i].p;
}

/* A fixmap whose keys are fixstr and whose values are nil, booleans, numbers or strings,
 * pushed as codec_fast.c would push it (a map of n entries takes at least 2n bytes, so its
 * pre-size is n there as here). -1: anything else (the caller drops what was pushed). */
static int flat_map(lua_State *L, codec_page *pg, const unsigned char *p,
                    const unsigned char *end) {
  if (p >= end || (*p & 0xf0) != 0x80) return -1;
  unsigned n = *p++ & 0x0f;
  lua_createtable(L, 0, (int)n);
  for (unsigned k = 0; k < n; k++) {
    if (p >= end || (*p & 0xe0) != 0xa0) return -1;
    uint32_t l = *p++ & 0x1f;
    if ((size_t)(end - p) < l) return -1;
    push_string(L, pg, (const char *)p, l, &pg->key_hint[k]);
    p += l;
    if (p >= end) return -1;
    unsigned t = *p++;
    size_t left = (size_t)(end - p);
    if (t <= 0x7f) {
      lua_pushinteger(L, (lua_Integer)t);
    } else if (t >= 0xe0) {
      lua_pushinteger(L, (lua_Integer)(int8_t)t);
    } else if (t >= 0xa0 && t <= 0xbf) {
      l = t & 0x1f;
      if (left < l) return -1;
      push_string(L, pg, (const char *)p, l, &pg->value_hint[k]);
      p += l;
    } else {
      switch (t) {
        case 0xc0:
          lua_pushnil(L);
          break;
        case 0xc2:
        case 0xc3:
          lua_pushboolean(L, t == 0xc3);
          break;
        case 0xd9: /* str 8 */
          if (left < 1 || left - 1 < p[0]) return -1;
          l = p[0];
          push_string(L, pg, (const char *)p + 1, l, &pg->value_hint[k]);
          p += 1 + l;
          break;
        case 0xcc:
        case 0xd0:
          if (left < 1) return -1;
          lua_pushinteger(L, t == 0xcc ? (lua_Integer)p[0] : (lua_Integer)(int8_t)p[0]);
          p += 1;
          break;
        case 0xcd:
        case 0xd1:
          if (left < 2) return -1;
          lua_pushinteger(L, t == 0xcd ? (lua_Integer)be16(p) : (lua_Integer)(int16_t)be16(p));
          p += 2;
          break;
        case 0xce:
        case 0xd2:
          if (left < 4) return -1;
          lua_pushinteger(L, t == 0xce ? (lua_Integer)be32(p) : (lua_Integer)(int32_t)be32(p));
          p += 4;
          break;
        case 0xca: {
          if (left < 4) return -1;
          uint32_t u = be32(p);
          float x;
          memcpy(&x, &u, 4);
          lua_pushnumber(L, (lua_Number)x);
          p += 4;
          break;
        }
        case 0xcb: {
          if (left < 8) return -1;
          uint64_t u = be64(p);
          double x;
          memcpy(&x, &u, 8);
          lua_pushnumber(L, (lua_Number)x);
          p += 8;
          break;
        }
        case 0xd3:
          if (left < 8) return -1;
          lua_pushinteger(L, (lua_Integer)(int64_t)be64(p));
          p += 8;
          break;
        case 0xcf: {
          if (left < 8) return -1;
          uint64_t u = be64(p);
          if (u <= (uint64_t)LUA_MAXINTEGER)
            lua_pushinteger(L, (lua_Integer)u);
          else
            lua_pushnumber(L, (lua_Number)u);
          p += 8;
          break;
        }
        default:
          return -1;
      }
    }
    lua_rawset(L, -3);
  }
  return p == end ? 0 : -1;
}

int codec_page_decode(lua_State *L, codec_page *pg, const char *data, size_t len, char *err,
                      size_t errlen) {
  int base = lua_gettop(L);
  if (pg->flat_failures < FLAT_GIVE_UP) {
    if (pg->strings &&
        flat_map(L, pg, (const unsigned char *)data, (const unsigned char *)data + len) == 0)
      return 0;
    lua_settop(L, base);
    pg->flat_failures++;
  }
  return codec_decode_anchored(L, pg->strings, pg->anchor, data, len, err, errlen);
}
