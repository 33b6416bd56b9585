/* journal_postgres_conn.c: PostgreSQL URIs, connections, error codes and binary parameters. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journal_postgres_internal.h"
#include "journal_uri.h"

/* ---- URIs ---- */

typedef struct parse_ctx {
  pg_target *t;
  journal_options *opt; /* NULL: no `mode` parameter (snapshot stores) */
  pg_buf extra;         /* parameters for libpq, in the conninfo's own syntax */
  int uri_form;
  const log_sink *log;
} parse_ctx;

/* An identifier Lore can name without quoting surprises: it ends up in
 * search_path, in a channel name and in advisory lock keys. */
static int schema_name_ok(const char *v) {
  size_t n = strlen(v);
  if (n == 0 || n > 63) return 0;
  if (!((v[0] >= 'a' && v[0] <= 'z') || v[0] == '_')) return 0;
  for (size_t i = 1; i < n; i++)
    if (!((v[i] >= 'a' && v[i] <= 'z') || (v[i] >= '0' && v[i] <= '9') || v[i] == '_')) return 0;
  return 1;
}

static int parse_param(const char *name, const char *value, void *ud) {
  parse_ctx *p = ud;
  if (p->opt) {
    int r = journal_uri_common_param(name, value, p->opt);
    if (r < 0) return r;
    if (r == 1) return 0;
  }
  if (strcmp(name, "pool") == 0) {
    char *end = NULL;
    long v = strtol(value, &end, 10);
    if (!value[0] || *end || v < 1 || v > PG_MAX_POOL) {
      log_error(p->log, "postgres: pool=%s: a number of connections from 1 to %d", value,
                PG_MAX_POOL);
      return JOURNAL_EURI;
    }
    p->t->pool_size = (int)v;
    return 0;
  }
  if (strcmp(name, "schema") == 0) {
    if (!schema_name_ok(value)) {
      log_error(p->log,
                "postgres: schema=%s: a lower-case name of letters, digits and '_' (at most 63)",
                value);
      return JOURNAL_EURI;
    }
    free(p->t->schema);
    p->t->schema = strdup(value);
    return p->t->schema ? 0 : JOURNAL_ENOMEM;
  }
  /* Everything else is libpq's (sslmode, connect_timeout, ...): it judges them. */
  if (p->uri_form) {
    pg_buf_put(&p->extra, p->extra.len ? "&" : "?", 1);
    pg_buf_put(&p->extra, name, strlen(name));
    pg_buf_put(&p->extra, "=", 1);
    pg_buf_put(&p->extra, value, strlen(value));
  } else {
    pg_buf_put(&p->extra, " ", 1);
    pg_buf_put(&p->extra, name, strlen(name));
    pg_buf_put(&p->extra, "='", 2);
    for (const char *c = value; *c; c++) {
      if (*c == '\'' || *c == '\\') pg_buf_put(&p->extra, "\\", 1);
      pg_buf_put(&p->extra, c, 1);
    }
    pg_buf_put(&p->extra, "'", 1);
  }
  return p->extra.oom ? JOURNAL_ENOMEM : 0;
}

int pg_target_parse(const char *path, journal_options *opt, int pool_default, const log_sink *log,
                    pg_target *t) {
  memset(t, 0, sizeof *t);
  t->pool_size = pool_default;
  journal_options scratch = {0};
  if (opt) scratch = *opt;
  parse_ctx p = {.t = t, .opt = opt ? &scratch : NULL, .log = log};
  p.uri_form = strncmp(path, "postgresql://", 13) == 0 || strncmp(path, "postgres://", 11) == 0;
  char *base = NULL;
  int rc = journal_uri_params(path, &base, parse_param, &p);
  if (rc < 0) {
    pg_buf_free(&p.extra);
    pg_target_free(t);
    return rc;
  }
  t->read_only = scratch.read_only;
  if (opt) {
    opt->read_only = scratch.read_only;
    opt->pool_size = t->pool_size;
  }
  size_t len = strlen(base) + p.extra.len + 1;
  t->conninfo = malloc(len);
  if (!t->conninfo) {
    free(base);
    pg_buf_free(&p.extra);
    pg_target_free(t);
    return JOURNAL_ENOMEM;
  }
  memcpy(t->conninfo, base, strlen(base));
  if (p.extra.len) memcpy(t->conninfo + strlen(base), p.extra.data, p.extra.len);
  t->conninfo[len - 1] = '\0';
  free(base);
  pg_buf_free(&p.extra);
  char *why = NULL;
  PQconninfoOption *opts = PQconninfoParse(t->conninfo, &why);
  if (!opts) {
    log_error(log, "postgres: bad connection string: %s", why ? why : "out of memory");
    rc = why ? JOURNAL_EURI : JOURNAL_ENOMEM;
    PQfreemem(why);
    pg_target_free(t);
    return rc;
  }
  PQconninfoFree(opts);
  return 0;
}

void pg_target_free(pg_target *t) {
  free(t->conninfo);
  free(t->schema);
  t->conninfo = t->schema = NULL;
}

/* ---- connections ---- */

/* NOTICEs (CREATE ... IF NOT EXISTS on a second open, ...) are for debugging only. */
static void notice_to_log(void *arg, const char *message) {
  const log_sink *log = arg;
  size_t n = strlen(message);
  while (n > 0 && message[n - 1] == '\n') n--;
  log_debug(log, "postgres: %.*s", (int)n, message);
}

int pg_connect(const pg_target *t, const log_sink *log, const char *what, PGconn **out) {
  *out = NULL;
  /* The conninfo goes in as `dbname`, which libpq expands (both syntaxes);
   * what Lore fixes comes after it and wins. Text goes both ways as UTF-8
   * whatever PGCLIENTENCODING says. */
  const char *keys[] = {"dbname", "fallback_application_name", "client_encoding", NULL};
  const char *values[] = {t->conninfo, "lore", "UTF8", NULL};
  PGconn *c = PQconnectdbParams(keys, values, 1);
  if (!c) {
    log_error(log, "postgres: %s: out of memory", what);
    return JOURNAL_ENOMEM;
  }
  if (PQstatus(c) != CONNECTION_OK) {
    const char *m = PQerrorMessage(c);
    size_t n = strlen(m);
    while (n > 0 && m[n - 1] == '\n') n--;
    log_error(log, "postgres: %s: cannot connect: %.*s", what, (int)n, m);
    PQfinish(c);
    return JOURNAL_EIO;
  }
  PQsetNoticeProcessor(c, notice_to_log, (void *)log);
  if (t->schema) {
    char *q = PQescapeIdentifier(c, t->schema, strlen(t->schema));
    char sql[160];
    int rc = JOURNAL_ENOMEM;
    if (q) {
      snprintf(sql, sizeof sql, "SET search_path TO %s", q);
      PQfreemem(q);
      rc = pg_exec(c, log, sql);
    }
    if (rc < 0) {
      PQfinish(c);
      return rc;
    }
  }
  *out = c;
  return 0;
}

/* ---- errors ---- */

int pg_result_code(const PGresult *r) {
  if (!r) return JOURNAL_EIO;
  ExecStatusType st = PQresultStatus(r);
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_SINGLE_TUPLE ||
      st == PGRES_PIPELINE_SYNC)
    return 0;
  const char *code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
  if (!code || strlen(code) != 5) return JOURNAL_EIO;
  if (strcmp(code, "23505") == 0) return JOURNAL_ECONFLICT;
  if (strncmp(code, "23", 2) == 0 || strncmp(code, "22", 2) == 0) return JOURNAL_EREJECTED;
  if (strcmp(code, "25006") == 0) return JOURNAL_EREADONLY;
  if (strcmp(code, "42P01") == 0 || strcmp(code, "3F000") == 0) return JOURNAL_ENOTLORE;
  if (strcmp(code, "53200") == 0) return JOURNAL_ENOMEM;
  return JOURNAL_EIO;
}

static void log_failure(const log_sink *log, PGconn *c, const PGresult *r, const char *what) {
  const char *m = r ? PQresultErrorMessage(r) : PQerrorMessage(c);
  if (!m || !m[0]) m = PQerrorMessage(c);
  size_t n = strlen(m);
  while (n > 0 && m[n - 1] == '\n') n--;
  size_t w = strlen(what);
  log_error(log, "postgres: %.*s%s: %.*s", (int)(w > 120 ? 120 : w), what, w > 120 ? "..." : "",
            (int)n, m);
}

int pg_exec(PGconn *c, const log_sink *log, const char *sql) {
  PGresult *r = PQexec(c, sql);
  int rc = pg_result_code(r);
  if (rc < 0) log_failure(log, c, r, sql);
  PQclear(r);
  return rc;
}

PGresult *pg_run(PGconn *c, const log_sink *log, const char *stmt_or_sql, int prepared, int n,
                 const char *const *values, const int *lengths, const int *formats, int *err) {
  PGresult *r = prepared ? PQexecPrepared(c, stmt_or_sql, n, values, lengths, formats, 1)
                         : PQexecParams(c, stmt_or_sql, n, NULL, values, lengths, formats, 1);
  *err = pg_result_code(r);
  if (*err == 0) return r;
  /* A clash is the caller's business (a write's status), not a failure to report. */
  if (*err != JOURNAL_ECONFLICT) log_failure(log, c, r, stmt_or_sql);
  PQclear(r);
  return NULL;
}

int pg_prepare(PGconn *c, const log_sink *log, const char *name, const char *sql, int n,
               const Oid *types) {
  PGresult *r = PQprepare(c, name, sql, n, types);
  int rc = pg_result_code(r);
  if (rc < 0) log_failure(log, c, r, sql);
  PQclear(r);
  return rc;
}

/* ---- values ---- */

int pg_utf8_valid(const char *str, size_t len) {
  const unsigned char *s = (const unsigned char *)str;
  size_t i = 0;
  while (i < len) {
    unsigned char c = s[i];
    if (c == 0) return 0;
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t n;
    uint32_t cp;
    if (c >= 0xc2 && c <= 0xdf) {
      n = 1;
      cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
      n = 2;
      cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 3;
      cp = c & 0x07;
    } else {
      return 0;
    }
    if (i + n >= len) return 0; /* truncated */
    for (size_t k = 1; k <= n; k++) {
      if ((s[i + k] & 0xc0) != 0x80) return 0;
      cp = cp << 6 | (s[i + k] & 0x3f);
    }
    /* Overlong forms, surrogates and code points past U+10FFFF. */
    if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
      return 0;
    i += n + 1;
  }
  return 1;
}

int64_t pg_get_i64(const char *p) {
  const unsigned char *u = (const unsigned char *)p;
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = v << 8 | u[i];
  return (int64_t)v;
}

int32_t pg_get_i32(const char *p) {
  const unsigned char *u = (const unsigned char *)p;
  return (int32_t)((uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 | u[3]);
}

int64_t pg_get_int(const PGresult *r, int row, int col) {
  if (PQgetisnull(r, row, col)) return 0;
  const char *v = PQgetvalue(r, row, col);
  switch (PQgetlength(r, row, col)) {
    case 8:
      return pg_get_i64(v);
    case 4:
      return pg_get_i32(v);
    case 2:
      return (int16_t)((uint16_t)(unsigned char)v[0] << 8 | (unsigned char)v[1]);
    default:
      return 0;
  }
}

/* ---- binary parameters ---- */

void pg_buf_reset(pg_buf *b) {
  b->len = 0;
  b->elems = 0;
  b->oom = 0;
}

void pg_buf_free(pg_buf *b) {
  free(b->data);
  memset(b, 0, sizeof *b);
}

void pg_buf_put(pg_buf *b, const void *p, size_t n) {
  if (b->oom || n == 0) return;
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n) cap *= 2;
    char *d = realloc(b->data, cap);
    if (!d) {
      b->oom = 1;
      return;
    }
    b->data = d;
    b->cap = cap;
  }
  memcpy(b->data + b->len, p, n);
  b->len += n;
}

void pg_buf_put_i32(pg_buf *b, int32_t v) {
  uint32_t u = (uint32_t)v;
  unsigned char o[4] = {(unsigned char)(u >> 24), (unsigned char)(u >> 16), (unsigned char)(u >> 8),
                        (unsigned char)u};
  pg_buf_put(b, o, 4);
}

void pg_buf_put_i64(pg_buf *b, int64_t v) {
  uint64_t u = (uint64_t)v;
  unsigned char o[8];
  for (int i = 7; i >= 0; i--) {
    o[i] = (unsigned char)u;
    u >>= 8;
  }
  pg_buf_put(b, o, 8);
}

/* ndim, has-nulls flag, element type, then one dimension: its size (patched
 * by pg_array_end) and lower bound. */
void pg_array_begin(pg_buf *b, Oid elem_oid) {
  pg_buf_reset(b);
  pg_buf_put_i32(b, 1);
  pg_buf_put_i32(b, 0);
  pg_buf_put_i32(b, (int32_t)elem_oid);
  pg_buf_put_i32(b, 0);
  pg_buf_put_i32(b, 1);
}

void pg_array_bytes(pg_buf *b, const void *p, size_t n) {
  pg_buf_put_i32(b, (int32_t)n);
  pg_buf_put(b, p, n);
  b->elems++;
}

void pg_array_i64(pg_buf *b, int64_t v) {
  pg_buf_put_i32(b, 8);
  pg_buf_put_i64(b, v);
  b->elems++;
}

void pg_array_i32(pg_buf *b, int32_t v) {
  pg_buf_put_i32(b, 4);
  pg_buf_put_i32(b, v);
  b->elems++;
}

void pg_array_end(pg_buf *b) {
  if (b->oom || b->len < 20) return;
  uint32_t u = (uint32_t)b->elems;
  unsigned char *p = (unsigned char *)b->data + 12;
  p[0] = (unsigned char)(u >> 24);
  p[1] = (unsigned char)(u >> 16);
  p[2] = (unsigned char)(u >> 8);
  p[3] = (unsigned char)u;
  /* An empty array has no dimension at all in PostgreSQL's format. */
  if (b->elems == 0) {
    memset(b->data, 0, 4);
    b->len = 12;
  }
}

int64_t pg_lock_key(const char *schema, const char *name) {
  uint64_t h = 1469598103934665603u; /* FNV-1a over "schema\0name", then a final mix */
  for (const char *p = schema ? schema : ""; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211u;
  h = (h ^ 0xffu) * 1099511628211u;
  for (const char *p = name; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211u;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdu;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53u;
  h ^= h >> 33;
  return (int64_t)h;
}
