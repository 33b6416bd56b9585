/* canonical.c: MessagePack bytes with every map's entries sorted, for comparing encodings. */
#include "canonical.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  const unsigned char *p;
  size_t len, off;
} reader;

/* Reads an n-byte big-endian number; -1 if the input ends first. */
static int read_be(reader *r, int n, uint64_t *v) {
  if (r->len - r->off < (size_t)n) return -1;
  *v = 0;
  for (int i = 0; i < n; i++) *v = (*v << 8) | r->p[r->off++];
  return 0;
}

static int skip(reader *r, uint64_t n) {
  if (r->len - r->off < n) return -1;
  r->off += (size_t)n;
  return 0;
}

static int copy(reader *r, size_t from, msgpack_sbuffer *out) {
  return msgpack_sbuffer_write(out, (const char *)r->p + from, r->off - from);
}

typedef struct {
  char *data;
  size_t size;
} entry;

static int entry_cmp(const void *a, const void *b) {
  const entry *x = a, *y = b;
  size_t n = x->size < y->size ? x->size : y->size;
  int c = memcmp(x->data, y->data, n);
  if (c) return c;
  return x->size < y->size ? -1 : x->size > y->size;
}

static int canon_value(reader *r, int depth, int max_depth, msgpack_sbuffer *out);

static int canon_map(reader *r, uint64_t count, int depth, int max_depth, msgpack_sbuffer *out) {
  if (count > (r->len - r->off) / 2) return -1; /* an entry takes two bytes at least */
  if (count == 0) return 0;
  entry *entries = calloc((size_t)count, sizeof *entries);
  if (!entries) return -1;
  int rc = 0;
  size_t made = 0;
  for (; made < count && rc == 0; made++) {
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    rc = canon_value(r, depth, max_depth, &sb);
    if (rc == 0) rc = canon_value(r, depth, max_depth, &sb);
    entries[made] = (entry){sb.data, sb.size};
  }
  if (rc == 0) {
    qsort(entries, (size_t)count, sizeof *entries, entry_cmp);
    for (size_t i = 0; i < count && rc == 0; i++)
      rc = msgpack_sbuffer_write(out, entries[i].data, entries[i].size);
  }
  for (size_t i = 0; i < made; i++) free(entries[i].data);
  free(entries);
  return rc ? -1 : 0;
}

enum { SCALAR, ARRAY, MAP };

/* The first bytes 0xc4..0xdf: a scalar's body is a `size_bytes` big-endian length plus `fixed`
 * bytes (an ext's type byte, a number's width); a container's item count is `size_bytes` long. */
static const struct {
  unsigned char kind, size_bytes, fixed;
} formats[0xe0 - 0xc4] = {
    {SCALAR, 1, 0},  {SCALAR, 2, 0}, {SCALAR, 4, 0},                 /* bin 8/16/32 */
    {SCALAR, 1, 1},  {SCALAR, 2, 1}, {SCALAR, 4, 1},                 /* ext 8/16/32 */
    {SCALAR, 0, 4},  {SCALAR, 0, 8},                                 /* float 32/64 */
    {SCALAR, 0, 1},  {SCALAR, 0, 2}, {SCALAR, 0, 4}, {SCALAR, 0, 8}, /* uint 8..64 */
    {SCALAR, 0, 1},  {SCALAR, 0, 2}, {SCALAR, 0, 4}, {SCALAR, 0, 8}, /* int 8..64 */
    {SCALAR, 0, 2},  {SCALAR, 0, 3}, {SCALAR, 0, 5}, {SCALAR, 0, 9}, /* fixext 1..8 */
    {SCALAR, 0, 17},                                                 /* fixext 16 */
    {SCALAR, 1, 0},  {SCALAR, 2, 0}, {SCALAR, 4, 0},                 /* str 8/16/32 */
    {ARRAY, 2, 0},   {ARRAY, 4, 0},  {MAP, 2, 0},    {MAP, 4, 0},    /* array, map 16/32 */
};

/* Appends the canonical form of the value at r's offset; depth = containers open around it. */
static int canon_value(reader *r, int depth, int max_depth, msgpack_sbuffer *out) {
  size_t start = r->off;
  uint64_t n = 0;
  int kind = SCALAR;
  if (r->off >= r->len) return -1;
  unsigned b = r->p[r->off++];
  if (b >= 0x80 && b <= 0x8f) {
    kind = MAP, n = b & 0x0f;
  } else if (b >= 0x90 && b <= 0x9f) {
    kind = ARRAY, n = b & 0x0f;
  } else if (b >= 0xa0 && b <= 0xbf) {
    n = b & 0x1f; /* fixstr */
  } else if (b >= 0xc4 && b <= 0xdf) {
    kind = formats[b - 0xc4].kind;
    if (read_be(r, formats[b - 0xc4].size_bytes, &n)) return -1;
    if (kind == SCALAR) n += formats[b - 0xc4].fixed;
  } else if (b == 0xc1) {
    return -1; /* never used */
  }            /* else fixints, nil, false, true: the byte is the whole value */
  if (kind == SCALAR) return skip(r, n) || copy(r, start, out) ? -1 : 0;
  if (depth >= max_depth) return -1;
  if (copy(r, start, out)) return -1; /* the header, as is */
  if (kind == MAP) return canon_map(r, n, depth + 1, max_depth, out);
  if (n > r->len - r->off) return -1; /* an item takes one byte at least */
  for (uint64_t i = 0; i < n; i++)
    if (canon_value(r, depth + 1, max_depth, out)) return -1;
  return 0;
}

int canonical_msgpack(const char *data, size_t len, int max_depth, msgpack_sbuffer *out) {
  reader r = {(const unsigned char *)data, len, 0};
  if (canon_value(&r, 0, max_depth, out)) return -1;
  return r.off == len ? 0 : -1;
}
