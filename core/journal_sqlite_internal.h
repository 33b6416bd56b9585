/* journal_sqlite_internal.h: what the sqlite backend's files share (not for callers). */
#ifndef LORE_JOURNAL_SQLITE_INTERNAL_H
#define LORE_JOURNAL_SQLITE_INTERNAL_H

#include <pthread.h>
#include <sqlite3.h>

#include "journal.h"
#include "journal_seqmap.h"
#include "log.h"

#define SQ_SCHEMA_VERSION 2
#define SQ_DEFAULT_BUSY_TIMEOUT_MS 5000

/* A read connection with its statements, prepared once: used by one thread at a time. */
typedef struct sq_reader {
  sqlite3 *db;
  sqlite3_stmt *replay, *replay_lean;       /* to the end of the stream */
  sqlite3_stmt *replay_to, *replay_lean_to; /* up to a seq (prepared at first use) */
  sqlite3_stmt *event_ts;                   /* a lean row's timestamp (first use) */
  sqlite3_stmt *run_first, *run_last;       /* a run's ends by seq (first use) */
  sqlite3_stmt *run, *run_lean;             /* a run's rows by offset (first use) */
  sqlite3_stmt *bounds, *list, *list_after, *replay_all, *replay_tag, *max_offset;
  sqlite3_stmt *stats_events, *stats_ids, *page_count, *page_size, *any_deletion;
  sqlite3_stmt *begin, *commit; /* read_hold's transaction */
  struct sq_reader *next;
} sq_reader;

typedef struct sq_checkpointer sq_checkpointer;

typedef struct sq_state {
  char *path; /* absolute, so readers find the file whatever the cwd is later */
  const log_sink *log;
  int busy_timeout_ms;
  int synchronous_full;
  int read_only;
  int lock_fd; /* the "-lock" sidecar, flock'ed while a writer has the journal; -1: none */
  pthread_mutex_t pool_mu;
  sq_reader *pool; /* idle read connections */
  int readers;     /* read connections open (under pool_mu) */
  int warming;     /* a warm_readers call is opening more (under pool_mu) */
  int sessions;    /* open projection sessions (atomic) */
  sq_checkpointer *checkpointer;

  /* The write connection and everything below: the writer thread's alone after open. */
  sqlite3 *db;
  sqlite3_stmt *begin, *commit, *rollback, *savepoint, *release, *rollback_to;
  sqlite3_stmt *insert_event, *insert_tag, *max_rowid, *load_bounds;
  sqlite3_stmt *tagged_to_delete, *delete_tag, *delete_events, *upsert_deletion, *set_high_water;
  seqmap highest;      /* id -> highest seq, loaded lazily */
  int64_t high_water;  /* the largest offset given before the newest rows were deleted */
  int64_t next_offset; /* within a batch: the next event's offset */
  int batch_deleted;   /* within a batch: a delete removed rows (store the high water) */
  /* journal_sqlite_walspace.c: the WAL file, written ahead of its frames. */
  int wal_fd;            /* open descriptor of "PATH-wal" when wal_open */
  int wal_open, wal_off; /* wal_off: given up (an error, or no WAL to extend) */
  int64_t wal_size;      /* bytes the WAL file is known to have */
  int wal_page_size;
} sq_state;

/* SQLite result codes -> JOURNAL_E* (reads and the writer's transaction). */
int sq_map_err(int rc);
int sq_prepare(const log_sink *log, sqlite3 *db, const char *sql, sqlite3_stmt **st);
/* Opens a connection with the settings all kinds share; *db is NULL on error. */
int sq_open_conn(const log_sink *log, const char *path, int flags, int busy_timeout_ms,
                 sqlite3 **db);
int sq_exec(const log_sink *log, sqlite3 *db, const char *sql);

/* journal_sqlite_schema.c: finds the schema version and creates (or, from an
 * older Lore, migrates) the tables. Read-only: only checks. */
int sq_schema_prepare(sq_state *s, sqlite3 *db, int read_only);

/* journal_sqlite_write.c: the writer's statements, and its batch. */
int sq_writer_prepare(sq_state *s);
void sq_writer_finalize(sq_state *s);
int sq_write_batch(void *state, journal_write **writes, size_t n);

/* journal_sqlite_checkpoint.c: WAL checkpoints on a thread of their own. */
int sq_checkpointer_start(sq_state *s, sq_checkpointer **out);
void sq_checkpointer_stop(sq_checkpointer *ck);
/* Installs the hook that wakes the checkpointer on db's commits. */
void sq_checkpointer_watch(sq_checkpointer *ck, sqlite3 *db);
/* On the writer, after a commit: the RESTART checkpoint that lets the WAL
 * start over, when passive ones could not (a no-op while the WAL is short). */
void sq_checkpointer_restart(sq_checkpointer *ck, sqlite3 *db, int busy_timeout_ms);
/* The WAL's length in frames after the last commit of the writer connection. */
int sq_checkpointer_frames(sq_checkpointer *ck);

/* journal_sqlite_walspace.c: called on the writer inside its transaction
 * (holding the WAL's write lock), before the commit: makes sure the WAL file
 * has room for the next frames, so that a commit overwrites blocks the file
 * already has rather than growing it. Never fails (it gives up instead). */
void sq_walspace_reserve(sq_state *s);
void sq_walspace_close(sq_state *s);

/* journal_sqlite_session.c: projection sessions. */
int sq_session_open(void *state, void **session);
int sq_session_begin(void *session);
int sq_session_exec(void *session, const char *sql, const journal_value *params, size_t n,
                    journal_row_cb cb, void *ud);
const char *sq_session_errmsg(void *session);
int sq_session_get_offset(void *session, const char *name, int64_t *offset);
int sq_session_set_offset(void *session, const char *name, int64_t offset);
int sq_session_commit(void *session);
int sq_session_rollback(void *session);
void sq_session_close(void *session);

#endif
