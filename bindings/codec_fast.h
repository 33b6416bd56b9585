/* codec_fast.h: the fast path of codec_decode_cached (codec_fast.c). */
#ifndef LORE_CODEC_FAST_H
#define LORE_CODEC_FAST_H

#include <lua.h>
#include <stddef.h>

#include "codec.h"

/* Decodes data[0..len) and pushes the value, as codec_decode_cached would, with the string
 * cache c (NULL: none) whose anchor table is at stack index `anchor`. Returns 0; or -1 when
 * it gives up (anything but plain well-formed input), leaving values on the stack for the
 * caller to drop before it decodes the input the slow way. May raise a Lua memory error. */
int codec_decode_fast(lua_State *L, codec_strings *c, int anchor, const char *data, size_t len);

/* The same for a value that is a nil, boolean or number alone; -1 (nothing pushed) for
 * anything else, malformed input included. Never raises. */
int codec_decode_scalar(lua_State *L, const char *data, size_t len);
/* codec_decode_scalar for a caller with a free stack slot (its C function's frame has
 * LUA_MINSTACK): no lua_checkstack, a fifth of a self tell's decode. */
int codec_decode_scalar_in_room(lua_State *L, const char *data, size_t len);

#endif
