/* codec.h: Lua values <-> MessagePack (libmsgpack), the one wire format. */
#ifndef LORE_CODEC_H
#define LORE_CODEC_H

#include <lua.h>
#include <msgpack.h>
#include <stddef.h>

#define CODEC_MAX_DEPTH 64 /* deeper nesting is refused */
/* One message, event or snapshot encodes at most this many values and bytes:
 * a table that shares subtables (t = {a = t2, b = t2} forty levels deep is
 * 2 KB of Lua and 2^40 values) is refused instead of hanging the sender. */
#define CODEC_MAX_VALUES ((size_t)1 << 22)
#define CODEC_MAX_BYTES ((size_t)64 << 20)
#define CODEC_ERR_MAX 256

/*
 * Encodes the value at `idx` (nil, boolean, integer, float, string, ref, or a
 * table of these) and appends it to `buf`. `root` names the value in error
 * messages ("message", "event", ...). Integers and floats stay distinct
 * (1 and 1.0 round-trip as themselves). A table whose keys are exactly 1..n is
 * an array, any other table a map. Refs are the extension type REF_EXT_TYPE.
 * On error returns -1, leaves `buf` with unspecified extra bytes (callers
 * reset it), and writes a message naming the key path into err, e.g.
 * "cannot encode a function at message.items[3].f". Never raises.
 */
int codec_encode(lua_State *L, int idx, const char *root, msgpack_sbuffer *buf, char *err,
                 size_t errlen);

/*
 * Decodes one value from data[0..len) and pushes it. Returns 0, or -1 with a
 * message in err and nothing pushed (truncated or malformed bytes, unknown
 * extension, nesting deeper than CODEC_MAX_DEPTH, trailing bytes). Never raises
 * except on memory exhaustion.
 */
int codec_decode(lua_State *L, const char *data, size_t len, char *err, size_t errlen);

/*
 * Checks that data[0..len) is exactly one value codec_decode would accept (the
 * same parser, limits and refusals) without building it: for the host side,
 * which has no Lua state. Returns 0, or -1 with a message in err (err may be
 * NULL). When root is not NULL it also reports the value's top level: its
 * type, and for an array its first item, for a map the value under root->key
 * (found: there is one; found_str: it is a string, at str/str_len, pointing
 * into data).
 */
enum { CODEC_ROOT_OTHER, CODEC_ROOT_ARRAY, CODEC_ROOT_MAP };
typedef struct codec_root {
  const char *key; /* in: the map key to look for (NULL: none) */
  int type;
  int found, found_str;
  const char *str;
  size_t str_len;
} codec_root;
int codec_check(const char *data, size_t len, codec_root *root, char *err, size_t errlen);

/*
 * The strings a decoder made recently (map keys above all: the same few in
 * every message), so that decoding one again skips Lua's interning: a
 * direct-mapped table of short strings, anchored in a Lua table. One per Lua
 * state, used by one thread. codec_strings_init makes the anchor (0, or -1
 * when out of memory: decoding then works without the cache);
 * codec_strings_free releases it.
 */
#define CODEC_STRINGS 256
#define CODEC_STRING_MAX 32 /* longer strings are not cached */
typedef struct codec_strings {
  int ref; /* registry ref of the anchor table, or LUA_NOREF */
  struct {
    const char *p; /* the cached Lua string's bytes (the anchor keeps it alive) */
    size_t len;
  } slot[CODEC_STRINGS];
} codec_strings;
int codec_strings_init(lua_State *L, codec_strings *c);
void codec_strings_free(lua_State *L, codec_strings *c);
/* codec_decode, with the string cache c (NULL: none). */
int codec_decode_cached(lua_State *L, codec_strings *c, const char *data, size_t len, char *err,
                        size_t errlen);
/* codec_decode_cached for many values in a row (a replay page), without fetching the cache's
 * anchor table for each: codec_strings_push pushes it and returns its stack index (0, pushing
 * nothing, when c is NULL or has no anchor); codec_decode_anchored then decodes with c and
 * that index, which must stay valid (and the anchor there) across the calls. */
int codec_strings_push(lua_State *L, codec_strings *c);
int codec_decode_anchored(lua_State *L, codec_strings *c, int anchor, const char *data, size_t len,
                          char *err, size_t errlen);
/* codec_decode_cached without its fast path (codec_fast.c): libmsgpack's parser alone, which
 * has the last word on every input the fast path does not take. Tests compare the two. */
int codec_decode_parser(lua_State *L, codec_strings *c, const char *data, size_t len, char *err,
                        size_t errlen);

#endif
