/* journal_sqlite.c: the SQLite journal backend: opening, the reader pool and the reads. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "journal_sqlite_internal.h"
#include "journal_uri.h"

/* Rows per replay query: a slow replay callback then never holds one read
 * transaction (and so the WAL) open for a whole long stream. */
#define REPLAY_PAGE 1000

/* The columns every read returns, in row_event's order; reads across ids
 * add the id (a replay of one id knows it). */
#define EVENT_COLUMNS "seq, manifest, version, tags, writer, ts, payload, crc, \"offset\""

/* A lean replay's columns (journal_replay_lean), in row_lean's order: each
 * column a row returns costs about as much as stepping to the row. */
#define LEAN_COLUMNS "seq, manifest, payload, crc"

/* A replay's rows by seq. Nearly every replay reads to the end of its stream
 * (to = INT64_MAX): its statement has no upper bound, so each row's index
 * entry is compared on the id alone, not on (id, seq), and a bounded replay
 * prepares its own statement at its first use. */
#define BY_SEQ_TO_END " FROM events WHERE id = ?1 AND seq >= ?2 ORDER BY seq LIMIT ?4"
#define BY_SEQ_BOUNDED \
  " FROM events WHERE id = ?1 AND seq >= ?2 AND seq <= ?3 ORDER BY seq LIMIT ?4"

int sq_map_err(int rc) {
  switch (rc & 0xff) {
    case SQLITE_NOMEM:
      return JOURNAL_ENOMEM;
    case SQLITE_CORRUPT:
      return JOURNAL_ECORRUPT;
    case SQLITE_NOTADB:
      return JOURNAL_ENOTDB;
    case SQLITE_READONLY:
      return JOURNAL_EREADONLY;
    default:
      return JOURNAL_EIO;
  }
}

int sq_prepare(const log_sink *log, sqlite3 *db, const char *sql, sqlite3_stmt **st) {
  int rc = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL);
  if (rc != SQLITE_OK && (rc & 0xff) != SQLITE_NOTADB)
    log_error(log, "journal sqlite: cannot prepare %s: %s", sql, sqlite3_errmsg(db));
  return rc;
}

int sq_exec(const log_sink *log, sqlite3 *db, const char *sql) {
  char *msg = NULL;
  int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
  if (rc != SQLITE_OK && (rc & 0xff) != SQLITE_NOTADB)
    log_error(log, "journal sqlite: %s: %s", sql, msg ? msg : sqlite3_errstr(rc));
  sqlite3_free(msg);
  return rc;
}

/* SQLite keeps memory statistics by default, under a global mutex taken on
 * every allocation: a quarter of the writer thread's time under load, for
 * figures Lore never reads. Off, once, before SQLite initialises (if
 * something else initialised it first, the call is refused and harmless). */
static pthread_once_t sqlite_config_once = PTHREAD_ONCE_INIT;
static void sqlite_config(void) { sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); }

int sq_open_conn(const log_sink *log, const char *path, int flags, int busy_timeout_ms,
                 sqlite3 **db) {
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

/* ---- the reader pool ---- */

static void reader_free(sq_reader *r) {
  sqlite3_stmt *stmts[] = {r->replay,       r->replay_lean, r->replay_to,    r->replay_lean_to,
                           r->bounds,       r->list,        r->list_after,   r->replay_all,
                           r->replay_tag,   r->max_offset,  r->stats_events, r->stats_ids,
                           r->page_count,   r->page_size,   r->begin,        r->commit,
                           r->any_deletion, r->event_ts,    r->run_first,    r->run_last,
                           r->run,          r->run_lean};
  for (size_t i = 0; i < sizeof stmts / sizeof stmts[0]; i++) sqlite3_finalize(stmts[i]);
  sqlite3_close(r->db);
  free(r);
}

/* The ids ever written: those with events (found by hopping along the
 * (id, seq) index, one seek per id rather than a scan of every event) and
 * those whose events were all deleted. */
#define KNOWN_IDS                                                                              \
  "WITH RECURSIVE hop(id) AS (SELECT min(id) FROM events UNION ALL"                            \
  " SELECT (SELECT min(id) FROM events WHERE id > hop.id) FROM hop WHERE hop.id IS NOT NULL)," \
  " known(id, highest) AS ("                                                                   \
  " SELECT id, (SELECT max(seq) FROM events e WHERE e.id = hop.id) FROM hop"                   \
  " WHERE id IS NOT NULL UNION ALL SELECT id, highest FROM deletions)"

/* Statements a reader prepares at its first use of them: listing, stats and
 * offset-ordered reads are rare, and preparing them all (the id hops above
 * most of all) cost more than a recovery reads when each new connection did
 * it up front. */
static const char SQL_LIST[] =
    KNOWN_IDS " SELECT id, max(highest) FROM known GROUP BY id ORDER BY id";
/* KNOWN_IDS from ?1 on, the hop cut after ?2 ids: one page costs ?2 seeks,
 * not a walk of every id. */
static const char SQL_LIST_AFTER[] =
    "WITH RECURSIVE hop(id, n) AS (SELECT (SELECT min(id) FROM events WHERE id > ?1), 1"
    " UNION ALL SELECT (SELECT min(id) FROM events WHERE id > hop.id), n + 1 FROM hop"
    " WHERE hop.id IS NOT NULL AND n < ?2),"
    " known(id, highest) AS ("
    " SELECT id, (SELECT max(seq) FROM events e WHERE e.id = hop.id) FROM hop"
    " WHERE id IS NOT NULL UNION ALL SELECT id, highest FROM deletions WHERE id > ?1)"
    " SELECT id, max(highest) FROM known GROUP BY id ORDER BY id LIMIT ?2";
static const char SQL_REPLAY_ALL[] = "SELECT " EVENT_COLUMNS
                                     ", id FROM events WHERE \"offset\" > ?1 ORDER BY \"offset\""
                                     " LIMIT ?2";
/* CROSS JOIN keeps the tag index outermost: rows come in its order. */
static const char SQL_REPLAY_TAG[] =
    "SELECT e.seq, e.manifest, e.version, e.tags, e.writer, e.ts, e.payload, e.crc,"
    " e.\"offset\", e.id FROM event_tags t CROSS JOIN events e ON e.\"offset\" = t.\"offset\""
    " WHERE t.tag = ?1 AND t.\"offset\" > ?2 ORDER BY t.\"offset\" LIMIT ?3";
static const char SQL_MAX_OFFSET[] =
    "SELECT max(coalesce((SELECT max(\"offset\") FROM events), 0),"
    " coalesce((SELECT value FROM journal_info WHERE key = 'offset_high_water'), 0))";
static const char SQL_STATS_EVENTS[] =
    "SELECT count(*), coalesce(min(ts), 0), coalesce(max(ts), 0) FROM events";
static const char SQL_STATS_IDS[] = KNOWN_IDS " SELECT count(DISTINCT id) FROM known";
static const char SQL_PAGE_COUNT[] = "PRAGMA page_count";
static const char SQL_PAGE_SIZE[] = "PRAGMA page_size";
static const char SQL_REPLAY_TO[] = "SELECT " EVENT_COLUMNS BY_SEQ_BOUNDED;
static const char SQL_REPLAY_LEAN_TO[] = "SELECT " LEAN_COLUMNS BY_SEQ_BOUNDED;
static const char SQL_EVENT_TS[] = "SELECT ts FROM events WHERE id = ?1 AND seq = ?2";

/*
 * Runs. The table is in offset order, and the one writer of an id appends
 * its events in seq order, so a stream written while its actor had the
 * journal mostly to itself (long bursts of persist_all, a quiet server, a
 * bulk import) lies in long runs of consecutive rows. Reading such a run
 * straight from the table skips walking the (id, seq) index beside it and
 * a table seek per row: journal_replay_lean of 1,000,000 events runs ~12%
 * fewer instructions, at 0.82-0.87 of the fastest schema's raw read
 * instead of 0.76 (bench_journal, case (c)). A replay asking for at least
 * RUN_MIN_PAGE rows finds a page's first and last rows by the index (two
 * seeks), and reads the offsets between them by the table when they hold
 * at most RUN_MAX_SPREAD rows for each of its own; otherwise, or once a
 * row breaks the seq order (a gap, a foreign write order), the index reads
 * on from there. A waking actor's short first page never pays the seeks.
 */
#define RUN_MIN_PAGE REPLAY_PAGE
#define RUN_MAX_SPREAD 2
static const char SQL_RUN_FIRST[] =
    "SELECT \"offset\", seq FROM events WHERE id = ?1 AND seq >= ?2 ORDER BY seq LIMIT 1";
static const char SQL_RUN_LAST[] =
    "SELECT \"offset\", seq FROM events WHERE id = ?1 AND seq <= ?2 ORDER BY seq DESC LIMIT 1";
/* `+id`: the rowid range, not the id's index, drives the read. */
#define BY_OFFSET_RUN \
  " FROM events WHERE \"offset\" BETWEEN ?2 AND ?3 AND +id = ?1 ORDER BY \"offset\""
static const char SQL_RUN[] = "SELECT " EVENT_COLUMNS BY_OFFSET_RUN;
static const char SQL_RUN_LEAN[] = "SELECT " LEAN_COLUMNS BY_OFFSET_RUN;

/* *slot, prepared now if this reader never used it; NULL (and *err) if it
 * cannot be. */
static sqlite3_stmt *lazy_stmt(sq_state *s, sq_reader *r, sqlite3_stmt **slot, const char *sql,
                               int *err) {
  if (!*slot) {
    int rc = sq_prepare(s->log, r->db, sql, slot);
    if (rc != SQLITE_OK) {
      *slot = NULL;
      *err = sq_map_err(rc);
    }
  }
  return *slot;
}

/* A read connection's page cache (KiB; SQLite's default: 2,000). Reads walk
 * an index to one stream and its rows once, so a page seldom comes back
 * while still cached: the same number of file reads for a replay or a wave
 * of recoveries with 256 KiB as with 2 MB (what remains cached is the
 * tree's upper levels). Every pool thread gets a connection, and a full
 * default cache each was ~8 MB that a process kept after a wave. */
#define READER_CACHE_KIB "256"

/* A new read connection with what every recovery uses prepared. */
static sq_reader *reader_open(sq_state *s, int *err) {
  sq_reader *r = calloc(1, sizeof *r);
  if (!r) {
    *err = JOURNAL_ENOMEM;
    return NULL;
  }
  int rc = sq_open_conn(s->log, s->path, SQLITE_OPEN_READONLY, s->busy_timeout_ms, &r->db);
  if (rc == SQLITE_OK) rc = sq_exec(s->log, r->db, "PRAGMA cache_size=-" READER_CACHE_KIB);
  struct {
    const char *sql;
    sqlite3_stmt **st;
  } stmts[] = {
      {"SELECT " EVENT_COLUMNS BY_SEQ_TO_END, &r->replay},
      {"SELECT " LEAN_COLUMNS BY_SEQ_TO_END, &r->replay_lean},
      {"SELECT (SELECT max(seq) FROM events WHERE id = ?1),"
       " (SELECT highest FROM deletions WHERE id = ?1),"
       " (SELECT deleted_to FROM deletions WHERE id = ?1)",
       &r->bounds},
      {"SELECT 1 FROM deletions LIMIT 1", &r->any_deletion},
      {"BEGIN", &r->begin},
      {"COMMIT", &r->commit},
  };
  for (size_t i = 0; rc == SQLITE_OK && i < sizeof stmts / sizeof stmts[0]; i++)
    rc = sq_prepare(s->log, r->db, stmts[i].sql, stmts[i].st);
  if (rc != SQLITE_OK) {
    reader_free(r);
    *err = sq_map_err(rc);
    return NULL;
  }
  pthread_mutex_lock(&s->pool_mu);
  s->readers++;
  pthread_mutex_unlock(&s->pool_mu);
  return r;
}

/* The connection this thread holds a read transaction on (read_hold), and
 * whose journal it belongs to. */
static _Thread_local struct {
  sq_state *s;
  sq_reader *r;
} held;

/* A connection for this call: the one this thread holds, an idle one, or a
 * new one when all are busy. The pool never shrinks, so it ends as large as
 * the most concurrent reads. */
static sq_reader *reader_get(sq_state *s, int *err) {
  if (held.s == s) return held.r;
  pthread_mutex_lock(&s->pool_mu);
  sq_reader *r = s->pool;
  if (r) s->pool = r->next;
  pthread_mutex_unlock(&s->pool_mu);
  return r ? r : reader_open(s, err);
}

static void reader_put(sq_state *s, sq_reader *r) {
  if (held.r == r) return; /* read_release gives it back */
  pthread_mutex_lock(&s->pool_mu);
  r->next = s->pool;
  s->pool = r;
  pthread_mutex_unlock(&s->pool_mu);
}

/* A read connection's first read also maps the WAL index: done here, it is
 * not the first recovery's cost either. */
static void reader_first_read(sq_reader *r) {
  sqlite3_step(r->any_deletion);
  sqlite3_reset(r->any_deletion);
}

/* Opening a connection costs ~1 ms and ~140 KB of fresh memory (the file,
 * the schema, the statements): a wave of recoveries at start opened one per
 * pool thread while it ran. One warmer at a time, so two workers' warm-ups
 * do not both open the last one. */
static void sq_warm_readers(void *state, int n) {
  sq_state *s = state;
  pthread_mutex_lock(&s->pool_mu);
  int mine = !s->warming;
  s->warming = 1;
  pthread_mutex_unlock(&s->pool_mu);
  if (!mine) return;
  for (;;) {
    pthread_mutex_lock(&s->pool_mu);
    int more = s->readers < n;
    pthread_mutex_unlock(&s->pool_mu);
    int err = 0;
    sq_reader *r = more ? reader_open(s, &err) : NULL;
    if (!r) break; /* enough, or one failed: reads open their own and report why */
    reader_first_read(r);
    reader_put(s, r);
  }
  pthread_mutex_lock(&s->pool_mu);
  s->warming = 0;
  pthread_mutex_unlock(&s->pool_mu);
}

/* BEGIN only opens the transaction: the snapshot is taken by the first read. */
static int sq_read_hold(void *state) {
  sq_state *s = state;
  if (held.s) return JOURNAL_EREJECTED;
  int err = 0;
  sq_reader *r = reader_get(s, &err);
  if (!r) return err;
  int rc = sqlite3_step(r->begin);
  sqlite3_reset(r->begin);
  if (rc != SQLITE_DONE) {
    reader_put(s, r);
    return sq_map_err(rc);
  }
  held.s = s;
  held.r = r;
  return 0;
}

static void sq_read_release(void *state) {
  sq_state *s = state;
  if (held.s != s) return;
  sq_reader *r = held.r;
  held.s = NULL;
  held.r = NULL;
  /* A failed read may have ended the transaction already. */
  if (!sqlite3_get_autocommit(r->db)) {
    int rc = sqlite3_step(r->commit);
    sqlite3_reset(r->commit);
    if (rc != SQLITE_DONE) {
      log_warn(s->log, "journal sqlite: ending a read transaction: %s", sqlite3_errmsg(r->db));
      reader_free(r); /* a connection stuck in its transaction is of no further use */
      pthread_mutex_lock(&s->pool_mu);
      s->readers--;
      pthread_mutex_unlock(&s->pool_mu);
      return;
    }
  }
  reader_put(s, r);
}

/* ---- reads ---- */

/* The timestamp of a lean row that is one of Lore's own events (a
 * delivery, a timer: rare), by a lookup of its own in the same read
 * transaction: the lean query leaves the column out, which saves a seventh
 * of a long replay's reading. */
static int lean_timestamp(sq_state *s, sq_reader *r, journal_event *ev) {
  int err = 0;
  sqlite3_stmt *st = lazy_stmt(s, r, &r->event_ts, SQL_EVENT_TS, &err);
  if (!st) return err;
  sqlite3_bind_text(st, 1, ev->id, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, ev->seq);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW)
    ev->timestamp_ms = sqlite3_column_int64(st, 0);
  else
    err = rc == SQLITE_DONE ? JOURNAL_ECORRUPT : sq_map_err(rc);
  sqlite3_reset(st);
  sqlite3_clear_bindings(st); /* the id is the caller's memory */
  return err;
}

/* Fills ev from the current row (EVENT_COLUMNS); JOURNAL_ECORRUPT if the
 * payload or its CRC is not what was written, or the seq is no integer.
 * `id` NULL: from column 9. The hot loop of every full replay, query and
 * projection: each column is fetched once (sqlite3_column_value; see
 * row_lean) and read with the sqlite3_value_* calls, which skip the
 * per-call checks a sqlite3_column_* call repeats. */
static int row_event(sqlite3_stmt *st, const char *id, journal_event *ev) {
  sqlite3_value *v[10];
  int n = id ? 9 : 10;
  for (int i = 0; i < n; i++) v[i] = sqlite3_column_value(st, i);
  if (sqlite3_value_type(v[6]) != SQLITE_BLOB || sqlite3_value_type(v[7]) != SQLITE_INTEGER ||
      sqlite3_value_type(v[0]) != SQLITE_INTEGER) /* a text or blob seq: past any bound */
    return JOURNAL_ECORRUPT;
  sqlite3_int64 crc = sqlite3_value_int64(v[7]);
  if (crc < 0 || crc > UINT32_MAX) return JOURNAL_ECORRUPT;
  const unsigned char *manifest = sqlite3_value_text(v[1]);
  const unsigned char *tags = sqlite3_value_text(v[3]);
  const void *payload = sqlite3_value_blob(v[6]);
  if (!id) id = (const char *)sqlite3_value_text(v[9]);
  *ev = (journal_event){
      .id = id ? id : "",
      .seq = sqlite3_value_int64(v[0]),
      .manifest = manifest ? (const char *)manifest : "",
      .version = sqlite3_value_int(v[2]),
      .tags = tags ? (const char *)tags : "",
      .writer = sqlite3_value_int64(v[4]),
      .timestamp_ms = sqlite3_value_int64(v[5]),
      .offset = sqlite3_value_int64(v[8]),
      .payload = payload ? payload : "", /* an empty blob reads back as NULL */
      .payload_len = (size_t)sqlite3_value_bytes(v[6]),
      .crc32c = (uint32_t)crc,
  };
  if (crc32c(0, ev->payload, ev->payload_len) != ev->crc32c) return JOURNAL_ECORRUPT;
  return 0;
}

/* row_event for LEAN_COLUMNS: the same checks, the fields a lean replay
 * promises. A long replay's reader spends most of its time here and in
 * sqlite3_step, so each column is fetched once (sqlite3_column_value) and
 * read with the cheaper sqlite3_value_* calls; SQLite calls such a value
 * unprotected, which matters only to a connection shared between threads,
 * and a reader connection is used by one thread at a time. The timestamp
 * is read only for Lore's own events (lean_timestamp). */
static int row_lean(sq_state *s, sq_reader *r, sqlite3_stmt *st, const char *id,
                    journal_event *ev) {
  sqlite3_value *payload_v = sqlite3_column_value(st, 2), *crc_v = sqlite3_column_value(st, 3),
                *seq_v = sqlite3_column_value(st, 0);
  if (sqlite3_value_type(payload_v) != SQLITE_BLOB || sqlite3_value_type(crc_v) != SQLITE_INTEGER ||
      sqlite3_value_type(seq_v) != SQLITE_INTEGER)
    return JOURNAL_ECORRUPT;
  sqlite3_int64 crc = sqlite3_value_int64(crc_v);
  if (crc < 0 || crc > UINT32_MAX) return JOURNAL_ECORRUPT;
  const unsigned char *manifest = sqlite3_column_text(st, 1);
  const void *payload = sqlite3_value_blob(payload_v);
  *ev = (journal_event){
      .id = id,
      .seq = sqlite3_value_int64(seq_v),
      .manifest = manifest ? (const char *)manifest : "",
      .version = 1,
      .tags = "",
      .payload = payload ? payload : "",
      .payload_len = (size_t)sqlite3_value_bytes(payload_v),
      .crc32c = (uint32_t)crc,
  };
  if (crc32c(0, ev->payload, ev->payload_len) != ev->crc32c) return JOURNAL_ECORRUPT;
  if (ev->manifest[0] == JOURNAL_INTERNAL_PREFIX[0] && /* the call only for a likely one */
      strncmp(ev->manifest, JOURNAL_INTERNAL_PREFIX, sizeof JOURNAL_INTERNAL_PREFIX - 1) == 0)
    return lean_timestamp(s, r, ev);
  return 0;
}

/* How read_page reads its rows. */
enum { BY_SEQ, BY_OFFSET, BY_SEQ_LEAN };

/* Steps one page of a read, handing each row to cb. *got counts rows, *last
 * is the seq (BY_SEQ, BY_SEQ_LEAN) or offset (BY_OFFSET) of the last one.
 * `expect` non-zero (a run's read): the rows must be seqs expect, expect+1,
 * ...; the page ends, without error, at the first that is not or cannot be
 * read. */
static int read_page(sq_state *s, sq_reader *r, sqlite3_stmt *st, const char *id, int how,
                     int64_t expect, journal_replay_cb cb, void *ud, int64_t *got, int64_t *last,
                     int *stop) {
  int rc, err = 0;
  while (!*stop && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    journal_event ev;
    err = how == BY_SEQ_LEAN ? row_lean(s, r, st, id, &ev) : row_event(st, id, &ev);
    /* Out of the run, or a bad row the index's read then reports if it is the id's. */
    if (expect && (err || ev.seq != expect + *got)) return 0;
    if (err) {
      if (how == BY_SEQ_LEAN)
        log_error(s->log, "journal sqlite: event %s seq %lld is corrupt (CRC or column types)", id,
                  (long long)sqlite3_column_int64(st, 0));
      else
        log_error(s->log, "journal sqlite: event at offset %lld is corrupt (CRC or column types)",
                  (long long)sqlite3_column_int64(st, 8));
      return err;
    }
    (*got)++;
    *last = how == BY_OFFSET ? ev.offset : ev.seq;
    *stop = cb(&ev, ud);
  }
  if (!*stop && rc != SQLITE_DONE) {
    log_error(s->log, "journal sqlite: read: %s", sqlite3_errmsg(r->db));
    return sq_map_err(rc);
  }
  return 0;
}

/* One end of a run: the offset and seq of the row `st` (SQL_RUN_FIRST or
 * SQL_RUN_LAST) finds for id and seq. 1 if there is one, 0 if not, or a
 * journal error. */
static int run_end(sq_state *s, sq_reader *r, sqlite3_stmt *st, const char *id, int64_t seq,
                   int64_t *offset, int64_t *found) {
  sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, seq);
  int rc = sqlite3_step(st), ret = rc == SQLITE_ROW ? 1 : 0;
  if (rc == SQLITE_ROW) {
    *offset = sqlite3_column_int64(st, 0);
    *found = sqlite3_column_int64(st, 1);
  } else if (rc != SQLITE_DONE) {
    log_error(s->log, "journal sqlite: read: %s", sqlite3_errmsg(r->db));
    ret = sq_map_err(rc);
  }
  sqlite3_reset(st);
  sqlite3_clear_bindings(st); /* the id is the caller's memory */
  return ret;
}

/* Reads up to `page` rows of id from seq `from` (to `to`) as a run (see
 * "Runs" above). *got and *last as read_page's; *got falls short of the
 * page when the rows were not one run, or the run ended early: the caller
 * reads on by the index from *last + 1 (from `from` when *got is 0).
 * *ended: the stream has no row from `from` to `to`. */
static int read_run(sq_state *s, sq_reader *r, int lean, const char *id, int64_t from, int64_t to,
                    int64_t page, journal_replay_cb cb, void *ud, int64_t *got, int64_t *last,
                    int *stop, int *ended) {
  int err = 0;
  sqlite3_stmt *first = lazy_stmt(s, r, &r->run_first, SQL_RUN_FIRST, &err);
  sqlite3_stmt *final = first ? lazy_stmt(s, r, &r->run_last, SQL_RUN_LAST, &err) : NULL;
  sqlite3_stmt *st = !final ? NULL
                     : lean ? lazy_stmt(s, r, &r->run_lean, SQL_RUN_LEAN, &err)
                            : lazy_stmt(s, r, &r->run, SQL_RUN, &err);
  if (!st) return err;
  /* The two seeks and the rows in one read transaction (unless the thread
   * holds one): one snapshot, and one lock taken instead of three. */
  int own = held.r != r;
  if (own) {
    int rc = sqlite3_step(r->begin);
    sqlite3_reset(r->begin);
    if (rc != SQLITE_DONE) return sq_map_err(rc);
  }
  int64_t lo, hi, first_seq, last_seq, end;
  int found = run_end(s, r, first, id, from, &lo, &first_seq);
  if (found == 0 || (found > 0 && first_seq > to)) {
    *ended = 1;
  } else if (found > 0) {
    end = first_seq > INT64_MAX - (page - 1) ? INT64_MAX : first_seq + (page - 1);
    found = run_end(s, r, final, id, end < to ? end : to, &hi, &last_seq);
  }
  /* Rows spread among other ids' rows are left to the index. */
  if (found > 0 && !*ended && last_seq >= first_seq && hi >= lo &&
      (hi - lo) / RUN_MAX_SPREAD < last_seq - first_seq + 1) {
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, lo);
    sqlite3_bind_int64(st, 3, hi);
    err = read_page(s, r, st, id, lean ? BY_SEQ_LEAN : BY_SEQ, first_seq, cb, ud, got, last, stop);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
  }
  if (own && !sqlite3_get_autocommit(r->db)) {
    int rc = sqlite3_step(r->commit);
    sqlite3_reset(r->commit);
    if (rc != SQLITE_DONE) {
      log_warn(s->log, "journal sqlite: ending a read transaction: %s", sqlite3_errmsg(r->db));
      sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL); /* the reader goes back to the pool */
      if (!err) err = sq_map_err(rc);
    }
  }
  return found < 0 ? found : err;
}

static int replay_id(sq_state *s, int lean, const char *id, int64_t from, int64_t to, int64_t max,
                     journal_replay_cb cb, void *ud) {
  int err = 0;
  sq_reader *r = reader_get(s, &err);
  if (!r) return err;
  sqlite3_stmt *st = to == INT64_MAX ? (lean ? r->replay_lean : r->replay)
                     : lean          ? lazy_stmt(s, r, &r->replay_lean_to, SQL_REPLAY_LEAN_TO, &err)
                                     : lazy_stmt(s, r, &r->replay_to, SQL_REPLAY_TO, &err);
  if (!st) {
    reader_put(s, r);
    return err;
  }
  int64_t left = max < 0 ? INT64_MAX : max;
  int stop = 0;
  while (!err && !stop && left > 0 && from <= to) {
    int64_t page = left < REPLAY_PAGE ? left : REPLAY_PAGE, got = 0, last = 0;
    if (page >= RUN_MIN_PAGE) {
      int ended = 0;
      err = read_run(s, r, lean, id, from, to, page, cb, ud, &got, &last, &stop, &ended);
      if (err || ended || stop) break;
      left -= got;
      if (got && last == INT64_MAX) break;
      if (got) from = last + 1;
      if (got == page) continue;
      if (from > to) break;
      page -= got; /* the rest of the page by the index */
      got = last = 0;
    }
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, from);
    sqlite3_bind_int64(st, 3, to);
    sqlite3_bind_int64(st, 4, page);
    err = read_page(s, r, st, id, lean ? BY_SEQ_LEAN : BY_SEQ, 0, cb, ud, &got, &last, &stop);
    sqlite3_reset(st);
    left -= got;
    if (got < page || last == INT64_MAX) break; /* the stream or the range ended */
    from = last + 1;
  }
  sqlite3_clear_bindings(st); /* the id is the caller's memory */
  reader_put(s, r);
  return err;
}

static int sq_replay(void *state, const char *id, int64_t from, int64_t to, int64_t max,
                     journal_replay_cb cb, void *ud) {
  return replay_id(state, 0, id, from, to, max, cb, ud);
}

static int sq_replay_lean(void *state, const char *id, int64_t from, int64_t to, int64_t max,
                          journal_replay_cb cb, void *ud) {
  return replay_id(state, 1, id, from, to, max, cb, ud);
}

/* replay_all (tag NULL) and replay_tag: pages in offset order. */
static int replay_offsets(sq_state *s, const char *tag, int64_t after, int64_t max,
                          journal_replay_cb cb, void *ud) {
  int err = 0;
  sq_reader *r = reader_get(s, &err);
  if (!r) return err;
  sqlite3_stmt *st = tag ? lazy_stmt(s, r, &r->replay_tag, SQL_REPLAY_TAG, &err)
                         : lazy_stmt(s, r, &r->replay_all, SQL_REPLAY_ALL, &err);
  if (!st) {
    reader_put(s, r);
    return err;
  }
  int64_t left = max < 0 ? INT64_MAX : max;
  int stop = 0;
  while (!err && !stop && left > 0) {
    int64_t page = left < REPLAY_PAGE ? left : REPLAY_PAGE, got = 0, last = 0;
    int i = 1;
    if (tag) sqlite3_bind_text(st, i++, tag, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, i++, after);
    sqlite3_bind_int64(st, i, page);
    err = read_page(s, r, st, NULL, BY_OFFSET, 0, cb, ud, &got, &last, &stop);
    sqlite3_reset(st);
    left -= got;
    if (got < page) break;
    after = last;
  }
  sqlite3_clear_bindings(st);
  reader_put(s, r);
  return err;
}

static int sq_replay_tag(void *state, const char *tag, int64_t after, int64_t max,
                         journal_replay_cb cb, void *ud) {
  return replay_offsets(state, tag, after, max, cb, ud);
}

static int sq_replay_all(void *state, int64_t after, int64_t max, journal_replay_cb cb, void *ud) {
  return replay_offsets(state, NULL, after, max, cb, ud);
}

/* Runs a statement expected to return one row; fn reads it. */
static int one_row(sq_state *s, sq_reader *r, sqlite3_stmt *st,
                   void (*fn)(sqlite3_stmt *st, void *out), void *out) {
  int rc = sqlite3_step(st), err = 0;
  if (rc == SQLITE_ROW) {
    fn(st, out);
  } else {
    log_error(s->log, "journal sqlite: %s: %s", sqlite3_sql(st), sqlite3_errmsg(r->db));
    err = sq_map_err(rc == SQLITE_DONE ? SQLITE_ERROR : rc);
  }
  sqlite3_reset(st);
  return err;
}

static void read_bounds(sqlite3_stmt *st, void *out) {
  journal_bounds *b = out;
  int64_t stored = sqlite3_column_int64(st, 0), kept = sqlite3_column_int64(st, 1);
  b->highest = stored > kept ? stored : kept;
  b->deleted_to = sqlite3_column_int64(st, 2);
}

static int sq_bounds(void *state, const char *id, journal_bounds *out) {
  sq_state *s = state;
  int err = 0;
  sq_reader *r = reader_get(s, &err);
  if (!r) return err;
  sqlite3_bind_text(r->bounds, 1, id, -1, SQLITE_STATIC);
  err = one_row(s, r, r->bounds, read_bounds, out);
  sqlite3_clear_bindings(r->bounds);
  reader_put(s, r);
  return err;
}

static void read_int(sqlite3_stmt *st, void *out) { *(int64_t *)out = sqlite3_column_int64(st, 0); }

/* One step of a tiny statement: no row in `deletions` (most journals). */
static int sq_no_deletions(void *state, int *none) {
  sq_state *s = state;
  int err = 0;
  sq_reader *r = reader_get(s, &err);
  if (!r) return err;
  int rc = sqlite3_step(r->any_deletion);
  if (rc == SQLITE_DONE) {
    *none = 1;
  } else if (rc != SQLITE_ROW) {
    log_error(s->log, "journal sqlite: %s: %s", sqlite3_sql(r->any_deletion),
              sqlite3_errmsg(r->db));
    err = sq_map_err(rc);
  }
  sqlite3_reset(r->any_deletion);
  reader_put(s, r);
  return err;
}

static int sq_max_offset(void *state, int64_t *out) {
  sq_state *s = state;
  int err = 0;
  sq_reader *r = reader_get(s, &err);
  if (!r) return err;
  sqlite3_stmt *st = lazy_stmt(s, r, &r->max_offset, SQL_MAX_OFFSET, &err);
  if (st) err = one_row(s, r, st, read_int, out);
  reader_put(s, r);
  return err;
}

static void read_event_stats(sqlite3_stmt *st, void *out) {
  journal_stats_t *o = out;
  o->events = sqlite3_column_int64(st, 0);
  o->oldest_ms = sqlite3_column_int64(st, 1);
  o->newest_ms = sqlite3_column_int64(st, 2);
}

/* Aggregates only: counting is the database's work, never a replay's. One
 * read transaction, so the figures agree with each other. */
static int sq_stats(void *state, journal_stats_t *out) {
  sq_state *s = state;
  int err = 0;
  sq_reader *r = reader_get(s, &err);
  if (!r) return err;
  int64_t pages = 0, page_size = 0;
  *out = (journal_stats_t){0};
  int rc = sq_exec(s->log, r->db, "BEGIN");
  if (rc != SQLITE_OK) err = sq_map_err(rc);
  sqlite3_stmt *st;
  if (!err && (st = lazy_stmt(s, r, &r->stats_events, SQL_STATS_EVENTS, &err)))
    err = one_row(s, r, st, read_event_stats, out);
  if (!err && (st = lazy_stmt(s, r, &r->stats_ids, SQL_STATS_IDS, &err)))
    err = one_row(s, r, st, read_int, &out->ids);
  if (!err && (st = lazy_stmt(s, r, &r->max_offset, SQL_MAX_OFFSET, &err)))
    err = one_row(s, r, st, read_int, &out->max_offset);
  if (!err && (st = lazy_stmt(s, r, &r->page_count, SQL_PAGE_COUNT, &err)))
    err = one_row(s, r, st, read_int, &pages);
  if (!err && (st = lazy_stmt(s, r, &r->page_size, SQL_PAGE_SIZE, &err)))
    err = one_row(s, r, st, read_int, &page_size);
  if (!sqlite3_get_autocommit(r->db)) sq_exec(s->log, r->db, "COMMIT");
  out->bytes = pages * page_size;
  reader_put(s, r);
  return err;
}

static int sq_list_ids(void *state, void (*cb)(const char *id, int64_t highest, void *ud),
                       void *ud) {
  sq_state *s = state;
  int err = 0;
  sq_reader *r = reader_get(s, &err);
  if (!r) return err;
  sqlite3_stmt *st = lazy_stmt(s, r, &r->list, SQL_LIST, &err);
  if (!st) {
    reader_put(s, r);
    return err;
  }
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    const unsigned char *id = sqlite3_column_text(st, 0);
    cb(id ? (const char *)id : "", sqlite3_column_int64(st, 1), ud);
  }
  if (rc != SQLITE_DONE) {
    log_error(s->log, "journal sqlite: list ids: %s", sqlite3_errmsg(r->db));
    err = sq_map_err(rc);
  }
  sqlite3_reset(st);
  reader_put(s, r);
  return err;
}

static int sq_list_ids_after(void *state, const char *after, int64_t max,
                             void (*cb)(const char *id, int64_t highest, void *ud), void *ud) {
  sq_state *s = state;
  int err = 0;
  sq_reader *r = reader_get(s, &err);
  if (!r) return err;
  sqlite3_stmt *st = lazy_stmt(s, r, &r->list_after, SQL_LIST_AFTER, &err);
  if (!st) {
    reader_put(s, r);
    return err;
  }
  sqlite3_bind_text(st, 1, after, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, max);
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    const unsigned char *id = sqlite3_column_text(st, 0);
    cb(id ? (const char *)id : "", sqlite3_column_int64(st, 1), ud);
  }
  if (rc != SQLITE_DONE) {
    log_error(s->log, "journal sqlite: list ids: %s", sqlite3_errmsg(r->db));
    err = sq_map_err(rc);
  }
  sqlite3_reset(st);
  sqlite3_clear_bindings(st); /* `after` is the caller's memory */
  reader_put(s, r);
  return err;
}

/* ---- opening and closing ---- */

static void sq_close(void *state) {
  sq_state *s = state;
  if (s->checkpointer) sq_checkpointer_stop(s->checkpointer);
  if (__atomic_load_n(&s->sessions, __ATOMIC_ACQUIRE) > 0)
    log_error(s->log, "journal sqlite: %s closed with %d projection session(s) still open",
              s->path ? s->path : "?", s->sessions);
  while (s->pool) {
    sq_reader *r = s->pool;
    s->pool = r->next;
    reader_free(r);
  }
  sq_writer_finalize(s);
  sq_walspace_close(s);
  /* Closed last, the write connection checkpoints the WAL into the database. */
  if (s->db && sqlite3_close(s->db) != SQLITE_OK)
    log_error(s->log, "journal sqlite: closing %s: %s", s->path ? s->path : "?",
              sqlite3_errmsg(s->db));
  /* After every connection: the sidecar is another file, so closing it
   * cannot drop SQLite's own locks on the database. */
  if (s->lock_fd >= 0) close(s->lock_fd);
  seqmap_free(&s->highest);
  pthread_mutex_destroy(&s->pool_mu);
  free(s->path);
  free(s);
}

/* journal_mode reports the mode it got rather than failing. */
static int set_wal(sq_state *s) {
  sqlite3_stmt *st;
  int rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode=WAL", -1, &st, NULL);
  if (rc != SQLITE_OK) return rc;
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    const unsigned char *mode = sqlite3_column_text(st, 0);
    rc = mode && strcmp((const char *)mode, "wal") == 0 ? SQLITE_OK : SQLITE_CANTOPEN;
    if (rc != SQLITE_OK) log_error(s->log, "journal sqlite: WAL refused (journal_mode=%s)", mode);
  }
  sqlite3_finalize(st);
  return rc;
}

static int parse_int(const char *v, long lo, long hi, long *out) {
  char *end;
  errno = 0;
  long n = strtol(v, &end, 10);
  if (errno || end == v || *end || n < lo || n > hi) return JOURNAL_EURI;
  *out = n;
  return 0;
}

static int sq_param(const char *name, const char *value, void *ud) {
  journal_options *opt = ud;
  int rc = journal_uri_common_param(name, value, opt);
  if (rc != 0) return rc < 0 ? rc : 0;
  if (strcmp(name, "synchronous") == 0) {
    if (strcmp(value, "full") == 0)
      opt->synchronous_full = 1;
    else if (strcmp(value, "normal") == 0)
      opt->synchronous_full = 0;
    else
      return JOURNAL_EURI;
    return 0;
  }
  if (strcmp(name, "busy_timeout") == 0) {
    long ms;
    if (parse_int(value, 1, 3600000, &ms) < 0) return JOURNAL_EURI;
    opt->busy_timeout_ms = (int)ms;
    return 0;
  }
  return JOURNAL_EURI;
}

static int errno_to_journal(int e) {
  switch (e) {
    case EACCES:
    case EPERM:
    case EROFS:
      return JOURNAL_EREADONLY;
    case ENOMEM:
      return JOURNAL_ENOMEM;
    default:
      return JOURNAL_EIO;
  }
}

/* Clear answers before SQLite gives vaguer ones: a directory, a missing file
 * (read-only), a file or directory we may not write (read-write: SQLite would
 * quietly open it read-only, and the first write would fail much later). */
static int check_path(sq_state *s, const char *path, int read_only) {
  struct stat st;
  if (stat(path, &st) == 0) {
    if (S_ISDIR(st.st_mode)) return JOURNAL_EISDIR;
    if (read_only) return 0;
    if (faccessat(AT_FDCWD, path, R_OK | W_OK, AT_EACCESS) != 0) {
      log_error(s->log, "journal sqlite: %s: %s", path, strerror(errno));
      return errno_to_journal(errno);
    }
  } else if (errno != ENOENT) {
    log_error(s->log, "journal sqlite: %s: %s", path, strerror(errno));
    return errno_to_journal(errno);
  } else if (read_only) {
    return JOURNAL_ENOENT;
  }
  /* The directory takes the WAL, its index and the lock sidecar. */
  char *copy = strdup(path);
  if (!copy) return JOURNAL_ENOMEM;
  const char *dir = dirname(copy);
  int rc = 0;
  if (faccessat(AT_FDCWD, dir, W_OK | X_OK, AT_EACCESS) != 0) {
    log_error(s->log, "journal sqlite: directory %s: %s", dir, strerror(errno));
    rc = errno == ENOENT || errno == ENOTDIR ? JOURNAL_EIO : errno_to_journal(errno);
  }
  free(copy);
  return rc;
}

/* One writer per database file, across processes and within one: an
 * exclusive flock on "PATH-lock", held until close (or the process's death).
 * A sidecar rather than the database itself: closing a descriptor of the
 * database would drop the POSIX locks SQLite holds on it in this process. */
static int take_lock(sq_state *s) {
  size_t len = strlen(s->path) + sizeof "-lock";
  char *lock_path = malloc(len);
  if (!lock_path) return JOURNAL_ENOMEM;
  snprintf(lock_path, len, "%s-lock", s->path);
  int rc = 0;
  s->lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (s->lock_fd < 0) {
    log_error(s->log, "journal sqlite: %s: %s", lock_path, strerror(errno));
    rc = errno_to_journal(errno);
  } else if (flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
    rc = errno == EWOULDBLOCK ? JOURNAL_ELOCKED : errno_to_journal(errno);
    if (rc == JOURNAL_ELOCKED)
      log_error(s->log, "journal sqlite: %s is open for writing elsewhere", s->path);
  }
  free(lock_path);
  return rc;
}

static int open_writer(sq_state *s, const char *path) {
  int rc = sq_open_conn(s->log, path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                        s->busy_timeout_ms, &s->db);
  if (rc != SQLITE_OK) return sq_map_err(rc);
  const char *abs = sqlite3_db_filename(s->db, "main");
  if (!(s->path = strdup(abs && abs[0] ? abs : path))) return JOURNAL_ENOMEM;
  /* A file that is not a database is told apart before anything is created
   * beside it. */
  rc = sqlite3_exec(s->db, "SELECT count(*) FROM sqlite_master", NULL, NULL, NULL);
  if (rc != SQLITE_OK) {
    if ((rc & 0xff) != SQLITE_NOTADB)
      log_error(s->log, "journal sqlite: %s: %s", s->path, sqlite3_errmsg(s->db));
    return sq_map_err(rc);
  }
  int err = take_lock(s);
  if (err < 0) return err;
  if (sqlite3_db_readonly(s->db, "main") == 1) return JOURNAL_EREADONLY;
  /* The first read finds out whether this is a database at all. */
  err = sq_schema_prepare(s, s->db, 0);
  if (err < 0) return err;
  rc = set_wal(s);
  if (rc == SQLITE_OK)
    rc = sq_exec(s->log, s->db,
                 s->synchronous_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
  /* Savepoint journals stay in memory instead of spilling to a temp file. */
  if (rc == SQLITE_OK) rc = sq_exec(s->log, s->db, "PRAGMA temp_store=MEMORY");
  /* After a checkpoint reset, a WAL grown by a burst shrinks back to this. */
  if (rc == SQLITE_OK) rc = sq_exec(s->log, s->db, "PRAGMA journal_size_limit=67108864");
  if (rc != SQLITE_OK) return sq_map_err(rc);
  err = sq_writer_prepare(s);
  if (err < 0) return err;
  err = sq_checkpointer_start(s, &s->checkpointer);
  if (err < 0) return err;
  sq_checkpointer_watch(s->checkpointer, s->db);
  return 0;
}

/* Read-only: the first reader's connection checks the tables, and stays in
 * the pool. Nothing here writes to the file. */
static int open_reader(sq_state *s, const char *path) {
  char *abs = realpath(path, NULL);
  s->path = abs ? abs : strdup(path);
  if (!s->path) return JOURNAL_ENOMEM;
  sqlite3 *db;
  int rc = sq_open_conn(s->log, s->path, SQLITE_OPEN_READONLY, s->busy_timeout_ms, &db);
  if (rc != SQLITE_OK) return sq_map_err(rc);
  int err = sq_schema_prepare(s, db, 1);
  sqlite3_close(db);
  if (err < 0) return err;
  sq_reader *r = reader_open(s, &err);
  if (!r) return err;
  reader_put(s, r);
  return 0;
}

static int sq_open(const char *uri_path, journal_options *opt, void **state) {
  char *path = NULL;
  int err = journal_uri_params(uri_path, &path, sq_param, opt);
  if (err < 0) return err;
  /* Readers need their own connections to the same database: an in-memory
   * one would give each its own empty database. "memory:" is the tool for that. */
  if (!path[0] || strcmp(path, ":memory:") == 0) {
    free(path);
    return JOURNAL_EURI;
  }
  sq_state *s = calloc(1, sizeof *s);
  if (!s) {
    free(path);
    return JOURNAL_ENOMEM;
  }
  s->log = opt->log;
  s->lock_fd = -1;
  s->read_only = opt->read_only;
  s->synchronous_full = opt->synchronous_full;
  s->busy_timeout_ms = opt->busy_timeout_ms > 0 ? opt->busy_timeout_ms : SQ_DEFAULT_BUSY_TIMEOUT_MS;
  seqmap_init(&s->highest);
  if (opt->writer_ids_max) s->highest.limit = opt->writer_ids_max;
  if (pthread_mutex_init(&s->pool_mu, NULL) != 0) {
    free(s);
    free(path);
    return JOURNAL_ENOMEM;
  }
  err = check_path(s, path, s->read_only);
  if (!err) err = s->read_only ? open_reader(s, path) : open_writer(s, path);
  free(path);
  if (err < 0) {
    sq_close(s);
    return err;
  }
  if (!s->read_only) {
    /* The first read connection costs ~1 ms (the file, the schema, its
     * statements, and at its first read the WAL index): made and used once
     * now, it is not on the first recovery's path. Should it fail, the
     * first read tries again and reports why. */
    int ignored = 0;
    sq_reader *r = reader_open(s, &ignored);
    if (r) {
      reader_first_read(r);
      reader_put(s, r);
    }
  }
  *state = s;
  return 0;
}

static size_t sq_writer_ids(void *state) {
  return seqmap_shared_count(&((sq_state *)state)->highest);
}

const journal_backend journal_sqlite_backend = {
    .writer_ids = sq_writer_ids,
    .scheme = "sqlite",
    .open = sq_open,
    .write_batch = sq_write_batch,
    .replay = sq_replay,
    .replay_lean = sq_replay_lean,
    .bounds = sq_bounds,
    .list_ids = sq_list_ids,
    .list_ids_after = sq_list_ids_after,
    .replay_tag = sq_replay_tag,
    .replay_all = sq_replay_all,
    .max_offset = sq_max_offset,
    .stats = sq_stats,
    .session_open = sq_session_open,
    .session_begin = sq_session_begin,
    .session_exec = sq_session_exec,
    .session_errmsg = sq_session_errmsg,
    .session_get_offset = sq_session_get_offset,
    .session_set_offset = sq_session_set_offset,
    .session_commit = sq_session_commit,
    .session_rollback = sq_session_rollback,
    .session_close = sq_session_close,
    .close = sq_close,
    .read_hold = sq_read_hold,
    .read_release = sq_read_release,
    .no_deletions = sq_no_deletions,
    .warm_readers = sq_warm_readers,
};
