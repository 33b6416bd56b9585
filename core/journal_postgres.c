/* journal_postgres.c: the PostgreSQL journal backend: opening, the reader pool and the reads. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "journal_postgres.h"
#include "journal_postgres_internal.h"

/* A read page holds at most this many rows, and stops after the row that
 * takes it past PAGE_BYTES of payload: libpq keeps a whole result in memory,
 * and a page of 64 MB events must not take gigabytes. */
#define PAGE_ROWS 4096
#define PAGE_BYTES (8 << 20)

/* The columns every read returns, in row_event's order; reads across ids add the id. */
#define EVENT_COLUMNS "seq, manifest, version, tags, writer, ts, payload, crc, \"offset\""

/* Rows of `source` (a query in seq or offset order with a LIMIT) up to the
 * first that takes the page past PAGE_BYTES: a running sum of the payloads'
 * sizes (octet_length reads no out-of-line payload). */
#define BYTE_CAPPED(cols, source, order, cap_param)                                      \
  "SELECT " cols " FROM (SELECT p.*, sum(octet_length(p.payload)) OVER (ORDER BY " order \
  " ROWS UNBOUNDED PRECEDING) AS run FROM (" source                                      \
  ") p) q"                                                                               \
  " WHERE run - octet_length(payload) < $" cap_param " ORDER BY " order

/* The ids ever written: those with events (found by hopping along the
 * (id, seq) index, one probe per id rather than a scan of every event) and
 * those whose events were all deleted. */
#define KNOWN_IDS                                                          \
  "WITH RECURSIVE hop(id) AS (SELECT min(id) FROM lore_events UNION ALL"   \
  " SELECT (SELECT min(id) FROM lore_events WHERE id > hop.id) FROM hop"   \
  " WHERE hop.id IS NOT NULL),"                                            \
  " known(id, highest) AS (SELECT id, (SELECT max(seq) FROM lore_events e" \
  " WHERE e.id = hop.id) FROM hop WHERE id IS NOT NULL"                    \
  " UNION ALL SELECT id, highest FROM lore_deletions)"

typedef struct stmt {
  const char *name, *sql;
  int n;
  Oid types[6];
} stmt;

static const stmt replay_stmt = {
    "replay",
    BYTE_CAPPED(EVENT_COLUMNS,
                "SELECT " EVENT_COLUMNS " FROM lore_events WHERE id = $1 AND seq >= $2"
                " AND seq <= $3 ORDER BY seq LIMIT $4",
                "seq", "5"),
    5,
    {PG_OID_TEXT, PG_OID_INT8, PG_OID_INT8, PG_OID_INT8, PG_OID_INT8}};
static const stmt all_stmt = {
    "all",
    BYTE_CAPPED(EVENT_COLUMNS ", id",
                "SELECT " EVENT_COLUMNS ", id FROM lore_events WHERE \"offset\" > $1"
                " ORDER BY \"offset\" LIMIT $2",
                "\"offset\"", "3"),
    3,
    {PG_OID_INT8, PG_OID_INT8, PG_OID_INT8}};
static const stmt tag_stmt = {
    "tag",
    BYTE_CAPPED(EVENT_COLUMNS ", id",
                "SELECT e.seq, e.manifest, e.version, e.tags, e.writer, e.ts, e.payload, e.crc,"
                " e.\"offset\", e.id FROM lore_event_tags t JOIN lore_events e"
                " ON e.\"offset\" = t.\"offset\" WHERE t.tag = $1 AND t.\"offset\" > $2"
                " ORDER BY t.\"offset\" LIMIT $3",
                "\"offset\"", "4"),
    4,
    {PG_OID_TEXT, PG_OID_INT8, PG_OID_INT8, PG_OID_INT8}};

static const stmt read_stmts[] = {
    {"bounds",
     "SELECT coalesce((SELECT max(seq) FROM lore_events WHERE id = $1), 0),"
     " coalesce((SELECT highest FROM lore_deletions WHERE id = $1), 0),"
     " coalesce((SELECT deleted_to FROM lore_deletions WHERE id = $1), 0)",
     1,
     {PG_OID_TEXT}},
    {"list", KNOWN_IDS " SELECT id, max(highest) FROM known GROUP BY id ORDER BY id", 0, {0}},
    /* KNOWN_IDS after $1, the hop cut after $2 ids: one page costs $2 index
     * probes, not a walk of every id. */
    {"list_after",
     "WITH RECURSIVE hop(id, n) AS (SELECT (SELECT min(id) FROM lore_events WHERE id > $1), 1"
     " UNION ALL SELECT (SELECT min(id) FROM lore_events WHERE id > hop.id), n + 1 FROM hop"
     " WHERE hop.id IS NOT NULL AND n < $2),"
     " known(id, highest) AS (SELECT id, (SELECT max(seq) FROM lore_events e WHERE e.id = hop.id)"
     " FROM hop WHERE id IS NOT NULL UNION ALL SELECT id, highest FROM lore_deletions WHERE id > "
     "$1)"
     " SELECT id, max(highest) FROM known GROUP BY id ORDER BY id LIMIT $2",
     2,
     {PG_OID_TEXT, PG_OID_INT8}},
    {"maxoff", "SELECT value FROM lore_journal_info WHERE key = 'last_offset'", 0, {0}},
    {"stats_events",
     "SELECT count(*), coalesce(min(ts), 0), coalesce(max(ts), 0) FROM lore_events",
     0,
     {0}},
    {"stats_ids", KNOWN_IDS " SELECT count(DISTINCT id) FROM known", 0, {0}},
    {"stats_bytes",
     "SELECT (pg_total_relation_size('lore_events') + pg_total_relation_size('lore_event_tags')"
     " + pg_total_relation_size('lore_deletions'))::bigint",
     0,
     {0}},
};

/* ---- the reader pool ---- */

static void reader_free(pg_reader *r) {
  if (!r) return;
  PQclear(r->last);
  PQfinish(r->conn);
  free(r);
}

/* Connects r and prepares the reads on it. */
static int reader_connect(pg_state *s, pg_reader *r) {
  int rc = pg_connect(&s->target, s->log, "reader", &r->conn);
  const stmt *pages[] = {&replay_stmt, &all_stmt, &tag_stmt};
  for (size_t i = 0; rc == 0 && i < 3; i++)
    rc = pg_prepare(r->conn, s->log, pages[i]->name, pages[i]->sql, pages[i]->n, pages[i]->types);
  for (size_t i = 0; rc == 0 && i < sizeof read_stmts / sizeof read_stmts[0]; i++)
    rc = pg_prepare(r->conn, s->log, read_stmts[i].name, read_stmts[i].sql, read_stmts[i].n,
                    read_stmts[i].types);
  return rc;
}

static pg_reader *reader_open(pg_state *s, int *err) {
  pg_reader *r = calloc(1, sizeof *r);
  if (!r) {
    *err = JOURNAL_ENOMEM;
    return NULL;
  }
  int rc = reader_connect(s, r);
  if (rc < 0) {
    reader_free(r);
    *err = rc;
    return NULL;
  }
  return r;
}

/* An idle connection, or a new one while fewer than pool_size are open;
 * else waits for one to come back. */
pg_reader *pg_reader_get(pg_state *s, int *err) {
  pthread_mutex_lock(&s->pool_mu);
  for (;;) {
    if (s->idle) {
      pg_reader *r = s->idle;
      s->idle = r->next;
      pthread_mutex_unlock(&s->pool_mu);
      return r;
    }
    if (s->readers < s->target.pool_size) break;
    pthread_cond_wait(&s->pool_cv, &s->pool_mu);
  }
  s->readers++;
  pthread_mutex_unlock(&s->pool_mu);
  pg_reader *r = reader_open(s, err);
  if (!r) {
    pthread_mutex_lock(&s->pool_mu);
    s->readers--;
    pthread_cond_signal(&s->pool_cv);
    pthread_mutex_unlock(&s->pool_mu);
  }
  return r;
}

/* A connection that broke (the server restarted, ...) is dropped rather than
 * pooled: the next read makes a new one. */
void pg_reader_put(pg_state *s, pg_reader *r) {
  int broken = PQstatus(r->conn) != CONNECTION_OK || PQtransactionStatus(r->conn) != PQTRANS_IDLE;
  pthread_mutex_lock(&s->pool_mu);
  if (broken) {
    s->readers--;
  } else {
    r->next = s->idle;
    s->idle = r;
  }
  pthread_cond_signal(&s->pool_cv);
  pthread_mutex_unlock(&s->pool_mu);
  if (broken) reader_free(r);
}

/* ---- reads ---- */

/* A read whose connection turns out to be broken (the server restarted, the
 * network dropped it) is tried once more on a new one: reads change nothing. */
static PGresult *run_read(pg_state *s, pg_reader *r, const char *name, int n,
                          const char *const *values, const int *lengths, const int *formats,
                          int *err) {
  PGresult *res = pg_run(r->conn, s->log, name, 1, n, values, lengths, formats, err);
  if (res || PQstatus(r->conn) == CONNECTION_OK) return res;
  log_info(s->log, "postgres: reader: connecting again");
  PQclear(r->last);
  r->last = NULL;
  PQfinish(r->conn);
  r->conn = NULL;
  int rc = reader_connect(s, r);
  if (rc < 0) {
    *err = rc;
    return NULL;
  }
  return pg_run(r->conn, s->log, name, 1, n, values, lengths, formats, err);
}

/* A page is done with: kept until the next page has arrived (see pg_reader). */
static void page_done(pg_reader *r, PGresult *res) {
  PQclear(r->last);
  r->last = res;
}

/* Fills ev from a row (EVENT_COLUMNS, then the id if `id` is NULL);
 * JOURNAL_ECORRUPT if the payload does not match its CRC. */
static int row_event(const PGresult *res, int row, const char *id, journal_event *ev) {
  int64_t crc = pg_get_int(res, row, 7);
  if (crc < 0 || crc > UINT32_MAX || PQgetisnull(res, row, 6)) return JOURNAL_ECORRUPT;
  *ev = (journal_event){
      .id = id ? id : PQgetvalue(res, row, 9),
      .seq = pg_get_int(res, row, 0),
      .manifest = PQgetvalue(res, row, 1),
      .version = (int32_t)pg_get_int(res, row, 2),
      .tags = PQgetvalue(res, row, 3),
      .writer = pg_get_int(res, row, 4),
      .timestamp_ms = pg_get_int(res, row, 5),
      .payload = PQgetvalue(res, row, 6),
      .payload_len = (size_t)PQgetlength(res, row, 6),
      .crc32c = (uint32_t)crc,
      .offset = pg_get_int(res, row, 8),
  };
  if (crc32c(0, ev->payload, ev->payload_len) != ev->crc32c) return JOURNAL_ECORRUPT;
  return 0;
}

/* Hands a page's rows to cb. *got counts them, *last is the seq (by_offset 0)
 * or offset (1) of the last, *bytes their payloads' size. */
static int page_rows(pg_state *s, const PGresult *res, const char *id, int by_offset,
                     journal_replay_cb cb, void *ud, int64_t *got, int64_t *last, size_t *bytes,
                     int *stop) {
  int rows = PQntuples(res);
  for (int i = 0; i < rows && !*stop; i++) {
    journal_event ev;
    int err = row_event(res, i, id, &ev);
    if (err) {
      log_error(s->log, "postgres: event at offset %lld is corrupt (CRC mismatch)",
                (long long)pg_get_int(res, i, 8));
      return err;
    }
    (*got)++;
    *bytes += ev.payload_len;
    *last = by_offset ? ev.offset : ev.seq;
    *stop = cb(&ev, ud);
  }
  return 0;
}

static void be64(char *out, int64_t v) {
  uint64_t u = (uint64_t)v;
  for (int i = 7; i >= 0; i--) {
    out[i] = (char)(u & 0xff);
    u >>= 8;
  }
}

static int pgj_replay(void *state, const char *id, int64_t from, int64_t to, int64_t max,
                      journal_replay_cb cb, void *ud) {
  pg_state *s = state;
  int err = 0;
  pg_reader *r = pg_reader_get(s, &err);
  if (!r) return err;
  int64_t left = max < 0 ? INT64_MAX : max;
  int stop = 0;
  char b_from[8], b_to[8], b_limit[8], b_cap[8];
  be64(b_cap, PAGE_BYTES);
  while (!err && !stop && left > 0 && from <= to) {
    int64_t page = left < PAGE_ROWS ? left : PAGE_ROWS, got = 0, last = 0;
    size_t bytes = 0;
    be64(b_from, from);
    be64(b_to, to);
    be64(b_limit, page);
    const char *v[] = {id, b_from, b_to, b_limit, b_cap};
    int len[] = {0, 8, 8, 8, 8}, fmt[] = {0, 1, 1, 1, 1};
    PGresult *res = run_read(s, r, "replay", 5, v, len, fmt, &err);
    if (!res) break;
    err = page_rows(s, res, id, 0, cb, ud, &got, &last, &bytes, &stop);
    page_done(r, res);
    left -= got;
    /* The stream or the range ended: the page came back short, and not
     * because of its byte cap. */
    if ((got < page && bytes < PAGE_BYTES) || got == 0 || last == INT64_MAX) break;
    from = last + 1;
  }
  pg_reader_put(s, r);
  return err;
}

/* replay_all (tag NULL) and replay_tag: pages in offset order. */
static int replay_offsets(pg_state *s, const char *tag, int64_t after, int64_t max,
                          journal_replay_cb cb, void *ud) {
  int err = 0;
  pg_reader *r = pg_reader_get(s, &err);
  if (!r) return err;
  int64_t left = max < 0 ? INT64_MAX : max;
  int stop = 0;
  char b_after[8], b_limit[8], b_cap[8];
  be64(b_cap, PAGE_BYTES);
  while (!err && !stop && left > 0) {
    int64_t page = left < PAGE_ROWS ? left : PAGE_ROWS, got = 0, last = 0;
    size_t bytes = 0;
    be64(b_after, after);
    be64(b_limit, page);
    PGresult *res;
    if (tag) {
      const char *v[] = {tag, b_after, b_limit, b_cap};
      int len[] = {0, 8, 8, 8}, fmt[] = {0, 1, 1, 1};
      res = run_read(s, r, "tag", 4, v, len, fmt, &err);
    } else {
      const char *v[] = {b_after, b_limit, b_cap};
      int len[] = {8, 8, 8}, fmt[] = {1, 1, 1};
      res = run_read(s, r, "all", 3, v, len, fmt, &err);
    }
    if (!res) break;
    err = page_rows(s, res, NULL, 1, cb, ud, &got, &last, &bytes, &stop);
    page_done(r, res);
    left -= got;
    if ((got < page && bytes < PAGE_BYTES) || got == 0) break;
    after = last;
  }
  pg_reader_put(s, r);
  return err;
}

static int pgj_replay_tag(void *state, const char *tag, int64_t after, int64_t max,
                          journal_replay_cb cb, void *ud) {
  return replay_offsets(state, tag, after, max, cb, ud);
}

static int pgj_replay_all(void *state, int64_t after, int64_t max, journal_replay_cb cb, void *ud) {
  return replay_offsets(state, NULL, after, max, cb, ud);
}

static int pgj_bounds(void *state, const char *id, journal_bounds *out) {
  pg_state *s = state;
  int err = 0;
  pg_reader *r = pg_reader_get(s, &err);
  if (!r) return err;
  const char *v[] = {id};
  PGresult *res = run_read(s, r, "bounds", 1, v, NULL, NULL, &err);
  if (res) {
    int64_t stored = pg_get_int(res, 0, 0), kept = pg_get_int(res, 0, 1);
    out->highest = stored > kept ? stored : kept;
    out->deleted_to = pg_get_int(res, 0, 2);
    PQclear(res);
  }
  pg_reader_put(s, r);
  return err;
}

static int pgj_list_ids_after(void *state, const char *after, int64_t max,
                              void (*cb)(const char *id, int64_t highest, void *ud), void *ud) {
  pg_state *s = state;
  int err = 0;
  pg_reader *r = pg_reader_get(s, &err);
  if (!r) return err;
  char max_text[24];
  snprintf(max_text, sizeof max_text, "%lld", (long long)max);
  const char *v[] = {after, max_text};
  PGresult *res = run_read(s, r, "list_after", 2, v, NULL, NULL, &err);
  if (res) {
    for (int i = 0; i < PQntuples(res); i++) cb(PQgetvalue(res, i, 0), pg_get_int(res, i, 1), ud);
    PQclear(res);
  }
  pg_reader_put(s, r);
  return err;
}

static int pgj_max_offset(void *state, int64_t *out) {
  pg_state *s = state;
  int err = 0;
  pg_reader *r = pg_reader_get(s, &err);
  if (!r) return err;
  PGresult *res = run_read(s, r, "maxoff", 0, NULL, NULL, NULL, &err);
  if (res) {
    *out = PQntuples(res) == 1 ? pg_get_int(res, 0, 0) : 0;
    PQclear(res);
  }
  pg_reader_put(s, r);
  return err;
}

/* Aggregates only, in one snapshot of the database so the figures agree. */
static int pgj_stats(void *state, journal_stats_t *out) {
  pg_state *s = state;
  int err = 0;
  pg_reader *r = pg_reader_get(s, &err);
  if (!r) return err;
  *out = (journal_stats_t){0};
  err = pg_exec(r->conn, s->log, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
  const char *names[] = {"stats_events", "stats_ids", "maxoff", "stats_bytes"};
  for (int i = 0; !err && i < 4; i++) {
    PGresult *res = run_read(s, r, names[i], 0, NULL, NULL, NULL, &err);
    if (!res) break;
    if (PQntuples(res) == 1) {
      switch (i) {
        case 0:
          out->events = pg_get_int(res, 0, 0);
          out->oldest_ms = pg_get_int(res, 0, 1);
          out->newest_ms = pg_get_int(res, 0, 2);
          break;
        case 1:
          out->ids = pg_get_int(res, 0, 0);
          break;
        case 2:
          out->max_offset = pg_get_int(res, 0, 0);
          break;
        default:
          out->bytes = pg_get_int(res, 0, 0);
      }
    }
    PQclear(res);
  }
  if (PQtransactionStatus(r->conn) != PQTRANS_IDLE) {
    int rc = pg_exec(r->conn, s->log, err ? "ROLLBACK" : "COMMIT");
    if (!err) err = rc;
  }
  pg_reader_put(s, r);
  return err;
}

/* Rows arrive one at a time (single-row mode): a journal with millions of
 * ids never sits in memory at once. */
static int pgj_list_ids(void *state, void (*cb)(const char *id, int64_t highest, void *ud),
                        void *ud) {
  pg_state *s = state;
  int err = 0;
  pg_reader *r = pg_reader_get(s, &err);
  if (!r) return err;
  if (!PQsendQueryPrepared(r->conn, "list", 0, NULL, NULL, NULL, 1) ||
      !PQsetSingleRowMode(r->conn)) {
    log_error(s->log, "postgres: list ids: %s", PQerrorMessage(r->conn));
    err = JOURNAL_EIO;
  }
  PGresult *res;
  while (!err && (res = PQgetResult(r->conn))) {
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_SINGLE_TUPLE) {
      cb(PQgetvalue(res, 0, 0), pg_get_int(res, 0, 1), ud);
    } else if (st != PGRES_TUPLES_OK) {
      err = pg_result_code(res);
      log_error(s->log, "postgres: list ids: %s", PQresultErrorMessage(res));
    }
    PQclear(res);
  }
  /* After an error: the rest of the results, so the connection is reusable. */
  while ((res = PQgetResult(r->conn))) PQclear(res);
  pg_reader_put(s, r);
  return err;
}

/* ---- opening and closing ---- */

static void pgj_close(void *state) {
  pg_state *s = state;
  pg_notify_stop(s);
  pg_leases_close(s);
  pg_writer_close(s);
  if (__atomic_load_n(&s->sessions, __ATOMIC_ACQUIRE) > 0)
    log_error(s->log, "postgres: journal closed with %d projection session(s) still open",
              s->sessions);
  while (s->idle) {
    pg_reader *r = s->idle;
    s->idle = r->next;
    reader_free(r);
  }
  seqmap_free(&s->highest);
  idmap_free(&s->leases);
  for (size_t i = 0; i < sizeof s->arrays / sizeof s->arrays[0]; i++) pg_buf_free(&s->arrays[i]);
  pthread_mutex_destroy(&s->pool_mu);
  pthread_cond_destroy(&s->pool_cv);
  pthread_mutex_destroy(&s->wmu);
  pthread_cond_destroy(&s->lease_cv);
  pthread_mutex_destroy(&s->notify_mu);
  pg_target_free(&s->target);
  free(s->channel);
  free(s);
}

/* The notification channel: one per schema, named by a hash of it (a
 * channel name has at most 63 bytes; a schema name may have as many). */
static int find_channel(pg_state *s, PGconn *c) {
  int err = 0;
  PGresult *r = pg_run(c, s->log, "SELECT current_schema()", 0, 0, NULL, NULL, NULL, &err);
  if (!r) return err;
  const char *schema = PQntuples(r) == 1 && !PQgetisnull(r, 0, 0) ? PQgetvalue(r, 0, 0) : "";
  char name[40];
  snprintf(name, sizeof name, "lore_%016llx",
           (unsigned long long)pg_lock_key(schema, "journal notifications"));
  PQclear(r);
  s->channel = strdup(name);
  return s->channel ? 0 : JOURNAL_ENOMEM;
}

/* Read-only: a first connection checks the tables (before a reader
 * prepares statements on them). Nothing here writes to the database. */
static int open_read_only(pg_state *s) {
  PGconn *c = NULL;
  int err = pg_connect(&s->target, s->log, "reader", &c);
  if (!err) err = pg_schema_prepare(c, s->log, s->target.schema, PG_COMPONENT_JOURNAL, 1);
  if (!err) err = find_channel(s, c);
  if (c) PQfinish(c);
  return err;
}

static int pgj_open(const char *path, journal_options *opt, void **state) {
  pg_state *s = calloc(1, sizeof *s);
  if (!s) return JOURNAL_ENOMEM;
  s->log = opt->log;
  /* The options' pool size, unless the URI says otherwise. */
  int pool = opt->pool_size > 0 && opt->pool_size <= PG_MAX_POOL ? opt->pool_size : PG_DEFAULT_POOL;
  int err = pg_target_parse(path, opt, pool, s->log, &s->target);
  if (err < 0) {
    free(s);
    return err;
  }
  while (s->instance == 0) {
    if (uv_random(NULL, NULL, &s->instance, sizeof s->instance, 0, NULL) != 0)
      s->instance = (uint64_t)rand() << 32 | (uint64_t)rand();
  }
  seqmap_init(&s->highest);
  if (opt->writer_ids_max) s->highest.limit = opt->writer_ids_max;
  idmap_init(&s->leases);
  pthread_mutex_init(&s->pool_mu, NULL);
  pthread_cond_init(&s->pool_cv, NULL);
  pthread_mutex_init(&s->wmu, NULL);
  pthread_cond_init(&s->lease_cv, NULL);
  pthread_mutex_init(&s->notify_mu, NULL);
  if (s->target.read_only) {
    err = open_read_only(s);
  } else {
    err = pg_writer_open(s);
    if (!err) err = find_channel(s, s->wconn);
    /* One reader made now, not by the first recovery (connecting and
     * preparing cost more than reading a page). */
    pg_reader *r = err ? NULL : pg_reader_get(s, &err);
    if (r) pg_reader_put(s, r);
  }
  if (err < 0) {
    pgj_close(s);
    return err;
  }
  *state = s;
  return 0;
}

static size_t pgj_writer_ids(void *state) {
  return seqmap_shared_count(&((pg_state *)state)->highest);
}

const journal_backend journal_postgres_backend = {
    .writer_ids = pgj_writer_ids,
    .scheme = "postgres",
    .open = pgj_open,
    .write_batch = pg_write_batch,
    .replay = pgj_replay,
    .bounds = pgj_bounds,
    .list_ids = pgj_list_ids,
    .list_ids_after = pgj_list_ids_after,
    .replay_tag = pgj_replay_tag,
    .replay_all = pgj_replay_all,
    .max_offset = pgj_max_offset,
    .stats = pgj_stats,
    .set_notify = pg_set_notify,
    .subscribers_changed = pg_subscribers_changed,
    .session_open = pg_session_open,
    .session_begin = pg_session_begin,
    .session_exec = pg_session_exec,
    .session_errmsg = pg_session_errmsg,
    .session_get_offset = pg_session_get_offset,
    .session_set_offset = pg_session_set_offset,
    .session_commit = pg_session_commit,
    .session_rollback = pg_session_rollback,
    .session_close = pg_session_close,
    .close = pgj_close,
};
