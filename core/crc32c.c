/* crc32c.c: CRC32C (Castagnoli): slicing-by-8, or the SSE4.2 instruction where there is one. */
#include "crc32c.h"

#include <pthread.h>
#include <string.h>

/* Reflected Castagnoli polynomial 0x1EDC6F41. */
#define CRC32C_POLY 0x82F63B78u

static uint32_t table[8][256];
static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static uint32_t (*crc32c_impl)(uint32_t, const void *, size_t);

/* The bulk loop reads 8 bytes at a time as one little-endian word; memcpy keeps
 * unaligned reads defined (the compiler turns it into one load). */
static uint64_t load_le64(const unsigned char *p) {
  uint64_t v;
  memcpy(&v, p, sizeof v);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  v = __builtin_bswap64(v);
#endif
  return v;
}

/* Operates on the inverted register: callers pass ~crc and invert the result. */
static uint32_t slice8(uint32_t c, const unsigned char *p, size_t len) {
  while (len && ((uintptr_t)p & 7)) {
    c = table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
    len--;
  }
  while (len >= 8) {
    uint64_t w = load_le64(p) ^ c;
    c = table[7][w & 0xff] ^ table[6][(w >> 8) & 0xff] ^ table[5][(w >> 16) & 0xff] ^
        table[4][(w >> 24) & 0xff] ^ table[3][(w >> 32) & 0xff] ^ table[2][(w >> 40) & 0xff] ^
        table[1][(w >> 48) & 0xff] ^ table[0][w >> 56];
    p += 8;
    len -= 8;
  }
  while (len--) c = table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
  return c;
}

static void crc32c_init(void);

uint32_t crc32c_portable(uint32_t crc, const void *data, size_t len) {
  pthread_once(&init_once, crc32c_init);
  if (!data) return crc;
  return ~slice8(~crc, data, len);
}

/* crc32c_portable without the once-check: crc32c already did it. */
static uint32_t slice8_entry(uint32_t crc, const void *data, size_t len) {
  if (!data) return crc;
  return ~slice8(~crc, data, len);
}

#if defined(__x86_64__) && defined(__GNUC__)
/* The crc32 instruction computes exactly this polynomial, about 10x faster than
 * the tables; the replay of a large stream checks every payload with it. */
__attribute__((target("sse4.2"))) static uint32_t crc32c_sse42(uint32_t crc, const void *data,
                                                               size_t len) {
  if (!data) return crc;
  const unsigned char *p = data;
  uint64_t c = ~crc;
  while (len && ((uintptr_t)p & 7)) {
    c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
    len--;
  }
  while (len >= 8) {
    uint64_t w;
    memcpy(&w, p, sizeof w);
    c = __builtin_ia32_crc32di(c, w);
    p += 8;
    len -= 8;
  }
  while (len--) c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
  return ~(uint32_t)c;
}
#endif

static void crc32c_init(void) {
  for (uint32_t n = 0; n < 256; n++) {
    uint32_t c = n;
    for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ CRC32C_POLY : c >> 1;
    table[0][n] = c;
  }
  for (uint32_t n = 0; n < 256; n++) {
    uint32_t c = table[0][n];
    for (int k = 1; k < 8; k++) {
      c = table[0][c & 0xff] ^ (c >> 8);
      table[k][n] = c;
    }
  }
  crc32c_impl = slice8_entry;
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("sse4.2")) crc32c_impl = crc32c_sse42;
#endif
}

/* Incremental: crc32c(crc32c(0, a), b) == crc32c(0, a followed by b). */
uint32_t crc32c(uint32_t crc, const void *data, size_t len) {
  pthread_once(&init_once, crc32c_init);
  return crc32c_impl(crc, data, len);
}
