/* codec_small.h: the encoder's fast path for a message that is one small value or flat map. */
#ifndef LORE_CODEC_SMALL_H
#define LORE_CODEC_SMALL_H

#include <lua.h>
#include <stddef.h>

/* Room for the longest encoding codec_encode_small produces. */
#define CODEC_SMALL_MAX 64

/*
 * Encodes the value at `idx` into out (CODEC_SMALL_MAX bytes) when it is nil, a
 * boolean, a number, a string of at most CODEC_SMALL_MAX - 2 bytes, or a map (a
 * table without t[1]) of at most 15 entries whose keys and values are such values
 * or refs, and its encoding fits, with exactly the bytes codec_encode would
 * append, and returns their length. Returns 0 for anything else (an array, a
 * nested table, a ref alone, a longer value, no value): the caller encodes it
 * with codec_encode. Never raises, never allocates; the stack is as it was.
 */
size_t codec_encode_small(lua_State *L, int idx, char *out);

#endif
