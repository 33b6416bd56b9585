/* journal_postgres_write.c: the PostgreSQL journal's writer: one transaction per batch, offsets
 * in commit order, deletes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journal_postgres_internal.h"

/*
 * Offsets follow commit order. Every batch that stores events takes its
 * offsets from lore_journal_info's last_offset row, updated in the batch's
 * own transaction: the row lock that update takes is held until the commit,
 * so a second writer (another process) waits at its own update until the
 * first has committed, and then reads the first one's value. PostgreSQL
 * makes a transaction visible before it lets go of its locks, so whoever
 * sees the second batch's events also sees the first's: no reader can ever
 * find an offset appear below one it has already read.
 *
 * A batch is one round trip. Events alone (the usual batch) are one
 * statement in autocommit (w_batch): the offset update, the events (one
 * multi-row INSERT from arrays), their tags and the notification to other
 * processes. A batch with deletes sends BEGIN, the same steps as separate
 * statements, the deletes and COMMIT together in pipeline mode. Gaps and duplicates are refused
 * from `highest` (id -> highest seq) without a query. If the database still finds a duplicate (a
 * row this process did not know of), the batch is written again one write at a time, each in a
 * savepoint, so that write alone fails.
 */

/* One INSERT carries at most this much payload; a batch of large events
 * takes several. */
#define CHUNK_BYTES ((size_t)32 << 20)

enum {
  A_ID,
  A_SEQ,
  A_MANIFEST,
  A_VERSION,
  A_TAGS,
  A_WRITER,
  A_TS,
  A_PAYLOAD,
  A_CRC,
  A_TAG,
  A_TAG_IDX,
  A_MISC,
  A_COUNT
};

static const struct {
  const char *name, *sql;
  int n;
  Oid types[14];
} writer_stmts[] = {
    /* The highest seq of each of some ids (stored, or kept by a delete). */
    {"w_bounds",
     "SELECT u.id, GREATEST(coalesce((SELECT max(seq) FROM lore_events e WHERE e.id = u.id), 0),"
     " coalesce((SELECT highest FROM lore_deletions d WHERE d.id = u.id), 0))"
     " FROM unnest($1::text[]) AS u(id)",
     1,
     {PG_OID_TEXT_ARRAY}},
    {"w_next",
     "UPDATE lore_journal_info SET value = value + $1 WHERE key = 'last_offset' RETURNING value",
     1,
     {PG_OID_INT8}},
    {"w_lock", "SELECT value FROM lore_journal_info WHERE key = 'last_offset' FOR UPDATE", 0, {0}},
    /* Event k (1-based, across the batch) gets offset last_before + k, where
     * last_before is last_offset before the batch: $1 is what has been added
     * to last_offset already in this transaction, $2 the chunk's start. */
    {"w_ins",
     "INSERT INTO lore_events(\"offset\", id, seq, manifest, version, tags, writer, ts, payload,"
     " crc) SELECT (SELECT value FROM lore_journal_info WHERE key = 'last_offset') - $1 + $2"
     " + u.ord, u.id, u.seq, u.manifest, u.version, u.tags, u.writer, u.ts, u.payload, u.crc"
     " FROM unnest($3::text[], $4::int8[], $5::text[], $6::int4[], $7::text[], $8::int8[],"
     " $9::int8[], $10::bytea[], $11::int8[]) WITH ORDINALITY"
     " AS u(id, seq, manifest, version, tags, writer, ts, payload, crc, ord)",
     11,
     {PG_OID_INT8, PG_OID_INT8, PG_OID_TEXT_ARRAY, PG_OID_INT8_ARRAY, PG_OID_TEXT_ARRAY,
      PG_OID_INT4_ARRAY, PG_OID_TEXT_ARRAY, PG_OID_INT8_ARRAY, PG_OID_INT8_ARRAY,
      PG_OID_BYTEA_ARRAY, PG_OID_INT8_ARRAY}},
    /* A batch of events alone (the usual one) as a single statement in
     * autocommit: the offset update, the events, their tags and the
     * notification in one transaction, without BEGIN, COMMIT and three more
     * statements for the server to run. The UPDATE's row lock is taken first
     * and held until the commit, as in the pipelined form. */
    {"w_batch",
     "WITH n AS (UPDATE lore_journal_info SET value = value + $1 WHERE key = 'last_offset'"
     " RETURNING value),"
     " e AS (INSERT INTO lore_events(\"offset\", id, seq, manifest, version, tags, writer, ts,"
     " payload, crc) SELECT n.value - $1 + u.ord, u.id, u.seq, u.manifest, u.version, u.tags,"
     " u.writer, u.ts, u.payload, u.crc FROM n, unnest($2::text[], $3::int8[], $4::text[],"
     " $5::int4[], $6::text[], $7::int8[], $8::int8[], $9::bytea[], $10::int8[])"
     " WITH ORDINALITY AS u(id, seq, manifest, version, tags, writer, ts, payload, crc, ord)),"
     " t AS (INSERT INTO lore_event_tags(tag, \"offset\") SELECT u.tag, n.value - $1 + u.k"
     " FROM n, unnest($11::text[], $12::int8[]) AS u(tag, k) ON CONFLICT DO NOTHING)"
     " SELECT n.value, pg_notify($13, $14 || ':' || n.value) FROM n",
     14,
     {PG_OID_INT8, PG_OID_TEXT_ARRAY, PG_OID_INT8_ARRAY, PG_OID_TEXT_ARRAY, PG_OID_INT4_ARRAY,
      PG_OID_TEXT_ARRAY, PG_OID_INT8_ARRAY, PG_OID_INT8_ARRAY, PG_OID_BYTEA_ARRAY,
      PG_OID_INT8_ARRAY, PG_OID_TEXT_ARRAY, PG_OID_INT8_ARRAY, PG_OID_TEXT, PG_OID_TEXT}},
    /* A tag listed twice on one event is stored once. */
    {"w_tags",
     "INSERT INTO lore_event_tags(tag, \"offset\") SELECT u.tag,"
     " (SELECT value FROM lore_journal_info WHERE key = 'last_offset') - $1 + u.k"
     " FROM unnest($2::text[], $3::int8[]) AS u(tag, k) ON CONFLICT DO NOTHING",
     3,
     {PG_OID_INT8, PG_OID_TEXT_ARRAY, PG_OID_INT8_ARRAY}},
    {"w_del_tags",
     "DELETE FROM lore_event_tags t USING lore_events e WHERE e.id = $1 AND e.seq <= $2"
     " AND e.tags <> '' AND t.tag = ANY (string_to_array(e.tags, E'\\n'))"
     " AND t.\"offset\" = e.\"offset\"",
     2,
     {PG_OID_TEXT, PG_OID_INT8}},
    {"w_del", "DELETE FROM lore_events WHERE id = $1 AND seq <= $2", 2, {PG_OID_TEXT, PG_OID_INT8}},
    {"w_deletion",
     "INSERT INTO lore_deletions(id, highest, deleted_to) VALUES ($1, $3, $2)"
     " ON CONFLICT (id) DO UPDATE SET highest = GREATEST(lore_deletions.highest, excluded.highest),"
     " deleted_to = GREATEST(lore_deletions.deleted_to, excluded.deleted_to)",
     3,
     {PG_OID_TEXT, PG_OID_INT8, PG_OID_INT8}},
    /* Delivered at commit to every listener of the channel (other processes). */
    {"w_notify",
     "SELECT pg_notify($1, $2 || ':' ||"
     " (SELECT value FROM lore_journal_info WHERE key = 'last_offset'))",
     2,
     {PG_OID_TEXT, PG_OID_TEXT}},
    {"w_try_lock", "SELECT pg_try_advisory_lock($1)", 1, {PG_OID_INT8}},
    {"w_unlock", "SELECT pg_advisory_unlock($1)", 1, {PG_OID_INT8}},
};

static void drop_connection(pg_state *s) {
  if (s->wconn) PQfinish(s->wconn);
  s->wconn = NULL;
}

int pg_writer_connection(pg_state *s) {
  if (s->wconn && PQstatus(s->wconn) == CONNECTION_OK) return 0;
  drop_connection(s);
  PGconn *c = NULL;
  int rc = pg_connect(&s->target, s->log, "writer", &c);
  for (size_t i = 0; rc == 0 && i < sizeof writer_stmts / sizeof writer_stmts[0]; i++)
    rc = pg_prepare(c, s->log, writer_stmts[i].name, writer_stmts[i].sql, writer_stmts[i].n,
                    writer_stmts[i].types);
  if (rc < 0) {
    if (c) PQfinish(c);
    return rc;
  }
  s->wconn = c;
  /* Session-level advisory locks went with the old session: every lease
   * taken on it is lost (pg_lease_check fences its writes), and what this
   * process knew of ids' seqs may be stale. */
  s->generation++;
  seqmap_clear(&s->highest);
  return 0;
}

int pg_writer_open(pg_state *s) {
  pthread_mutex_lock(&s->wmu);
  int rc = pg_connect(&s->target, s->log, "writer", &s->wconn);
  if (rc == 0) rc = pg_schema_prepare(s->wconn, s->log, s->target.schema, PG_COMPONENT_JOURNAL, 0);
  if (rc == 0) {
    drop_connection(s); /* prepared again by pg_writer_connection, with the tables there */
    rc = pg_writer_connection(s);
  }
  pthread_mutex_unlock(&s->wmu);
  return rc;
}

void pg_writer_close(pg_state *s) {
  pthread_mutex_lock(&s->wmu);
  drop_connection(s);
  pthread_mutex_unlock(&s->wmu);
}

/* ---- the plan of a batch ---- */

typedef struct delete_op {
  const char *id;
  int64_t to, highest;
} delete_op;

typedef struct batch {
  pg_state *s;
  journal_write **writes;
  size_t n;
  int64_t events;   /* stored by this attempt */
  int64_t in_chunk; /* events in the arrays being filled */
  int64_t chunk_start;
  size_t chunk_bytes;
  int64_t tags;
  delete_op *deletes;
  size_t ndeletes;
  int sent;     /* statements sent in the pipeline */
  int next_idx; /* which of them is the offset update (-1: none) */
} batch;

static int bind_i64(char *out, int64_t v) {
  uint64_t u = (uint64_t)v;
  for (int i = 7; i >= 0; i--) {
    out[i] = (char)(u & 0xff);
    u >>= 8;
  }
  return 8;
}

static void arrays_begin(pg_state *s) {
  static const Oid elem[] = {PG_OID_TEXT, PG_OID_INT8, PG_OID_TEXT,  PG_OID_INT4, PG_OID_TEXT,
                             PG_OID_INT8, PG_OID_INT8, PG_OID_BYTEA, PG_OID_INT8};
  for (int i = A_ID; i <= A_CRC; i++) pg_array_begin(&s->arrays[i], elem[i]);
}

static void tags_begin(pg_state *s) {
  pg_array_begin(&s->arrays[A_TAG], PG_OID_TEXT);
  pg_array_begin(&s->arrays[A_TAG_IDX], PG_OID_INT8);
}

static int arrays_oom(pg_state *s) {
  for (int i = 0; i < A_COUNT; i++)
    if (s->arrays[i].oom) return 1;
  return 0;
}

/* Adds a write's events to the arrays; event k of the batch (1-based)
 * gets the relative offset k (made absolute after the commit). */
static void add_events(batch *b, journal_write *w) {
  pg_state *s = b->s;
  for (size_t i = 0; i < w->count; i++) {
    journal_event *ev = &w->events[i];
    const char *manifest = ev->manifest ? ev->manifest : "", *tags = ev->tags ? ev->tags : "";
    pg_array_bytes(&s->arrays[A_ID], ev->id, strlen(ev->id));
    pg_array_i64(&s->arrays[A_SEQ], ev->seq);
    pg_array_bytes(&s->arrays[A_MANIFEST], manifest, strlen(manifest));
    pg_array_i32(&s->arrays[A_VERSION], ev->version);
    pg_array_bytes(&s->arrays[A_TAGS], tags, strlen(tags));
    pg_array_i64(&s->arrays[A_WRITER], ev->writer);
    pg_array_i64(&s->arrays[A_TS], ev->timestamp_ms);
    pg_array_bytes(&s->arrays[A_PAYLOAD], ev->payload_len ? ev->payload : "", ev->payload_len);
    pg_array_i64(&s->arrays[A_CRC], ev->crc32c);
    b->events++;
    b->in_chunk++;
    b->chunk_bytes += ev->payload_len;
    ev->offset = b->events;
    for (const char *p = tags; *p;) {
      const char *end = strchr(p, '\n');
      size_t len = end ? (size_t)(end - p) : strlen(p);
      pg_array_bytes(&s->arrays[A_TAG], p, len);
      pg_array_i64(&s->arrays[A_TAG_IDX], b->events);
      b->tags++;
      p = end ? end + 1 : p + len;
    }
  }
}

/* Sends (pipelined) or runs (not) one statement; a run's result is checked
 * and dropped. */
static int send_stmt(batch *b, int pipelined, const char *name, int n, const char *const *v,
                     const int *len, const int *fmt) {
  pg_state *s = b->s;
  if (pipelined) {
    if (!PQsendQueryPrepared(s->wconn, name, n, v, len, fmt, 1)) {
      log_error(s->log, "postgres: writer: %s", PQerrorMessage(s->wconn));
      return JOURNAL_EIO;
    }
    b->sent++;
    return 0;
  }
  int err = 0;
  PGresult *r = pg_run(s->wconn, s->log, name, 1, n, v, len, fmt, &err);
  PQclear(r);
  return err;
}

static int send_plain(batch *b, int pipelined, const char *sql) {
  pg_state *s = b->s;
  if (pipelined) {
    if (!PQsendQueryParams(s->wconn, sql, 0, NULL, NULL, NULL, NULL, 1)) {
      log_error(s->log, "postgres: writer: %s", PQerrorMessage(s->wconn));
      return JOURNAL_EIO;
    }
    b->sent++;
    return 0;
  }
  return pg_exec(s->wconn, s->log, sql);
}

/* The INSERT of the events in the arrays (and of their tags): `added` is
 * what the transaction has added to last_offset so far. */
static int send_chunk(batch *b, int pipelined, int64_t added) {
  pg_state *s = b->s;
  if (b->in_chunk == 0) return 0;
  for (int i = A_ID; i <= A_CRC; i++) pg_array_end(&s->arrays[i]);
  if (arrays_oom(s)) return JOURNAL_ENOMEM;
  char p_added[8], p_start[8];
  bind_i64(p_added, added);
  bind_i64(p_start, b->chunk_start);
  const char *v[11] = {p_added, p_start};
  int len[11] = {8, 8}, fmt[11];
  for (int i = 0; i < 11; i++) fmt[i] = 1;
  for (int i = A_ID; i <= A_CRC; i++) {
    v[2 + i] = s->arrays[i].data;
    len[2 + i] = (int)s->arrays[i].len;
  }
  int rc = send_stmt(b, pipelined, "w_ins", 11, v, len, fmt);
  b->chunk_start = b->events;
  b->in_chunk = 0;
  b->chunk_bytes = 0;
  arrays_begin(s);
  return rc;
}

static int send_tags(batch *b, int pipelined, int64_t added) {
  pg_state *s = b->s;
  if (b->tags == 0) return 0;
  pg_array_end(&s->arrays[A_TAG]);
  pg_array_end(&s->arrays[A_TAG_IDX]);
  if (arrays_oom(s)) return JOURNAL_ENOMEM;
  char p_added[8];
  bind_i64(p_added, added);
  const char *v[] = {p_added, s->arrays[A_TAG].data, s->arrays[A_TAG_IDX].data};
  int len[] = {8, (int)s->arrays[A_TAG].len, (int)s->arrays[A_TAG_IDX].len}, fmt[] = {1, 1, 1};
  int rc = send_stmt(b, pipelined, "w_tags", 3, v, len, fmt);
  b->tags = 0;
  tags_begin(s);
  return rc;
}

static int send_delete(batch *b, int pipelined, const delete_op *d) {
  char p_to[8], p_high[8];
  bind_i64(p_to, d->to);
  bind_i64(p_high, d->highest);
  const char *v[] = {d->id, p_to, p_high};
  int len[] = {0, 8, 8}, fmt[] = {0, 1, 1};
  int rc = send_stmt(b, pipelined, "w_del_tags", 2, v, len, fmt);
  if (rc == 0) rc = send_stmt(b, pipelined, "w_del", 2, v, len, fmt);
  if (rc == 0) rc = send_stmt(b, pipelined, "w_deletion", 3, v, len, fmt);
  return rc;
}

static int send_notify(batch *b, int pipelined) {
  char instance[20];
  snprintf(instance, sizeof instance, "%016llx", (unsigned long long)b->s->instance);
  const char *v[] = {b->s->channel, instance};
  return send_stmt(b, pipelined, "w_notify", 2, v, NULL, NULL);
}

/* ---- ids' highest seqs ---- */

/* Loads the highest seq of every id of the batch the map does not know (or
 * marked -1), in one query. */
static int load_highest(batch *b) {
  pg_state *s = b->s;
  pg_buf *ids = &s->arrays[A_MISC];
  pg_array_begin(ids, PG_OID_TEXT);
  for (size_t i = 0; i < b->n; i++) {
    journal_write *w = b->writes[i];
    if (w->status < 0) continue;
    const char *id = w->kind == JOURNAL_WRITE_EVENTS   ? (w->count ? w->events[0].id : NULL)
                     : w->kind == JOURNAL_WRITE_DELETE ? w->id
                                                       : NULL;
    if (!id) continue;
    uint64_t h = seqmap_hash(id);
    seqmap_entry *e = seqmap_find(&s->highest, id, h);
    if (e && e->highest >= 0) continue;
    if (!e && !(e = seqmap_add(&s->highest, id, h, -1))) {
      seqmap_clear(&s->highest);
      return JOURNAL_ENOMEM;
    }
    if (e->highest == -1) {
      e->highest = -2; /* asked for once, whatever the number of writes */
      pg_array_bytes(ids, id, strlen(id));
    }
  }
  if (ids->elems == 0) return 0;
  pg_array_end(ids);
  int err = ids->oom ? JOURNAL_ENOMEM : 0;
  PGresult *r = NULL;
  if (!err) {
    const char *v[] = {ids->data};
    int len[] = {(int)ids->len}, fmt[] = {1};
    r = pg_run(s->wconn, s->log, "w_bounds", 1, 1, v, len, fmt, &err);
  }
  if (!r) {
    seqmap_clear(&s->highest); /* no entry stays half-loaded */
    return err;
  }
  for (int i = 0; i < PQntuples(r); i++) {
    const char *id = PQgetvalue(r, i, 0);
    seqmap_entry *e = seqmap_find(&s->highest, id, seqmap_hash(id));
    if (e) e->highest = pg_get_int(r, i, 1);
  }
  PQclear(r);
  return 0;
}

static seqmap_entry *entry_of(pg_state *s, const char *id) {
  seqmap_entry *e = seqmap_find(&s->highest, id, seqmap_hash(id));
  return e && e->highest >= 0 ? e : NULL;
}

/* ---- validating ---- */

/* PostgreSQL's text is UTF-8 without NUL: an id, manifest or tag that is not
 * cannot be stored, and is refused before storage. */
static int text_ok(const journal_write *w) {
  if (w->kind != JOURNAL_WRITE_EVENTS) return pg_utf8_valid(w->id, strlen(w->id));
  for (size_t i = 0; i < w->count; i++) {
    const journal_event *ev = &w->events[i];
    if (!pg_utf8_valid(ev->id, strlen(ev->id))) return 0;
    if (ev->manifest && !pg_utf8_valid(ev->manifest, strlen(ev->manifest))) return 0;
    if (ev->tags && !pg_utf8_valid(ev->tags, strlen(ev->tags))) return 0;
  }
  return 1;
}

static void validate(batch *b) {
  for (size_t i = 0; i < b->n; i++) {
    journal_write *w = b->writes[i];
    w->status = journal_write_validate(w);
    if (w->status == 0 && (w->kind != JOURNAL_WRITE_EVENTS || w->count) && !text_ok(w)) {
      log_warn(b->s->log, "postgres: write refused: an id, type or tag that is not UTF-8");
      w->status = JOURNAL_EREJECTED;
    }
  }
}

/* ---- one attempt ---- */

/* Decides one write against the map (conflicts, fencing) and, if it goes
 * ahead, adds it to the plan. */
static int plan_write(batch *b, journal_write *w) {
  pg_state *s = b->s;
  if (w->kind == JOURNAL_WRITE_EVENTS) {
    if (w->count == 0) return 0;
    const char *id = w->events[0].id;
    if ((w->status = pg_lease_check(s, id)) < 0) return 0;
    seqmap_entry *e = entry_of(s, id);
    if (!e) return JOURNAL_EIO;
    if (w->events[0].seq != e->highest + 1) {
      w->status = JOURNAL_ECONFLICT;
      return 0;
    }
    add_events(b, w);
    seqmap_set(&s->highest, e, w->events[w->count - 1].seq);
    return 0;
  }
  if (w->kind == JOURNAL_WRITE_DELETE) {
    if ((w->status = pg_lease_check(s, w->id)) < 0) return 0;
    seqmap_entry *e = entry_of(s, w->id);
    if (!e) return JOURNAL_EIO;
    int64_t to = w->seq < e->highest ? w->seq : e->highest;
    if (e->highest <= 0 || to <= 0) return 0; /* an unknown id records nothing */
    b->deletes[b->ndeletes++] = (delete_op){w->id, to, e->highest};
  }
  return 0;
}

/* Reads the pipeline's results: each statement's (one result, then NULL),
 * then the sync. Returns 0 or the first failure's code, and the new
 * last_offset in *last. */
static int read_pipeline(batch *b, int64_t *last) {
  PGconn *c = b->s->wconn;
  int first_err = 0;
  for (int i = 0; i < b->sent; i++) {
    PGresult *r;
    int got = 0;
    while ((r = PQgetResult(c))) {
      got = 1;
      int rc = PQresultStatus(r) == PGRES_PIPELINE_ABORTED ? JOURNAL_EIO : pg_result_code(r);
      if (rc < 0 && !first_err) {
        first_err = rc;
        if (rc != JOURNAL_ECONFLICT) {
          const char *m = PQresultErrorMessage(r);
          log_error(b->s->log, "postgres: writer: batch failed: %.*s", (int)strcspn(m, "\n"), m);
        }
      }
      if (rc == 0 && i == b->next_idx && PQntuples(r) == 1) *last = pg_get_int(r, 0, 0);
      PQclear(r);
    }
    if (!got && PQstatus(c) != CONNECTION_OK) return first_err ? first_err : JOURNAL_EIO;
  }
  PGresult *r = PQgetResult(c);
  int synced = r && PQresultStatus(r) == PGRES_PIPELINE_SYNC;
  PQclear(r);
  if (!synced || !PQexitPipelineMode(c)) {
    log_error(b->s->log, "postgres: writer: pipeline: %s", PQerrorMessage(c));
    if (!first_err) first_err = JOURNAL_EIO;
  }
  return first_err;
}

/* Relative offsets (1, 2, ... across the batch) made absolute from
 * last_offset after the batch. */
static void offsets_from(batch *b, int64_t last) {
  int64_t base = last - b->events;
  for (size_t i = 0; i < b->n; i++) {
    journal_write *w = b->writes[i];
    if (w->kind == JOURNAL_WRITE_EVENTS && w->status == 0)
      for (size_t k = 0; k < w->count; k++) w->events[k].offset += base;
  }
}

/* Events without deletes, planned into the arrays: one statement (w_batch).
 * Returns 0 (last_offset after it in *last), JOURNAL_ECONFLICT (nothing
 * stored) or another failure. */
static int run_single(batch *b, int64_t *last) {
  pg_state *s = b->s;
  for (int i = A_ID; i <= A_TAG_IDX; i++) pg_array_end(&s->arrays[i]);
  if (arrays_oom(s)) return JOURNAL_ENOMEM;
  char p_n[8], instance[20];
  bind_i64(p_n, b->events);
  snprintf(instance, sizeof instance, "%016llx", (unsigned long long)s->instance);
  const char *v[14] = {p_n};
  int len[14] = {8}, fmt[14] = {1};
  for (int i = A_ID; i <= A_TAG_IDX; i++) {
    v[1 + i] = s->arrays[i].data;
    len[1 + i] = (int)s->arrays[i].len;
    fmt[1 + i] = 1;
  }
  v[12] = s->channel;
  v[13] = instance;
  PGresult *r = PQexecPrepared(s->wconn, "w_batch", 14, v, len, fmt, 1);
  int rc = r ? pg_result_code(r) : JOURNAL_EIO;
  if (rc < 0 && rc != JOURNAL_ECONFLICT) {
    const char *m = r ? PQresultErrorMessage(r) : PQerrorMessage(s->wconn);
    log_error(s->log, "postgres: writer: batch failed: %.*s", (int)strcspn(m, "\n"), m);
  }
  if (rc == 0 && PQntuples(r) == 1)
    *last = pg_get_int(r, 0, 0);
  else if (rc == 0)
    rc = JOURNAL_EIO;
  PQclear(r);
  return rc;
}

/* The fast path: everything in one pipeline. Returns 0, JOURNAL_ECONFLICT
 * (a duplicate the map did not know of: nothing stored, try write by write)
 * or another failure (nothing stored). */
static int attempt_pipelined(batch *b) {
  pg_state *s = b->s;
  int rc = 0;
  arrays_begin(s);
  tags_begin(s);
  for (size_t i = 0; i < b->n && rc == 0; i++)
    if (b->writes[i]->status == 0) rc = plan_write(b, b->writes[i]);
  if (rc < 0) return rc;
  if (b->events == 0 && b->ndeletes == 0) return 0;
  int64_t last = 0;
  if (b->ndeletes == 0) {
    rc = run_single(b, &last);
    if (rc == 0) offsets_from(b, last);
    return rc;
  }
  if (!PQenterPipelineMode(s->wconn)) {
    log_error(s->log, "postgres: writer: %s", PQerrorMessage(s->wconn));
    return JOURNAL_EIO;
  }
  b->next_idx = -1;
  rc = send_plain(b, 1, "BEGIN");
  if (rc == 0 && b->events > 0) {
    char p_n[8];
    bind_i64(p_n, b->events);
    const char *v[] = {p_n};
    int len[] = {8}, fmt[] = {1};
    b->next_idx = b->sent;
    rc = send_stmt(b, 1, "w_next", 1, v, len, fmt);
  }
  /* All the events as one chunk when they fit (the usual case): split
   * afterwards only if the payloads are large. */
  if (rc == 0) rc = send_chunk(b, 1, b->events);
  if (rc == 0) rc = send_tags(b, 1, b->events);
  for (size_t i = 0; rc == 0 && i < b->ndeletes; i++) rc = send_delete(b, 1, &b->deletes[i]);
  if (rc == 0 && b->events > 0) rc = send_notify(b, 1);
  if (rc == 0) rc = send_plain(b, 1, "COMMIT");
  if (!PQpipelineSync(s->wconn) && rc == 0) rc = JOURNAL_EIO;
  int prc = read_pipeline(b, &last);
  if (rc == 0) rc = prc;
  if (rc == 0 && b->events > 0) offsets_from(b, last);
  return rc;
}

/* The slow path: write by write, each in a savepoint, so a duplicate fails
 * its own write only. Offsets are given from last_offset, locked first. */
static int attempt_one_by_one(batch *b) {
  pg_state *s = b->s;
  arrays_begin(s);
  tags_begin(s);
  int rc = send_plain(b, 0, "BEGIN");
  int64_t last_before = 0;
  if (rc == 0) {
    PGresult *r = pg_run(s->wconn, s->log, "w_lock", 1, 0, NULL, NULL, NULL, &rc);
    if (r) last_before = PQntuples(r) == 1 ? pg_get_int(r, 0, 0) : 0;
    PQclear(r);
  }
  for (size_t i = 0; rc == 0 && i < b->n; i++) {
    journal_write *w = b->writes[i];
    if (w->status < 0) continue;
    if (w->kind != JOURNAL_WRITE_EVENTS || w->count == 0) {
      size_t before = b->ndeletes;
      rc = plan_write(b, w);
      if (rc == 0 && b->ndeletes > before) rc = send_delete(b, 0, &b->deletes[before]);
      continue;
    }
    int64_t events_before = b->events;
    seqmap_entry *e = entry_of(s, w->events[0].id);
    int64_t highest_before = e ? e->highest : 0;
    rc = plan_write(b, w);
    if (rc < 0 || w->status < 0 || b->events == events_before) continue;
    rc = send_plain(b, 0, "SAVEPOINT w");
    if (rc == 0) rc = send_chunk(b, 0, 0);
    if (rc == 0) rc = send_tags(b, 0, 0);
    if (rc == JOURNAL_ECONFLICT) {
      w->status = JOURNAL_ECONFLICT;
      rc = send_plain(b, 0, "ROLLBACK TO SAVEPOINT w");
      b->events = b->chunk_start = events_before;
      b->tags = 0;
      tags_begin(s);
      if (e) seqmap_set(&s->highest, e, highest_before);
      for (size_t k = 0; k < w->count; k++) w->events[k].offset = 0;
      continue;
    }
    if (rc == 0) rc = send_plain(b, 0, "RELEASE SAVEPOINT w");
  }
  if (rc == 0 && b->events > 0) {
    char p_n[8];
    bind_i64(p_n, b->events);
    const char *v[] = {p_n};
    int len[] = {8}, fmt[] = {1};
    rc = send_stmt(b, 0, "w_next", 1, v, len, fmt);
    if (rc == 0) rc = send_notify(b, 0);
  }
  if (rc == 0) rc = send_plain(b, 0, "COMMIT");
  if (rc == 0) {
    for (size_t i = 0; i < b->n; i++) {
      journal_write *w = b->writes[i];
      if (w->kind == JOURNAL_WRITE_EVENTS && w->status == 0)
        for (size_t k = 0; k < w->count; k++) w->events[k].offset += last_before;
    }
  }
  return rc;
}

static void rollback_if_open(pg_state *s) {
  if (!s->wconn || PQstatus(s->wconn) != CONNECTION_OK) return;
  if (PQpipelineStatus(s->wconn) != PQ_PIPELINE_OFF) {
    PGresult *r;
    while ((r = PQgetResult(s->wconn))) PQclear(r);
    PQexitPipelineMode(s->wconn);
  }
  if (PQtransactionStatus(s->wconn) != PQTRANS_IDLE) {
    PGresult *r = PQexec(s->wconn, "ROLLBACK");
    PQclear(r);
  }
}

static void reset_attempt(batch *b) {
  b->events = b->in_chunk = b->chunk_start = b->tags = 0;
  b->chunk_bytes = 0;
  b->ndeletes = 0;
  b->sent = 0;
  for (size_t i = 0; i < b->n; i++) {
    journal_write *w = b->writes[i];
    if (w->kind == JOURNAL_WRITE_EVENTS && w->status == 0 && w->events)
      for (size_t k = 0; k < w->count; k++) w->events[k].offset = 0;
  }
}

static int events_and_deletes(batch *b) {
  pg_state *s = b->s;
  seqmap_trim(&s->highest);
  int rc = load_highest(b);
  if (rc < 0) return rc;
  if (seqmap_begin(&s->highest, b->n) < 0) return JOURNAL_ENOMEM;
  rc = attempt_pipelined(b);
  if (rc == JOURNAL_ECONFLICT) {
    rollback_if_open(s);
    seqmap_rollback(&s->highest);
    reset_attempt(b);
    /* Decided again below, write by write. */
    for (size_t i = 0; i < b->n; i++) {
      journal_write *w = b->writes[i];
      int mine = w->kind == JOURNAL_WRITE_EVENTS || w->kind == JOURNAL_WRITE_DELETE;
      if (mine && (w->status == JOURNAL_EFENCED || w->status == JOURNAL_ECONFLICT)) w->status = 0;
    }
    /* A write undone in its savepoint logs a second change. */
    if (seqmap_begin(&s->highest, 2 * b->n) < 0) return JOURNAL_ENOMEM;
    rc = attempt_one_by_one(b);
  }
  if (rc < 0) {
    rollback_if_open(s);
    seqmap_rollback(&s->highest);
    /* Whether a failed COMMIT committed is unknown: read seqs again. */
    seqmap_clear(&s->highest);
    return rc;
  }
  seqmap_commit(&s->highest);
  return 0;
}

/* Splits a batch whose events do not fit one INSERT: the writes are
 * written in groups, each of them its own batch. */
static size_t fitting_prefix(journal_write **writes, size_t n) {
  size_t bytes = 0;
  for (size_t i = 0; i < n; i++) {
    journal_write *w = writes[i];
    if (w->kind != JOURNAL_WRITE_EVENTS) continue;
    size_t wb = 0;
    for (size_t k = 0; k < w->count && w->events; k++) wb += w->events[k].payload_len;
    if (i > 0 && bytes + wb > CHUNK_BYTES) return i;
    bytes += wb;
  }
  return n;
}

static int write_group(pg_state *s, journal_write **writes, size_t n) {
  batch b = {.s = s, .writes = writes, .n = n};
  int rc = 0;
  size_t deletes = 0;
  for (size_t i = 0; i < n; i++) deletes += writes[i]->kind == JOURNAL_WRITE_DELETE;
  if (deletes && !(b.deletes = calloc(deletes, sizeof *b.deletes))) rc = JOURNAL_ENOMEM;
  if (rc == 0) rc = events_and_deletes(&b);
  free(b.deletes);
  if (rc < 0) {
    int status = rc == JOURNAL_EREADONLY || rc == JOURNAL_ENOMEM ? rc : JOURNAL_EIO;
    /* The session is gone, and the leases taken on it with it: a leased id's
     * write is fenced (stored or not, its writer no longer holds the id). */
    int session_lost = !s->wconn || PQstatus(s->wconn) != CONNECTION_OK;
    for (size_t i = 0; i < n; i++) {
      journal_write *w = writes[i];
      if (w->kind != JOURNAL_WRITE_EVENTS && w->kind != JOURNAL_WRITE_DELETE) continue;
      if (w->status < 0) continue; /* refused on its own */
      const char *id = w->kind == JOURNAL_WRITE_DELETE ? w->id : w->count ? w->events[0].id : NULL;
      pg_lease *l = session_lost && id ? idmap_get_str(&s->leases, id) : NULL;
      w->status = l && l->generation == s->generation ? JOURNAL_EFENCED : status;
    }
    return status;
  }
  return 0;
}

int pg_write_batch(void *state, journal_write **writes, size_t n) {
  pg_state *s = state;
  pthread_mutex_lock(&s->wmu);
  batch vb = {.s = s, .writes = writes, .n = n};
  validate(&vb);
  int rc = pg_writer_connection(s);
  if (rc == 0) {
    pg_leases_take(s, writes, n);
    /* Each write's outcome is in its status: a group that failed leaves
     * the others stored, so the batch as a whole returns 0. */
    for (size_t done = 0; done < n;) {
      size_t k = fitting_prefix(writes + done, n - done);
      write_group(s, writes + done, k);
      done += k;
    }
    pg_leases_give(s, writes, n);
  } else {
    for (size_t i = 0; i < n; i++)
      if (writes[i]->status == 0) writes[i]->status = rc; /* refusals of their own stay */
  }
  if (s->wconn && PQstatus(s->wconn) != CONNECTION_OK) drop_connection(s);
  pthread_mutex_unlock(&s->wmu);
  /* Offsets are only meaningful on stored events. */
  for (size_t i = 0; i < n; i++) {
    journal_write *w = writes[i];
    if (w->kind == JOURNAL_WRITE_EVENTS && w->status != 0 && w->events)
      for (size_t k = 0; k < w->count; k++) w->events[k].offset = 0;
  }
  return rc;
}
