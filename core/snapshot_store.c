/* snapshot_store.c: snapshot store URI parsing, argument checks, dispatch to the backends. */
#include "snapshot_store.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

struct snapshot_store {
  const snapshot_backend *be;
  void *state;
};

const char *snapshot_strerror(int code) {
  switch (code) {
  case SNAPSHOT_OK: return "ok";
  case SNAPSHOT_EIO: return "snapshot store I/O error";
  case SNAPSHOT_ENOTFOUND: return "no snapshot matches";
  case SNAPSHOT_ECORRUPT: return "snapshot is corrupt (checksum or length mismatch)";
  case SNAPSHOT_EURI: return "bad snapshot store URI";
  case SNAPSHOT_ENOMEM: return "out of memory";
  case SNAPSHOT_EINVAL: return "invalid argument";
  default: return "unknown snapshot store error";
  }
}

snapshot_criteria snapshot_criteria_latest(void) {
  snapshot_criteria c = {.max_seq = INT64_MAX, .max_ts = INT64_MAX, .min_seq = 0, .min_ts = 0};
  return c;
}

static const snapshot_backend *const backends[] = {
    &snapshot_memory_backend,
    &snapshot_sqlite_backend,
    &snapshot_dir_backend,
};

int snapshot_store_open(const char *uri, snapshot_store_t **out) {
  if (!out) return SNAPSHOT_EINVAL;
  *out = NULL;
  if (!uri) return SNAPSHOT_EURI;
  const char *colon = strchr(uri, ':');
  if (!colon) {
    log_warn("snapshot store: URI '%s' has no scheme", uri);
    return SNAPSHOT_EURI;
  }
  size_t scheme_len = (size_t)(colon - uri);
  const snapshot_backend *be = NULL;
  for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++) {
    if (strlen(backends[i]->scheme) == scheme_len &&
        memcmp(backends[i]->scheme, uri, scheme_len) == 0) {
      be = backends[i];
      break;
    }
  }
  if (!be) {
    log_warn("snapshot store: unknown scheme in URI '%s'", uri);
    return SNAPSHOT_EURI;
  }
  snapshot_store_t *s = calloc(1, sizeof *s);
  if (!s) return SNAPSHOT_ENOMEM;
  int rc = be->open(colon + 1, &s->state);
  if (rc != 0) {
    free(s);
    return rc;
  }
  s->be = be;
  *out = s;
  return 0;
}

/* Every backend relies on these checks, so they live in one place. */
int snapshot_store_save(snapshot_store_t *s, const char *id, const snapshot_meta *meta,
                        const void *data, size_t len) {
  if (!s || !id || !meta || (!data && len > 0)) return SNAPSHOT_EINVAL;
  /* Negative values never match the default criteria (min_* = 0), so storing them would
   * only create snapshots that recovery silently ignores. */
  if (meta->seq < 0 || meta->timestamp_ms < 0) return SNAPSHOT_EINVAL;
  return s->be->save(s->state, id, meta, data, len);
}

int snapshot_store_load(snapshot_store_t *s, const char *id, const snapshot_criteria *crit,
                        int skip, snapshot_meta *meta, void **data, size_t *len) {
  if (data) *data = NULL;
  if (len) *len = 0;
  if (!s || !id || !data || !len || skip < 0) return SNAPSHOT_EINVAL;
  snapshot_criteria latest = snapshot_criteria_latest();
  snapshot_meta scratch;
  if (!meta) meta = &scratch;
  meta->seq = 0;
  meta->timestamp_ms = 0;
  return s->be->load(s->state, id, crit ? crit : &latest, skip, meta, data, len);
}

int snapshot_store_delete(snapshot_store_t *s, const char *id, const snapshot_criteria *crit) {
  if (!s || !id) return SNAPSHOT_EINVAL;
  snapshot_criteria latest = snapshot_criteria_latest();
  return s->be->delete_matching(s->state, id, crit ? crit : &latest);
}

int snapshot_store_list(snapshot_store_t *s, const char *id, const snapshot_criteria *crit,
                        snapshot_meta *out, size_t cap, size_t *n) {
  size_t scratch;
  if (!n) n = &scratch;
  *n = 0;
  if (!s || !id || (!out && cap > 0)) return SNAPSHOT_EINVAL;
  snapshot_criteria latest = snapshot_criteria_latest();
  return s->be->list(s->state, id, crit ? crit : &latest, out, cap, n);
}

void snapshot_store_close(snapshot_store_t *s) {
  if (!s) return;
  s->be->close(s->state);
  free(s);
}

/* CRC-32C, reflected polynomial 0x82F63B78, slicing-by-8 (several times faster than a byte at a
 * time, which matters for multi-megabyte snapshots checked on every save and load). Our own
 * copy: the backends must not depend on the journal's crc32c. */
static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    crc_table[0][i] = c;
  }
  for (uint32_t i = 0; i < 256; i++)
    for (int t = 1; t < 8; t++)
      crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xFF];
}

uint32_t snapshot_crc32c(uint32_t crc, const void *data, size_t len) {
  pthread_once(&crc_once, crc_init);
  const unsigned char *p = data;
  crc = ~crc;
  for (; len >= 8; p += 8, len -= 8) {
    /* Bytes assembled explicitly: no unaligned loads, same result on any endianness. */
    uint32_t lo =
        crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
    crc = crc_table[7][lo & 0xFF] ^ crc_table[6][(lo >> 8) & 0xFF] ^
          crc_table[5][(lo >> 16) & 0xFF] ^ crc_table[4][lo >> 24] ^ crc_table[3][p[4]] ^
          crc_table[2][p[5]] ^ crc_table[1][p[6]] ^ crc_table[0][p[7]];
  }
  for (; len > 0; p++, len--) crc = crc_table[0][(crc ^ *p) & 0xFF] ^ (crc >> 8);
  return ~crc;
}
