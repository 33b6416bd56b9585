/* journal.h: the event journal interface, its group-commit writer and backends. */
#ifndef LORE_JOURNAL_H
#define LORE_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#include "crc32c.h" /* callers seal and check events' CRC32C */
#include "log.h"

/*
 * A journal stores, per persistence id, a gap-free sequence of events
 * numbered from 1, and gives every stored event a global offset. Everything
 * above this header (schedulers, bindings) knows only this interface; a
 * backend (memory, sqlite, postgres) is a `journal_backend` vtable.
 *
 * Invariants:
 * - Writes go through ONE writer thread per journal (journal_t). The writer
 *   takes everything queued since its last commit and hands it to the backend
 *   as one batch (one transaction, one fsync): group commit, never a timer.
 * - An atomic write (one persist or one persist_all) is all or nothing.
 * - Each write's completion fires exactly once, on the writer thread, after
 *   the batch committed (status 0) or failed (negative code). The callback
 *   must be quick and thread-safe (typically: post to a scheduler's inbox).
 * - The highest sequence number of an id survives deletion of its events,
 *   and so does how far its events were deleted (`deleted_to`): a reader can
 *   always tell "never written" from "deleted" and "missing".
 * - A stream has no holes and a seq is never reused: for a known id, a write
 *   whose first seq is not exactly the id's highest seq (stored or since
 *   deleted) + 1 is JOURNAL_ECONFLICT; for an unknown id the first seq must be 1.
 * - Offsets: every stored event gets an offset (>= 1) that is unique in the
 *   journal, never reused (not even after deletes) and follows commit order:
 *   once a reader has seen offset N, no event with an offset <= N can be
 *   committed later, whatever the number of writers or processes.
 * - Reads (replay, bounds, list_ids, replay_tag, ...) are blocking and
 *   thread-safe: callers run them off their event loops (libuv's thread pool).
 *   A backend gives each reading thread its own connection.
 * - Functions return 0 or a negative error code (JOURNAL_E* or a UV_E* code),
 *   never abort.
 */

enum {
  JOURNAL_OK = 0,
  JOURNAL_EIO = -5001,       /* the storage failed (disk full, I/O error) */
  JOURNAL_EREJECTED = -5002, /* the write was refused before storage (bad seq, too big) */
  JOURNAL_ECORRUPT = -5003,  /* a stored row fails its CRC or cannot be read */
  JOURNAL_ECLOSED = -5004,   /* the journal is closing or closed */
  JOURNAL_EURI = -5005,      /* unknown scheme or bad URI (or a bad URI parameter) */
  JOURNAL_ENOMEM = -5006,
  JOURNAL_ECONFLICT = -5007, /* (id, seq) already stored, or a write that would leave a hole */
  JOURNAL_ENOTDB = -5008,    /* the file exists but is not a database of this backend */
  JOURNAL_ENOTLORE = -5009,  /* a database without Lore's journal tables (read-only open), or
                                with another program's tables of the same names */
  JOURNAL_EREADONLY = -5010, /* the journal cannot be written (file, directory or medium) */
  JOURNAL_EISDIR = -5011,    /* the path names a directory */
  JOURNAL_ELOCKED = -5012,   /* held by another process (sqlite file, postgres lease) */
  JOURNAL_EFENCED = -5013,   /* write refused: this process lost its lease on the id */
  JOURNAL_ENOTSUP = -5014,   /* the backend does not do this (e.g. SQL on "memory:"), or the
                                database was made by a newer Lore */
  JOURNAL_ENOENT = -5015,    /* read-only open of a journal that does not exist */
  JOURNAL_ESQL = -5016,      /* a projection's own SQL failed (message in the session) */
  JOURNAL_EBREAKER = -5017, /* refused at submit: the circuit breaker is open (journal_breaker.h) */
};

const char *journal_strerror(int code);

/* One stored event. Strings are NUL-terminated. `payload` is MessagePack. */
typedef struct journal_event {
  const char *id;       /* persistence id */
  int64_t seq;          /* >= 1 */
  const char *manifest; /* the event's `type` (may be "") */
  int32_t version;      /* adapter version, 1 by default */
  const char *tags;     /* tags joined by '\n' (no tag is empty or contains '\n'), or "" */
  int64_t writer;       /* the writing incarnation's id (random, nonzero), 0 if unknown */
  int64_t timestamp_ms; /* wall clock, milliseconds since the epoch */
  int64_t offset;       /* set by the journal: on write 0, on every read the stored offset */
  const void *payload;
  size_t payload_len;
  uint32_t crc32c; /* crc32c(payload); set by journal_event_seal */
} journal_event;

/* Manifests of Lore's own events in a stream (deliveries, durable timers):
 * the runtime replays them itself, with their timestamps. */
#define JOURNAL_INTERNAL_PREFIX "lore."

/* Computes and stores the CRC32C of the payload. */
void journal_event_seal(journal_event *ev);

/* The largest payload a write may carry; a bigger one is JOURNAL_EREJECTED. */
#define JOURNAL_MAX_PAYLOAD ((size_t)64 << 20)

typedef struct journal_write journal_write;
typedef void (*journal_write_cb)(journal_write *w, int status);

/*
 * One request to the writer thread, in one of these kinds:
 * - JOURNAL_WRITE_EVENTS: `count` events of ONE id with consecutive seqs,
 *   stored atomically.
 * - JOURNAL_WRITE_DELETE: deletes the events of `id` with seq <= `seq`
 *   (clamped to the highest stored seq) and records deleted_to.
 * - JOURNAL_WRITE_LEASE: takes this process's lease on `id` (a single writer
 *   across processes); JOURNAL_ELOCKED if another process holds it. `seq` 1
 *   asks to wait until the lease is free instead (the writer does not block
 *   on it: the backend retries between batches). Backends without leases
 *   (memory, sqlite: one process owns the file) answer 0 at once.
 * - JOURNAL_WRITE_UNLEASE: gives the lease on `id` back.
 * Owned by the caller until `done` fires; the journal never frees it.
 */
enum {
  JOURNAL_WRITE_EVENTS = 0,
  JOURNAL_WRITE_DELETE = 1,
  JOURNAL_WRITE_LEASE = 2,
  JOURNAL_WRITE_UNLEASE = 3,
};
struct journal_write {
  int kind;
  journal_event *events; /* EVENTS */
  size_t count;
  const char *id; /* DELETE, LEASE, UNLEASE */
  int64_t seq;    /* DELETE: delete up to it; LEASE: 1 = wait */
  journal_write_cb done;
  void *data;                 /* for the caller */
  struct journal_write *next; /* the journal's queue link: not for the caller */
  int status;                 /* set by the journal before `done` */
};

/* Called for each replayed event, in order. Strings and payload are only
 * valid during the call. Return nonzero to stop the replay early. */
typedef int (*journal_replay_cb)(const journal_event *ev, void *ud);

/* What is known of one id. */
typedef struct journal_bounds {
  int64_t highest;    /* highest seq ever written (kept across deletes); 0: unknown id */
  int64_t deleted_to; /* events 1..deleted_to were deleted; 0: none ever */
} journal_bounds;

/* Whole-journal figures (`lore journal stats`), computed by the database. */
typedef struct journal_stats_t {
  int64_t ids;                  /* ids ever written, those whose events were all deleted too */
  int64_t events;               /* stored (not deleted) events */
  int64_t oldest_ms, newest_ms; /* 0 when there are no events */
  int64_t bytes;                /* storage used, -1 if unknown */
  int64_t max_offset;
} journal_stats_t;

/* A value bound to (or read from) a projection's SQL statement. */
enum { JV_NULL, JV_INT, JV_FLOAT, JV_TEXT, JV_BLOB };
typedef struct journal_value {
  int type;
  int64_t i;
  double f;
  const char *s; /* TEXT / BLOB bytes (TEXT need not be NUL-terminated) */
  size_t len;
} journal_value;

/* One result row of journal_session_exec: `n` columns with their names.
 * Return nonzero to stop. Values are only valid during the call. */
typedef int (*journal_row_cb)(void *ud, int n, const char *const *names,
                              const journal_value *values);

typedef struct journal_options {
  int synchronous_full; /* sqlite: 1 = synchronous=FULL (the default), 0 = NORMAL */
  int busy_timeout_ms;  /* sqlite: wait for another process's lock; 0 = 5000 ms */
  int read_only;        /* open for reading only: no writer thread, never modifies the
                           database (no schema, no WAL switch); JOURNAL_ENOTLORE without
                           Lore's tables, JOURNAL_ENOENT if it does not exist */
  int pool_size;        /* postgres: read connections (0: 4) */
  const log_sink *log;  /* NULL: log_default() */
  /* The circuit breaker (journal_breaker.h): after this many failed commits
   * in a row writes fail fast (JOURNAL_EBREAKER) for breaker_reset_ms; 0: off. */
  int breaker_max_failures;
  int breaker_reset_ms;
  /* sqlite, postgres: how many ids' highest seqs the writer keeps between
   * batches (the least recently written go first, and are read again from
   * the database when written again); 0: SEQMAP_DEFAULT_LIMIT (65536). */
  size_t writer_ids_max;
  /* Group commit: how long the writer may wait, with writes queued, for the
   * writes of the actors its last batch answered, so that they join the
   * next batch (journal.c, wait_for_cohort; waits that reach this bound
   * make the next ones be skipped). 0: half the last commit's duration, at
   * most 20 ms; > 0: this many microseconds; < 0: never. */
  int64_t cohort_wait_us;
} journal_options;

/*
 * A backend: blocking operations on its own state. The writer thread is the
 * only caller of write_batch; the read functions may be called concurrently
 * from any thread (but never concurrently with open/close). Optional entries
 * may be NULL: the journal then answers JOURNAL_ENOTSUP.
 *
 * URI parameters: the part of the URI after the scheme's ':' is `path`; a
 * backend may accept parameters after '?' ("sqlite:app.db?synchronous=normal")
 * and must refuse unknown ones (and bad values) with JOURNAL_EURI. Parameters
 * override `opt`: `open` gets the journal's own copy of the options and
 * writes the parameters it applied into it, so the journal learns from it
 * whether it was opened read-only.
 *
 * Every backend accepts `mode=ro` (read-only, as opt->read_only = 1) and
 * `mode=rw`. The sqlite backend also accepts `synchronous=full|normal` and
 * `busy_timeout=MS` (1..3600000): "sqlite:app.db?synchronous=normal&mode=ro".
 * A read-only open of a database made by an older Lore (which needs one
 * read-write open to be migrated) is JOURNAL_ENOTLORE; one made by a newer
 * Lore is JOURNAL_ENOTSUP, read-only or not.
 */
typedef struct journal_backend {
  const char *scheme; /* "memory", "sqlite", "postgres" */
  int (*open)(const char *path, journal_options *opt, void **state);
  /* Handles all `n` requests in one transaction. Sets writes[i]->status to 0
   * or a negative code. A write whose events are invalid (see
   * journal_write_validate) or that conflicts with stored rows gets
   * JOURNAL_EREJECTED / JOURNAL_ECONFLICT while the other writes of the batch
   * are stored. If the transaction itself fails, every write gets JOURNAL_EIO
   * (or JOURNAL_EREADONLY) and nothing is stored. Fills each stored event's
   * `offset`. Returns 0 or the transaction error. */
  int (*write_batch)(void *state, journal_write **writes, size_t n);
  /* Replays events of `id` with from <= seq <= to, in seq order, at most `max`
   * of them (max < 0: no limit). Checks each CRC: a mismatch stops the replay
   * with JOURNAL_ECORRUPT (after calling cb for the events before it). */
  int (*replay)(void *state, const char *id, int64_t from, int64_t to, int64_t max,
                journal_replay_cb cb, void *ud);
  /* Optional: replay filling in only what journal_replay_lean promises.
   * NULL: replay. */
  int (*replay_lean)(void *state, const char *id, int64_t from, int64_t to, int64_t max,
                     journal_replay_cb cb, void *ud);
  int (*bounds)(void *state, const char *id, journal_bounds *out);
  /* Calls cb(id, highest_seq, ud) for every id ever written, sorted by id (bytewise). */
  int (*list_ids)(void *state, void (*cb)(const char *id, int64_t highest, void *ud), void *ud);
  /* Optional: list_ids restricted to the ids sorted after `after` ("": from
   * the first), at most `max` of them: a listing in pages, so a reader of
   * a million ids holds one page at a time. NULL: the journal filters
   * list_ids instead (correct, but every page walks every id). */
  int (*list_ids_after)(void *state, const char *after, int64_t max,
                        void (*cb)(const char *id, int64_t highest, void *ud), void *ud);
  /* Events carrying `tag` with offset > after, in offset order, at most `max`
   * (max < 0: no limit); CRC checked as in replay. */
  int (*replay_tag)(void *state, const char *tag, int64_t after, int64_t max, journal_replay_cb cb,
                    void *ud);
  /* Every event with offset > after, in offset order (all ids), at most max. */
  int (*replay_all)(void *state, int64_t after, int64_t max, journal_replay_cb cb, void *ud);
  /* The highest committed offset (0: none), even if its event was deleted
   * since: it never goes down. */
  int (*max_offset)(void *state, int64_t *out);
  int (*stats)(void *state, journal_stats_t *out);
  /* Optional: the backend calls fn(ud, max_offset) when it learns that
   * another process committed events (postgres LISTEN/NOTIFY); the journal
   * passes that on to its subscribers. */
  void (*set_notify)(void *state, void (*fn)(void *ud, int64_t max_offset), void *ud);
  /* Optional: how many ids the writer's seq map holds now (any thread). */
  size_t (*writer_ids)(void *state);
  /* Optional: the journal's subscribers came (+1) or went (-1). A backend
   * whose hearing of other processes costs every commit something (postgres:
   * a LISTEN session woken by each one) listens only while some are there;
   * +1 returns once later commits of other processes will be heard (a
   * bounded wait). Called outside the journal's locks, between set_notify
   * and close. */
  void (*subscribers_changed)(void *state, int delta);

  /* Projection sessions (optional): a connection of its own to the journal's
   * database, so a projection's writes to its own tables and its stored offset
   * commit in one transaction. Used by one thread at a time; closed before the
   * journal. On a read-only journal session_open is JOURNAL_EREADONLY. */
  int (*session_open)(void *state, void **session);
  int (*session_begin)(void *session);
  /* Runs one statement with bound parameters; rows (if any) go to cb. A
   * text of several statements runs them in order when no parameter is
   * bound (schema set-up). On JOURNAL_ESQL the backend's message is in
   * session_errmsg. */
  int (*session_exec)(void *session, const char *sql, const journal_value *params, size_t n,
                      journal_row_cb cb, void *ud);
  const char *(*session_errmsg)(void *session);
  /* The stored offset of projection `name` (0 if none). */
  int (*session_get_offset)(void *session, const char *name, int64_t *offset);
  /* Inside a transaction: stores `offset` for `name`. */
  int (*session_set_offset)(void *session, const char *name, int64_t offset);
  int (*session_commit)(void *session);
  int (*session_rollback)(void *session);
  void (*session_close)(void *session);

  void (*close)(void *state);
  /* Optional: the calling thread's reads until read_release share one read
   * transaction (one snapshot of the store): a batch of small reads pays
   * for one transaction instead of one per statement. Nesting is not
   * supported; a failed read_hold leaves the reads as they were. */
  int (*read_hold)(void *state);
  void (*read_release)(void *state);
  /* Optional: *none = 1 when no stream has ever had events deleted (NULL:
   * unknown). */
  int (*no_deletions)(void *state, int *none);
  /* Optional: opens read connections until `n` exist (or one cannot be
   * opened), so the first reads that run at once after a start do not each
   * open their own. Called on a thread-pool thread; blocking is fine there. */
  void (*warm_readers)(void *state, int n);
} journal_backend;

extern const journal_backend journal_memory_backend;
extern const journal_backend journal_sqlite_backend;

/* For backends: JOURNAL_EREJECTED if the request is invalid before storage
 * (an unknown kind; events: empty or mixed ids, seq <= 0, non-consecutive
 * seqs, a NULL payload with a length, a payload over JOURNAL_MAX_PAYLOAD, a
 * crc32c that does not match the payload (the event was not sealed or was
 * damaged), a tag list with an empty tag; DELETE/LEASE/UNLEASE with an empty
 * id), else 0. A write of zero events is valid. */
int journal_write_validate(const journal_write *w);

typedef struct journal journal_t;

/*
 * Opens a journal by URI: "memory:" (also "memory:NAME": one shared store per
 * NAME within the process, kept until the process ends, so a test can
 * "restart" an actor against it; a read-only open needs the NAME of a store
 * that exists), "sqlite:PATH[?params]" or (when built with it)
 * "postgres:CONNINFO". Starts the writer thread unless opened read-only.
 * On error returns a negative code and *out is untouched.
 */
int journal_open(const char *uri, const journal_options *opt, journal_t **out);

/* Queues a request. On success `w->done` fires later on the writer thread. On
 * error (closed, a read-only journal, or the circuit breaker is open) returns
 * JOURNAL_ECLOSED / JOURNAL_EREADONLY / JOURNAL_EBREAKER and `done` never fires. */
int journal_submit(journal_t *j, journal_write *w);

/* The calling thread's journal reads until journal_read_release see one
 * snapshot of the store and share one read transaction (where the backend
 * has them; elsewhere both do nothing). Reads only: hold it briefly, since
 * a held snapshot keeps the store from reclaiming what writes replace.
 * Returns 0 or a negative code (then nothing is held). */
int journal_read_hold(journal_t *j);
void journal_read_release(journal_t *j);

/* *none = 1 when no stream of the journal has ever had events deleted, else
 * 0 (also when the backend cannot tell cheaply). Then a read of a stream to
 * its end tells its bounds: the highest seq is its last event's, and
 * nothing below was deleted (recoveries skip a bounds query per actor). */
int journal_no_deletions(journal_t *j, int *none);

/* The backend's warm_readers, if it has one (blocking: call it on a
 * thread-pool thread). */
void journal_warm_readers(journal_t *j, int n);

/* Blocking reads, forwarded to the backend (run them off the event loop). */
int journal_replay(journal_t *j, const char *id, int64_t from, int64_t to, int64_t max,
                   journal_replay_cb cb, void *ud);
/* journal_replay for a reader that needs no event metadata (a recovery whose
 * apply takes no meta): each event carries at least seq, manifest and the
 * payload (its CRC checked as always), and timestamp_ms when its manifest
 * begins with JOURNAL_INTERNAL_PREFIX; version may then read 1, tags "",
 * writer, offset and any other timestamp 0. Reading fewer columns per row is
 * a third of a replay's cost on sqlite. */
int journal_replay_lean(journal_t *j, const char *id, int64_t from, int64_t to, int64_t max,
                        journal_replay_cb cb, void *ud);
int journal_bounds_of(journal_t *j, const char *id, journal_bounds *out);
int journal_list_ids(journal_t *j, void (*cb)(const char *id, int64_t highest, void *ud), void *ud);
/* The ids sorted (bytewise) after `after` ("" or NULL: from the first), at
 * most `max` (max < 0: no limit), as list_ids. */
int journal_list_ids_after(journal_t *j, const char *after, int64_t max,
                           void (*cb)(const char *id, int64_t highest, void *ud), void *ud);
int journal_replay_tag(journal_t *j, const char *tag, int64_t after, int64_t max,
                       journal_replay_cb cb, void *ud);
int journal_replay_all(journal_t *j, int64_t after, int64_t max, journal_replay_cb cb, void *ud);
int journal_max_offset(journal_t *j, int64_t *out);
int journal_stats_of(journal_t *j, journal_stats_t *out);

/*
 * Live readers: fn(ud, max_offset) runs after every commit that stored events
 * (on the writer thread, before the batch's write callbacks: post to a loop
 * and return) and when the backend
 * learns of another process's commits (those committed after subscribe
 * returned are all heard). Returns a handle for
 * journal_unsubscribe, or NULL when out of memory. After unsubscribe returns,
 * fn is never called again.
 */
typedef struct journal_sub journal_sub;
journal_sub *journal_subscribe(journal_t *j, void (*fn)(void *ud, int64_t max_offset), void *ud);
void journal_unsubscribe(journal_t *j, journal_sub *sub);

/* Projection sessions (JOURNAL_ENOTSUP when the backend has none). Close
 * every session before its journal. */
typedef struct journal_session journal_session;
int journal_session_open(journal_t *j, journal_session **out);
int journal_session_begin(journal_session *s);
int journal_session_exec(journal_session *s, const char *sql, const journal_value *params, size_t n,
                         journal_row_cb cb, void *ud);
const char *journal_session_errmsg(journal_session *s);
int journal_session_get_offset(journal_session *s, const char *name, int64_t *offset);
int journal_session_set_offset(journal_session *s, const char *name, int64_t offset);
int journal_session_commit(journal_session *s);
int journal_session_rollback(journal_session *s);
void journal_session_close(journal_session *s);

/* fn(ud) runs on the writer thread after the callbacks of each batch, so that
 * callbacks may queue what they hand on and pass it on once a batch (NULL:
 * nothing). Set it before the first write is submitted. */
void journal_set_batch_done(journal_t *j, void (*fn)(void *ud), void *ud);

/* Statistics of the writer: batches committed and writes in them. */
void journal_writer_stats(journal_t *j, uint64_t *batches, uint64_t *writes);
/* Statistics of the cohort rule (journal_options.cohort_wait_us): how many
 * times the writer found fewer writes arrived than its last batch held, and
 * how many of those batches it took without the whole cohort (at the bound). */
void journal_cohort_stats(journal_t *j, uint64_t *waits, uint64_t *timeouts);
/* How many ids the writer's seq map holds now (0 for a backend without one):
 * for tests and stats, bounded by journal_options.writer_ids_max. */
size_t journal_writer_ids(journal_t *j);
const char *journal_scheme(const journal_t *j);
/* The circuit breaker's state (BREAKER_* of journal_breaker.h) and how many
 * times it has opened. */
void journal_breaker_stats(journal_t *j, int *state, uint64_t *trips);

/* Finishes every queued write (their callbacks fire), stops the writer,
 * closes the backend and frees the journal. */
void journal_close(journal_t *j);

/* Tests only: while paused, the writer takes nothing from its queue, so the
 * writes submitted meanwhile form one batch once it resumes. journal_close
 * ignores the pause (it drains anyway). */
void journal_pause_for_test(journal_t *j, int paused);

#endif
