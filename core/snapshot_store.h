/* snapshot_store.h: the snapshot store interface and its backends. */
#ifndef LORE_SNAPSHOT_STORE_H
#define LORE_SNAPSHOT_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "crc32c.h"
#include "log.h"

/*
 * A snapshot store keeps, per persistence id, snapshots keyed by seq (the
 * sequence number of the last event the snapshot covers) with a timestamp.
 * Saving at an existing (id, seq) replaces it. All calls are blocking and
 * thread-safe: callers run them on libuv's thread pool. They return 0 or a
 * negative SNAPSHOT_E* code, never abort.
 */

enum {
  SNAPSHOT_OK = 0,
  SNAPSHOT_EIO = -5101,
  SNAPSHOT_ENOTFOUND = -5102, /* no snapshot matches */
  SNAPSHOT_ECORRUPT = -5103,  /* stored bytes fail their CRC */
  SNAPSHOT_EURI = -5104,
  SNAPSHOT_ENOMEM = -5105,
  SNAPSHOT_EINVAL = -5106, /* bad argument (NULL pointer, negative seq/ts/skip) */
};

const char *snapshot_strerror(int code);

typedef struct snapshot_meta {
  int64_t seq;
  int64_t timestamp_ms;
} snapshot_meta;

/* Selection criteria, Akka's SnapshotSelectionCriteria: a snapshot matches
 * when min_seq <= seq <= max_seq and min_ts <= timestamp_ms <= max_ts. */
typedef struct snapshot_criteria {
  int64_t max_seq, max_ts, min_seq, min_ts;
} snapshot_criteria;

/* Everything: max_* = INT64_MAX, min_* = 0. */
snapshot_criteria snapshot_criteria_latest(void);

typedef struct snapshot_backend {
  const char *scheme; /* "memory", "sqlite", "dir" */
  int (*open)(const char *path, const log_sink *log, void **state);
  /* Stores (replaces) the snapshot of id at meta->seq. */
  int (*save)(void *state, const char *id, const snapshot_meta *meta, const void *data, size_t len);
  /* Loads the youngest (highest seq) snapshot of id matching crit, skipping
   * none: if `skip` > 0, skips that many matches from the youngest first
   * (used to fall back to an older snapshot when one fails to decode).
   * On success *data is malloc'ed (caller frees). SNAPSHOT_ENOTFOUND if none. */
  int (*load)(void *state, const char *id, const snapshot_criteria *crit, int skip,
              snapshot_meta *meta, void **data, size_t *len);
  /* Deletes every snapshot of id matching crit. */
  int (*delete_matching)(void *state, const char *id, const snapshot_criteria *crit);
  /* Lists metadata of id's snapshots matching crit, youngest first, at most
   * `cap` entries into out; *n gets how many were written. */
  int (*list)(void *state, const char *id, const snapshot_criteria *crit, snapshot_meta *out,
              size_t cap, size_t *n);
  /* Optional (NULL: unknown): *empty = 1 when the store holds no snapshot
   * at all. A recovery asks it once for many actors and skips their loads. */
  int (*is_empty)(void *state, int *empty);
  void (*close)(void *state);
} snapshot_backend;

typedef struct snapshot_store snapshot_store_t;

/* "memory:" / "memory:NAME" (shared per NAME in the process), "sqlite:PATH",
 * "dir:PATH" (one file per snapshot: written to a temporary file, fsynced,
 * renamed, directory fsynced).
 * In the calls below a NULL crit means snapshot_criteria_latest(), load's meta
 * may be NULL, and a load that hits SNAPSHOT_ECORRUPT still fills meta with the
 * corrupt snapshot's seq and timestamp (so the caller can log it and retry with
 * skip + 1). */
int snapshot_store_open(const char *uri, const log_sink *log, snapshot_store_t **out);
int snapshot_store_save(snapshot_store_t *s, const char *id, const snapshot_meta *meta,
                        const void *data, size_t len);
int snapshot_store_load(snapshot_store_t *s, const char *id, const snapshot_criteria *crit,
                        int skip, snapshot_meta *meta, void **data, size_t *len);
int snapshot_store_delete(snapshot_store_t *s, const char *id, const snapshot_criteria *crit);
int snapshot_store_list(snapshot_store_t *s, const char *id, const snapshot_criteria *crit,
                        snapshot_meta *out, size_t cap, size_t *n);
/* *empty = 1 when the store surely holds no snapshot, else 0 (also when
 * the backend cannot tell cheaply). */
int snapshot_store_is_empty(snapshot_store_t *s, int *empty);
void snapshot_store_close(snapshot_store_t *s);

/* The built-in backends, looked up by scheme in snapshot_store_open. */
extern const snapshot_backend snapshot_memory_backend;
extern const snapshot_backend snapshot_sqlite_backend;
extern const snapshot_backend snapshot_dir_backend;

#endif
