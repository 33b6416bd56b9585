/* codec_strings.h: the slot and the comparison of the decoders' string cache (codec_strings,
 * codec.h), shared by libmsgpack's callbacks (codec.c) and the fast path (codec_fast.c). */
#ifndef LORE_CODEC_STRINGS_H
#define LORE_CODEC_STRINGS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "codec.h"

static inline uint64_t codec_load64(const char *p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return v;
}

static inline uint32_t codec_load32(const char *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}

/* The slot of p[0..l) (l <= CODEC_STRING_MAX). A replay decodes every key of every event, so
 * this reads at most two words of the string rather than looping over its bytes: strings
 * that differ only in their middle share a slot, which costs a miss, never a wrong string
 * (codec_same compares all of them). */
static inline size_t codec_string_slot(const char *p, uint32_t l) {
  uint64_t a, b;
  if (l >= 8) {
    a = codec_load64(p);
    b = codec_load64(p + l - 8);
  } else if (l >= 4) {
    a = codec_load32(p);
    b = codec_load32(p + l - 4);
  } else {
    a = l ? (uint64_t)(unsigned char)p[0] << 16 | (uint64_t)(unsigned char)p[l / 2] << 8 |
                (unsigned char)p[l - 1]
          : 0;
    b = 0;
  }
  uint64_t h = (a ^ (b * 0x9E3779B97F4A7C15ull) ^ l) * 0xFF51AFD7ED558CCDull;
  return (size_t)(h >> 56) & (CODEC_STRINGS - 1);
}

/* Whether p[0..l) and q[0..l) hold the same bytes (l <= CODEC_STRING_MAX): word compares
 * instead of a call to memcmp, for the few bytes of a map key. */
static inline int codec_same(const char *p, const char *q, uint32_t l) {
  if (l >= 8) {
    for (uint32_t i = 0; i + 8 <= l; i += 8)
      if (codec_load64(p + i) != codec_load64(q + i)) return 0;
    return codec_load64(p + l - 8) == codec_load64(q + l - 8);
  }
  if (l >= 4)
    return codec_load32(p) == codec_load32(q) && codec_load32(p + l - 4) == codec_load32(q + l - 4);
  for (uint32_t i = 0; i < l; i++)
    if (p[i] != q[i]) return 0;
  return 1;
}

#endif
