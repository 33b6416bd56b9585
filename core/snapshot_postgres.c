/* snapshot_postgres.c: the snapshot store in a PostgreSQL table (the journal's database, or
 * another). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "journal_postgres.h"
#include "journal_postgres_internal.h"

/*
 * "postgres:CONNINFO[?pool=N&schema=NAME]", as the journal's URI (whose
 * `mode` is accepted and ignored here, so one URI serves both). Loads and
 * saves run on libuv's thread pool: each takes a connection of a small pool
 * (2 unless `pool=`), made when first needed. The table, lore_snapshots, is
 * created on first use (journal_postgres_schema.c); each row keeps the
 * CRC32C of its data, so damaged bytes read as SNAPSHOT_ECORRUPT.
 */

#define SNAPSHOT_POOL 2

typedef struct conn {
  PGconn *c;
  struct conn *next;
} conn;

typedef struct pgs_state {
  pg_target target;
  const log_sink *log;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  conn *idle;
  int open;
} pgs_state;

#define MATCH "id = $1 AND seq BETWEEN $2 AND $3 AND ts BETWEEN $4 AND $5"

static const struct {
  const char *name, *sql;
  int n;
  Oid types[6];
} stmts[] = {
    {"s_save",
     "INSERT INTO lore_snapshots(id, seq, ts, data, crc) VALUES ($1, $2, $3, $4, $5)"
     " ON CONFLICT (id, seq) DO UPDATE SET ts = excluded.ts, data = excluded.data,"
     " crc = excluded.crc",
     5,
     {PG_OID_TEXT, PG_OID_INT8, PG_OID_INT8, PG_OID_BYTEA, PG_OID_INT8}},
    {"s_load",
     "SELECT seq, ts, data, crc FROM lore_snapshots WHERE " MATCH
     " ORDER BY seq DESC LIMIT 1 OFFSET $6",
     6,
     {PG_OID_TEXT, PG_OID_INT8, PG_OID_INT8, PG_OID_INT8, PG_OID_INT8, PG_OID_INT8}},
    {"s_delete",
     "DELETE FROM lore_snapshots WHERE " MATCH,
     5,
     {PG_OID_TEXT, PG_OID_INT8, PG_OID_INT8, PG_OID_INT8, PG_OID_INT8}},
    {"s_list",
     "SELECT seq, ts FROM lore_snapshots WHERE " MATCH " ORDER BY seq DESC LIMIT $6",
     6,
     {PG_OID_TEXT, PG_OID_INT8, PG_OID_INT8, PG_OID_INT8, PG_OID_INT8, PG_OID_INT8}},
};

static int to_snapshot_code(int journal_code) {
  switch (journal_code) {
    case 0:
      return 0;
    case JOURNAL_ENOMEM:
      return SNAPSHOT_ENOMEM;
    case JOURNAL_EURI:
      return SNAPSHOT_EURI;
    case JOURNAL_EREJECTED:
      return SNAPSHOT_EINVAL;
    default:
      return SNAPSHOT_EIO;
  }
}

static conn *conn_open(pgs_state *s, int *err) {
  conn *k = calloc(1, sizeof *k);
  if (!k) {
    *err = SNAPSHOT_ENOMEM;
    return NULL;
  }
  int rc = pg_connect(&s->target, s->log, "snapshot store", &k->c);
  for (size_t i = 0; rc == 0 && i < sizeof stmts / sizeof stmts[0]; i++)
    rc = pg_prepare(k->c, s->log, stmts[i].name, stmts[i].sql, stmts[i].n, stmts[i].types);
  if (rc < 0) {
    PQfinish(k->c);
    free(k);
    *err = to_snapshot_code(rc);
    return NULL;
  }
  return k;
}

static conn *conn_get(pgs_state *s, int *err) {
  pthread_mutex_lock(&s->mu);
  for (;;) {
    if (s->idle) {
      conn *k = s->idle;
      s->idle = k->next;
      pthread_mutex_unlock(&s->mu);
      return k;
    }
    if (s->open < s->target.pool_size) break;
    pthread_cond_wait(&s->cv, &s->mu);
  }
  s->open++;
  pthread_mutex_unlock(&s->mu);
  conn *k = conn_open(s, err);
  if (!k) {
    pthread_mutex_lock(&s->mu);
    s->open--;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
  }
  return k;
}

/* A broken connection is dropped: the next call makes a new one. */
static void conn_put(pgs_state *s, conn *k) {
  int broken = PQstatus(k->c) != CONNECTION_OK || PQtransactionStatus(k->c) != PQTRANS_IDLE;
  pthread_mutex_lock(&s->mu);
  if (broken) {
    s->open--;
  } else {
    k->next = s->idle;
    s->idle = k;
  }
  pthread_cond_signal(&s->cv);
  pthread_mutex_unlock(&s->mu);
  if (broken) {
    PQfinish(k->c);
    free(k);
  }
}

static void pgs_close(void *state) {
  pgs_state *s = state;
  while (s->idle) {
    conn *k = s->idle;
    s->idle = k->next;
    PQfinish(k->c);
    free(k);
  }
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->cv);
  pg_target_free(&s->target);
  free(s);
}

static int pgs_open(const char *path, const log_sink *log, void **state) {
  pgs_state *s = calloc(1, sizeof *s);
  if (!s) return SNAPSHOT_ENOMEM;
  s->log = log;
  /* `mode` is taken and ignored, so that one URI serves the journal and the store. */
  journal_options ignored = {0};
  int rc = pg_target_parse(path, &ignored, SNAPSHOT_POOL, log, &s->target);
  if (rc < 0) {
    free(s);
    return to_snapshot_code(rc);
  }
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cv, NULL);
  /* The first connection makes the table, then waits in the pool. */
  PGconn *c = NULL;
  rc = pg_connect(&s->target, log, "snapshot store", &c);
  if (rc == 0) rc = pg_schema_prepare(c, log, s->target.schema, PG_COMPONENT_SNAPSHOTS, 0);
  if (c) PQfinish(c);
  int err = to_snapshot_code(rc);
  if (!err) {
    conn *k = conn_get(s, &err);
    if (k) conn_put(s, k);
  }
  if (err) {
    pgs_close(s);
    return err;
  }
  *state = s;
  return 0;
}

typedef struct params {
  char b[6][8];
  const char *v[6];
  int len[6], fmt[6];
} params;

static void put_i64(params *p, int i, int64_t x) {
  uint64_t u = (uint64_t)x;
  for (int k = 7; k >= 0; k--) {
    p->b[i][k] = (char)(u & 0xff);
    u >>= 8;
  }
  p->v[i] = p->b[i];
  p->len[i] = 8;
  p->fmt[i] = 1;
}

static void match_params(params *p, const char *id, const snapshot_criteria *c) {
  p->v[0] = id;
  p->len[0] = 0;
  p->fmt[0] = 0;
  put_i64(p, 1, c->min_seq);
  put_i64(p, 2, c->max_seq);
  put_i64(p, 3, c->min_ts);
  put_i64(p, 4, c->max_ts);
}

/* Runs a prepared statement on a pooled connection. One found broken (the
 * server restarted) is replaced and the statement run once more: every
 * statement here can run twice to the same effect. */
static PGresult *run(pgs_state *s, const char *name, int n, params *p, int *err) {
  conn *k = conn_get(s, err);
  if (!k) return NULL;
  int jerr = 0;
  PGresult *r = pg_run(k->c, s->log, name, 1, n, p->v, p->len, p->fmt, &jerr);
  if (!r && PQstatus(k->c) != CONNECTION_OK) {
    conn_put(s, k); /* dropped */
    if (!(k = conn_get(s, err))) return NULL;
    r = pg_run(k->c, s->log, name, 1, n, p->v, p->len, p->fmt, &jerr);
  }
  conn_put(s, k);
  *err = to_snapshot_code(jerr);
  return r;
}

static int id_ok(pgs_state *s, const char *id) {
  if (pg_utf8_valid(id, strlen(id))) return 1;
  log_warn(s->log, "postgres: snapshot store: an id that is not UTF-8 cannot be stored");
  return 0;
}

static int pgs_save(void *state, const char *id, const snapshot_meta *meta, const void *data,
                    size_t len) {
  pgs_state *s = state;
  if (!id_ok(s, id)) return SNAPSHOT_EINVAL;
  params p;
  match_params(&p, id, &(snapshot_criteria){0});
  put_i64(&p, 1, meta->seq);
  put_i64(&p, 2, meta->timestamp_ms);
  p.v[3] = len ? data : "";
  p.len[3] = (int)len;
  p.fmt[3] = 1;
  put_i64(&p, 4, crc32c(0, data, len));
  int err = 0;
  PGresult *r = run(s, "s_save", 5, &p, &err);
  PQclear(r);
  return err;
}

static int pgs_load(void *state, const char *id, const snapshot_criteria *crit, int skip,
                    snapshot_meta *meta, void **data, size_t *len) {
  pgs_state *s = state;
  if (!id_ok(s, id)) return SNAPSHOT_ENOTFOUND;
  params p;
  match_params(&p, id, crit);
  put_i64(&p, 5, skip);
  int err = 0;
  PGresult *r = run(s, "s_load", 6, &p, &err);
  if (!r) return err;
  if (PQntuples(r) == 0) {
    PQclear(r);
    return SNAPSHOT_ENOTFOUND;
  }
  meta->seq = pg_get_int(r, 0, 0);
  meta->timestamp_ms = pg_get_int(r, 0, 1);
  int64_t stored = pg_get_int(r, 0, 3);
  const char *bytes = PQgetvalue(r, 0, 2);
  size_t n = (size_t)PQgetlength(r, 0, 2);
  if (stored < 0 || stored > (int64_t)UINT32_MAX || crc32c(0, bytes, n) != (uint32_t)stored) {
    log_warn(s->log, "postgres: snapshot %s@%lld fails its checksum", id, (long long)meta->seq);
    PQclear(r);
    return SNAPSHOT_ECORRUPT;
  }
  void *copy = malloc(n ? n : 1);
  if (!copy) {
    PQclear(r);
    return SNAPSHOT_ENOMEM;
  }
  if (n) memcpy(copy, bytes, n);
  *data = copy;
  *len = n;
  PQclear(r);
  return 0;
}

static int pgs_delete(void *state, const char *id, const snapshot_criteria *crit) {
  pgs_state *s = state;
  if (!id_ok(s, id)) return 0; /* nothing of it can be stored */
  params p;
  match_params(&p, id, crit);
  int err = 0;
  PGresult *r = run(s, "s_delete", 5, &p, &err);
  PQclear(r);
  return err;
}

static int pgs_list(void *state, const char *id, const snapshot_criteria *crit, snapshot_meta *out,
                    size_t cap, size_t *n) {
  pgs_state *s = state;
  *n = 0;
  if (cap == 0 || !id_ok(s, id)) return 0;
  params p;
  match_params(&p, id, crit);
  put_i64(&p, 5, cap > INT64_MAX ? INT64_MAX : (int64_t)cap);
  int err = 0;
  PGresult *r = run(s, "s_list", 6, &p, &err);
  if (!r) return err;
  size_t rows = (size_t)PQntuples(r);
  for (size_t i = 0; i < rows && i < cap; i++) {
    out[i].seq = pg_get_int(r, (int)i, 0);
    out[i].timestamp_ms = pg_get_int(r, (int)i, 1);
    *n = i + 1;
  }
  PQclear(r);
  return 0;
}

const snapshot_backend snapshot_postgres_backend = {
    .scheme = "postgres",
    .open = pgs_open,
    .save = pgs_save,
    .load = pgs_load,
    .delete_matching = pgs_delete,
    .list = pgs_list,
    .close = pgs_close,
};
