/* journal_sqlite.c: the SQLite journal backend: one write connection, a pool of readers. */
#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "journal.h"
#include "log.h"

/* Rows per replay query: a slow replay callback then never holds one read
 * transaction (and so the WAL) open for a whole long stream. */
#define REPLAY_PAGE 1000
#define DEFAULT_BUSY_TIMEOUT_MS 5000

/*
 * `offset` is a rowid that only grows (AUTOINCREMENT: SQLite would otherwise
 * reuse the largest rowid after the last row is deleted): appends touch few
 * pages, and the offset is the commit order that tag queries need.
 * journal_meta keeps each id's highest seq across deletes.
 */
const char journal_sqlite_schema[] =
    "CREATE TABLE IF NOT EXISTS events("
    " \"offset\" INTEGER PRIMARY KEY AUTOINCREMENT,"
    " id TEXT NOT NULL, seq INTEGER NOT NULL, manifest TEXT NOT NULL, version INTEGER NOT NULL,"
    " tags TEXT NOT NULL, writer TEXT NOT NULL, ts INTEGER NOT NULL, payload BLOB NOT NULL,"
    " crc INTEGER NOT NULL, UNIQUE(id, seq));"
    "CREATE TABLE IF NOT EXISTS journal_meta("
    " id TEXT PRIMARY KEY, highest_seq INTEGER NOT NULL) WITHOUT ROWID;";

/* A read connection with its statements: used by one thread at a time. */
typedef struct reader {
  sqlite3 *db;
  sqlite3_stmt *replay, *highest, *list;
  struct reader *next;
} reader;

typedef struct sq_state {
  char *path; /* absolute, so readers find the file whatever the cwd is later */
  const log_sink *log;
  int busy_timeout_ms;
  /* The write connection: the writer thread's alone after open. */
  sqlite3 *db;
  sqlite3_stmt *begin, *commit, *rollback, *savepoint, *release, *rollback_to;
  sqlite3_stmt *insert_event, *update_meta, *insert_meta, *delete_events;
  pthread_mutex_t pool_mu;
  reader *pool; /* idle read connections */
} sq_state;

static int map_err(int rc) {
  switch (rc & 0xff) {
  case SQLITE_NOMEM: return JOURNAL_ENOMEM;
  case SQLITE_CORRUPT:
  case SQLITE_NOTADB: return JOURNAL_ECORRUPT;
  default: return JOURNAL_EIO;
  }
}

static int prepare(const log_sink *log, sqlite3 *db, const char *sql, sqlite3_stmt **st) {
  int rc = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL);
  if (rc != SQLITE_OK) log_error(log, "journal sqlite: cannot prepare %s: %s", sql, sqlite3_errmsg(db));
  return rc;
}

/* Runs a statement that returns no rows and resets it. Returns the step code. */
static int run(sqlite3_stmt *st) {
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  return rc;
}

/* SQLite keeps memory statistics by default, under a global mutex taken on
 * every allocation: a quarter of the writer thread's time under load, for
 * figures Lore never reads. Off, once, before SQLite initialises (if
 * something else initialised it first, the call is refused and harmless). */
static pthread_once_t sqlite_config_once = PTHREAD_ONCE_INIT;
static void sqlite_config(void) { sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); }

/* Opens a connection with the settings both kinds share; *db is NULL on error. */
static int open_conn(const log_sink *log, const char *path, int flags, int busy_timeout_ms, sqlite3 **db) {
  pthread_once(&sqlite_config_once, sqlite_config);
  int rc = sqlite3_open_v2(path, db, flags | SQLITE_OPEN_NOMUTEX, NULL);
  if (rc != SQLITE_OK) {
    log_error(log, "journal sqlite: cannot open %s: %s", path,
              *db ? sqlite3_errmsg(*db) : sqlite3_errstr(rc));
    sqlite3_close(*db);
    *db = NULL;
    return rc;
  }
  sqlite3_extended_result_codes(*db, 1);
  sqlite3_busy_timeout(*db, busy_timeout_ms);
  return SQLITE_OK;
}

static void reader_free(reader *r) {
  sqlite3_finalize(r->replay);
  sqlite3_finalize(r->highest);
  sqlite3_finalize(r->list);
  sqlite3_close(r->db);
  free(r);
}

static reader *reader_open(sq_state *s, int *err) {
  reader *r = calloc(1, sizeof *r);
  if (!r) {
    *err = JOURNAL_ENOMEM;
    return NULL;
  }
  int rc = open_conn(s->log, s->path, SQLITE_OPEN_READONLY, s->busy_timeout_ms, &r->db);
  if (rc == SQLITE_OK)
    rc = prepare(s->log, r->db,
                 "SELECT seq, manifest, version, tags, writer, ts, payload, crc FROM events"
                 " WHERE id = ?1 AND seq >= ?2 AND seq <= ?3 ORDER BY seq LIMIT ?4",
                 &r->replay);
  if (rc == SQLITE_OK)
    rc = prepare(s->log, r->db, "SELECT highest_seq FROM journal_meta WHERE id = ?1", &r->highest);
  if (rc == SQLITE_OK)
    rc = prepare(s->log, r->db, "SELECT id, highest_seq FROM journal_meta ORDER BY id", &r->list);
  if (rc != SQLITE_OK) {
    reader_free(r);
    *err = map_err(rc);
    return NULL;
  }
  return r;
}

/* A connection for this call: an idle one, or a new one when all are busy.
 * The pool never shrinks, so it ends as large as the most concurrent reads. */
static reader *reader_get(sq_state *s, int *err) {
  pthread_mutex_lock(&s->pool_mu);
  reader *r = s->pool;
  if (r) s->pool = r->next;
  pthread_mutex_unlock(&s->pool_mu);
  return r ? r : reader_open(s, err);
}

static void reader_put(sq_state *s, reader *r) {
  pthread_mutex_lock(&s->pool_mu);
  r->next = s->pool;
  s->pool = r;
  pthread_mutex_unlock(&s->pool_mu);
}

static void sq_close(void *state) {
  sq_state *s = state;
  while (s->pool) {
    reader *r = s->pool;
    s->pool = r->next;
    reader_free(r);
  }
  sqlite3_stmt *stmts[] = {s->begin,       s->commit,       s->rollback,     s->savepoint,
                           s->release,     s->rollback_to,  s->insert_event, s->update_meta,
                           s->insert_meta, s->delete_events};
  for (size_t i = 0; i < sizeof stmts / sizeof stmts[0]; i++) sqlite3_finalize(stmts[i]);
  /* Closed last, the write connection checkpoints the WAL into the database. */
  if (s->db && sqlite3_close(s->db) != SQLITE_OK)
    log_error(s->log, "journal sqlite: closing %s: %s", sqlite3_db_filename(s->db, "main"),
              sqlite3_errmsg(s->db));
  pthread_mutex_destroy(&s->pool_mu);
  free(s->path);
  free(s);
}

static int exec(const log_sink *log, sqlite3 *db, const char *sql) {
  char *msg = NULL;
  int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
  if (rc != SQLITE_OK) log_error(log, "journal sqlite: %s: %s", sql, msg ? msg : sqlite3_errstr(rc));
  sqlite3_free(msg);
  return rc;
}

/* journal_mode reports the mode it got rather than failing. */
static int set_wal(const log_sink *log, sqlite3 *db) {
  sqlite3_stmt *st;
  int rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode=WAL", -1, &st, NULL);
  if (rc != SQLITE_OK) return rc;
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    const unsigned char *mode = sqlite3_column_text(st, 0);
    rc = mode && strcmp((const char *)mode, "wal") == 0 ? SQLITE_OK : SQLITE_CANTOPEN;
    if (rc != SQLITE_OK) log_error(log, "journal sqlite: WAL refused (journal_mode=%s)", mode);
  }
  sqlite3_finalize(st);
  return rc;
}

static int sq_open(const char *path, const journal_options *opt, void **state) {
  /* Readers need their own connections to the same database: an in-memory
   * one would give each its own empty database. "memory:" is the tool for that. */
  if (!path[0] || strcmp(path, ":memory:") == 0) return JOURNAL_EURI;
  sq_state *s = calloc(1, sizeof *s);
  if (!s) return JOURNAL_ENOMEM;
  s->log = opt->log;
  s->busy_timeout_ms = opt->busy_timeout_ms > 0 ? opt->busy_timeout_ms : DEFAULT_BUSY_TIMEOUT_MS;
  if (pthread_mutex_init(&s->pool_mu, NULL) != 0) {
    free(s);
    return JOURNAL_ENOMEM;
  }
  int rc = open_conn(s->log, path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, s->busy_timeout_ms, &s->db);
  if (rc == SQLITE_OK) {
    const char *abs = sqlite3_db_filename(s->db, "main");
    if (!(s->path = strdup(abs && abs[0] ? abs : path))) rc = SQLITE_NOMEM;
  }
  if (rc == SQLITE_OK) rc = set_wal(s->log, s->db);
  if (rc == SQLITE_OK)
    rc = exec(s->log, s->db,
              opt->synchronous_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
  /* Savepoint journals stay in memory instead of spilling to a temp file. */
  if (rc == SQLITE_OK) rc = exec(s->log, s->db, "PRAGMA temp_store=MEMORY");
  if (rc == SQLITE_OK) rc = exec(s->log, s->db, journal_sqlite_schema);
  struct {
    const char *sql;
    sqlite3_stmt **st;
  } stmts[] = {
      {"BEGIN IMMEDIATE", &s->begin},
      {"COMMIT", &s->commit},
      {"ROLLBACK", &s->rollback},
      {"SAVEPOINT w", &s->savepoint},
      {"RELEASE w", &s->release},
      {"ROLLBACK TO w", &s->rollback_to},
      {"INSERT INTO events(id, seq, manifest, version, tags, writer, ts, payload, crc)"
       " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
       &s->insert_event},
      /* Moves the highest seq up only when the write continues it exactly: no
       * change means the id is new, or the write conflicts (a second writer)
       * or would leave a gap (a write issued after one that failed): refused
       * either way, so a stored stream never has holes. */
      {"UPDATE journal_meta SET highest_seq = ?2 WHERE id = ?1 AND highest_seq = ?3 - 1",
       &s->update_meta},
      {"INSERT INTO journal_meta(id, highest_seq) VALUES (?1, ?2)", &s->insert_meta},
      {"DELETE FROM events WHERE id = ?1 AND seq <= ?2", &s->delete_events},
  };
  for (size_t i = 0; rc == SQLITE_OK && i < sizeof stmts / sizeof stmts[0]; i++)
    rc = prepare(s->log, s->db, stmts[i].sql, stmts[i].st);
  if (rc != SQLITE_OK) {
    sq_close(s);
    return map_err(rc);
  }
  *state = s;
  return 0;
}

/* A failed statement's code as a write status: a clash with stored rows is the
 * write's own fault; anything else fails the transaction (returns 0). */
static int write_error(int rc) {
  if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY)
    return JOURNAL_ECONFLICT;
  if ((rc & 0xff) == SQLITE_CONSTRAINT || (rc & 0xff) == SQLITE_TOOBIG) return JOURNAL_EREJECTED;
  return 0;
}

static int bind_text(sqlite3_stmt *st, int i, const char *s) {
  return sqlite3_bind_text(st, i, s ? s : "", -1, SQLITE_STATIC);
}

/* Returns SQLITE_DONE or the failing step's code. */
static int store_events(sq_state *s, journal_write *w) {
  const journal_event *first = &w->events[0], *last = &w->events[w->count - 1];
  sqlite3_bind_text(s->update_meta, 1, first->id, -1, SQLITE_STATIC);
  sqlite3_bind_int64(s->update_meta, 2, last->seq);
  sqlite3_bind_int64(s->update_meta, 3, first->seq);
  int rc = run(s->update_meta);
  if (rc != SQLITE_DONE) return rc;
  if (sqlite3_changes(s->db) == 0) {
    sqlite3_bind_text(s->insert_meta, 1, first->id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s->insert_meta, 2, last->seq);
    rc = run(s->insert_meta);
    if (rc != SQLITE_DONE) return rc; /* the id exists at or above our first seq */
  }
  sqlite3_stmt *st = s->insert_event;
  for (size_t i = 0; i < w->count; i++) {
    const journal_event *ev = &w->events[i];
    bind_text(st, 1, ev->id);
    sqlite3_bind_int64(st, 2, ev->seq);
    bind_text(st, 3, ev->manifest);
    sqlite3_bind_int(st, 4, ev->version);
    bind_text(st, 5, ev->tags);
    bind_text(st, 6, ev->writer);
    sqlite3_bind_int64(st, 7, ev->timestamp_ms);
    /* A NULL pointer would bind SQL NULL; an empty payload is an empty blob. */
    sqlite3_bind_blob(st, 8, ev->payload_len ? ev->payload : "", (int)ev->payload_len,
                      SQLITE_STATIC);
    sqlite3_bind_int64(st, 9, ev->crc32c);
    rc = run(st);
    if (rc != SQLITE_DONE) return rc;
  }
  return SQLITE_DONE;
}

static int store_delete(sq_state *s, journal_write *w) {
  sqlite3_bind_text(s->delete_events, 1, w->delete_id, -1, SQLITE_STATIC);
  sqlite3_bind_int64(s->delete_events, 2, w->delete_to);
  return run(s->delete_events);
}

static int fail_batch(sq_state *s, journal_write **writes, size_t n, int rc, const char *what) {
  log_error(s->log, "journal sqlite: %s failed (%d): %s", what, rc, sqlite3_errmsg(s->db));
  if (!sqlite3_get_autocommit(s->db)) run(s->rollback);
  for (size_t i = 0; i < n; i++) writes[i]->status = JOURNAL_EIO;
  return JOURNAL_EIO;
}

/* One transaction; each write inside its own savepoint, so a write that clashes
 * with stored rows is undone alone while its neighbours commit. */
static int write_batch_savepoints(sq_state *s, journal_write **writes, size_t n) {
  int rc = run(s->begin);
  if (rc != SQLITE_DONE) return fail_batch(s, writes, n, rc, "BEGIN");
  for (size_t i = 0; i < n; i++) {
    journal_write *w = writes[i];
    w->status = journal_write_validate(w);
    if (w->status < 0 || (w->kind == JOURNAL_WRITE_EVENTS && w->count == 0)) continue;
    rc = run(s->savepoint);
    if (rc != SQLITE_DONE) return fail_batch(s, writes, n, rc, "SAVEPOINT");
    rc = w->kind == JOURNAL_WRITE_DELETE ? store_delete(s, w) : store_events(s, w);
    if (rc != SQLITE_DONE) {
      w->status = write_error(rc);
      /* Some errors (I/O, full disk, RAISE(ROLLBACK)) end the transaction
       * itself: then nothing of the batch is stored. */
      if (w->status == 0 || sqlite3_get_autocommit(s->db))
        return fail_batch(s, writes, n, rc, "write");
      rc = run(s->rollback_to);
      if (rc != SQLITE_DONE) return fail_batch(s, writes, n, rc, "ROLLBACK TO");
    }
    rc = run(s->release);
    if (rc != SQLITE_DONE) return fail_batch(s, writes, n, rc, "RELEASE");
  }
  rc = run(s->commit);
  if (rc != SQLITE_DONE) return fail_batch(s, writes, n, rc, "COMMIT");
  return 0;
}

/* The common case first: the whole batch without savepoints (two statements
 * less per write, which is most of the writer's work for small events). If
 * one write clashes, that transaction is rolled back and the batch is written
 * again with a savepoint per write, so the clash still fails alone. */
static int sq_write_batch(void *state, journal_write **writes, size_t n) {
  sq_state *s = state;
  int rc = run(s->begin);
  if (rc != SQLITE_DONE) return fail_batch(s, writes, n, rc, "BEGIN");
  for (size_t i = 0; i < n; i++) {
    journal_write *w = writes[i];
    w->status = journal_write_validate(w);
    if (w->status < 0 || (w->kind == JOURNAL_WRITE_EVENTS && w->count == 0)) continue;
    rc = w->kind == JOURNAL_WRITE_DELETE ? store_delete(s, w) : store_events(s, w);
    if (rc != SQLITE_DONE) {
      if (write_error(rc) == 0 || sqlite3_get_autocommit(s->db))
        return fail_batch(s, writes, n, rc, "write");
      rc = run(s->rollback);
      if (rc != SQLITE_DONE) return fail_batch(s, writes, n, rc, "ROLLBACK");
      return write_batch_savepoints(s, writes, n);
    }
  }
  rc = run(s->commit);
  if (rc != SQLITE_DONE) return fail_batch(s, writes, n, rc, "COMMIT");
  return 0;
}

/* Fills ev from the current replay row; JOURNAL_ECORRUPT if a column is not what
 * was written. */
static int row_event(sqlite3_stmt *st, const char *id, journal_event *ev) {
  if (sqlite3_column_type(st, 0) != SQLITE_INTEGER || sqlite3_column_type(st, 6) != SQLITE_BLOB ||
      sqlite3_column_type(st, 7) != SQLITE_INTEGER)
    return JOURNAL_ECORRUPT;
  sqlite3_int64 crc = sqlite3_column_int64(st, 7);
  if (crc < 0 || crc > UINT32_MAX) return JOURNAL_ECORRUPT;
  const unsigned char *manifest = sqlite3_column_text(st, 1);
  const unsigned char *tags = sqlite3_column_text(st, 3);
  const unsigned char *writer = sqlite3_column_text(st, 4);
  const void *payload = sqlite3_column_blob(st, 6);
  *ev = (journal_event){
      .id = id,
      .seq = sqlite3_column_int64(st, 0),
      .manifest = manifest ? (const char *)manifest : "",
      .version = sqlite3_column_int(st, 2),
      .tags = tags ? (const char *)tags : "",
      .writer = writer ? (const char *)writer : "",
      .timestamp_ms = sqlite3_column_int64(st, 5),
      .payload = payload ? payload : "", /* an empty blob reads back as NULL */
      .payload_len = (size_t)sqlite3_column_bytes(st, 6),
      .crc32c = (uint32_t)crc,
  };
  if (crc32c(0, ev->payload, ev->payload_len) != ev->crc32c) return JOURNAL_ECORRUPT;
  return 0;
}

static int sq_replay(void *state, const char *id, int64_t from, int64_t to, int64_t max,
                     journal_replay_cb cb, void *ud) {
  sq_state *s = state;
  int err = 0;
  reader *r = reader_get(s, &err);
  if (!r) return err;
  sqlite3_stmt *st = r->replay;
  int64_t left = max < 0 ? INT64_MAX : max;
  int stop = 0;
  while (!err && !stop && left > 0 && from <= to) {
    int64_t page = left < REPLAY_PAGE ? left : REPLAY_PAGE, got = 0, last = 0;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, from);
    sqlite3_bind_int64(st, 3, to);
    sqlite3_bind_int64(st, 4, page);
    int rc = SQLITE_DONE;
    while (!stop && (rc = sqlite3_step(st)) == SQLITE_ROW) {
      journal_event ev;
      err = row_event(st, id, &ev);
      if (err) {
        log_error(s->log, "journal sqlite: event %s #%lld is corrupt (CRC or column types)", id,
                  (long long)sqlite3_column_int64(st, 0));
        break;
      }
      got++;
      last = ev.seq;
      stop = cb(&ev, ud);
    }
    if (!err && !stop && rc != SQLITE_DONE) {
      log_error(s->log, "journal sqlite: replay of %s: %s", id, sqlite3_errmsg(r->db));
      err = map_err(rc);
    }
    sqlite3_reset(st);
    left -= got;
    if (got < page || last == INT64_MAX) break; /* the stream or the range ended */
    from = last + 1;
  }
  sqlite3_clear_bindings(st); /* the id is the caller's memory */
  reader_put(s, r);
  return err;
}

static int sq_highest_seq(void *state, const char *id, int64_t *out) {
  sq_state *s = state;
  int err = 0;
  reader *r = reader_get(s, &err);
  if (!r) return err;
  sqlite3_bind_text(r->highest, 1, id, -1, SQLITE_STATIC);
  int rc = sqlite3_step(r->highest);
  if (rc == SQLITE_ROW) {
    *out = sqlite3_column_int64(r->highest, 0);
  } else if (rc == SQLITE_DONE) {
    *out = 0;
  } else {
    log_error(s->log, "journal sqlite: highest seq of %s: %s", id, sqlite3_errmsg(r->db));
    err = map_err(rc);
  }
  sqlite3_reset(r->highest);
  sqlite3_clear_bindings(r->highest);
  reader_put(s, r);
  return err;
}

static int sq_list_ids(void *state, void (*cb)(const char *id, int64_t highest, void *ud),
                       void *ud) {
  sq_state *s = state;
  int err = 0;
  reader *r = reader_get(s, &err);
  if (!r) return err;
  int rc;
  while ((rc = sqlite3_step(r->list)) == SQLITE_ROW) {
    const unsigned char *id = sqlite3_column_text(r->list, 0);
    cb(id ? (const char *)id : "", sqlite3_column_int64(r->list, 1), ud);
  }
  if (rc != SQLITE_DONE) {
    log_error(s->log, "journal sqlite: list ids: %s", sqlite3_errmsg(r->db));
    err = map_err(rc);
  }
  sqlite3_reset(r->list);
  reader_put(s, r);
  return err;
}

const journal_backend journal_sqlite_backend = {
    .scheme = "sqlite",
    .open = sq_open,
    .write_batch = sq_write_batch,
    .replay = sq_replay,
    .highest_seq = sq_highest_seq,
    .list_ids = sq_list_ids,
    .close = sq_close,
};
