/* journal.h: the event journal interface, its group-commit writer and backends. */
#ifndef LORE_JOURNAL_H
#define LORE_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#include "crc32c.h"
#include "log.h"

/*
 * A journal stores, per persistence id, a gap-free sequence of events
 * numbered from 1. Everything above this header (schedulers, bindings) knows
 * only this interface; a backend (memory, sqlite, later postgres) is a
 * `journal_backend` vtable.
 *
 * Invariants:
 * - Writes go through ONE writer thread per journal (journal_t). The writer
 *   takes everything queued since its last commit and hands it to the backend
 *   as one batch (one transaction, one fsync): group commit, never a timer.
 * - An atomic write (one persist or one persist_all) is all or nothing.
 * - Each write's completion fires exactly once, on the writer thread, after
 *   the batch committed (status 0) or failed (negative code). The callback
 *   must be quick and thread-safe (typically: post to a scheduler's inbox).
 * - The highest sequence number of an id survives deletion of its events.
 * - A stream has no holes and a seq is never reused: for a known id, a write
 *   whose first seq is not exactly the id's highest seq (stored or since
 *   deleted) + 1 is JOURNAL_ECONFLICT.
 * - Reads (replay, highest_seq, list_ids) are blocking and thread-safe: the
 *   caller runs them on libuv's thread pool. A backend gives each reading
 *   thread its own connection.
 * - Functions return 0 or a negative error code (JOURNAL_E* or a UV_E* code),
 *   never abort.
 */

enum {
  JOURNAL_OK = 0,
  JOURNAL_EIO = -5001,       /* the storage failed (disk full, I/O error) */
  JOURNAL_EREJECTED = -5002, /* the write was refused before storage (bad seq, too big) */
  JOURNAL_ECORRUPT = -5003,  /* a stored row fails its CRC or cannot be read */
  JOURNAL_ECLOSED = -5004,   /* the journal is closing or closed */
  JOURNAL_EURI = -5005,      /* unknown scheme or bad URI */
  JOURNAL_ENOMEM = -5006,
  JOURNAL_ECONFLICT = -5007, /* (id, seq) already stored: a second writer */
};

const char *journal_strerror(int code);

/* One stored event. Strings are NUL-terminated. `payload` is MessagePack. */
typedef struct journal_event {
  const char *id;        /* persistence id */
  int64_t seq;           /* >= 1 */
  const char *manifest;  /* the event's `type` (may be "") */
  int32_t version;       /* adapter version, 1 by default */
  const char *tags;      /* tags joined by '\n' (no tag contains '\n'), or "" */
  const char *writer;    /* writer UUID of the actor incarnation (36 chars) */
  int64_t timestamp_ms;  /* wall clock, milliseconds since the epoch */
  const void *payload;
  size_t payload_len;
  uint32_t crc32c;       /* crc32c(payload); set by journal_event_seal */
} journal_event;

/* Computes and stores the CRC32C of the payload. */
void journal_event_seal(journal_event *ev);

/* The largest payload a write may carry; a bigger one is JOURNAL_EREJECTED. */
#define JOURNAL_MAX_PAYLOAD ((size_t)64 << 20)

typedef struct journal_write journal_write;
typedef void (*journal_write_cb)(journal_write *w, int status);

/*
 * One atomic write: `count` events of ONE id with consecutive seqs, or a
 * delete (kind JOURNAL_WRITE_DELETE: events of `delete_id` up to `delete_to`).
 * Owned by the caller until `done` fires; the journal never frees it.
 */
enum { JOURNAL_WRITE_EVENTS = 0, JOURNAL_WRITE_DELETE = 1 };
struct journal_write {
  int kind;
  journal_event *events;
  size_t count;
  const char *delete_id;
  int64_t delete_to;
  journal_write_cb done;
  void *data;                 /* for the caller */
  struct journal_write *next; /* the journal's queue link: not for the caller */
  int status;                 /* set by the journal before `done` */
};

/* Called for each replayed event, in seq order. Strings and payload are only
 * valid during the call. Return nonzero to stop the replay early. */
typedef int (*journal_replay_cb)(const journal_event *ev, void *ud);

typedef struct journal_options {
  int synchronous_full; /* sqlite: 1 = synchronous=FULL (default), 0 = NORMAL */
  int busy_timeout_ms;  /* sqlite: wait for another process's lock; 0 = 5000 ms */
  const log_sink *log;  /* NULL: log_default() */
} journal_options;

/* A backend: blocking operations on its own state. The writer thread is the
 * only caller of write_batch; the read functions may be called concurrently
 * from any thread (but never concurrently with open/close). */
typedef struct journal_backend {
  const char *scheme; /* "memory", "sqlite" */
  int (*open)(const char *path, const journal_options *opt, void **state);
  /* Stores all `n` writes in one transaction. Sets writes[i]->status to 0 or
   * a negative code. A write whose events are invalid (seq <= 0,
   * non-consecutive, empty id) or that conflicts with stored rows gets
   * JOURNAL_EREJECTED / JOURNAL_ECONFLICT while the other writes of the batch
   * are stored. If the transaction itself fails, every write gets
   * JOURNAL_EIO and nothing is stored. Returns 0 or the transaction error. */
  int (*write_batch)(void *state, journal_write **writes, size_t n);
  /* Replays events of `id` with from <= seq <= to, at most `max` of them
   * (max < 0: no limit). Checks each CRC: a mismatch stops the replay with
   * JOURNAL_ECORRUPT (after calling cb for the events before it). */
  int (*replay)(void *state, const char *id, int64_t from, int64_t to, int64_t max,
                journal_replay_cb cb, void *ud);
  /* Highest seq ever written for `id` (kept across deletes); 0 if unknown. */
  int (*highest_seq)(void *state, const char *id, int64_t *out);
  /* Calls cb(id, highest_seq, ud) for every id ever written, sorted by id. */
  int (*list_ids)(void *state, void (*cb)(const char *id, int64_t highest, void *ud), void *ud);
  void (*close)(void *state);
} journal_backend;

extern const journal_backend journal_memory_backend;
extern const journal_backend journal_sqlite_backend;
/* The sqlite backend's tables, for tools and benchmarks that must measure
 * exactly what the journal writes. */
extern const char journal_sqlite_schema[];

/* For backends: JOURNAL_EREJECTED if the write is invalid before storage (an
 * unknown kind; events: empty or mixed ids, seq <= 0, non-consecutive seqs, a
 * NULL payload with a length, a payload over JOURNAL_MAX_PAYLOAD, a crc32c that
 * does not match the payload (the event was not sealed or was damaged); a
 * delete with an empty id), else 0. A write of zero events is valid. */
int journal_write_validate(const journal_write *w);

typedef struct journal journal_t;

/*
 * Opens a journal by URI: "memory:" (also "memory:NAME": one shared store per
 * NAME within the process, kept until the process ends, so a test can "restart"
 * an actor against it) or "sqlite:PATH". Starts the writer thread.
 * On error returns a negative code and *out is untouched.
 */
int journal_open(const char *uri, const journal_options *opt, journal_t **out);

/* Queues an atomic write (or delete). On success `w->done` fires later on the
 * writer thread. On error (closed) returns JOURNAL_ECLOSED and `done` never
 * fires. */
int journal_submit(journal_t *j, journal_write *w);

/* Blocking reads, forwarded to the backend (run them off the event loop). */
int journal_replay(journal_t *j, const char *id, int64_t from, int64_t to, int64_t max,
                   journal_replay_cb cb, void *ud);
int journal_highest_seq(journal_t *j, const char *id, int64_t *out);
int journal_list_ids(journal_t *j, void (*cb)(const char *id, int64_t highest, void *ud), void *ud);

/* Statistics of the writer: batches committed and writes in them. */
void journal_stats(journal_t *j, uint64_t *batches, uint64_t *writes);

/* Finishes every queued write (their callbacks fire), stops the writer,
 * closes the backend and frees the journal. */
void journal_close(journal_t *j);

/* Tests only: while paused, the writer takes nothing from its queue, so the
 * writes submitted meanwhile form one batch once it resumes. journal_close
 * ignores the pause (it drains anyway). */
void journal_pause_for_test(journal_t *j, int paused);

#endif
