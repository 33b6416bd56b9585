/* canonical.h: MessagePack bytes with every map's entries sorted, for comparing encodings. */
#ifndef LORE_FUZZ_CANONICAL_H
#define LORE_FUZZ_CANONICAL_H

#include <msgpack.h>
#include <stddef.h>

/*
 * codec_encode writes a map's entries in the order lua_next visits them, and
 * that order depends on the table's history (its size, the order its keys
 * were inserted), so one value can have several encodings that differ only
 * in the order of map entries. This rewrites one MessagePack value with the
 * entries of each map sorted by their bytes and everything else (headers,
 * scalars, their exact widths) copied as is: two encodings of the same value
 * have the same canonical form, and any other difference survives it.
 * Appends to `out`. Returns 0, or -1 if data[0..len) is not exactly one
 * well-formed value nested at most `max_depth` containers deep.
 */
int canonical_msgpack(const char *data, size_t len, int max_depth, msgpack_sbuffer *out);

#endif
