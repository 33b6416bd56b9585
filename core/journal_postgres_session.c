/* journal_postgres_session.c: projection sessions on PostgreSQL: a connection of their own for
 * a projection's SQL and its offset, in one transaction. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journal_postgres_internal.h"

/*
 * A projection's SQL is PostgreSQL's: placeholders are $1, $2, ...; a
 * statement with parameters is prepared once (a small cache per session)
 * and PostgreSQL infers each placeholder's type from the statement; values
 * go as text in that type's syntax, blobs as bytes. Binding more or fewer
 * values than the statement has placeholders is an error. Results come back
 * as integers (int2/4/8, bool, integral numerics), floats, blobs (bytea) and
 * text (anything else, in PostgreSQL's text form). As in PostgreSQL, a
 * statement that fails inside a transaction aborts it: the caller rolls back.
 */

#define STACK_COLUMNS 16
#define STMT_CACHE 16
#define MAX_PARAMS 64

typedef struct cached_stmt {
  char *sql;
  char name[24];
  int nparams;
  Oid types[MAX_PARAMS];
} cached_stmt;

typedef struct pg_session {
  pg_state *s;
  PGconn *c;
  char *errmsg;
  cached_stmt cache[STMT_CACHE];
  unsigned next_slot, names;
} pg_session;

static void set_errmsg(pg_session *ss, const char *msg) {
  free(ss->errmsg);
  ss->errmsg = NULL;
  if (!msg) return;
  size_t n = strlen(msg);
  while (n > 0 && msg[n - 1] == '\n') n--;
  ss->errmsg = strndup(msg, n);
}

/* A failure of the projection's own SQL is JOURNAL_ESQL; a lost connection
 * is the storage's (JOURNAL_EIO). */
static int sql_error(pg_session *ss, const PGresult *r) {
  const char *m = r ? PQresultErrorMessage(r) : NULL;
  set_errmsg(ss, m && m[0] ? m : PQerrorMessage(ss->c));
  if (PQstatus(ss->c) != CONNECTION_OK) return JOURNAL_EIO;
  int code = pg_result_code(r);
  return code == JOURNAL_ENOMEM ? code : JOURNAL_ESQL;
}

static int run_plain(pg_session *ss, const char *sql) {
  PGresult *r = PQexec(ss->c, sql);
  int err = pg_result_code(r) < 0 ? sql_error(ss, r) : 0;
  PQclear(r);
  return err;
}

void pg_session_close(void *session) {
  pg_session *ss = session;
  for (int i = 0; i < STMT_CACHE; i++) free(ss->cache[i].sql);
  if (ss->c) {
    if (PQtransactionStatus(ss->c) != PQTRANS_IDLE) run_plain(ss, "ROLLBACK");
    PQfinish(ss->c);
  }
  __atomic_sub_fetch(&ss->s->sessions, 1, __ATOMIC_RELEASE);
  free(ss->errmsg);
  free(ss);
}

int pg_session_open(void *state, void **session) {
  pg_state *s = state;
  if (s->target.read_only) return JOURNAL_EREADONLY;
  pg_session *ss = calloc(1, sizeof *ss);
  if (!ss) return JOURNAL_ENOMEM;
  ss->s = s;
  __atomic_add_fetch(&s->sessions, 1, __ATOMIC_RELEASE);
  int rc = pg_connect(&s->target, s->log, "projection session", &ss->c);
  if (rc < 0) {
    pg_session_close(ss);
    return rc;
  }
  *session = ss;
  return 0;
}

int pg_session_begin(void *session) {
  pg_session *ss = session;
  set_errmsg(ss, NULL);
  return run_plain(ss, "BEGIN");
}

/* COMMIT of a transaction a failed statement aborted answers ROLLBACK. */
int pg_session_commit(void *session) {
  pg_session *ss = session;
  set_errmsg(ss, NULL);
  PGresult *r = PQexec(ss->c, "COMMIT");
  int err = pg_result_code(r) < 0 ? sql_error(ss, r) : 0;
  if (!err && strcmp(PQcmdStatus(r), "COMMIT") != 0) {
    set_errmsg(ss, "the transaction was rolled back: a statement in it failed");
    err = JOURNAL_ESQL;
  }
  PQclear(r);
  return err;
}

int pg_session_rollback(void *session) {
  pg_session *ss = session;
  set_errmsg(ss, NULL);
  if (PQtransactionStatus(ss->c) == PQTRANS_IDLE) return 0;
  return run_plain(ss, "ROLLBACK");
}

const char *pg_session_errmsg(void *session) {
  pg_session *ss = session;
  return ss->errmsg ? ss->errmsg : "";
}

int pg_session_get_offset(void *session, const char *name, int64_t *offset) {
  pg_session *ss = session;
  const char *v[] = {name};
  PGresult *r =
      PQexecParams(ss->c, "SELECT \"offset\" FROM lore_projection_offsets WHERE name = $1", 1, NULL,
                   v, NULL, NULL, 1);
  int err = pg_result_code(r) < 0 ? sql_error(ss, r) : 0;
  *offset = !err && PQntuples(r) == 1 ? pg_get_int(r, 0, 0) : 0;
  PQclear(r);
  return err;
}

int pg_session_set_offset(void *session, const char *name, int64_t offset) {
  pg_session *ss = session;
  char off[24];
  snprintf(off, sizeof off, "%" PRId64, offset);
  const char *v[] = {name, off};
  PGresult *r = PQexecParams(ss->c,
                             "INSERT INTO lore_projection_offsets(name, \"offset\") VALUES ($1, $2)"
                             " ON CONFLICT (name) DO UPDATE SET \"offset\" = excluded.\"offset\"",
                             2, NULL, v, NULL, NULL, 1);
  int err = pg_result_code(r) < 0 ? sql_error(ss, r) : 0;
  PQclear(r);
  return err;
}

/* ---- a projection's statements ---- */

typedef struct bound {
  const char *values[MAX_PARAMS];
  int lengths[MAX_PARAMS], formats[MAX_PARAMS];
  char *owned[MAX_PARAMS]; /* NUL-terminated copies, freed after the call */
} bound;

/* Values in the text syntax of the placeholder's type, blobs to bytea as
 * bytes. */
static int bind_params(pg_session *ss, const cached_stmt *st, const journal_value *params, size_t n,
                       bound *b) {
  for (size_t i = 0; i < n; i++) {
    const journal_value *v = &params[i];
    char num[40];
    b->formats[i] = 0;
    b->lengths[i] = 0;
    switch (v->type) {
      case JV_NULL:
        b->values[i] = NULL;
        continue;
      case JV_INT:
        snprintf(num, sizeof num, "%" PRId64, v->i);
        break;
      case JV_FLOAT:
        if (isnan(v->f))
          snprintf(num, sizeof num, "NaN");
        else if (isinf(v->f))
          snprintf(num, sizeof num, "%sInfinity", v->f < 0 ? "-" : "");
        else
          snprintf(num, sizeof num, "%.17g", v->f);
        break;
      case JV_BLOB:
        if (st->types[i] == PG_OID_BYTEA) {
          b->values[i] = v->s ? v->s : "";
          b->lengths[i] = v->s ? (int)v->len : 0;
          b->formats[i] = 1;
          continue;
        }
        __attribute__((fallthrough)); /* bytes for a placeholder of another type */
      case JV_TEXT:
        if (v->s && memchr(v->s, '\0', v->len)) {
          set_errmsg(ss, "PostgreSQL text cannot hold a NUL byte (bind it to a bytea placeholder)");
          return JOURNAL_ESQL;
        }
        b->owned[i] = strndup(v->s ? v->s : "", v->s ? v->len : 0);
        if (!b->owned[i]) return JOURNAL_ENOMEM;
        b->values[i] = b->owned[i];
        continue;
      default:
        set_errmsg(ss, "a parameter of an unknown type");
        return JOURNAL_ESQL;
    }
    if (!(b->owned[i] = strdup(num))) return JOURNAL_ENOMEM;
    b->values[i] = b->owned[i];
  }
  return 0;
}

static void forget(pg_session *ss, cached_stmt *st) {
  if (!st->sql) return;
  char sql[48];
  snprintf(sql, sizeof sql, "DEALLOCATE %s", st->name);
  PQclear(PQexec(ss->c, sql));
  free(st->sql);
  st->sql = NULL;
}

/* The cached statement for sql, prepared (and described: how many
 * placeholders, of which types) the first time. */
static cached_stmt *prepared(pg_session *ss, const char *sql, int *err) {
  for (int i = 0; i < STMT_CACHE; i++)
    if (ss->cache[i].sql && strcmp(ss->cache[i].sql, sql) == 0) return &ss->cache[i];
  cached_stmt *st = &ss->cache[ss->next_slot++ % STMT_CACHE];
  forget(ss, st);
  snprintf(st->name, sizeof st->name, "lore_p%u", ss->names++);
  PGresult *r = PQprepare(ss->c, st->name, sql, 0, NULL);
  *err = pg_result_code(r) < 0 ? sql_error(ss, r) : 0;
  PQclear(r);
  if (*err) return NULL;
  r = PQdescribePrepared(ss->c, st->name);
  *err = pg_result_code(r) < 0 ? sql_error(ss, r) : 0;
  if (!*err) {
    st->nparams = PQnparams(r);
    if (st->nparams > MAX_PARAMS) {
      set_errmsg(ss, "at most 64 parameters");
      *err = JOURNAL_ESQL;
    }
    for (int i = 0; !*err && i < st->nparams; i++) st->types[i] = PQparamtype(r, i);
  }
  PQclear(r);
  if (!*err && !(st->sql = strdup(sql))) *err = JOURNAL_ENOMEM;
  if (*err) {
    char dealloc[48];
    snprintf(dealloc, sizeof dealloc, "DEALLOCATE %s", st->name);
    PQclear(PQexec(ss->c, dealloc));
    return NULL;
  }
  return st;
}

/* One column of a text-format row as a journal_value; *blob gets bytes to
 * free after the callback. */
static void column_value(const PGresult *r, int row, int col, journal_value *v,
                         unsigned char **blob) {
  *v = (journal_value){.type = JV_NULL};
  if (PQgetisnull(r, row, col)) return;
  const char *t = PQgetvalue(r, row, col);
  switch (PQftype(r, col)) {
    case 20: /* int8 */
    case 21: /* int2 */
    case 23: /* int4 */
    case 26: /* oid */
      v->type = JV_INT;
      v->i = strtoll(t, NULL, 10);
      return;
    case 16: /* bool */
      v->type = JV_INT;
      v->i = t[0] == 't';
      return;
    case 700: /* float4 */
    case 701: /* float8 */
      v->type = JV_FLOAT;
      v->f = strtod(t, NULL);
      return;
    case 1700: { /* numeric: an integer when it is one, else a float */
      char *end = NULL;
      errno = 0;
      long long i = strtoll(t, &end, 10);
      if (end && *end == '\0' && errno == 0) {
        v->type = JV_INT;
        v->i = i;
      } else {
        v->type = JV_FLOAT;
        v->f = strtod(t, NULL);
      }
      return;
    }
    case PG_OID_BYTEA: {
      size_t n = 0;
      *blob = PQunescapeBytea((const unsigned char *)t, &n);
      v->type = JV_BLOB;
      v->s = *blob ? (const char *)*blob : "";
      v->len = *blob ? n : 0;
      return;
    }
    default:
      v->type = JV_TEXT;
      v->s = t;
      v->len = (size_t)PQgetlength(r, row, col);
  }
}

/* Hands every row of a result to cb; returns nonzero if cb asked to stop. */
static int deliver_rows(const PGresult *r, journal_row_cb cb, void *ud, int *err) {
  int ncols = PQnfields(r), stop = 0;
  const char *names_buf[STACK_COLUMNS];
  journal_value values_buf[STACK_COLUMNS];
  unsigned char *blobs_buf[STACK_COLUMNS];
  const char **names = names_buf;
  journal_value *values = values_buf;
  unsigned char **blobs = blobs_buf;
  if (ncols > STACK_COLUMNS) {
    names = malloc((size_t)ncols * sizeof *names);
    values = malloc((size_t)ncols * sizeof *values);
    blobs = calloc((size_t)ncols, sizeof *blobs);
    if (!names || !values || !blobs) {
      *err = JOURNAL_ENOMEM;
      goto out;
    }
  }
  for (int c = 0; c < ncols; c++) names[c] = PQfname(r, c);
  for (int row = 0; row < PQntuples(r) && !stop; row++) {
    for (int c = 0; c < ncols; c++) {
      blobs[c] = NULL;
      column_value(r, row, c, &values[c], &blobs[c]);
    }
    stop = cb(ud, ncols, names, values);
    for (int c = 0; c < ncols; c++) PQfreemem(blobs[c]);
  }
out:
  if (names != names_buf) free(names);
  if (values != values_buf) free(values);
  if (blobs != blobs_buf) free(blobs);
  return stop;
}

/* Several statements, no parameters (schema set-up): the simple protocol runs
 * them in order; every statement's rows go to cb. */
static int exec_script(pg_session *ss, const char *sql, journal_row_cb cb, void *ud) {
  if (!PQsendQuery(ss->c, sql)) return sql_error(ss, NULL);
  int err = 0, stop = 0;
  PGresult *r;
  while ((r = PQgetResult(ss->c))) {
    if (!err && pg_result_code(r) < 0) err = sql_error(ss, r);
    if (!err && !stop && cb && PQresultStatus(r) == PGRES_TUPLES_OK)
      stop = deliver_rows(r, cb, ud, &err);
    PQclear(r);
  }
  return err;
}

int pg_session_exec(void *session, const char *sql, const journal_value *params, size_t n,
                    journal_row_cb cb, void *ud) {
  pg_session *ss = session;
  set_errmsg(ss, NULL);
  if (n == 0) return exec_script(ss, sql, cb, ud);
  int err = 0;
  cached_stmt *st = prepared(ss, sql, &err);
  if (!st) return err;
  if ((size_t)st->nparams != n) {
    char m[120];
    snprintf(m, sizeof m, "%zu values bound to a statement with %d placeholders", n, st->nparams);
    set_errmsg(ss, m);
    return JOURNAL_ESQL;
  }
  bound b;
  memset(b.owned, 0, sizeof b.owned);
  err = bind_params(ss, st, params, n, &b);
  if (!err) {
    PGresult *r = PQexecPrepared(ss->c, st->name, (int)n, b.values, b.lengths, b.formats, 0);
    if (pg_result_code(r) < 0) {
      err = sql_error(ss, r);
      forget(ss, st); /* prepared again next time (the tables may have changed) */
    } else if (cb && PQresultStatus(r) == PGRES_TUPLES_OK) {
      deliver_rows(r, cb, ud, &err);
    }
    PQclear(r);
  }
  for (size_t i = 0; i < n; i++) free(b.owned[i]);
  return err;
}
