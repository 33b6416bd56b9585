/* codec_bytes.h: MessagePack's big-endian numbers read from unaligned bytes, for the
 * decoders that read the format directly (codec_fast.c, codec_page.c). */
#ifndef LORE_CODEC_BYTES_H
#define LORE_CODEC_BYTES_H

#include <stdint.h>
#include <string.h>

static inline uint16_t be16(const unsigned char *p) { return (uint16_t)(p[0] << 8 | p[1]); }

static inline uint32_t be32(const unsigned char *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return __builtin_bswap32(v);
}

static inline uint64_t be64(const unsigned char *p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return __builtin_bswap64(v);
}

#endif
