/* snapshot_store.c: snapshot store URI parsing, argument checks, dispatch to the backends. */
#include "snapshot_store.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "journal_postgres.h"
#include "log.h"

struct snapshot_store {
  const snapshot_backend *be;
  void *state;
};

const char *snapshot_strerror(int code) {
  switch (code) {
    case SNAPSHOT_OK:
      return "ok";
    case SNAPSHOT_EIO:
      return "snapshot store I/O error";
    case SNAPSHOT_ENOTFOUND:
      return "no snapshot matches";
    case SNAPSHOT_ECORRUPT:
      return "snapshot is corrupt (checksum or length mismatch)";
    case SNAPSHOT_EURI:
      return "bad snapshot store URI";
    case SNAPSHOT_ENOMEM:
      return "out of memory";
    case SNAPSHOT_EINVAL:
      return "invalid argument";
    default:
      return "unknown snapshot store error";
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
    &snapshot_postgres_backend,
};

int snapshot_store_open(const char *uri, const log_sink *log, snapshot_store_t **out) {
  if (!out) return SNAPSHOT_EINVAL;
  *out = NULL;
  if (!uri) return SNAPSHOT_EURI;
  const char *colon = strchr(uri, ':');
  if (!colon) {
    log_warn(log, "snapshot store: URI '%s' has no scheme", uri);
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
    log_warn(log, "snapshot store: unknown scheme in URI '%s'", uri);
    return SNAPSHOT_EURI;
  }
  snapshot_store_t *s = calloc(1, sizeof *s);
  if (!s) return SNAPSHOT_ENOMEM;
  int rc = be->open(colon + 1, log, &s->state);
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

int snapshot_store_is_empty(snapshot_store_t *s, int *empty) {
  if (!empty) return SNAPSHOT_EINVAL;
  *empty = 0;
  if (!s) return SNAPSHOT_EINVAL;
  return s->be->is_empty ? s->be->is_empty(s->state, empty) : 0;
}

void snapshot_store_close(snapshot_store_t *s) {
  if (!s) return;
  s->be->close(s->state);
  free(s);
}
