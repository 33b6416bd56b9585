/* journal_sqlite_session.c: projection sessions: a connection of their own for a projection's SQL.
 */
#include <stdlib.h>
#include <string.h>

#include "journal_sqlite_internal.h"

/* A projection runs the same few statements over and over: they are prepared
 * once and kept, by their text, in a small cache. */
#define STMT_CACHE 16
/* Result columns held on the stack before exec allocates. */
#define STACK_COLUMNS 16

typedef struct sq_session {
  sq_state *s;
  sqlite3 *db;
  sqlite3_stmt *begin, *commit, *rollback, *get_offset, *set_offset;
  struct {
    char *sql;
    sqlite3_stmt *st;
  } cache[STMT_CACHE];
  unsigned next_slot; /* the cache entry replaced next */
  char *errmsg;       /* the last failure's message, NULL if none */
} sq_session;

static void set_errmsg(sq_session *ss, const char *msg) {
  free(ss->errmsg);
  ss->errmsg = msg ? strdup(msg) : NULL;
}

/* An error of the projection's own SQL; storage failures keep their codes. */
static int sql_error(sq_session *ss, int rc) {
  set_errmsg(ss, sqlite3_errmsg(ss->db));
  switch (rc & 0xff) {
    case SQLITE_NOMEM:
      return JOURNAL_ENOMEM;
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return JOURNAL_EIO;
    default:
      return JOURNAL_ESQL;
  }
}

/* Failures of the session's own statements (BEGIN, COMMIT, offsets). */
static int session_error(sq_session *ss, int rc) {
  set_errmsg(ss, sqlite3_errmsg(ss->db));
  if ((rc & 0xff) == SQLITE_CONSTRAINT) return JOURNAL_ESQL; /* a deferred constraint at COMMIT */
  return sq_map_err(rc);
}

static int run(sq_session *ss, sqlite3_stmt *st) {
  int rc = sqlite3_step(st);
  int err = rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : session_error(ss, rc);
  sqlite3_reset(st);
  return err;
}

void sq_session_close(void *session) {
  sq_session *ss = session;
  if (ss->db && !sqlite3_get_autocommit(ss->db)) sqlite3_exec(ss->db, "ROLLBACK", NULL, NULL, NULL);
  sqlite3_stmt *stmts[] = {ss->begin, ss->commit, ss->rollback, ss->get_offset, ss->set_offset};
  for (size_t i = 0; i < sizeof stmts / sizeof stmts[0]; i++) sqlite3_finalize(stmts[i]);
  for (int i = 0; i < STMT_CACHE; i++) {
    sqlite3_finalize(ss->cache[i].st);
    free(ss->cache[i].sql);
  }
  sqlite3_close(ss->db);
  __atomic_sub_fetch(&ss->s->sessions, 1, __ATOMIC_RELEASE);
  free(ss->errmsg);
  free(ss);
}

int sq_session_open(void *state, void **session) {
  sq_state *s = state;
  if (s->read_only) return JOURNAL_EREADONLY;
  sq_session *ss = calloc(1, sizeof *ss);
  if (!ss) return JOURNAL_ENOMEM;
  ss->s = s;
  __atomic_add_fetch(&s->sessions, 1, __ATOMIC_RELEASE);
  /* The busy timeout lets the session and the journal's writer take turns at
   * the write lock instead of failing each other. */
  int rc = sq_open_conn(s->log, s->path, SQLITE_OPEN_READWRITE, s->busy_timeout_ms, &ss->db);
  if (rc == SQLITE_OK)
    rc = sq_exec(s->log, ss->db,
                 s->synchronous_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
  struct {
    const char *sql;
    sqlite3_stmt **st;
  } stmts[] = {
      /* IMMEDIATE: a deferred transaction that reads and then writes fails at
       * once (SQLITE_BUSY_SNAPSHOT) when the writer committed in between. */
      {"BEGIN IMMEDIATE", &ss->begin},
      {"COMMIT", &ss->commit},
      {"ROLLBACK", &ss->rollback},
      {"SELECT \"offset\" FROM projection_offsets WHERE name = ?1", &ss->get_offset},
      {"INSERT INTO projection_offsets(name, \"offset\") VALUES (?1, ?2)"
       " ON CONFLICT(name) DO UPDATE SET \"offset\" = excluded.\"offset\"",
       &ss->set_offset},
  };
  for (size_t i = 0; rc == SQLITE_OK && i < sizeof stmts / sizeof stmts[0]; i++)
    rc = sq_prepare(s->log, ss->db, stmts[i].sql, stmts[i].st);
  if (rc != SQLITE_OK) {
    sq_session_close(ss);
    return sq_map_err(rc);
  }
  /* Its commits grow the WAL too: the journal's checkpointer takes care of it. */
  if (s->checkpointer) sq_checkpointer_watch(s->checkpointer, ss->db);
  *session = ss;
  return 0;
}

int sq_session_begin(void *session) {
  sq_session *ss = session;
  set_errmsg(ss, NULL);
  return run(ss, ss->begin);
}

int sq_session_commit(void *session) {
  sq_session *ss = session;
  set_errmsg(ss, NULL);
  return run(ss, ss->commit);
}

int sq_session_rollback(void *session) {
  sq_session *ss = session;
  set_errmsg(ss, NULL);
  if (sqlite3_get_autocommit(ss->db)) return 0; /* nothing to undo (or SQLite already did) */
  return run(ss, ss->rollback);
}

const char *sq_session_errmsg(void *session) {
  sq_session *ss = session;
  return ss->errmsg ? ss->errmsg : "";
}

int sq_session_get_offset(void *session, const char *name, int64_t *offset) {
  sq_session *ss = session;
  sqlite3_bind_text(ss->get_offset, 1, name, -1, SQLITE_STATIC);
  int rc = sqlite3_step(ss->get_offset);
  *offset = rc == SQLITE_ROW ? sqlite3_column_int64(ss->get_offset, 0) : 0;
  int err = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : session_error(ss, rc);
  sqlite3_reset(ss->get_offset);
  sqlite3_clear_bindings(ss->get_offset);
  return err;
}

int sq_session_set_offset(void *session, const char *name, int64_t offset) {
  sq_session *ss = session;
  sqlite3_bind_text(ss->set_offset, 1, name, -1, SQLITE_STATIC);
  sqlite3_bind_int64(ss->set_offset, 2, offset);
  int err = run(ss, ss->set_offset);
  sqlite3_clear_bindings(ss->set_offset);
  return err;
}

static void bind_params(sqlite3_stmt *st, const journal_value *params, size_t n, int *rc) {
  for (size_t i = 0; i < n && *rc == SQLITE_OK; i++) {
    const journal_value *v = &params[i];
    int k = (int)i + 1;
    switch (v->type) {
      case JV_NULL:
        *rc = sqlite3_bind_null(st, k);
        break;
      case JV_INT:
        *rc = sqlite3_bind_int64(st, k, v->i);
        break;
      case JV_FLOAT:
        *rc = sqlite3_bind_double(st, k, v->f);
        break;
      case JV_TEXT:
        *rc = sqlite3_bind_text64(st, k, v->s ? v->s : "", v->s ? v->len : 0, SQLITE_STATIC,
                                  SQLITE_UTF8);
        break;
      case JV_BLOB:
        *rc = sqlite3_bind_blob64(st, k, v->s ? v->s : "", v->s ? v->len : 0, SQLITE_STATIC);
        break;
      default:
        *rc = SQLITE_MISMATCH;
    }
  }
}

static void column_value(sqlite3_stmt *st, int c, journal_value *v) {
  *v = (journal_value){.type = JV_NULL};
  switch (sqlite3_column_type(st, c)) {
    case SQLITE_INTEGER:
      v->type = JV_INT;
      v->i = sqlite3_column_int64(st, c);
      break;
    case SQLITE_FLOAT:
      v->type = JV_FLOAT;
      v->f = sqlite3_column_double(st, c);
      break;
    case SQLITE_TEXT:
      v->type = JV_TEXT;
      v->s = (const char *)sqlite3_column_text(st, c);
      v->len = (size_t)sqlite3_column_bytes(st, c);
      break;
    case SQLITE_BLOB:
      v->type = JV_BLOB;
      v->s = sqlite3_column_blob(st, c);
      v->len = (size_t)sqlite3_column_bytes(st, c);
      if (!v->s) v->s = "";
      break;
    default:
      break;
  }
}

/* Binds, steps and hands every row to cb; resets the statement. */
static int run_statement(sq_session *ss, sqlite3_stmt *st, const journal_value *params, size_t n,
                         journal_row_cb cb, void *ud) {
  int rc = SQLITE_OK;
  if ((int)n > sqlite3_bind_parameter_count(st)) {
    set_errmsg(ss, "more parameters than the statement has placeholders");
    return JOURNAL_ESQL;
  }
  bind_params(st, params, n, &rc);
  if (rc != SQLITE_OK) {
    int err = sql_error(ss, rc);
    sqlite3_clear_bindings(st);
    return err;
  }
  int ncols = sqlite3_column_count(st), err = 0;
  const char *names_buf[STACK_COLUMNS];
  journal_value values_buf[STACK_COLUMNS];
  const char **names = names_buf;
  journal_value *values = values_buf;
  if (ncols > STACK_COLUMNS) {
    names = malloc((size_t)ncols * sizeof *names);
    values = malloc((size_t)ncols * sizeof *values);
    if (!names || !values) err = JOURNAL_ENOMEM;
  }
  for (int c = 0; !err && c < ncols; c++) {
    names[c] = sqlite3_column_name(st, c);
    if (!names[c]) err = JOURNAL_ENOMEM;
  }
  int stop = 0;
  while (!err && !stop && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    if (!cb) continue;
    for (int c = 0; c < ncols; c++) column_value(st, c, &values[c]);
    stop = cb(ud, ncols, names, values);
  }
  if (!err && !stop && rc != SQLITE_DONE) err = sql_error(ss, rc);
  if (names != names_buf) free(names);
  if (values != values_buf) free(values);
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return err;
}

static int blank(const char *s) {
  for (; s && *s; s++)
    if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r' && *s != ';') return 0;
  return 1;
}

/* Several statements in one text (schema set-up): run in order, none cached. */
static int run_script(sq_session *ss, sqlite3_stmt *first, const char *tail, journal_row_cb cb,
                      void *ud) {
  int err = run_statement(ss, first, NULL, 0, cb, ud);
  sqlite3_finalize(first);
  while (!err && !blank(tail)) {
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(ss->db, tail, -1, &st, &tail);
    if (rc != SQLITE_OK) return sql_error(ss, rc);
    if (!st) break;
    err = run_statement(ss, st, NULL, 0, cb, ud);
    sqlite3_finalize(st);
  }
  return err;
}

int sq_session_exec(void *session, const char *sql, const journal_value *params, size_t n,
                    journal_row_cb cb, void *ud) {
  sq_session *ss = session;
  set_errmsg(ss, NULL);
  for (int i = 0; i < STMT_CACHE; i++)
    if (ss->cache[i].sql && strcmp(ss->cache[i].sql, sql) == 0)
      return run_statement(ss, ss->cache[i].st, params, n, cb, ud);

  sqlite3_stmt *st = NULL;
  const char *tail = NULL;
  int rc = sqlite3_prepare_v3(ss->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, &tail);
  if (rc != SQLITE_OK) return sql_error(ss, rc);
  if (!st) return 0; /* only blanks or comments */
  if (!blank(tail)) {
    if (n > 0) {
      sqlite3_finalize(st);
      set_errmsg(ss, "parameters bind to one statement, and this text has several");
      return JOURNAL_ESQL;
    }
    return run_script(ss, st, tail, cb, ud);
  }
  char *copy = strdup(sql);
  if (!copy) {
    sqlite3_finalize(st);
    return JOURNAL_ENOMEM;
  }
  unsigned slot = ss->next_slot++ % STMT_CACHE;
  sqlite3_finalize(ss->cache[slot].st);
  free(ss->cache[slot].sql);
  ss->cache[slot].sql = copy;
  ss->cache[slot].st = st;
  return run_statement(ss, st, params, n, cb, ud);
}
