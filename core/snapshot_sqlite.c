/* snapshot_sqlite.c: snapshot backend in an SQLite table (may share the journal's database). */
#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "snapshot_store.h"

/* One connection behind a mutex: snapshot traffic is light (one save per N events, one load
 * per recovery), so a connection per thread would buy little and cost file handles. */
typedef struct sql_state {
  pthread_mutex_t lock;
  sqlite3 *db;
  sqlite3_stmt *save, *load, *del, *list, *any;
  const log_sink *log;
} sql_state;

/* The journal owns `events` and `journal_meta` in the same file; this table is ours alone.
 * crc is the CRC-32C of data, so a damaged page shows up as SNAPSHOT_ECORRUPT, not garbage. */
static const char schema[] =
    "CREATE TABLE IF NOT EXISTS snapshots("
    "id TEXT NOT NULL, seq INTEGER NOT NULL, ts INTEGER NOT NULL, "
    "data BLOB NOT NULL, crc INTEGER NOT NULL, PRIMARY KEY(id, seq))";

#define MATCH "id = ?1 AND seq BETWEEN ?2 AND ?3 AND ts BETWEEN ?4 AND ?5"

static int map_err(sql_state *s, int rc, const char *what) {
  log_error(s->log, "snapshot sqlite: %s: %s (%d)", what, s->db ? sqlite3_errmsg(s->db) : "no db",
            rc);
  return (rc & 0xFF) == SQLITE_NOMEM ? SNAPSHOT_ENOMEM : SNAPSHOT_EIO;
}

static void sql_free(sql_state *s) {
  sqlite3_finalize(s->save);
  sqlite3_finalize(s->load);
  sqlite3_finalize(s->del);
  sqlite3_finalize(s->list);
  sqlite3_finalize(s->any);
  /* close_v2 never leaves the handle open because of a forgotten statement. */
  if (s->db) sqlite3_close_v2(s->db);
  free(s);
}

static int prepare(sql_state *s, const char *sql, sqlite3_stmt **st) {
  int rc = sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL);
  return rc == SQLITE_OK ? 0 : map_err(s, rc, "prepare");
}

/* sqlite3_exec callback: copies the first column of the first row into arg (16 bytes). */
static int first_col(void *arg, int ncols, char **vals, char **names) {
  (void)names;
  char *out = arg;
  if (ncols > 0 && vals[0] && out[0] == '\0') snprintf(out, 16, "%s", vals[0]);
  return 0;
}

static int sql_open(const char *path, const log_sink *log, void **state) {
  if (*path == '\0') return SNAPSHOT_EURI;
  sql_state *s = calloc(1, sizeof *s);
  if (!s) return SNAPSHOT_ENOMEM;
  s->log = log;
  if (pthread_mutex_init(&s->lock, NULL) != 0) {
    free(s);
    return SNAPSHOT_ENOMEM;
  }
  /* NOMUTEX: our own mutex already serialises every use of the connection. */
  int rc = sqlite3_open_v2(path, &s->db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
  if (rc != SQLITE_OK) {
    rc = map_err(s, rc, path);
    goto fail;
  }
  sqlite3_extended_result_codes(s->db, 1);
  /* busy_timeout first: the journal may hold the file's write lock while we set it up. */
  rc = sqlite3_busy_timeout(s->db, 10000);
  char mode[16] = "";
  if (rc == SQLITE_OK) rc = sqlite3_exec(s->db, "PRAGMA journal_mode=WAL", first_col, mode, NULL);
  /* Not fatal (":memory:" and some file systems cannot do WAL), but worth knowing. */
  if (rc == SQLITE_OK && strcmp(mode, "wal") != 0 && strcmp(path, ":memory:") != 0)
    log_warn(s->log, "snapshot sqlite: %s: journal_mode is '%s', not wal", path, mode);
  if (rc == SQLITE_OK) rc = sqlite3_exec(s->db, "PRAGMA synchronous=FULL", NULL, NULL, NULL);
  if (rc == SQLITE_OK) rc = sqlite3_exec(s->db, schema, NULL, NULL, NULL);
  if (rc != SQLITE_OK) {
    rc = map_err(s, rc, path);
    goto fail;
  }
  if ((rc = prepare(s,
                    "INSERT OR REPLACE INTO snapshots(id, seq, ts, data, crc) "
                    "VALUES(?1, ?2, ?3, ?4, ?5)",
                    &s->save)) != 0 ||
      (rc = prepare(s,
                    "SELECT seq, ts, data, crc FROM snapshots WHERE " MATCH
                    " ORDER BY seq DESC LIMIT 1 OFFSET ?6",
                    &s->load)) != 0 ||
      (rc = prepare(s, "DELETE FROM snapshots WHERE " MATCH, &s->del)) != 0 ||
      (rc = prepare(s, "SELECT seq, ts FROM snapshots WHERE " MATCH " ORDER BY seq DESC LIMIT ?6",
                    &s->list)) != 0 ||
      (rc = prepare(s, "SELECT 1 FROM snapshots LIMIT 1", &s->any)) != 0)
    goto fail;
  *state = s;
  return 0;
fail:
  pthread_mutex_destroy(&s->lock);
  sql_free(s);
  return rc;
}

static void sql_close(void *state) {
  sql_state *s = state;
  pthread_mutex_destroy(&s->lock);
  sql_free(s);
}

/* Binds ?1..?5 of a MATCH statement. The id is always a bound parameter, never spliced. */
static int bind_match(sqlite3_stmt *st, const char *id, const snapshot_criteria *c) {
  int rc = sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
  if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 2, c->min_seq);
  if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 3, c->max_seq);
  if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 4, c->min_ts);
  if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 5, c->max_ts);
  return rc;
}

/* Leaves a statement ready for the next call and drops references to the caller's buffers. */
static void done(sqlite3_stmt *st) {
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
}

static int sql_save(void *state, const char *id, const snapshot_meta *meta, const void *data,
                    size_t len) {
  sql_state *s = state;
  uint32_t crc = crc32c(0, data, len);
  pthread_mutex_lock(&s->lock);
  sqlite3_stmt *st = s->save;
  int rc = sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
  if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 2, meta->seq);
  if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 3, meta->timestamp_ms);
  /* An empty blob with a NULL pointer would bind SQL NULL; zeroblob keeps it a blob. */
  if (rc == SQLITE_OK)
    rc = len ? sqlite3_bind_blob64(st, 4, data, len, SQLITE_STATIC)
             : sqlite3_bind_zeroblob(st, 4, 0);
  if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 5, crc);
  if (rc == SQLITE_OK) rc = sqlite3_step(st);
  int out = rc == SQLITE_DONE ? 0 : map_err(s, rc, "save");
  done(st);
  pthread_mutex_unlock(&s->lock);
  return out;
}

static int sql_load(void *state, const char *id, const snapshot_criteria *crit, int skip,
                    snapshot_meta *meta, void **data, size_t *len) {
  sql_state *s = state;
  pthread_mutex_lock(&s->lock);
  sqlite3_stmt *st = s->load;
  int out = 0;
  int rc = bind_match(st, id, crit);
  if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 6, skip);
  if (rc == SQLITE_OK) rc = sqlite3_step(st);
  if (rc == SQLITE_DONE) {
    out = SNAPSHOT_ENOTFOUND;
  } else if (rc != SQLITE_ROW) {
    out = map_err(s, rc, "load");
  } else {
    meta->seq = sqlite3_column_int64(st, 0);
    meta->timestamp_ms = sqlite3_column_int64(st, 1);
    int type = sqlite3_column_type(st, 2);
    const void *blob = sqlite3_column_blob(st, 2);
    int n = sqlite3_column_bytes(st, 2);
    int64_t stored = sqlite3_column_int64(st, 3);
    if ((n > 0 && !blob) || sqlite3_errcode(s->db) == SQLITE_NOMEM) {
      out = SNAPSHOT_ENOMEM;
    } else if (type != SQLITE_BLOB || n < 0 || stored < 0 || stored > (int64_t)UINT32_MAX ||
               crc32c(0, blob, (size_t)n) != (uint32_t)stored) {
      log_warn(s->log, "snapshot sqlite: snapshot %s@%lld fails its checksum", id,
               (long long)meta->seq);
      out = SNAPSHOT_ECORRUPT;
    } else {
      void *copy = malloc(n ? (size_t)n : 1);
      if (!copy) {
        out = SNAPSHOT_ENOMEM;
      } else {
        if (n) memcpy(copy, blob, (size_t)n);
        *data = copy;
        *len = (size_t)n;
      }
    }
  }
  done(st);
  pthread_mutex_unlock(&s->lock);
  return out;
}

static int sql_delete(void *state, const char *id, const snapshot_criteria *crit) {
  sql_state *s = state;
  pthread_mutex_lock(&s->lock);
  sqlite3_stmt *st = s->del;
  int rc = bind_match(st, id, crit);
  if (rc == SQLITE_OK) rc = sqlite3_step(st);
  int out = rc == SQLITE_DONE ? 0 : map_err(s, rc, "delete");
  done(st);
  pthread_mutex_unlock(&s->lock);
  return out;
}

static int sql_list(void *state, const char *id, const snapshot_criteria *crit, snapshot_meta *out,
                    size_t cap, size_t *n) {
  sql_state *s = state;
  *n = 0;
  if (cap == 0) return 0;
  pthread_mutex_lock(&s->lock);
  sqlite3_stmt *st = s->list;
  int rc = bind_match(st, id, crit);
  if (rc == SQLITE_OK) rc = sqlite3_bind_int64(st, 6, cap > INT64_MAX ? INT64_MAX : (int64_t)cap);
  size_t k = 0;
  while (rc == SQLITE_OK || rc == SQLITE_ROW) {
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW || k == cap) break;
    out[k].seq = sqlite3_column_int64(st, 0);
    out[k].timestamp_ms = sqlite3_column_int64(st, 1);
    k++;
  }
  int ret = rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : map_err(s, rc, "list");
  done(st);
  pthread_mutex_unlock(&s->lock);
  if (ret == 0) *n = k;
  return ret;
}

/* One step of a tiny statement: many recoveries at once learn there is no
 * snapshot to load (an application that never saves one). */
static int sql_is_empty(void *state, int *empty) {
  sql_state *s = state;
  pthread_mutex_lock(&s->lock);
  int rc = sqlite3_step(s->any);
  int out = 0;
  if (rc == SQLITE_DONE)
    *empty = 1;
  else if (rc != SQLITE_ROW)
    out = map_err(s, rc, "is_empty");
  sqlite3_reset(s->any);
  pthread_mutex_unlock(&s->lock);
  return out;
}

const snapshot_backend snapshot_sqlite_backend = {
    .scheme = "sqlite",
    .open = sql_open,
    .save = sql_save,
    .load = sql_load,
    .delete_matching = sql_delete,
    .list = sql_list,
    .is_empty = sql_is_empty,
    .close = sql_close,
};
