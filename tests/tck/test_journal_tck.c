/* test_journal_tck.c: the journal compliance suite (after Akka JournalSpec), for every backend. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>
#include <sqlite3.h>

#include "journal.h"

/*
 * ---- the backends under test ----
 *
 * Each backend is a URI factory and what it can do. Every generic case runs
 * against every backend; a case that needs a capability skips the backends
 * without it. LORE_TCK_BACKENDS=memory,sqlite (the default) picks the
 * backends; "postgres" needs LORE_TEST_PG, a libpq conninfo of a database
 * the suite may create schemas in (scripts/pg-cluster.sh starts one). A new
 * backend is one more entry in BACKENDS.
 */

/* SQL in the backend's dialect: projection sessions (has_sql), and changes
 * made to the database behind the journal's back (exec_sql). */
typedef struct sql_dialect {
  const char *create_proj; /* proj(k text key, n integer, f float, b blob, z anything) */
  const char *insert_proj; /* its 5 columns, as placeholders 1..5 */
  const char *select_proj; /* k, n, f, b, z AS zed, WHERE k = placeholder 1 */
  const char *unique_msg;  /* part of the message of a duplicate key */
  const char *one_param;   /* SELECT placeholder 1 */
  const char *script_with_param;
  const char *script;    /* makes t2(x) holding 3, then selects x */
  const char *insert_t2; /* INSERT INTO t2 VALUES (placeholder 1) */
  const char *count_a;   /* counts a's events in the journal's own table */
  const char *dup_a7;    /* a row a#7 the writer does not know of */
  const char *undup_a7;
  const char *corrupt_a3;   /* one payload byte of a#3 flipped (NULL: done through sqlite3) */
  const char *newer_schema; /* the tables marked as made by a newer Lore */
} sql_dialect;

typedef struct backend_case {
  const char *name;
  /* Writes a URI no journal used yet into uri; `path` gets its file, or
   * whatever names its storage for cleanup and exec_sql ("" if none). */
  void (*fresh)(char *uri, size_t uri_size, char *path, size_t path_size);
  /* Removes what fresh's journal left behind (NULL: nothing). */
  void (*cleanup)(const char *path);
  int single_writer; /* a second open for writing is JOURNAL_ELOCKED while one is open */
  int is_file;       /* a file: EISDIR, ENOTDB, EREADONLY, a foreign database left alone */
  int has_sql;       /* projection sessions run SQL */
  int sqlite;        /* failures can be injected through sqlite3 on the file; migration */
  int leases;        /* LEASE excludes other journals on the same store (other processes) */
  /* Runs SQL on the journal's database from outside the journal (NULL: none). */
  void (*exec_sql)(const char *path, const char *sql);
  const sql_dialect *sql;
} backend_case;

static int file_counter;

static const char *tmp_dir(void) {
  const char *dir = getenv("LORE_TEST_TMP");
  if (!dir || !dir[0]) dir = "/tmp";
  if (mkdir(dir, 0755) != 0 && errno != EEXIST)
    fprintf(stderr, "mkdir %s: %s\n", dir, strerror(errno));
  return dir;
}

static void remove_db(const char *path) {
  char buf[600];
  unlink(path);
  const char *suffix[] = {"-wal", "-shm", "-lock", "-journal"};
  for (size_t i = 0; i < sizeof suffix / sizeof suffix[0]; i++) {
    snprintf(buf, sizeof buf, "%s%s", path, suffix[i]);
    unlink(buf);
  }
}

static void memory_fresh(char *uri, size_t uri_size, char *path, size_t path_size) {
  snprintf(uri, uri_size, "memory:tck-%d-%d", (int)getpid(), ++file_counter);
  snprintf(path, path_size, "%s", "");
}

static void sqlite_fresh(char *uri, size_t uri_size, char *path, size_t path_size) {
  snprintf(path, path_size, "%s/journal-tck-%d-%d.db", tmp_dir(), (int)getpid(), ++file_counter);
  remove_db(path);
  snprintf(uri, uri_size, "sqlite:%s", path);
}

static void sqlite_exec_sql(const char *path, const char *sql) {
  sqlite3 *db;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  sqlite3_busy_timeout(db, 5000);
  char *err = NULL;
  int rc = sqlite3_exec(db, sql, NULL, NULL, &err);
  if (rc != SQLITE_OK) fprintf(stderr, "%s: %s\n", sql, err);
  sqlite3_free(err);
  assert_int_equal(rc, SQLITE_OK);
  sqlite3_close(db);
}

static const sql_dialect sqlite_sql = {
    .create_proj = "CREATE TABLE proj(k TEXT PRIMARY KEY, n INTEGER, f REAL, b BLOB, z)",
    .insert_proj = "INSERT INTO proj VALUES (?1, ?2, ?3, ?4, ?5)",
    .select_proj = "SELECT k, n, f, b, z AS zed FROM proj WHERE k = ?1",
    .unique_msg = "UNIQUE",
    .one_param = "SELECT ?1",
    .script_with_param = "SELECT 1; SELECT ?1",
    .script = "CREATE TABLE t2(x); INSERT INTO t2 VALUES (3); SELECT x FROM t2;",
    .insert_t2 = "INSERT INTO t2 VALUES (?1)",
    .count_a = "SELECT count(*) FROM events WHERE id = 'a'",
    .dup_a7 =
        "INSERT INTO events(id, seq, manifest, version, tags, writer, ts, payload, crc)"
        " SELECT id, 7, manifest, version, tags, writer, ts, payload, crc FROM events"
        " WHERE id = 'a' AND seq = 5",
    .undup_a7 = "DELETE FROM events WHERE id = 'a' AND seq = 7",
    .corrupt_a3 = NULL,
    .newer_schema = "UPDATE journal_info SET value = 99 WHERE key = 'schema_version'",
};

/* postgres: one schema per journal in the database LORE_TEST_PG names; `path` is the schema. */
static const char *pg_conninfo(void) {
  const char *c = getenv("LORE_TEST_PG");
  return c && c[0] ? c : NULL;
}

static void postgres_exec_sql(const char *schema, const char *sql) {
  PGconn *c = PQconnectdb(pg_conninfo());
  assert_int_equal(PQstatus(c), CONNECTION_OK);
  PQclear(PQexec(c, "SET client_min_messages = warning"));
  char set[200];
  snprintf(set, sizeof set, "SET search_path TO %s", schema[0] ? schema : "public");
  PGresult *r = PQexec(c, set);
  assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
  PQclear(r);
  r = PQexec(c, sql);
  ExecStatusType st = PQresultStatus(r);
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
    fprintf(stderr, "%s: %s\n", sql, PQresultErrorMessage(r));
  assert_true(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK);
  PQclear(r);
  PQfinish(c);
}

static void postgres_fresh(char *uri, size_t uri_size, char *path, size_t path_size) {
  snprintf(path, path_size, "tck_%d_%d", (int)getpid(), ++file_counter);
  snprintf(uri, uri_size, "postgres:%s?schema=%s", pg_conninfo(), path);
}

static void postgres_cleanup(const char *schema) {
  char sql[200];
  snprintf(sql, sizeof sql, "DROP SCHEMA IF EXISTS %s CASCADE", schema);
  postgres_exec_sql("public", sql);
}

static const sql_dialect postgres_sql = {
    .create_proj =
        "CREATE TABLE proj(k text PRIMARY KEY, n bigint, f double precision, b bytea,"
        " z text)",
    .insert_proj = "INSERT INTO proj VALUES ($1, $2, $3, $4, $5)",
    .select_proj = "SELECT k, n, f, b, z AS zed FROM proj WHERE k = $1",
    .unique_msg = "unique constraint",
    .one_param = "SELECT $1",
    .script_with_param = "SELECT 1; SELECT $1",
    .script = "CREATE TABLE t2(x bigint); INSERT INTO t2 VALUES (3); SELECT x FROM t2;",
    .insert_t2 = "INSERT INTO t2 VALUES ($1)",
    .count_a = "SELECT count(*) FROM lore_events WHERE id = 'a'",
    .dup_a7 =
        "INSERT INTO lore_events SELECT \"offset\" + 1000000, id, 7, manifest, version,"
        " tags, writer, ts, payload, crc FROM lore_events WHERE id = 'a' AND seq = 5",
    .undup_a7 = "DELETE FROM lore_events WHERE id = 'a' AND seq = 7",
    .corrupt_a3 =
        "UPDATE lore_events SET payload = set_byte(payload, 0, get_byte(payload, 0) # 32)"
        " WHERE id = 'a' AND seq = 3",
    .newer_schema = "UPDATE lore_schema SET version = 99 WHERE component = 'journal'",
};

static const backend_case BACKENDS[] = {
    {"memory", memory_fresh, NULL, 0, 0, 0, 0, 0, NULL, NULL},
    {"sqlite", sqlite_fresh, remove_db, 1, 1, 1, 1, 0, sqlite_exec_sql, &sqlite_sql},
    {"postgres", postgres_fresh, postgres_cleanup, 0, 0, 1, 0, 1, postgres_exec_sql, &postgres_sql},
};

/* base + "?params" or "&params" (params without the '?'; "" adds nothing). */
static void uri_with(char *out, size_t size, const char *base, const char *params) {
  if (params[0] == '?') params++;
  if (!params[0])
    snprintf(out, size, "%s", base);
  else
    snprintf(out, size, "%s%c%s", base, strchr(base, '?') ? '&' : '?', params);
}

typedef struct fixture {
  const backend_case *bc;
  char path[512]; /* file backends: the database file */
  char uri[600];
  journal_t *j;
} fixture;

/* Closes the fixture's journal, so the test may open its URI again (a
 * single-writer backend refuses a second writer). */
static const char *reopenable_uri(fixture *f) {
  journal_close(f->j);
  f->j = NULL;
  return f->uri;
}

static journal_t *open_ok(const char *uri) {
  journal_t *j = NULL;
  int rc = journal_open(uri, NULL, &j);
  if (rc != 0) fprintf(stderr, "journal_open(%s): %s\n", uri, journal_strerror(rc));
  assert_int_equal(rc, 0);
  return j;
}

static journal_t *open_read_only(const char *uri) {
  journal_options opt = {.synchronous_full = 1, .read_only = 1};
  journal_t *j = NULL;
  assert_int_equal(journal_open(uri, &opt, &j), 0);
  return j;
}

/* ---- waiting for write callbacks ---- */

typedef struct waiter {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int fired;
} waiter;

static waiter *waiter_new(void) {
  waiter *wt = calloc(1, sizeof *wt);
  assert_non_null(wt);
  pthread_mutex_init(&wt->mu, NULL);
  pthread_cond_init(&wt->cv, NULL);
  return wt;
}

static void waiter_free(waiter *wt) {
  pthread_mutex_destroy(&wt->mu);
  pthread_cond_destroy(&wt->cv);
  free(wt);
}

static void on_done(journal_write *w, int status) {
  (void)status;
  waiter *wt = w->data;
  pthread_mutex_lock(&wt->mu);
  wt->fired++;
  pthread_cond_broadcast(&wt->cv);
  pthread_mutex_unlock(&wt->mu);
}

/* Waits (at most 60 s, then fails) until n callbacks fired. */
static void wait_fired(waiter *wt, int n) {
  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += 60;
  pthread_mutex_lock(&wt->mu);
  while (wt->fired < n) {
    if (pthread_cond_timedwait(&wt->cv, &wt->mu, &deadline) == ETIMEDOUT) break;
  }
  int fired = wt->fired;
  pthread_mutex_unlock(&wt->mu);
  assert_int_equal(fired, n);
}

/* ---- building events ---- */

#define TEST_WRITER INT64_C(0x123e4567e89b42d3)

/* The payload each event carries, so a replay can check it came back intact. */
static void expected_payload(char *buf, size_t size, const char *id, int64_t seq) {
  snprintf(buf, size, "payload of %s #%lld", id, (long long)seq);
}

/* One atomic write and the events and payloads it points to. */
typedef struct twrite {
  journal_write w;
  journal_event ev[8];
  char payload[8][48];
} twrite;

static void twrite_init(twrite *t, const char *id, int64_t first, size_t count, waiter *wt) {
  assert_true(count <= 8);
  memset(t, 0, sizeof *t);
  for (size_t i = 0; i < count; i++) {
    int64_t seq = first + (int64_t)i;
    expected_payload(t->payload[i], sizeof t->payload[i], id, seq);
    t->ev[i] = (journal_event){.id = id,
                               .seq = seq,
                               .manifest = "evt",
                               .version = 1,
                               .tags = "",
                               .writer = TEST_WRITER,
                               .timestamp_ms = 1700000000000 + seq,
                               .payload = t->payload[i],
                               .payload_len = strlen(t->payload[i])};
    journal_event_seal(&t->ev[i]);
  }
  t->w.kind = JOURNAL_WRITE_EVENTS;
  t->w.events = t->ev;
  t->w.count = count;
  t->w.done = on_done;
  t->w.data = wt;
}

/* Writes `count` events of `id` from seq `first` (all with `tags`) as one
 * atomic write and waits; *offset (if not NULL) gets the last event's offset. */
static int write_tagged(journal_t *j, const char *id, int64_t first, size_t count, const char *tags,
                        int64_t *offset) {
  waiter *wt = waiter_new();
  twrite t;
  twrite_init(&t, id, first, count, wt);
  for (size_t i = 0; i < count; i++) t.ev[i].tags = tags;
  t.w.status = 12345;
  assert_int_equal(journal_submit(j, &t.w), 0);
  wait_fired(wt, 1);
  waiter_free(wt);
  assert_int_not_equal(t.w.status, 12345);
  if (offset) *offset = count ? t.ev[count - 1].offset : 0;
  return t.w.status;
}

static int write_sync(journal_t *j, const char *id, int64_t first, size_t count) {
  return write_tagged(j, id, first, count, "", NULL);
}

static int request_sync(journal_t *j, int kind, const char *id, int64_t seq) {
  waiter *wt = waiter_new();
  journal_write w = {.kind = kind, .id = id, .seq = seq, .done = on_done, .data = wt};
  assert_int_equal(journal_submit(j, &w), 0);
  wait_fired(wt, 1);
  waiter_free(wt);
  return w.status;
}

static int delete_sync(journal_t *j, const char *id, int64_t to) {
  return request_sync(j, JOURNAL_WRITE_DELETE, id, to);
}

/* ---- replaying ---- */

typedef struct replayed {
  int64_t seq[4096];
  int64_t offset[4096];
  char id[4096][16];
  size_t n;
  size_t stop_after; /* 0: never stop */
  int bad_payload;   /* count of events whose payload or metadata came back wrong */
  int lean;          /* read by journal_replay_lean: offsets may be 0 */
} replayed;

static int collect(const journal_event *ev, void *ud) {
  replayed *r = ud;
  char want[48];
  expected_payload(want, sizeof want, ev->id, ev->seq);
  if (ev->payload_len != strlen(want) || memcmp(ev->payload, want, ev->payload_len) != 0 ||
      ev->crc32c != crc32c(0, ev->payload, ev->payload_len) || strcmp(ev->manifest, "evt") != 0 ||
      (!r->lean && ev->offset <= 0))
    r->bad_payload++;
  if (r->n < sizeof r->seq / sizeof r->seq[0]) {
    r->seq[r->n] = ev->seq;
    r->offset[r->n] = ev->offset;
    snprintf(r->id[r->n], sizeof r->id[r->n], "%s", ev->id);
  }
  r->n++;
  return r->stop_after && r->n >= r->stop_after;
}

static replayed *replayed_new(void) {
  replayed *r = calloc(1, sizeof *r);
  assert_non_null(r);
  return r;
}

/* Replays and asserts the result is exactly seqs first..last (none if last < first); the same
 * through journal_replay_lean, whose events carry the same seqs, manifests and payloads. */
static void expect_replay(journal_t *j, const char *id, int64_t from, int64_t to, int64_t max,
                          int64_t first, int64_t last) {
  for (int lean = 0; lean <= 1; lean++) {
    replayed *r = replayed_new();
    r->lean = lean;
    assert_int_equal(lean ? journal_replay_lean(j, id, from, to, max, collect, r)
                          : journal_replay(j, id, from, to, max, collect, r),
                     0);
    size_t want = last >= first ? (size_t)(last - first + 1) : 0;
    assert_true(want <= sizeof r->seq / sizeof r->seq[0]);
    assert_int_equal(r->n, want);
    for (size_t i = 0; i < want; i++) {
      assert_int_equal(r->seq[i], first + (int64_t)i);
      if (i > 0 && !lean) assert_true(r->offset[i] > r->offset[i - 1]);
    }
    assert_int_equal(r->bad_payload, 0);
    free(r);
  }
}

static journal_bounds bounds(journal_t *j, const char *id) {
  journal_bounds b = {-1, -1};
  assert_int_equal(journal_bounds_of(j, id, &b), 0);
  return b;
}

static int64_t highest(journal_t *j, const char *id) { return bounds(j, id).highest; }

static int64_t max_offset(journal_t *j) {
  int64_t m = -1;
  assert_int_equal(journal_max_offset(j, &m), 0);
  return m;
}

/* ---- fixture ---- */

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  assert_non_null(f);
  f->bc = *state;
  f->bc->fresh(f->uri, sizeof f->uri, f->path, sizeof f->path);
  f->j = open_ok(f->uri);
  /* Every case starts from events 1..5 of "a" (one write each, as persist does). */
  for (int64_t seq = 1; seq <= 5; seq++) assert_int_equal(write_sync(f->j, "a", seq, 1), 0);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  journal_close(f->j);
  if (f->bc->cleanup) f->bc->cleanup(f->path);
  free(f);
  return 0;
}

/* ---- replay ranges (JournalSpec "A journal must ...") ---- */

static void test_replay_all(void **state) {
  fixture *f = *state;
  expect_replay(f->j, "a", 1, INT64_MAX, -1, 1, 5);
  assert_int_equal(highest(f->j, "a"), 5);
}

static void test_replay_from_lower_bound(void **state) {
  fixture *f = *state;
  expect_replay(f->j, "a", 3, INT64_MAX, -1, 3, 5);
}

static void test_replay_to_upper_bound(void **state) {
  fixture *f = *state;
  expect_replay(f->j, "a", 1, 3, -1, 1, 3);
}

static void test_replay_count_limit(void **state) {
  fixture *f = *state;
  expect_replay(f->j, "a", 1, INT64_MAX, 3, 1, 3);
}

static void test_replay_lower_and_upper(void **state) {
  fixture *f = *state;
  expect_replay(f->j, "a", 2, 4, -1, 2, 4);
}

static void test_replay_lower_upper_and_limit(void **state) {
  fixture *f = *state;
  expect_replay(f->j, "a", 2, 5, 2, 2, 3);
}

static void test_replay_lower_equals_upper(void **state) {
  fixture *f = *state;
  expect_replay(f->j, "a", 3, 3, -1, 3, 3);
}

static void test_replay_limit_one(void **state) {
  fixture *f = *state;
  expect_replay(f->j, "a", 1, INT64_MAX, 1, 1, 1);
}

static void test_replay_limit_zero(void **state) {
  fixture *f = *state;
  expect_replay(f->j, "a", 1, INT64_MAX, 0, 1, 0);
  assert_int_equal(highest(f->j, "a"), 5);
}

static void test_replay_lower_above_upper(void **state) {
  fixture *f = *state;
  expect_replay(f->j, "a", 3, 2, -1, 1, 0);
  expect_replay(f->j, "a", 6, INT64_MAX, -1, 1, 0);
}

static void test_unknown_id(void **state) {
  fixture *f = *state;
  expect_replay(f->j, "nobody", 1, INT64_MAX, -1, 1, 0);
  assert_int_equal(highest(f->j, "nobody"), 0);
  /* Ids are compared exactly: no prefix or case folding. */
  expect_replay(f->j, "A", 1, INT64_MAX, -1, 1, 0);
  expect_replay(f->j, "a%", 1, INT64_MAX, -1, 1, 0);
}

static void test_replay_stops_when_callback_asks(void **state) {
  fixture *f = *state;
  replayed r = {.stop_after = 2};
  assert_int_equal(journal_replay(f->j, "a", 1, INT64_MAX, -1, collect, &r), 0);
  assert_int_equal(r.n, 2);
  assert_int_equal(r.seq[1], 2);
}

/* A replay longer than one backend page comes back whole and in order. */
static void test_replay_across_pages(void **state) {
  fixture *f = *state;
  waiter *wt = waiter_new();
  enum { N = 2100 };
  twrite *t = calloc(N / 7, sizeof *t);
  assert_non_null(t);
  for (int i = 0; i < N / 7; i++) {
    twrite_init(&t[i], "long", 1 + 7 * i, 7, wt);
    assert_int_equal(journal_submit(f->j, &t[i].w), 0);
  }
  wait_fired(wt, N / 7);
  for (int i = 0; i < N / 7; i++) assert_int_equal(t[i].w.status, 0);
  expect_replay(f->j, "long", 1, INT64_MAX, -1, 1, N);
  expect_replay(f->j, "long", 500, 1700, -1, 500, 1700);
  expect_replay(f->j, "long", 999, INT64_MAX, 1002, 999, 2000);
  free(t);
  waiter_free(wt);
}

/* ---- deletes and bounds ---- */

static void test_deleted_events_not_replayed(void **state) {
  fixture *f = *state;
  assert_int_equal(delete_sync(f->j, "a", 3), 0);
  expect_replay(f->j, "a", 1, INT64_MAX, -1, 4, 5);
  expect_replay(f->j, "a", 2, 4, -1, 4, 4);
  /* Deleting an unknown id or below the first event is harmless. */
  assert_int_equal(delete_sync(f->j, "nobody", 10), 0);
  assert_int_equal(delete_sync(f->j, "a", 2), 0);
  expect_replay(f->j, "a", 1, INT64_MAX, -1, 4, 5);
}

static void test_highest_seq_survives_deletes(void **state) {
  fixture *f = *state;
  assert_int_equal(delete_sync(f->j, "a", 3), 0);
  assert_int_equal(highest(f->j, "a"), 5);
  assert_int_equal(delete_sync(f->j, "a", INT64_MAX), 0);
  assert_int_equal(highest(f->j, "a"), 5);
  expect_replay(f->j, "a", 1, INT64_MAX, -1, 1, 0);
  /* The stream goes on after the highest, and a deleted seq is not reusable:
   * writing it again means a second writer. */
  assert_int_equal(write_sync(f->j, "a", 6, 1), 0);
  assert_int_equal(write_sync(f->j, "a", 5, 1), JOURNAL_ECONFLICT);
  assert_int_equal(write_sync(f->j, "a", 2, 1), JOURNAL_ECONFLICT);
  expect_replay(f->j, "a", 1, INT64_MAX, -1, 6, 6);
  assert_int_equal(highest(f->j, "a"), 6);
}

/* Bounds tell "never written" from "deleted": deleted_to is exact, clamped to
 * the highest seq, never moves back, and survives a reopen. */
static void test_bounds_and_deleted_to(void **state) {
  fixture *f = *state;
  journal_bounds b = bounds(f->j, "a");
  assert_int_equal(b.highest, 5);
  assert_int_equal(b.deleted_to, 0);
  b = bounds(f->j, "nobody");
  assert_int_equal(b.highest, 0);
  assert_int_equal(b.deleted_to, 0);

  assert_int_equal(delete_sync(f->j, "a", 3), 0);
  b = bounds(f->j, "a");
  assert_int_equal(b.highest, 5);
  assert_int_equal(b.deleted_to, 3);
  expect_replay(f->j, "a", 1, 3, -1, 1, 0);

  assert_int_equal(delete_sync(f->j, "a", 2), 0); /* below: deleted_to stays */
  assert_int_equal(bounds(f->j, "a").deleted_to, 3);

  assert_int_equal(delete_sync(f->j, "a", 1000), 0); /* beyond the highest: clamped */
  b = bounds(f->j, "a");
  assert_int_equal(b.highest, 5);
  assert_int_equal(b.deleted_to, 5);

  /* An unknown id records nothing: still unknown, and not listed. */
  assert_int_equal(delete_sync(f->j, "ghost", 7), 0);
  b = bounds(f->j, "ghost");
  assert_int_equal(b.highest, 0);
  assert_int_equal(b.deleted_to, 0);

  assert_int_equal(write_sync(f->j, "p", 1, 4), 0);
  assert_int_equal(delete_sync(f->j, "p", 2), 0);

  journal_t *j = open_ok(reopenable_uri(f));
  b = bounds(j, "a");
  assert_int_equal(b.highest, 5);
  assert_int_equal(b.deleted_to, 5);
  b = bounds(j, "p");
  assert_int_equal(b.highest, 4);
  assert_int_equal(b.deleted_to, 2);
  expect_replay(j, "p", 1, INT64_MAX, -1, 3, 4);
  assert_int_equal(bounds(j, "ghost").highest, 0);
  journal_close(j);
}

/* no_deletions never says "none" once a delete has removed events; the
 * sqlite journal (whose recoveries skip a bounds query on it) says "none"
 * before. A delete that removes nothing may count either way. */
static void test_no_deletions(void **state) {
  fixture *f = *state;
  int none = -1;
  assert_int_equal(journal_no_deletions(f->j, &none), 0);
  if (f->bc->sqlite) assert_int_equal(none, 1);
  assert_true(none == 0 || none == 1);
  assert_int_equal(delete_sync(f->j, "a", 2), 0);
  assert_int_equal(journal_no_deletions(f->j, &none), 0);
  assert_int_equal(none, 0);
  assert_int_equal(journal_no_deletions(f->j, NULL), JOURNAL_EREJECTED);
}

/* After a delete (even of everything) the stream continues at highest + 1. */
static void test_delete_then_write_continues(void **state) {
  fixture *f = *state;
  assert_int_equal(delete_sync(f->j, "a", INT64_MAX), 0);
  assert_int_equal(write_sync(f->j, "a", 1, 1), JOURNAL_ECONFLICT);
  assert_int_equal(write_sync(f->j, "a", 7, 1), JOURNAL_ECONFLICT);
  assert_int_equal(write_sync(f->j, "a", 6, 2), 0);
  journal_bounds b = bounds(f->j, "a");
  assert_int_equal(b.highest, 7);
  assert_int_equal(b.deleted_to, 5);
  expect_replay(f->j, "a", 1, INT64_MAX, -1, 6, 7);
  /* The same after a reopen (the writer learns the highest from storage). */
  journal_t *j = open_ok(reopenable_uri(f));
  assert_int_equal(write_sync(j, "a", 7, 1), JOURNAL_ECONFLICT);
  assert_int_equal(write_sync(j, "a", 8, 1), 0);
  assert_int_equal(delete_sync(j, "a", 8), 0);
  journal_close(j);
  j = open_ok(f->uri);
  assert_int_equal(write_sync(j, "a", 8, 1), JOURNAL_ECONFLICT);
  assert_int_equal(write_sync(j, "a", 9, 1), 0);
  journal_close(j);
}

/* A write that does not continue the stream exactly would leave a hole (a
 * write issued after one that failed): refused, nothing stored. */
static void test_gap_refused(void **state) {
  fixture *f = *state;
  assert_int_equal(write_sync(f->j, "a", 7, 2), JOURNAL_ECONFLICT);
  assert_int_equal(highest(f->j, "a"), 5);
  expect_replay(f->j, "a", 1, INT64_MAX, -1, 1, 5);
  assert_int_equal(write_sync(f->j, "a", 6, 1), 0);
  assert_int_equal(highest(f->j, "a"), 6);
  /* An unknown id starts at 1. */
  assert_int_equal(write_sync(f->j, "new", 2, 1), JOURNAL_ECONFLICT);
  assert_int_equal(highest(f->j, "new"), 0);
  assert_int_equal(write_sync(f->j, "new", 1, 1), 0);
}

/* Gaps and duplicates inside one batch: each write is judged against the
 * writes before it, refused ones change nothing. */
static void test_gaps_and_duplicates_in_one_batch(void **state) {
  fixture *f = *state;
  waiter *wt = waiter_new();
  enum { N = 7 };
  twrite *t = calloc(N, sizeof *t);
  assert_non_null(t);
  twrite_init(&t[0], "a", 6, 1, wt); /* continues */
  twrite_init(&t[1], "a", 8, 1, wt); /* gap */
  twrite_init(&t[2], "a", 7, 2, wt); /* continues 6 */
  twrite_init(&t[3], "a", 8, 1, wt); /* duplicate of the write before */
  twrite_init(&t[4], "b", 1, 1, wt);
  twrite_init(&t[5], "b", 1, 1, wt); /* duplicate within the batch */
  twrite_init(&t[6], "a", 9, 1, wt);
  int want[N] = {0, JOURNAL_ECONFLICT, 0, JOURNAL_ECONFLICT, 0, JOURNAL_ECONFLICT, 0};
  journal_pause_for_test(f->j, 1);
  for (int i = 0; i < N; i++) assert_int_equal(journal_submit(f->j, &t[i].w), 0);
  journal_pause_for_test(f->j, 0);
  wait_fired(wt, N);
  for (int i = 0; i < N; i++) assert_int_equal(t[i].w.status, want[i]);
  expect_replay(f->j, "a", 1, INT64_MAX, -1, 1, 9);
  expect_replay(f->j, "b", 1, INT64_MAX, -1, 1, 1);
  assert_int_equal(write_sync(f->j, "a", 10, 1), 0);
  assert_int_equal(write_sync(f->j, "b", 2, 1), 0);
  free(t);
  waiter_free(wt);
}

static void test_delete_rejects_empty_id(void **state) {
  fixture *f = *state;
  assert_int_equal(delete_sync(f->j, "", 3), JOURNAL_EREJECTED);
  assert_int_equal(delete_sync(f->j, NULL, 3), JOURNAL_EREJECTED);
  expect_replay(f->j, "a", 1, INT64_MAX, -1, 1, 5);
}

/* Leases: granted at once by backends where one process owns the journal. */
static void test_leases(void **state) {
  fixture *f = *state;
  assert_int_equal(request_sync(f->j, JOURNAL_WRITE_LEASE, "a", 0), 0);
  assert_int_equal(request_sync(f->j, JOURNAL_WRITE_LEASE, "a", 1), 0);
  assert_int_equal(write_sync(f->j, "a", 6, 1), 0);
  assert_int_equal(request_sync(f->j, JOURNAL_WRITE_UNLEASE, "a", 0), 0);
  assert_int_equal(request_sync(f->j, JOURNAL_WRITE_LEASE, "", 0), JOURNAL_EREJECTED);
  assert_int_equal(request_sync(f->j, 99, "a", 0), JOURNAL_EREJECTED);
  expect_replay(f->j, "a", 1, INT64_MAX, -1, 1, 6);
}

/* ---- atomic writes ---- */

static void test_atomic_write_all_or_nothing(void **state) {
  fixture *f = *state;
  assert_int_equal(write_sync(f->j, "a", 6, 3), 0);
  expect_replay(f->j, "a", 1, INT64_MAX, -1, 1, 8);
  assert_int_equal(highest(f->j, "a"), 8);
  /* x has 1..2; a write of 2..4 clashes on its first event and stores nothing. */
  assert_int_equal(write_sync(f->j, "x", 1, 2), 0);
  assert_int_equal(write_sync(f->j, "x", 2, 3), JOURNAL_ECONFLICT);
  expect_replay(f->j, "x", 1, INT64_MAX, -1, 1, 2);
  assert_int_equal(highest(f->j, "x"), 2);
  /* Overlapping the end of a's stream: refused whole. */
  assert_int_equal(write_sync(f->j, "a", 8, 3), JOURNAL_ECONFLICT);
  expect_replay(f->j, "a", 1, INT64_MAX, -1, 1, 8);
  assert_int_equal(highest(f->j, "a"), 8);
}

static void exec_other(const char *path, const char *sql) { sqlite_exec_sql(path, sql); }

/* A clash found by the events' UNIQUE index halfway through a write (a row
 * the writer does not know of, put there behind its back) undoes that write's
 * first events, and the writer's idea of the highest seq with them. */
static void test_conflict_mid_write_rolls_back(void **state) {
  fixture *f = *state;
  if (!f->bc->exec_sql) {
    skip();
    return;
  }
  f->bc->exec_sql(f->path, f->bc->sql->dup_a7);
  /* 6 is free, 7 clashes: neither 6 nor 8 may stay. */
  assert_int_equal(write_sync(f->j, "a", 6, 3), JOURNAL_ECONFLICT);
  replayed *r = replayed_new();
  assert_int_equal(journal_replay(f->j, "a", 1, 6, -1, collect, r), 0);
  assert_int_equal(r->n, 5);
  free(r);
  /* The writer still expects 6 (its map was not moved by the failed write). */
  assert_int_equal(write_sync(f->j, "a", 7, 1), JOURNAL_ECONFLICT);
  f->bc->exec_sql(f->path, f->bc->sql->undup_a7);
  assert_int_equal(write_sync(f->j, "a", 6, 3), 0);
  expect_replay(f->j, "a", 1, INT64_MAX, -1, 1, 8);
}

/* Invalid or clashing writes fail alone; their neighbours in the same batch
 * (one transaction) are stored. */
static void test_invalid_write_rejected_neighbours_stored(void **state) {
  fixture *f = *state;
  waiter *wt = waiter_new();
  uint64_t batches0, writes0, batches1, writes1;
  journal_writer_stats(f->j, &batches0, &writes0);
  enum { N = 12 };
  twrite *t = calloc(N, sizeof *t);
  assert_non_null(t);
  twrite_init(&t[0], "ok1", 1, 1, wt);
  twrite_init(&t[1], "zero", 0, 1, wt); /* seq 0 */
  twrite_init(&t[2], "gap", 1, 2, wt);
  t[2].ev[1].seq = 3; /* non-consecutive within the write */
  twrite_init(&t[3], "ok2", 1, 2, wt);
  twrite_init(&t[4], "a", 5, 1, wt); /* clashes with stored a#5 */
  twrite_init(&t[5], "", 1, 1, wt);  /* empty id */
  twrite_init(&t[6], "mixed", 1, 2, wt);
  t[6].ev[1].id = "other"; /* two ids in one write */
  twrite_init(&t[7], "nullpl", 1, 1, wt);
  t[7].ev[0].payload = NULL; /* NULL payload with a length */
  twrite_init(&t[8], "unsealed", 1, 1, wt);
  t[8].ev[0].crc32c ^= 1; /* crc does not match the payload */
  twrite_init(&t[9], "a", 6, 1, wt);
  twrite_init(&t[10], "emptytag", 1, 1, wt);
  t[10].ev[0].tags = "x\n\ny"; /* an empty tag */
  twrite_init(&t[11], "endtag", 1, 1, wt);
  t[11].ev[0].tags = "x\n"; /* an empty last tag */
  int want[N] = {0,
                 JOURNAL_EREJECTED,
                 JOURNAL_EREJECTED,
                 0,
                 JOURNAL_ECONFLICT,
                 JOURNAL_EREJECTED,
                 JOURNAL_EREJECTED,
                 JOURNAL_EREJECTED,
                 JOURNAL_EREJECTED,
                 0,
                 JOURNAL_EREJECTED,
                 JOURNAL_EREJECTED};

  journal_pause_for_test(f->j, 1);
  for (int i = 0; i < N; i++) assert_int_equal(journal_submit(f->j, &t[i].w), 0);
  journal_pause_for_test(f->j, 0);
  wait_fired(wt, N);

  for (int i = 0; i < N; i++) assert_int_equal(t[i].w.status, want[i]);
  journal_writer_stats(f->j, &batches1, &writes1);
  assert_int_equal(batches1 - batches0, 1);
  assert_int_equal(writes1 - writes0, N);
  expect_replay(f->j, "ok1", 1, INT64_MAX, -1, 1, 1);
  expect_replay(f->j, "ok2", 1, INT64_MAX, -1, 1, 2);
  expect_replay(f->j, "a", 1, INT64_MAX, -1, 1, 6);
  const char *none[] = {"zero",   "gap",      "mixed",    "other",
                        "nullpl", "unsealed", "emptytag", "endtag"};
  for (size_t i = 0; i < sizeof none / sizeof none[0]; i++) {
    expect_replay(f->j, none[i], 0, INT64_MAX, -1, 1, 0);
    assert_int_equal(highest(f->j, none[i]), 0);
  }
  /* Refused writes have no offsets; stored ones do. */
  assert_int_equal(t[4].ev[0].offset, 0);
  assert_true(t[9].ev[0].offset > t[3].ev[1].offset);
  free(t);
  waiter_free(wt);
}

static void test_payload_sizes(void **state) {
  fixture *f = *state;
  waiter *wt = waiter_new();
  /* Too big: refused before storage (the bytes are never read). */
  size_t big = JOURNAL_MAX_PAYLOAD + 1;
  void *huge = calloc(1, big);
  assert_non_null(huge);
  twrite t;
  twrite_init(&t, "big", 1, 1, wt);
  t.ev[0].payload = huge;
  t.ev[0].payload_len = big;
  assert_int_equal(journal_submit(f->j, &t.w), 0);
  wait_fired(wt, 1);
  assert_int_equal(t.w.status, JOURNAL_EREJECTED);
  free(huge);
  assert_int_equal(highest(f->j, "big"), 0);

  /* Empty payloads, with or without a pointer, round-trip as empty. */
  twrite_init(&t, "empty", 1, 2, wt);
  t.ev[0].payload = NULL;
  t.ev[0].payload_len = 0;
  t.ev[1].payload = "";
  t.ev[1].payload_len = 0;
  journal_event_seal(&t.ev[0]);
  journal_event_seal(&t.ev[1]);
  assert_int_equal(journal_submit(f->j, &t.w), 0);
  wait_fired(wt, 2);
  assert_int_equal(t.w.status, 0);
  replayed *r = replayed_new();
  assert_int_equal(journal_replay(f->j, "empty", 1, INT64_MAX, -1, collect, r), 0);
  assert_int_equal(r->n, 2);
  assert_int_equal(r->bad_payload, 2); /* collect expects text; these are empty */
  free(r);

  /* An empty write (persist_all of nothing) succeeds and stores nothing. */
  journal_write none = {.kind = JOURNAL_WRITE_EVENTS, .count = 0, .done = on_done, .data = wt};
  assert_int_equal(journal_submit(f->j, &none), 0);
  wait_fired(wt, 3);
  assert_int_equal(none.status, 0);
  waiter_free(wt);
}

/* ---- metadata ---- */

typedef struct meta_seen {
  int n;
  journal_event ev;
  char manifest[32], tags[32];
  unsigned char payload[16];
} meta_seen;

static int keep_meta(const journal_event *ev, void *ud) {
  meta_seen *m = ud;
  m->n++;
  m->ev = *ev;
  snprintf(m->manifest, sizeof m->manifest, "%s", ev->manifest);
  snprintf(m->tags, sizeof m->tags, "%s", ev->tags);
  if (ev->payload_len <= sizeof m->payload) memcpy(m->payload, ev->payload, ev->payload_len);
  return 0;
}

static void test_metadata_round_trips(void **state) {
  fixture *f = *state;
  waiter *wt = waiter_new();
  static const unsigned char payload[] = {0x83, 0x00, 0xa3, 'q', 't', 'y', 0xff, 0x00, 0x7f};
  journal_event ev = {.id = "meta",
                      .seq = 1,
                      .manifest = "Deposited",
                      .version = 3,
                      .tags = "account\nvip",
                      .writer = INT64_MIN + 7, /* the whole int64 range round-trips */
                      .timestamp_ms = 1717171717171,
                      .payload = payload,
                      .payload_len = sizeof payload};
  journal_event_seal(&ev);
  journal_write w = {
      .kind = JOURNAL_WRITE_EVENTS, .events = &ev, .count = 1, .done = on_done, .data = wt};
  assert_int_equal(journal_submit(f->j, &w), 0);
  wait_fired(wt, 1);
  assert_int_equal(w.status, 0);
  assert_true(ev.offset > 0);

  meta_seen m = {0};
  assert_int_equal(journal_replay(f->j, "meta", 1, INT64_MAX, -1, keep_meta, &m), 0);
  assert_int_equal(m.n, 1);
  assert_int_equal(m.ev.seq, 1);
  assert_string_equal(m.manifest, "Deposited");
  assert_int_equal(m.ev.version, 3);
  assert_string_equal(m.tags, "account\nvip");
  assert_true(m.ev.writer == INT64_MIN + 7);
  assert_int_equal(m.ev.timestamp_ms, 1717171717171);
  assert_int_equal(m.ev.offset, ev.offset);
  assert_int_equal(m.ev.payload_len, sizeof payload);
  assert_memory_equal(m.payload, payload, sizeof payload);
  assert_int_equal(m.ev.crc32c, ev.crc32c);
  /* A lean replay gives what a recovery without meta needs, the same (the
   * timestamp only for Lore's own events: below). */
  memset(&m, 0, sizeof m);
  assert_int_equal(journal_replay_lean(f->j, "meta", 1, INT64_MAX, -1, keep_meta, &m), 0);
  assert_int_equal(m.n, 1);
  assert_int_equal(m.ev.seq, 1);
  assert_string_equal(m.manifest, "Deposited");
  assert_int_equal(m.ev.payload_len, sizeof payload);
  assert_memory_equal(m.payload, payload, sizeof payload);
  assert_int_equal(m.ev.crc32c, ev.crc32c);

  /* NULL strings are stored as empty ones; writer 0 means unknown. */
  journal_event bare = {.id = "meta", .seq = 2, .version = 1, .payload = "x", .payload_len = 1};
  journal_event_seal(&bare);
  w = (journal_write){
      .kind = JOURNAL_WRITE_EVENTS, .events = &bare, .count = 1, .done = on_done, .data = wt};
  assert_int_equal(journal_submit(f->j, &w), 0);
  wait_fired(wt, 2);
  assert_int_equal(w.status, 0);
  memset(&m, 0, sizeof m);
  assert_int_equal(journal_replay(f->j, "meta", 2, 2, -1, keep_meta, &m), 0);
  assert_int_equal(m.n, 1);
  assert_string_equal(m.manifest, "");
  assert_string_equal(m.tags, "");
  assert_int_equal(m.ev.writer, 0);

  /* Lore's own events keep their timestamp in a lean replay, bounded or not. */
  journal_event own = {.id = "meta",
                       .seq = 3,
                       .manifest = JOURNAL_INTERNAL_PREFIX "timer",
                       .version = 1,
                       .timestamp_ms = 1717171717999,
                       .payload = payload,
                       .payload_len = sizeof payload};
  journal_event_seal(&own);
  w = (journal_write){
      .kind = JOURNAL_WRITE_EVENTS, .events = &own, .count = 1, .done = on_done, .data = wt};
  assert_int_equal(journal_submit(f->j, &w), 0);
  wait_fired(wt, 3);
  assert_int_equal(w.status, 0);
  for (int bounded = 0; bounded < 2; bounded++) {
    memset(&m, 0, sizeof m);
    assert_int_equal(
        journal_replay_lean(f->j, "meta", 3, bounded ? 3 : INT64_MAX, -1, keep_meta, &m), 0);
    assert_int_equal(m.n, 1);
    assert_string_equal(m.manifest, "lore.timer");
    assert_int_equal(m.ev.timestamp_ms, 1717171717999);
    assert_memory_equal(m.payload, payload, sizeof payload);
  }
  waiter_free(wt);
}

/* ---- storage failures (sqlite: injected through a second connection) ---- */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Another process holds the write lock past the busy timeout: the whole batch
 * fails with JOURNAL_EIO, stores nothing, and the writer carries on. The
 * timeout comes from the options, or from the URI, which wins. */
static void test_sqlite_locked_database_fails_batch(void **state) {
  fixture *f = *state;
  if (!f->bc->sqlite) {
    skip();
    return;
  }
  reopenable_uri(f);
  char uri[700];
  snprintf(uri, sizeof uri, "%s?busy_timeout=20", f->uri);
  for (int variant = 0; variant < 2; variant++) {
    journal_options opt = {.synchronous_full = 1, .busy_timeout_ms = variant ? 60000 : 20};
    journal_t *j;
    assert_int_equal(journal_open(variant ? uri : f->uri, &opt, &j), 0);
    sqlite3 *other;
    assert_int_equal(sqlite3_open(f->path, &other), SQLITE_OK);
    assert_int_equal(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    const char *id = variant ? "locked2" : "locked";
    double t0 = now_s();
    assert_int_equal(write_sync(j, id, 1, 2), JOURNAL_EIO);
    assert_int_equal(delete_sync(j, "a", 5), JOURNAL_EIO);
    assert_true(now_s() - t0 < 10); /* not the options' 60 s */
    assert_int_equal(sqlite3_exec(other, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(other);
    assert_int_equal(highest(j, id), 0);
    expect_replay(j, "a", 1, INT64_MAX, -1, 1, 5);
    assert_int_equal(write_sync(j, id, 1, 2), 0);
    expect_replay(j, id, 1, INT64_MAX, -1, 1, 2);
    journal_close(j);
  }
}

/* A failure that ends the transaction halfway through a batch (a trigger doing
 * RAISE(ROLLBACK) stands in for a full disk) fails every write of the batch,
 * and the writer's idea of each id's highest seq goes back with it; one that
 * only aborts its statement fails that write alone. */
static void test_sqlite_failure_mid_batch(void **state) {
  fixture *f = *state;
  if (!f->bc->sqlite) {
    skip();
    return;
  }
  waiter *wt = waiter_new();
  twrite t[4];
  exec_other(f->path,
             "CREATE TRIGGER boom BEFORE INSERT ON events WHEN NEW.id = 'boom'"
             " BEGIN SELECT RAISE(ROLLBACK, 'injected'); END;");
  twrite_init(&t[0], "t1", 1, 1, wt);
  twrite_init(&t[1], "a", 6, 1, wt);
  twrite_init(&t[2], "boom", 1, 1, wt);
  twrite_init(&t[3], "t2", 1, 1, wt);
  journal_pause_for_test(f->j, 1);
  for (int i = 0; i < 4; i++) assert_int_equal(journal_submit(f->j, &t[i].w), 0);
  journal_pause_for_test(f->j, 0);
  wait_fired(wt, 4);
  for (int i = 0; i < 4; i++) assert_int_equal(t[i].w.status, JOURNAL_EIO);
  assert_int_equal(highest(f->j, "t1"), 0);
  assert_int_equal(highest(f->j, "t2"), 0);
  assert_int_equal(highest(f->j, "boom"), 0);
  assert_int_equal(highest(f->j, "a"), 5);
  /* The failed batch moved nothing: the same seqs are expected again. */
  assert_int_equal(write_sync(f->j, "a", 7, 1), JOURNAL_ECONFLICT);
  assert_int_equal(write_sync(f->j, "a", 6, 1), 0);
  assert_int_equal(write_sync(f->j, "t1", 2, 1), JOURNAL_ECONFLICT);
  assert_int_equal(write_sync(f->j, "t1", 1, 1), 0);

  exec_other(f->path,
             "DROP TRIGGER boom;"
             "CREATE TRIGGER boom BEFORE INSERT ON events WHEN NEW.id = 'boom'"
             " BEGIN SELECT RAISE(ABORT, 'injected'); END;");
  waiter_free(wt);
  wt = waiter_new();
  twrite_init(&t[0], "t3", 1, 1, wt);
  twrite_init(&t[1], "boom", 1, 2, wt);
  twrite_init(&t[2], "t2", 1, 1, wt);
  journal_pause_for_test(f->j, 1);
  for (int i = 0; i < 3; i++) assert_int_equal(journal_submit(f->j, &t[i].w), 0);
  journal_pause_for_test(f->j, 0);
  wait_fired(wt, 3);
  assert_int_equal(t[0].w.status, 0);
  assert_int_equal(t[1].w.status, JOURNAL_EREJECTED);
  assert_int_equal(t[2].w.status, 0);
  expect_replay(f->j, "t3", 1, INT64_MAX, -1, 1, 1);
  expect_replay(f->j, "t2", 1, INT64_MAX, -1, 1, 1);
  assert_int_equal(highest(f->j, "boom"), 0);
  exec_other(f->path, "DROP TRIGGER boom");
  assert_int_equal(write_sync(f->j, "boom", 1, 1), 0);
  waiter_free(wt);
}

/* ---- WAL checkpoints (sqlite) ---- */

/* The writer's connection does not checkpoint on its own (that was 13% of
 * its time); the checkpointer thread copies the WAL and, when that is not
 * enough under steady writes, the writer lets the WAL start over: it does
 * not grow with everything ever written. */
static void test_sqlite_wal_is_checkpointed(void **state) {
  fixture *f = *state;
  if (!f->bc->sqlite) {
    skip();
    return;
  }
  enum { PAYLOAD = 64 * 1024, PER_WRITE = 8, WRITES = 100 };
  unsigned char *payload = malloc(PAYLOAD);
  assert_non_null(payload);
  for (int i = 0; i < PAYLOAD; i++) payload[i] = (unsigned char)(i * 31 + 7);
  waiter *wt = waiter_new();
  journal_event ev[PER_WRITE];
  for (int w = 0; w < WRITES; w++) {
    for (int i = 0; i < PER_WRITE; i++) {
      ev[i] = (journal_event){.id = "big",
                              .seq = w * PER_WRITE + i + 1,
                              .manifest = "blob",
                              .version = 1,
                              .tags = "",
                              .payload = payload,
                              .payload_len = PAYLOAD};
      journal_event_seal(&ev[i]);
    }
    journal_write jw = {.kind = JOURNAL_WRITE_EVENTS,
                        .events = ev,
                        .count = PER_WRITE,
                        .done = on_done,
                        .data = wt};
    assert_int_equal(journal_submit(f->j, &jw), 0);
    wait_fired(wt, w + 1);
    assert_int_equal(jw.status, 0);
  }
  /* A passive checkpoint from here changes nothing but tells the WAL's length. */
  sqlite3 *db;
  assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db, "SELECT count(*) FROM sqlite_master", NULL, NULL, NULL),
                   SQLITE_OK); /* opens the WAL */
  int frames = -1, copied = -1, rc = SQLITE_BUSY;
  /* BUSY while the journal's checkpointer is at work. */
  for (int i = 0; i < 10000 && rc == SQLITE_BUSY; i++) {
    rc = sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE, &frames, &copied);
    if (rc == SQLITE_BUSY) usleep(1000);
  }
  assert_int_equal(rc, SQLITE_OK);
  sqlite3_close(db);
  int pages_written = PAYLOAD / 4096 * PER_WRITE * WRITES;
  assert_true(frames >= 0);
  assert_true(frames < pages_written * 3 / 4);
  assert_int_equal(highest(f->j, "big"), PER_WRITE * WRITES);
  waiter_free(wt);
  free(payload);
}

/* The writer keeps the WAL file longer than its frames (zeros after them), so
 * a commit overwrites blocks rather than growing the file; the events stay
 * readable, here and by another connection. */
static void test_sqlite_wal_space_ahead(void **state) {
  fixture *f = *state;
  if (!f->bc->sqlite) {
    skip();
    return;
  }
  waiter *wt = waiter_new();
  for (int w = 0; w < 20; w++) {
    journal_event ev = {.id = "ahead",
                        .seq = w + 1,
                        .manifest = "m",
                        .version = 1,
                        .tags = "",
                        .payload = "xyz",
                        .payload_len = 3};
    journal_event_seal(&ev);
    journal_write jw = {
        .kind = JOURNAL_WRITE_EVENTS, .events = &ev, .count = 1, .done = on_done, .data = wt};
    assert_int_equal(journal_submit(f->j, &jw), 0);
    wait_fired(wt, w + 1);
    assert_int_equal(jw.status, 0);
  }
  char wal[sizeof f->path + 8];
  snprintf(wal, sizeof wal, "%s-wal", f->path);
  struct stat st;
  assert_int_equal(stat(wal, &st), 0);
  /* 20 one-row commits take a few frames each: far less than the space ahead */
  assert_true(st.st_size >= 32 + 20 * 3 * (4096 + 24) + (128 << 10));
  sqlite3 *db;
  assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
  sqlite3_stmt *q;
  assert_int_equal(
      sqlite3_prepare_v2(db, "SELECT count(*) FROM events WHERE id = 'ahead'", -1, &q, NULL),
      SQLITE_OK);
  assert_int_equal(sqlite3_step(q), SQLITE_ROW);
  assert_int_equal(sqlite3_column_int(q, 0), 20);
  sqlite3_finalize(q);
  sqlite3_close(db);
  assert_int_equal(highest(f->j, "ahead"), 20);
  waiter_free(wt);
}

/* ---- corruption ---- */

/* Same length, one byte changed: only the CRC can tell. */
static void sqlite_damage_a3(const char *path) {
  sqlite3 *db;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  sqlite3_busy_timeout(db, 5000);
  char damaged[48];
  expected_payload(damaged, sizeof damaged, "a", 3);
  damaged[0] ^= 0x20;
  sqlite3_stmt *st;
  assert_int_equal(
      sqlite3_prepare_v2(db, "UPDATE events SET payload = ?1 WHERE id = 'a' AND seq = 3", -1, &st,
                         NULL),
      SQLITE_OK);
  sqlite3_bind_blob(st, 1, damaged, (int)strlen(damaged), SQLITE_STATIC);
  assert_int_equal(sqlite3_step(st), SQLITE_DONE);
  assert_int_equal(sqlite3_changes(db), 1);
  sqlite3_finalize(st);
  sqlite3_close(db);
}

static void check_damage_a3(fixture *f) {
  replayed *r = replayed_new();
  assert_int_equal(journal_replay(f->j, "a", 1, INT64_MAX, -1, collect, r), JOURNAL_ECORRUPT);
  assert_int_equal(r->n, 2); /* the events before the damaged one, then the stop */
  assert_int_equal(r->seq[0], 1);
  assert_int_equal(r->seq[1], 2);
  assert_int_equal(r->bad_payload, 0);
  memset(r, 0, sizeof *r);
  r->lean = 1;
  assert_int_equal(journal_replay_lean(f->j, "a", 1, INT64_MAX, -1, collect, r), JOURNAL_ECORRUPT);
  assert_int_equal(r->n, 2);
  assert_int_equal(r->bad_payload, 0);
  memset(r, 0, sizeof *r);
  assert_int_equal(journal_replay_all(f->j, 0, -1, collect, r), JOURNAL_ECORRUPT);
  assert_int_equal(r->n, 2);
  free(r);
  /* A range that avoids the damage still replays. */
  expect_replay(f->j, "a", 4, INT64_MAX, -1, 4, 5);
  assert_int_equal(highest(f->j, "a"), 5);
}

static void test_crc_corruption_detected(void **state) {
  fixture *f = *state;
  if (!f->bc->exec_sql) {
    skip(); /* memory has no bytes outside the process to damage */
    return;
  }
  if (f->bc->sql->corrupt_a3)
    f->bc->exec_sql(f->path, f->bc->sql->corrupt_a3);
  else
    sqlite_damage_a3(f->path);
  check_damage_a3(f);
}

/* ---- group commit ---- */

enum { GC_THREADS = 4, GC_PER_THREAD = 250 };

typedef struct gc_thread {
  journal_t *j;
  waiter *wt;
  char id[16];
  twrite *writes;
} gc_thread;

static void *gc_submit(void *arg) {
  gc_thread *g = arg;
  for (int i = 0; i < GC_PER_THREAD; i++) {
    twrite_init(&g->writes[i], g->id, i + 1, 1, g->wt);
    if (journal_submit(g->j, &g->writes[i].w) != 0) abort();
  }
  return NULL;
}

static void test_group_commit_batches(void **state) {
  fixture *f = *state;
  waiter *wt = waiter_new();
  uint64_t batches0, writes0, batches1, writes1;
  journal_writer_stats(f->j, &batches0, &writes0);
  gc_thread g[GC_THREADS];
  pthread_t th[GC_THREADS];
  for (int t = 0; t < GC_THREADS; t++) {
    g[t] = (gc_thread){.j = f->j, .wt = wt, .writes = calloc(GC_PER_THREAD, sizeof(twrite))};
    assert_non_null(g[t].writes);
    snprintf(g[t].id, sizeof g[t].id, "g%d", t);
    assert_int_equal(pthread_create(&th[t], NULL, gc_submit, &g[t]), 0);
  }
  for (int t = 0; t < GC_THREADS; t++) pthread_join(th[t], NULL);
  wait_fired(wt, GC_THREADS * GC_PER_THREAD);
  journal_writer_stats(f->j, &batches1, &writes1);
  assert_int_equal(writes1 - writes0, GC_THREADS * GC_PER_THREAD);
  assert_true(batches1 - batches0 < GC_THREADS * GC_PER_THREAD);
  assert_true(batches1 - batches0 >= 1);
  for (int t = 0; t < GC_THREADS; t++) {
    for (int i = 0; i < GC_PER_THREAD; i++) assert_int_equal(g[t].writes[i].w.status, 0);
    expect_replay(f->j, g[t].id, 1, INT64_MAX, -1, 1, GC_PER_THREAD);
    assert_int_equal(highest(f->j, g[t].id), GC_PER_THREAD);
    free(g[t].writes);
  }
  waiter_free(wt);
}

/* A callback may submit the actor's next write at once (on the writer thread). */
typedef struct chain {
  journal_t *j;
  twrite t[3];
  int next;
  int submit_rc[3];
  waiter *wt;
} chain;

static void chain_done(journal_write *w, int status) {
  chain *c = w->data;
  (void)status;
  if (c->next < 3) {
    journal_write *nw = &c->t[c->next].w;
    c->submit_rc[c->next++] = journal_submit(c->j, nw);
  }
  pthread_mutex_lock(&c->wt->mu);
  c->wt->fired++;
  pthread_cond_broadcast(&c->wt->cv);
  pthread_mutex_unlock(&c->wt->mu);
}

static void test_callback_submits_next(void **state) {
  fixture *f = *state;
  chain *c = calloc(1, sizeof *c);
  assert_non_null(c);
  c->j = f->j;
  c->wt = waiter_new();
  for (int i = 0; i < 3; i++) {
    twrite_init(&c->t[i], "chain", i + 1, 1, NULL);
    c->t[i].w.done = chain_done;
    c->t[i].w.data = c;
  }
  c->next = 1;
  assert_int_equal(journal_submit(f->j, &c->t[0].w), 0);
  wait_fired(c->wt, 3);
  for (int i = 0; i < 3; i++) assert_int_equal(c->t[i].w.status, 0);
  assert_int_equal(c->submit_rc[1], 0);
  assert_int_equal(c->submit_rc[2], 0);
  expect_replay(f->j, "chain", 1, INT64_MAX, -1, 1, 3);
  waiter_free(c->wt);
  free(c);
}

/* ---- closing ---- */

static void test_close_drains_pending_writes(void **state) {
  fixture *f = *state;
  const char *uri = reopenable_uri(f);
  journal_t *j = open_ok(uri);
  waiter *wt = waiter_new();
  enum { N = 10 };
  twrite t[N];
  journal_pause_for_test(j, 1); /* keeps them queued until close */
  for (int i = 0; i < N; i++) {
    twrite_init(&t[i], "drain", i + 1, 1, wt);
    t[i].w.status = 12345;
    assert_int_equal(journal_submit(j, &t[i].w), 0);
  }
  assert_int_equal(wt->fired, 0);
  journal_close(j);
  assert_int_equal(wt->fired, N);
  for (int i = 0; i < N; i++) assert_int_equal(t[i].w.status, 0);

  j = open_ok(uri);
  expect_replay(j, "drain", 1, INT64_MAX, -1, 1, N);
  expect_replay(j, "a", 1, INT64_MAX, -1, 1, 5);
  journal_close(j);
  waiter_free(wt);
}

typedef struct late {
  journal_t *j;
  twrite first, second;
  int second_rc;
  int second_fired;
} late;

static void late_second_done(journal_write *w, int status) {
  late *l = w->data;
  (void)status;
  l->second_fired++;
}

static void late_first_done(journal_write *w, int status) {
  late *l = w->data;
  (void)status;
  l->second_rc = journal_submit(l->j, &l->second.w);
}

static void test_submit_after_close_begins(void **state) {
  fixture *f = *state;
  late *l = calloc(1, sizeof *l);
  assert_non_null(l);
  l->j = open_ok(reopenable_uri(f));
  twrite_init(&l->first, "late", 1, 1, NULL);
  l->first.w.done = late_first_done;
  l->first.w.data = l;
  twrite_init(&l->second, "late", 2, 1, NULL);
  l->second.w.done = late_second_done;
  l->second.w.data = l;
  l->second_rc = 12345;
  /* Paused, the first write is still queued when close begins; its callback
   * then submits into a closing journal. */
  journal_pause_for_test(l->j, 1);
  assert_int_equal(journal_submit(l->j, &l->first.w), 0);
  journal_close(l->j);
  assert_int_equal(l->first.w.status, 0);
  assert_int_equal(l->second_rc, JOURNAL_ECLOSED);
  assert_int_equal(l->second_fired, 0);
  free(l);
}

/* ---- listing and reopening ---- */

typedef struct listed {
  char ids[8][16];
  int64_t highest[8];
  int n;
} listed;

static void collect_id(const char *id, int64_t h, void *ud) {
  listed *l = ud;
  if (l->n < 8) {
    snprintf(l->ids[l->n], sizeof l->ids[l->n], "%s", id);
    l->highest[l->n] = h;
  }
  l->n++;
}

static void test_list_ids_sorted(void **state) {
  fixture *f = *state;
  assert_int_equal(write_sync(f->j, "c", 1, 2), 0);
  assert_int_equal(write_sync(f->j, "b", 1, 1), 0);
  assert_int_equal(write_sync(f->j, "B", 1, 3), 0);
  assert_int_equal(delete_sync(f->j, "b", INT64_MAX), 0);              /* still listed */
  assert_int_equal(write_sync(f->j, "zero", 0, 1), JOURNAL_EREJECTED); /* never listed */
  assert_int_equal(delete_sync(f->j, "ghost", 3), 0);                  /* never listed */
  listed l = {0};
  assert_int_equal(journal_list_ids(f->j, collect_id, &l), 0);
  assert_int_equal(l.n, 4);
  const char *ids[] = {"B", "a", "b", "c"};
  int64_t hs[] = {3, 5, 1, 2};
  for (int i = 0; i < 4; i++) {
    assert_string_equal(l.ids[i], ids[i]);
    assert_int_equal(l.highest[i], hs[i]);
  }
}

/* Paged listing: each page continues after the last id of the one before,
 * ids whose events were all deleted included, and the pages together are
 * exactly the whole listing. */
typedef struct id_pages {
  char last[32];
  int n, total;
  char all[400][32];
} id_pages;

static void page_id(const char *id, int64_t h, void *ud) {
  (void)h;
  id_pages *p = ud;
  snprintf(p->last, sizeof p->last, "%s", id);
  if (p->total < 400) snprintf(p->all[p->total], sizeof p->all[0], "%s", id);
  p->n++;
  p->total++;
}

static void test_list_ids_in_pages(void **state) {
  fixture *f = *state;
  assert_int_equal(write_sync(f->j, "c", 1, 2), 0);
  assert_int_equal(write_sync(f->j, "b", 1, 1), 0);
  assert_int_equal(write_sync(f->j, "B", 1, 3), 0);
  assert_int_equal(delete_sync(f->j, "b", INT64_MAX), 0);
  listed l = {0};
  assert_int_equal(journal_list_ids_after(f->j, "", 2, collect_id, &l), 0);
  assert_int_equal(l.n, 2);
  assert_string_equal(l.ids[0], "B");
  assert_string_equal(l.ids[1], "a");
  memset(&l, 0, sizeof l);
  assert_int_equal(journal_list_ids_after(f->j, "a", 2, collect_id, &l), 0);
  assert_int_equal(l.n, 2);
  assert_string_equal(l.ids[0], "b"); /* every event deleted: still listed */
  assert_int_equal(l.highest[0], 1);
  assert_string_equal(l.ids[1], "c");
  assert_int_equal(l.highest[1], 2);
  memset(&l, 0, sizeof l);
  assert_int_equal(journal_list_ids_after(f->j, "c", 2, collect_id, &l), 0);
  assert_int_equal(l.n, 0);
  assert_int_equal(journal_list_ids_after(f->j, "B", 0, collect_id, &l), 0);
  assert_int_equal(l.n, 0);
  assert_int_equal(journal_list_ids_after(f->j, NULL, -1, collect_id, &l), 0);
  assert_int_equal(l.n, 4);

  /* Many ids, pages of 7: together, the whole listing in order. */
  for (int i = 0; i < 300; i++) {
    char id[32];
    snprintf(id, sizeof id, "k%03d", (i * 37) % 300);
    assert_int_equal(write_sync(f->j, id, 1, 1 + i % 3), 0);
  }
  id_pages *p = calloc(1, sizeof *p);
  assert_non_null(p);
  int pages = 0;
  do {
    p->n = 0;
    char after[32];
    snprintf(after, sizeof after, "%s", p->last);
    assert_int_equal(journal_list_ids_after(f->j, after, 7, page_id, p), 0);
    assert_true(p->n <= 7);
    pages++;
  } while (p->n == 7);
  assert_int_equal(p->total, 304);
  assert_int_equal(pages, 304 / 7 + 1);
  listed whole = {0};
  assert_int_equal(journal_list_ids(f->j, collect_id, &whole), 0);
  assert_int_equal(whole.n, 304);
  for (int i = 0; i < 8; i++) assert_string_equal(p->all[i], whole.ids[i]);
  for (int i = 1; i < 304; i++) assert_true(strcmp(p->all[i - 1], p->all[i]) < 0);
  free(p);
}

static void test_reopen_keeps_events(void **state) {
  fixture *f = *state;
  const char *uri = reopenable_uri(f);
  journal_t *j = open_ok(uri);
  assert_int_equal(write_sync(j, "kept", 1, 3), 0);
  assert_int_equal(delete_sync(j, "kept", 1), 0);
  journal_close(j);

  j = open_ok(uri);
  expect_replay(j, "kept", 1, INT64_MAX, -1, 2, 3);
  assert_int_equal(highest(j, "kept"), 3);
  expect_replay(j, "a", 1, INT64_MAX, -1, 1, 5);
  assert_int_equal(write_sync(j, "kept", 4, 1), 0);
  assert_int_equal(write_sync(j, "kept", 3, 1), JOURNAL_ECONFLICT);
  journal_close(j);

  /* Two journals open on the same store at once see each other's writes: a
   * second writer where the backend allows one, a reader where it does not. */
  journal_t *j1 = open_ok(uri), *j2 = NULL;
  if (f->bc->single_writer) {
    assert_int_equal(journal_open(uri, NULL, &j2), JOURNAL_ELOCKED);
    j2 = open_read_only(uri);
  } else {
    j2 = open_ok(uri);
  }
  assert_int_equal(write_sync(j1, "both", 1, 1), 0);
  expect_replay(j2, "both", 1, INT64_MAX, -1, 1, 1);
  journal_close(j1);
  journal_close(j2);
}

/* ---- concurrent reads ---- */

typedef struct reader_ctx {
  journal_t *j;
  volatile int *stop;
  int failures;
  int rounds;
} reader_ctx;

static void *reader_main(void *arg) {
  reader_ctx *r = arg;
  replayed *seen = malloc(sizeof *seen);
  if (!seen) abort();
  while (!__atomic_load_n(r->stop, __ATOMIC_ACQUIRE)) {
    memset(seen, 0, sizeof *seen);
    journal_bounds b = {0};
    if (journal_bounds_of(r->j, "conc", &b) != 0) r->failures++;
    if (journal_replay(r->j, "conc", 1, INT64_MAX, -1, collect, seen) != 0) r->failures++;
    /* A replay sees a gap-free prefix of the stream, at least up to the highest
     * seq read before it. */
    if (seen->bad_payload || (int64_t)seen->n < b.highest) r->failures++;
    for (size_t i = 0; i < seen->n && i < 4096; i++)
      if (seen->seq[i] != (int64_t)i + 1) r->failures++;
    __atomic_add_fetch(&r->rounds, 1, __ATOMIC_RELEASE);
  }
  free(seen);
  return NULL;
}

static void test_concurrent_reads_during_writes(void **state) {
  fixture *f = *state;
  enum { READERS = 3, N = 400 };
  volatile int stop = 0;
  reader_ctx rc[READERS];
  pthread_t th[READERS];
  for (int i = 0; i < READERS; i++) {
    rc[i] = (reader_ctx){.j = f->j, .stop = &stop};
    assert_int_equal(pthread_create(&th[i], NULL, reader_main, &rc[i]), 0);
  }
  waiter *wt = waiter_new();
  twrite *t = calloc(N, sizeof *t);
  assert_non_null(t);
  for (int i = 0; i < N; i++) {
    twrite_init(&t[i], "conc", i + 1, 1, wt);
    assert_int_equal(journal_submit(f->j, &t[i].w), 0);
    if (i % 50 == 0) wait_fired(wt, i + 1); /* let readers interleave */
  }
  wait_fired(wt, N);
  /* Under a sanitizer the writes can all land before a reader thread got
   * going: let each finish a round (10 s at most) before stopping them. */
  for (int waited = 0; waited < 10000; waited++) {
    int all = 1;
    for (int i = 0; i < READERS; i++) all &= __atomic_load_n(&rc[i].rounds, __ATOMIC_ACQUIRE) > 0;
    if (all) break;
    usleep(1000);
  }
  __atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
  /* Every thread is joined before any assertion can leave this test. */
  for (int i = 0; i < READERS; i++) pthread_join(th[i], NULL);
  for (int i = 0; i < READERS; i++) {
    assert_int_equal(rc[i].failures, 0);
    assert_true(rc[i].rounds > 0);
  }
  for (int i = 0; i < N; i++) assert_int_equal(t[i].w.status, 0);
  expect_replay(f->j, "conc", 1, INT64_MAX, -1, 1, N);
  free(t);
  waiter_free(wt);
}

/* ---- URIs and errors ---- */

static void test_uris_and_errors(void **state) {
  fixture *f = *state;
  (void)f;
  journal_t *j = (journal_t *)&j; /* must stay untouched on error */
  journal_t *before = j;
  assert_int_equal(journal_open("postgres:x", NULL, &j), JOURNAL_EURI);
  assert_int_equal(journal_open("nonsense", NULL, &j), JOURNAL_EURI);
  assert_int_equal(journal_open("", NULL, &j), JOURNAL_EURI);
  assert_int_equal(journal_open("sqlite:", NULL, &j), JOURNAL_EURI);
  assert_int_equal(journal_open("sqlite:?mode=rw", NULL, &j), JOURNAL_EURI);
  assert_int_equal(journal_open("memorys:", NULL, &j), JOURNAL_EURI);
  assert_int_equal(journal_open("sqlite:/nonexistent-dir-lore/x.db", NULL, &j), JOURNAL_EIO);
  assert_ptr_equal(j, before);
  int codes[] = {JOURNAL_OK,      JOURNAL_EIO,      JOURNAL_EREJECTED, JOURNAL_ECORRUPT,
                 JOURNAL_ECLOSED, JOURNAL_EURI,     JOURNAL_ENOMEM,    JOURNAL_ECONFLICT,
                 JOURNAL_ENOTDB,  JOURNAL_ENOTLORE, JOURNAL_EREADONLY, JOURNAL_EISDIR,
                 JOURNAL_ELOCKED, JOURNAL_EFENCED,  JOURNAL_ENOTSUP,   JOURNAL_ENOENT,
                 JOURNAL_ESQL};
  for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
    assert_non_null(journal_strerror(codes[i]));
    assert_true(strlen(journal_strerror(codes[i])) > 0);
    for (size_t k = 0; k < i; k++)
      assert_string_not_equal(journal_strerror(codes[i]), journal_strerror(codes[k]));
  }
  assert_string_equal(journal_strerror(JOURNAL_ECLOSED), "journal is closed");
  assert_non_null(strstr(journal_strerror(-ENOENT), "no such file"));
  assert_non_null(journal_strerror(-424242)); /* unknown: a message, no leak */
  assert_string_equal(journal_scheme(f->j), f->bc->name);
}

/* URI parameters override the options; unknown ones and bad values are refused. */
static void test_uri_parameters(void **state) {
  fixture *f = *state;
  const char *base = reopenable_uri(f);
  char uri[800];
  journal_t *j = NULL;
  const char *bad[] = {"?bogus=1", "?mode=xx", "?mode", "?=ro", "?mode=ro&bogus=2"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    uri_with(uri, sizeof uri, base, bad[i]);
    assert_int_equal(journal_open(uri, NULL, &j), JOURNAL_EURI);
  }
  /* mode=ro wins over options asking for a writer, and the reverse. */
  uri_with(uri, sizeof uri, base, "mode=ro");
  j = open_ok(uri);
  waiter *wt = waiter_new();
  twrite t;
  twrite_init(&t, "a", 6, 1, wt);
  assert_int_equal(journal_submit(j, &t.w), JOURNAL_EREADONLY);
  expect_replay(j, "a", 1, INT64_MAX, -1, 1, 5);
  journal_close(j);
  uri_with(uri, sizeof uri, base, "mode=rw");
  journal_options ro = {.synchronous_full = 1, .read_only = 1};
  assert_int_equal(journal_open(uri, &ro, &j), 0);
  assert_int_equal(write_sync(j, "a", 6, 1), 0);
  journal_close(j);
  waiter_free(wt);

  const char *const *good = NULL, *const *own_bad = NULL;
  static const char *const sq_good[] = {"?synchronous=normal&busy_timeout=5000",
                                        "?synchronous=full&mode=rw", "?busy_timeout=1", "?", NULL};
  static const char *const sq_bad[] = {"?synchronous=off",          "?busy_timeout=abc",
                                       "?busy_timeout=0",           "?busy_timeout=-5",
                                       "?busy_timeout=99999999999", NULL};
  /* Lore's own (pool, schema) and libpq's (handed over as they are). */
  static const char *const pg_good[] = {"?pool=1", "?pool=2&mode=rw", "?connect_timeout=10",
                                        "?application_name=tck&pool=8", NULL};
  static const char *const pg_bad[] = {
      "?pool=0",          "?pool=x", "?pool=100000", "?schema=Bad-Name", "?synchronous=normal",
      "?connect_timeout", NULL};
  if (f->bc->sqlite) {
    good = sq_good;
    own_bad = sq_bad;
  } else if (strcmp(f->bc->name, "postgres") == 0) {
    good = pg_good;
    own_bad = pg_bad;
  }
  for (int i = 0; good && good[i]; i++) {
    uri_with(uri, sizeof uri, base, good[i]);
    j = open_ok(uri);
    assert_int_equal(write_sync(j, "a", 7 + (int64_t)i, 1), 0);
    journal_close(j);
  }
  for (int i = 0; own_bad && own_bad[i]; i++) {
    uri_with(uri, sizeof uri, base, own_bad[i]);
    assert_int_equal(journal_open(uri, NULL, &j), JOURNAL_EURI);
  }
  if (!good) {
    /* Another backend's parameters are unknown here. */
    uri_with(uri, sizeof uri, base, "synchronous=normal");
    assert_int_equal(journal_open(uri, NULL, &j), JOURNAL_EURI);
  }
}

/* ---- offsets ---- */

enum { OFF_THREADS = 4, OFF_PER_THREAD = 200 };

typedef struct offset_log {
  pthread_mutex_t mu;
  int64_t seen[OFF_THREADS * OFF_PER_THREAD + 16];
  int n;
  int out_of_order; /* an offset not above the previous callback's */
  waiter *wt;
} offset_log;

/* Callbacks fire on the writer thread in commit order. */
static void offset_done(journal_write *w, int status) {
  offset_log *ol = ((twrite *)w)->w.data;
  pthread_mutex_lock(&ol->mu);
  if (status == 0) {
    int64_t off = w->events[w->count - 1].offset;
    if (ol->n > 0 && off <= ol->seen[ol->n - 1]) ol->out_of_order++;
    if (w->events[0].offset + (int64_t)w->count - 1 > off) ol->out_of_order++;
    ol->seen[ol->n++] = off;
  }
  pthread_mutex_unlock(&ol->mu);
  pthread_mutex_lock(&ol->wt->mu);
  ol->wt->fired++;
  pthread_cond_broadcast(&ol->wt->cv);
  pthread_mutex_unlock(&ol->wt->mu);
}

typedef struct off_thread {
  journal_t *j;
  offset_log *ol;
  char id[16];
  twrite *writes;
} off_thread;

static void *off_submit(void *arg) {
  off_thread *o = arg;
  for (int i = 0; i < OFF_PER_THREAD; i++) {
    twrite_init(&o->writes[i], o->id, i + 1, 1, NULL);
    o->writes[i].w.done = offset_done;
    o->writes[i].w.data = o->ol;
    if (journal_submit(o->j, &o->writes[i].w) != 0) abort();
  }
  return NULL;
}

/* Offsets are unique, grow in commit order whatever the number of writers,
 * and a replay hands back the offset each event got when it was written. */
static void test_offsets_unique_in_commit_order(void **state) {
  fixture *f = *state;
  offset_log *ol = calloc(1, sizeof *ol);
  assert_non_null(ol);
  pthread_mutex_init(&ol->mu, NULL);
  ol->wt = waiter_new();
  int64_t before = max_offset(f->j);
  assert_true(before >= 5);
  off_thread o[OFF_THREADS];
  pthread_t th[OFF_THREADS];
  for (int t = 0; t < OFF_THREADS; t++) {
    o[t] = (off_thread){.j = f->j, .ol = ol, .writes = calloc(OFF_PER_THREAD, sizeof(twrite))};
    assert_non_null(o[t].writes);
    snprintf(o[t].id, sizeof o[t].id, "o%d", t);
    assert_int_equal(pthread_create(&th[t], NULL, off_submit, &o[t]), 0);
  }
  for (int t = 0; t < OFF_THREADS; t++) pthread_join(th[t], NULL);
  wait_fired(ol->wt, OFF_THREADS * OFF_PER_THREAD);
  assert_int_equal(ol->n, OFF_THREADS * OFF_PER_THREAD);
  assert_int_equal(ol->out_of_order, 0);
  assert_true(ol->seen[0] > before);
  assert_int_equal(max_offset(f->j), ol->seen[ol->n - 1]);
  for (int t = 0; t < OFF_THREADS; t++) {
    replayed *r = replayed_new();
    assert_int_equal(journal_replay(f->j, o[t].id, 1, INT64_MAX, -1, collect, r), 0);
    assert_int_equal(r->n, OFF_PER_THREAD);
    for (int i = 0; i < OFF_PER_THREAD; i++)
      assert_int_equal(r->offset[i], o[t].writes[i].ev[0].offset);
    free(r);
    free(o[t].writes);
  }
  pthread_mutex_destroy(&ol->mu);
  waiter_free(ol->wt);
  free(ol);
}

/* Deleting the newest events and reopening gives none of their offsets again. */
static void test_offsets_never_reused(void **state) {
  fixture *f = *state;
  int64_t off = 0;
  assert_int_equal(write_tagged(f->j, "newest", 1, 3, "", &off), 0);
  assert_int_equal(max_offset(f->j), off);
  assert_int_equal(delete_sync(f->j, "newest", 3), 0);
  assert_int_equal(max_offset(f->j), off); /* the highest ever given */
  int64_t next = 0;
  assert_int_equal(write_tagged(f->j, "after", 1, 1, "", &next), 0);
  assert_true(next > off);
  assert_int_equal(delete_sync(f->j, "after", 1), 0);

  journal_t *j = open_ok(reopenable_uri(f));
  assert_int_equal(max_offset(j), next);
  int64_t again = 0;
  assert_int_equal(write_tagged(j, "later", 1, 1, "", &again), 0);
  assert_true(again > next);
  journal_close(j);
}

/* Everything in offset order, from any point, with limits. */
static void test_replay_all_offsets(void **state) {
  fixture *f = *state;
  assert_int_equal(write_sync(f->j, "b", 1, 2), 0);
  assert_int_equal(write_sync(f->j, "a", 6, 1), 0);
  assert_int_equal(write_sync(f->j, "c", 1, 1), 0);
  assert_int_equal(delete_sync(f->j, "a", 2), 0);
  const char *want_id[] = {"a", "a", "a", "b", "b", "a", "c"};
  int64_t want_seq[] = {3, 4, 5, 1, 2, 6, 1};
  replayed *r = replayed_new();
  assert_int_equal(journal_replay_all(f->j, 0, -1, collect, r), 0);
  assert_int_equal(r->n, 7);
  assert_int_equal(r->bad_payload, 0);
  for (int i = 0; i < 7; i++) {
    assert_string_equal(r->id[i], want_id[i]);
    assert_int_equal(r->seq[i], want_seq[i]);
    if (i) assert_true(r->offset[i] > r->offset[i - 1]);
  }
  int64_t third = r->offset[2], last = r->offset[6];
  assert_int_equal(max_offset(f->j), last);
  memset(r, 0, sizeof *r);
  assert_int_equal(journal_replay_all(f->j, third, 2, collect, r), 0);
  assert_int_equal(r->n, 2);
  assert_string_equal(r->id[0], "b");
  assert_int_equal(r->seq[1], 2);
  memset(r, 0, sizeof *r);
  assert_int_equal(journal_replay_all(f->j, last, -1, collect, r), 0);
  assert_int_equal(r->n, 0);
  memset(r, 0, sizeof *r);
  r->stop_after = 3;
  assert_int_equal(journal_replay_all(f->j, 0, -1, collect, r), 0);
  assert_int_equal(r->n, 3);
  memset(r, 0, sizeof *r);
  assert_int_equal(journal_replay_all(f->j, 0, 0, collect, r), 0);
  assert_int_equal(r->n, 0);
  free(r);

  /* Longer than a page. */
  waiter *wt = waiter_new();
  enum { N = 2500 };
  twrite *t = calloc(N / 5, sizeof *t);
  assert_non_null(t);
  for (int i = 0; i < N / 5; i++) {
    twrite_init(&t[i], i % 2 ? "odd" : "even", 1 + 5 * (i / 2), 5, wt);
    assert_int_equal(journal_submit(f->j, &t[i].w), 0);
  }
  wait_fired(wt, N / 5);
  r = replayed_new();
  assert_int_equal(journal_replay_all(f->j, last, -1, collect, r), 0);
  assert_int_equal(r->n, N);
  for (int i = 1; i < N; i++) assert_true(r->offset[i] > r->offset[i - 1]);
  free(r);
  free(t);
  waiter_free(wt);
}

static void test_max_offset(void **state) {
  fixture *f = *state;
  char uri[600], path[512];
  f->bc->fresh(uri, sizeof uri, path, sizeof path);
  journal_t *j = open_ok(uri);
  assert_int_equal(max_offset(j), 0);
  int64_t off = 0;
  assert_int_equal(write_tagged(j, "m", 1, 3, "", &off), 0);
  assert_true(off >= 3);
  assert_int_equal(max_offset(j), off);
  assert_int_equal(write_sync(j, "m", 9, 1), JOURNAL_ECONFLICT);
  assert_int_equal(max_offset(j), off);
  journal_close(j);
  if (f->bc->cleanup) f->bc->cleanup(path);
}

/* ---- tags ---- */

static void test_tags(void **state) {
  fixture *f = *state;
  int64_t o1, o2, o3, o4, o5;
  assert_int_equal(write_tagged(f->j, "t1", 1, 1, "red", &o1), 0);
  assert_int_equal(write_tagged(f->j, "t2", 1, 1, "blue\nred", &o2), 0);
  assert_int_equal(write_tagged(f->j, "t1", 2, 1, "", &o3), 0);
  assert_int_equal(write_tagged(f->j, "t3", 1, 2, "blue", &o4), 0);
  assert_int_equal(write_tagged(f->j, "t1", 3, 1, "red\ngreen\nred", &o5), 0);

  replayed *r = replayed_new();
  assert_int_equal(journal_replay_tag(f->j, "red", 0, -1, collect, r), 0);
  assert_int_equal(r->n, 3);
  assert_int_equal(r->bad_payload, 0);
  assert_string_equal(r->id[0], "t1");
  assert_int_equal(r->offset[0], o1);
  assert_string_equal(r->id[1], "t2");
  assert_int_equal(r->offset[1], o2);
  assert_string_equal(r->id[2], "t1");
  assert_int_equal(r->seq[2], 3);
  assert_int_equal(r->offset[2], o5);

  memset(r, 0, sizeof *r);
  assert_int_equal(journal_replay_tag(f->j, "blue", 0, -1, collect, r), 0);
  assert_int_equal(r->n, 3);
  assert_string_equal(r->id[0], "t2");
  assert_string_equal(r->id[1], "t3");
  assert_int_equal(r->seq[2], 2);
  assert_int_equal(r->offset[2], o4);

  /* After an offset, with a limit, and no prefix matches. */
  memset(r, 0, sizeof *r);
  assert_int_equal(journal_replay_tag(f->j, "red", o1, 1, collect, r), 0);
  assert_int_equal(r->n, 1);
  assert_int_equal(r->offset[0], o2);
  memset(r, 0, sizeof *r);
  assert_int_equal(journal_replay_tag(f->j, "re", 0, -1, collect, r), 0);
  assert_int_equal(r->n, 0);
  assert_int_equal(journal_replay_tag(f->j, "green", 0, -1, collect, r), 0);
  assert_int_equal(r->n, 1);
  assert_int_equal(journal_replay_tag(f->j, "", 0, -1, collect, r), JOURNAL_EREJECTED);
  assert_int_equal(journal_replay_tag(f->j, "a\nb", 0, -1, collect, r), JOURNAL_EREJECTED);

  /* Tags come back with the event, and deleted events leave the tag's replay. */
  meta_seen m = {0};
  assert_int_equal(journal_replay(f->j, "t2", 1, 1, -1, keep_meta, &m), 0);
  assert_string_equal(m.tags, "blue\nred");
  assert_int_equal(delete_sync(f->j, "t1", 1), 0);
  memset(r, 0, sizeof *r);
  assert_int_equal(journal_replay_tag(f->j, "red", 0, -1, collect, r), 0);
  assert_int_equal(r->n, 2);
  assert_int_equal(r->offset[0], o2);
  assert_int_equal(r->offset[1], o5);

  /* And they survive a reopen. */
  journal_t *j = open_ok(reopenable_uri(f));
  memset(r, 0, sizeof *r);
  assert_int_equal(journal_replay_tag(j, "red", 0, -1, collect, r), 0);
  assert_int_equal(r->n, 2);
  memset(r, 0, sizeof *r);
  assert_int_equal(journal_replay_tag(j, "blue", o2, -1, collect, r), 0);
  assert_int_equal(r->n, 2);
  journal_close(j);
  free(r);
  (void)o3;
}

/* ---- stats ---- */

static void test_stats(void **state) {
  fixture *f = *state;
  journal_stats_t st;
  assert_int_equal(journal_stats_of(f->j, &st), 0);
  assert_int_equal(st.ids, 1);
  assert_int_equal(st.events, 5);
  assert_int_equal(st.oldest_ms, 1700000000001);
  assert_int_equal(st.newest_ms, 1700000000005);
  assert_int_equal(st.max_offset, max_offset(f->j));
  assert_true(st.bytes > 0);
  int64_t bytes = st.bytes;

  assert_int_equal(write_sync(f->j, "b", 1, 8), 0);
  assert_int_equal(write_sync(f->j, "c", 1, 1), 0);
  assert_int_equal(delete_sync(f->j, "c", 1), 0); /* ids counts it still */
  assert_int_equal(delete_sync(f->j, "a", 2), 0);
  assert_int_equal(journal_stats_of(f->j, &st), 0);
  assert_int_equal(st.ids, 3);
  assert_int_equal(st.events, 3 + 8);
  assert_int_equal(st.oldest_ms, 1700000000001); /* b#1 */
  assert_int_equal(st.newest_ms, 1700000000008);
  assert_int_equal(st.max_offset, max_offset(f->j));
  assert_true(st.bytes >= bytes || !f->bc->is_file);

  char uri[600], path[512];
  f->bc->fresh(uri, sizeof uri, path, sizeof path);
  journal_t *j = open_ok(uri);
  assert_int_equal(journal_stats_of(j, &st), 0);
  assert_int_equal(st.ids, 0);
  assert_int_equal(st.events, 0);
  assert_int_equal(st.oldest_ms, 0);
  assert_int_equal(st.newest_ms, 0);
  assert_int_equal(st.max_offset, 0);
  journal_close(j);
  if (f->bc->cleanup) f->bc->cleanup(path);
}

/* ---- live readers ---- */

typedef struct probe {
  journal_t *j;
  journal_sub *sub; /* atomic */
  int calls;        /* atomic */
  int64_t max;      /* atomic */
  int gone;         /* atomic: unsubscribe returned */
  int late;         /* atomic: calls after that */
  int self_unsubscribe;
} probe;

static void probe_fn(void *ud, int64_t max_offset) {
  probe *p = ud;
  if (__atomic_load_n(&p->gone, __ATOMIC_ACQUIRE))
    __atomic_add_fetch(&p->late, 1, __ATOMIC_RELAXED);
  __atomic_add_fetch(&p->calls, 1, __ATOMIC_RELAXED);
  int64_t m = __atomic_load_n(&p->max, __ATOMIC_RELAXED);
  if (max_offset > m) __atomic_store_n(&p->max, max_offset, __ATOMIC_RELAXED);
  journal_sub *sub = __atomic_load_n(&p->sub, __ATOMIC_ACQUIRE);
  if (p->self_unsubscribe && sub) {
    __atomic_store_n(&p->sub, NULL, __ATOMIC_RELEASE);
    journal_unsubscribe(p->j, sub);
    __atomic_store_n(&p->gone, 1, __ATOMIC_RELEASE);
  }
}

typedef struct churn {
  journal_t *j;
  probe probes[200];
  volatile int *stop;
  int rounds;
} churn;

/* Subscribes and unsubscribes over and over while writes commit. */
static void *churn_main(void *arg) {
  churn *c = arg;
  for (int i = 0; i < 200 && !__atomic_load_n(c->stop, __ATOMIC_ACQUIRE); i++) {
    probe *p = &c->probes[i];
    journal_sub *sub = journal_subscribe(c->j, probe_fn, p);
    if (!sub) abort();
    usleep(200);
    journal_unsubscribe(c->j, sub);
    __atomic_store_n(&p->gone, 1, __ATOMIC_RELEASE);
    __atomic_add_fetch(&c->rounds, 1, __ATOMIC_RELEASE);
  }
  return NULL;
}

static void test_subscribers(void **state) {
  fixture *f = *state;
  probe *p = calloc(3, sizeof *p);
  assert_non_null(p);
  journal_sub *s0 = journal_subscribe(f->j, probe_fn, &p[0]);
  assert_non_null(s0);
  p[2].j = f->j;
  p[2].self_unsubscribe = 1;
  __atomic_store_n(&p[2].sub, journal_subscribe(f->j, probe_fn, &p[2]), __ATOMIC_RELEASE);
  assert_non_null(p[2].sub);
  int64_t off = 0;
  assert_int_equal(write_tagged(f->j, "a", 6, 2, "", &off), 0);
  /* Called on the writer thread after the commit, before the write's own
   * callback: done by the time the write is known to be stored. */
  assert_int_equal(__atomic_load_n(&p[0].max, __ATOMIC_ACQUIRE), off);
  assert_int_equal(__atomic_load_n(&p[0].calls, __ATOMIC_ACQUIRE), 1);

  /* Unsubscribed: never called again (p[2] left from inside its own call). */
  journal_unsubscribe(f->j, s0);
  p[0].gone = 1;
  int calls2 = __atomic_load_n(&p[2].calls, __ATOMIC_ACQUIRE);
  assert_int_equal(calls2, 1);
  journal_sub *s1 = journal_subscribe(f->j, probe_fn, &p[1]);
  assert_int_equal(write_sync(f->j, "a", 8, 1), 0);
  assert_int_equal(delete_sync(f->j, "a", 1), 0);                   /* stores no event */
  assert_int_equal(write_sync(f->j, "a", 3, 1), JOURNAL_ECONFLICT); /* neither */
  assert_int_equal(write_sync(f->j, "a", 9, 1), 0);
  assert_int_equal(__atomic_load_n(&p[1].calls, __ATOMIC_ACQUIRE), 2);
  assert_int_equal(p[0].late, 0);
  assert_int_equal(p[2].late, 0);
  assert_int_equal(__atomic_load_n(&p[2].calls, __ATOMIC_ACQUIRE), 1);
  journal_unsubscribe(f->j, s1);

  /* Unsubscribing while notifications run: after it returns, never again. */
  churn *c = calloc(1, sizeof *c);
  assert_non_null(c);
  volatile int stop = 0;
  c->j = f->j;
  c->stop = &stop;
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, churn_main, c), 0);
  waiter *wt = waiter_new();
  /* Writes go on until the other thread has come and gone 50 times (or
   * 5000 writes, if it is starved). */
  enum { N = 5000 };
  twrite *t = calloc(N, sizeof *t);
  assert_non_null(t);
  int n = 0;
  while (n < N && (n < 300 || __atomic_load_n(&c->rounds, __ATOMIC_ACQUIRE) < 50)) {
    twrite_init(&t[n], "churn", n + 1, 1, wt);
    assert_int_equal(journal_submit(f->j, &t[n].w), 0);
    if (++n % 10 == 0) wait_fired(wt, n);
  }
  wait_fired(wt, n);
  __atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
  pthread_join(th, NULL);
  int late = 0, calls = 0;
  for (int i = 0; i < 200; i++) {
    late += c->probes[i].late;
    calls += c->probes[i].calls;
  }
  assert_int_equal(late, 0);
  assert_true(c->rounds > 0);
  (void)calls;
  free(t);
  free(c);
  waiter_free(wt);
  free(p);
}

/* ---- projection sessions ---- */

typedef struct rows_seen {
  int n;
  int ncols;
  char names[8][16];
  journal_value v[8][8];
  char text[8][8][32];
} rows_seen;

static int keep_row(void *ud, int n, const char *const *names, const journal_value *values) {
  rows_seen *r = ud;
  if (r->n < 8) {
    r->ncols = n;
    for (int c = 0; c < n && c < 8; c++) {
      snprintf(r->names[c], sizeof r->names[c], "%s", names[c]);
      r->v[r->n][c] = values[c];
      if (values[c].type == JV_TEXT || values[c].type == JV_BLOB) {
        size_t len = values[c].len < 31 ? values[c].len : 31;
        memcpy(r->text[r->n][c], values[c].s, len);
        r->text[r->n][c][len] = '\0';
      }
    }
  }
  r->n++;
  return 0;
}

static int64_t count_rows(journal_session *s, const char *sql) {
  rows_seen r = {0};
  assert_int_equal(journal_session_exec(s, sql, NULL, 0, keep_row, &r), 0);
  assert_int_equal(r.n, 1);
  assert_int_equal(r.v[0][0].type, JV_INT);
  return r.v[0][0].i;
}

/* Memory: no SQL, but offsets (so a projection works on "memory:"). */
static void session_offsets_only(fixture *f) {
  journal_session *s = NULL;
  assert_int_equal(journal_session_open(f->j, &s), 0);
  assert_int_equal(journal_session_exec(s, "SELECT 1", NULL, 0, keep_row, NULL), JOURNAL_ENOTSUP);
  int64_t off = -1;
  assert_int_equal(journal_session_get_offset(s, "p", &off), 0);
  assert_int_equal(off, 0);
  assert_int_equal(journal_session_begin(s), 0);
  assert_int_equal(journal_session_set_offset(s, "p", 42), 0);
  assert_int_equal(journal_session_get_offset(s, "p", &off), 0);
  assert_int_equal(off, 42);
  assert_int_equal(journal_session_commit(s), 0);
  assert_int_equal(journal_session_begin(s), 0);
  assert_int_equal(journal_session_set_offset(s, "p", 99), 0);
  assert_int_equal(journal_session_rollback(s), 0);
  assert_int_equal(journal_session_get_offset(s, "p", &off), 0);
  assert_int_equal(off, 42);
  journal_session_close(s);
  journal_t *j = open_ok(reopenable_uri(f));
  assert_int_equal(journal_session_open(j, &s), 0);
  assert_int_equal(journal_session_get_offset(s, "p", &off), 0);
  assert_int_equal(off, 42);
  journal_session_close(s);
  journal_close(j);
}

static void test_sessions(void **state) {
  fixture *f = *state;
  if (!f->bc->has_sql) {
    session_offsets_only(f);
    return;
  }
  journal_session *s = NULL;
  assert_int_equal(journal_session_open(f->j, &s), 0);
  const sql_dialect *d = f->bc->sql;
  assert_int_equal(journal_session_exec(s, d->create_proj, NULL, 0, NULL, NULL), 0);
  static const unsigned char blob[] = {0, 1, 2, 0xff};
  journal_value params[5] = {
      {.type = JV_TEXT, .s = "alpha-and-more", .len = 5},
      {.type = JV_INT, .i = -7},
      {.type = JV_FLOAT, .f = 2.5},
      {.type = JV_BLOB, .s = (const char *)blob, .len = sizeof blob},
      {.type = JV_NULL},
  };
  const char *insert = d->insert_proj;
  assert_int_equal(journal_session_begin(s), 0);
  assert_int_equal(journal_session_exec(s, insert, params, 5, NULL, NULL), 0);
  assert_int_equal(journal_session_set_offset(s, "proj", 42), 0);
  assert_int_equal(journal_session_commit(s), 0);

  rows_seen r = {0};
  journal_value key = {.type = JV_TEXT, .s = "alpha", .len = 5};
  int rc = journal_session_exec(s, d->select_proj, &key, 1, keep_row, &r);
  if (rc) fprintf(stderr, "select: %s\n", journal_session_errmsg(s));
  assert_int_equal(rc, 0);
  assert_int_equal(r.n, 1);
  assert_int_equal(r.ncols, 5);
  const char *names[] = {"k", "n", "f", "b", "zed"};
  for (int c = 0; c < 5; c++) assert_string_equal(r.names[c], names[c]);
  assert_int_equal(r.v[0][0].type, JV_TEXT);
  assert_int_equal(r.v[0][0].len, 5);
  assert_string_equal(r.text[0][0], "alpha");
  assert_int_equal(r.v[0][1].type, JV_INT);
  assert_int_equal(r.v[0][1].i, -7);
  assert_int_equal(r.v[0][2].type, JV_FLOAT);
  assert_true(r.v[0][2].f == 2.5);
  assert_int_equal(r.v[0][3].type, JV_BLOB);
  assert_int_equal(r.v[0][3].len, sizeof blob);
  assert_memory_equal(r.text[0][3], blob, sizeof blob);
  assert_int_equal(r.v[0][4].type, JV_NULL);
  int64_t off = -1;
  assert_int_equal(journal_session_get_offset(s, "proj", &off), 0);
  assert_int_equal(off, 42);
  assert_int_equal(journal_session_get_offset(s, "other", &off), 0);
  assert_int_equal(off, 0);

  /* Rollback discards both the rows and the offset. */
  params[0] = (journal_value){.type = JV_TEXT, .s = "beta", .len = 4};
  assert_int_equal(journal_session_begin(s), 0);
  assert_int_equal(journal_session_exec(s, insert, params, 5, NULL, NULL), 0);
  assert_int_equal(journal_session_set_offset(s, "proj", 99), 0);
  assert_int_equal(count_rows(s, "SELECT count(*) FROM proj"), 2);
  assert_int_equal(journal_session_rollback(s), 0);
  assert_int_equal(count_rows(s, "SELECT count(*) FROM proj"), 1);
  assert_int_equal(journal_session_get_offset(s, "proj", &off), 0);
  assert_int_equal(off, 42);

  /* The projection's own SQL errors: ESQL with SQLite's message. */
  assert_int_equal(journal_session_exec(s, "SELEC nonsense", NULL, 0, NULL, NULL), JOURNAL_ESQL);
  assert_non_null(strstr(journal_session_errmsg(s), "syntax error"));
  params[0] = (journal_value){.type = JV_TEXT, .s = "alpha", .len = 5};
  assert_int_equal(journal_session_exec(s, insert, params, 5, NULL, NULL), JOURNAL_ESQL);
  assert_non_null(strstr(journal_session_errmsg(s), d->unique_msg));
  assert_int_equal(journal_session_exec(s, d->one_param, params, 2, NULL, NULL), JOURNAL_ESQL);
  assert_int_equal(journal_session_exec(s, d->script_with_param, params, 1, NULL, NULL),
                   JOURNAL_ESQL);
  assert_int_equal(journal_session_exec(s, "SELECT * FROM no_such_table", NULL, 0, NULL, NULL),
                   JOURNAL_ESQL);
  assert_non_null(strstr(journal_session_errmsg(s), "no_such_table"));
  /* Several statements without parameters: run in order. */
  memset(&r, 0, sizeof r);
  assert_int_equal(journal_session_exec(s, d->script, NULL, 0, keep_row, &r), 0);
  assert_int_equal(r.n, 1);
  assert_int_equal(r.v[0][0].i, 3);
  assert_string_equal(journal_session_errmsg(s), "");
  /* The journal's own tables are readable from a session. */
  assert_int_equal(count_rows(s, d->count_a), 5);

  /* The session and the writer take turns at the write lock. */
  waiter *wt = waiter_new();
  enum { N = 60 };
  twrite *t = calloc(N, sizeof *t);
  assert_non_null(t);
  for (int i = 0; i < N; i++) {
    twrite_init(&t[i], "busy", i + 1, 1, wt);
    assert_int_equal(journal_submit(f->j, &t[i].w), 0);
    assert_int_equal(journal_session_begin(s), 0);
    journal_value v = {.type = JV_INT, .i = i};
    assert_int_equal(journal_session_exec(s, d->insert_t2, &v, 1, NULL, NULL), 0);
    assert_int_equal(journal_session_set_offset(s, "busy", i), 0);
    assert_int_equal(journal_session_commit(s), 0);
  }
  wait_fired(wt, N);
  for (int i = 0; i < N; i++) assert_int_equal(t[i].w.status, 0);
  free(t);
  waiter_free(wt);
  journal_session_close(s);

  /* A commit survives a reopen. */
  journal_t *j = open_ok(reopenable_uri(f));
  assert_int_equal(journal_session_open(j, &s), 0);
  assert_int_equal(journal_session_get_offset(s, "proj", &off), 0);
  assert_int_equal(off, 42);
  assert_int_equal(journal_session_get_offset(s, "busy", &off), 0);
  assert_int_equal(off, N - 1);
  assert_int_equal(count_rows(s, "SELECT count(*) FROM proj"), 1);
  journal_session_close(s);
  journal_close(j);
}

/* ---- read-only opens ---- */

static int file_bytes(const char *path, unsigned char *buf, size_t cap, size_t *len) {
  FILE *fp = fopen(path, "rb");
  if (!fp) return -1;
  *len = fread(buf, 1, cap, fp);
  fclose(fp);
  return 0;
}

static void test_read_only_open(void **state) {
  fixture *f = *state;
  journal_options ro = {.synchronous_full = 1, .read_only = 1};
  journal_t *j = NULL;
  char uri[600], path[512];

  /* Nothing there: ENOENT, and nothing is created. */
  f->bc->fresh(uri, sizeof uri, path, sizeof path);
  assert_int_equal(journal_open(uri, &ro, &j), JOURNAL_ENOENT);
  if (f->bc->is_file) {
    struct stat st;
    assert_int_equal(stat(path, &st), -1);
  }

  /* Reads what the writer writes meanwhile; refuses writes and sessions. */
  journal_t *r = open_read_only(f->uri);
  expect_replay(r, "a", 1, INT64_MAX, -1, 1, 5);
  assert_int_equal(write_sync(f->j, "a", 6, 2), 0);
  expect_replay(r, "a", 1, INT64_MAX, -1, 1, 7);
  assert_int_equal(highest(r, "a"), 7);
  assert_int_equal(max_offset(r), max_offset(f->j));
  twrite t;
  twrite_init(&t, "a", 8, 1, NULL);
  assert_int_equal(journal_submit(r, &t.w), JOURNAL_EREADONLY);
  journal_session *s = NULL;
  assert_int_equal(journal_session_open(r, &s), JOURNAL_EREADONLY);
  journal_close(r);

  if (!f->bc->is_file) return;
  /* A database without Lore's tables: ENOTLORE, and not one byte changes. */
  sqlite3 *db;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  assert_int_equal(
      sqlite3_exec(db, "CREATE TABLE things(x); INSERT INTO things VALUES (1);", NULL, NULL, NULL),
      SQLITE_OK);
  sqlite3_close(db);
  static unsigned char before[1 << 16], after[1 << 16];
  size_t nb = 0, na = 0;
  assert_int_equal(file_bytes(path, before, sizeof before, &nb), 0);
  assert_true(nb > 0);
  assert_int_equal(journal_open(uri, &ro, &j), JOURNAL_ENOTLORE);
  char ro_uri[700];
  snprintf(ro_uri, sizeof ro_uri, "%s?mode=ro", uri);
  assert_int_equal(journal_open(ro_uri, NULL, &j), JOURNAL_ENOTLORE);
  assert_int_equal(file_bytes(path, after, sizeof after, &na), 0);
  assert_int_equal(na, nb);
  assert_memory_equal(before, after, nb);
  char lock[600];
  snprintf(lock, sizeof lock, "%s-lock", path);
  assert_int_equal(access(lock, F_OK), -1); /* read-only opens take no lock */
  f->bc->cleanup(path);
}

/* ---- opening files: directories, foreign files, permissions, locks ---- */

static void test_open_directory(void **state) {
  fixture *f = *state;
  if (!f->bc->is_file) {
    skip();
    return;
  }
  char uri[600];
  snprintf(uri, sizeof uri, "sqlite:%s", tmp_dir());
  journal_t *j = NULL;
  assert_int_equal(journal_open(uri, NULL, &j), JOURNAL_EISDIR);
  snprintf(uri, sizeof uri, "sqlite:%s?mode=ro", tmp_dir());
  assert_int_equal(journal_open(uri, NULL, &j), JOURNAL_EISDIR);
}

static void test_open_not_a_database(void **state) {
  fixture *f = *state;
  if (!f->bc->is_file) {
    skip();
    return;
  }
  char uri[600], path[512];
  f->bc->fresh(uri, sizeof uri, path, sizeof path);
  const char text[] = "this is a text file, not a database, and it is long enough to matter\n";
  FILE *fp = fopen(path, "wb");
  assert_non_null(fp);
  for (int i = 0; i < 100; i++) fputs(text, fp);
  fclose(fp);
  static unsigned char before[1 << 14], after[1 << 14];
  size_t nb = 0, na = 0;
  assert_int_equal(file_bytes(path, before, sizeof before, &nb), 0);
  journal_t *j = NULL;
  assert_int_equal(journal_open(uri, NULL, &j), JOURNAL_ENOTDB);
  journal_options ro = {.synchronous_full = 1, .read_only = 1};
  assert_int_equal(journal_open(uri, &ro, &j), JOURNAL_ENOTDB);
  assert_int_equal(file_bytes(path, after, sizeof after, &na), 0);
  assert_int_equal(na, nb);
  assert_memory_equal(before, after, nb);
  char lock[600];
  snprintf(lock, sizeof lock, "%s-lock", path);
  assert_int_equal(access(lock, F_OK), -1);
  assert_string_not_equal(journal_strerror(JOURNAL_ENOTDB), journal_strerror(JOURNAL_ECORRUPT));
  f->bc->cleanup(path);
}

/* Runs fn in a child process; returns its exit status (or 100 + signal). */
static int in_child(int (*fn)(void *arg), void *arg) {
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) _exit(fn(arg));
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 100 + WTERMSIG(status);
}

typedef struct ro_paths {
  char ro_file_uri[600], ro_dir_uri[600];
  char ro_file[512], ro_dir_file[512];
} ro_paths;

/* As root, permissions stop nobody: the child gives up root first. */
static int child_open_read_only_files(void *arg) {
  ro_paths *p = arg;
  if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0)) return 2;
  /* Readable but not writable, or the check below means nothing. */
  if (access(p->ro_file, R_OK) != 0 || access(p->ro_file, W_OK) == 0) return 3;
  if (access(p->ro_dir_file, R_OK) != 0) return 3;
  journal_t *j = NULL;
  if (journal_open(p->ro_file_uri, NULL, &j) != JOURNAL_EREADONLY) return 4;
  if (journal_open(p->ro_dir_uri, NULL, &j) != JOURNAL_EREADONLY) return 5;
  /* Reading still works where the directory allows the WAL's index. */
  char uri[700];
  snprintf(uri, sizeof uri, "%s?mode=ro", p->ro_file_uri);
  if (journal_open(uri, NULL, &j) != 0) return 6;
  journal_bounds b = {0};
  int rc = journal_bounds_of(j, "a", &b);
  journal_close(j);
  return rc == 0 && b.highest == 5 ? 0 : 7;
}

static void make_journal_copy(fixture *f, const char *dir, char *path, size_t size, char *uri,
                              size_t usize) {
  snprintf(path, size, "%s/j.db", dir);
  snprintf(uri, usize, "sqlite:%s", path);
  journal_t *j = open_ok(uri);
  for (int64_t seq = 1; seq <= 5; seq++) assert_int_equal(write_sync(j, "a", seq, 1), 0);
  journal_close(j);
  (void)f;
}

static void test_open_read_only_file(void **state) {
  fixture *f = *state;
  if (!f->bc->is_file) {
    skip();
    return;
  }
  ro_paths *p = calloc(1, sizeof *p);
  assert_non_null(p);
  char d1[400], d2[400];
  snprintf(d1, sizeof d1, "%s/ro-file-%d-%d", tmp_dir(), (int)getpid(), ++file_counter);
  snprintf(d2, sizeof d2, "%s/ro-dir-%d-%d", tmp_dir(), (int)getpid(), ++file_counter);
  assert_int_equal(mkdir(d1, 0777), 0);
  assert_int_equal(mkdir(d2, 0777), 0);
  make_journal_copy(f, d1, p->ro_file, sizeof p->ro_file, p->ro_file_uri, sizeof p->ro_file_uri);
  make_journal_copy(f, d2, p->ro_dir_file, sizeof p->ro_dir_file, p->ro_dir_uri,
                    sizeof p->ro_dir_uri);
  /* A read-only file in a writable directory; a writable file in a read-only one. */
  assert_int_equal(chmod(d1, 0777), 0); /* mkdir's mode went through the umask */
  assert_int_equal(chmod(p->ro_file, 0444), 0);
  assert_int_equal(chmod(p->ro_dir_file, 0666), 0);
  char lock[600];
  snprintf(lock, sizeof lock, "%s-lock", p->ro_dir_file);
  unlink(lock);
  assert_int_equal(chmod(d2, 0555), 0);
  int rc = in_child(child_open_read_only_files, p);
  chmod(d2, 0755);
  chmod(p->ro_file, 0644);
  if (rc != 0) fprintf(stderr, "read-only child failed at step %d\n", rc);
  assert_int_equal(rc, 0);
  remove_db(p->ro_file);
  remove_db(p->ro_dir_file);
  assert_int_equal(rmdir(d1), 0);
  assert_int_equal(rmdir(d2), 0);
  free(p);
}

static int child_open_expects_locked(void *arg) {
  journal_t *j = NULL;
  int rc = journal_open(arg, NULL, &j);
  if (rc == 0) journal_close(j);
  return rc == JOURNAL_ELOCKED ? 0 : 1;
}

/* One writer per journal: a second open for writing, from this process or
 * another, is ELOCKED until the first closes or its process dies. */
static void test_single_writer_lock(void **state) {
  fixture *f = *state;
  if (!f->bc->single_writer) {
    skip();
    return;
  }
  journal_t *j = NULL;
  assert_int_equal(journal_open(f->uri, NULL, &j), JOURNAL_ELOCKED);
  assert_int_equal(in_child(child_open_expects_locked, f->uri), 0);
  /* Readers are welcome. */
  journal_t *r = open_read_only(f->uri);
  expect_replay(r, "a", 1, INT64_MAX, -1, 1, 5);
  journal_close(r);
  assert_int_equal(write_sync(f->j, "a", 6, 1), 0); /* the first writer is undisturbed */
  reopenable_uri(f);
  j = open_ok(f->uri);
  journal_close(j);

  /* A writer in another process, killed: its lock goes with it. */
  int ready[2];
  assert_int_equal(pipe(ready), 0);
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    journal_t *cj = NULL;
    char ok =
        journal_open(f->uri, NULL, &cj) == 0 && write_sync(cj, "child", 1, 3) == 0 ? 'y' : 'n';
    if (write(ready[1], &ok, 1) != 1) _exit(1);
    pause();
    _exit(0);
  }
  char ok = 0;
  assert_int_equal(read(ready[0], &ok, 1), 1);
  close(ready[0]);
  close(ready[1]);
  int locked = journal_open(f->uri, NULL, &j);
  /* A reader in this process sees what the writer in the other one wrote. */
  replayed *seen = replayed_new();
  journal_options ro = {.synchronous_full = 1, .read_only = 1};
  int ro_rc = journal_open(f->uri, &ro, &r);
  if (ro_rc == 0) {
    ro_rc = journal_replay(r, "child", 1, INT64_MAX, -1, collect, seen);
    journal_close(r);
  }
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  assert_int_equal(ok, 'y');
  assert_int_equal(locked, JOURNAL_ELOCKED);
  assert_int_equal(ro_rc, 0);
  assert_int_equal(seen->n, 3);
  assert_int_equal(seen->bad_payload, 0);
  free(seen);
  f->j = open_ok(f->uri);
  expect_replay(f->j, "a", 1, INT64_MAX, -1, 1, 6);
  expect_replay(f->j, "child", 1, INT64_MAX, -1, 1, 3);
}

/* ---- migration from the previous schema (sqlite) ---- */

/* The previous Lore's schema, word for word. */
static const char OLD_SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS events("
    " \"offset\" INTEGER PRIMARY KEY AUTOINCREMENT,"
    " id TEXT NOT NULL, seq INTEGER NOT NULL, manifest TEXT NOT NULL, version INTEGER NOT NULL,"
    " tags TEXT NOT NULL, writer TEXT NOT NULL, ts INTEGER NOT NULL, payload BLOB NOT NULL,"
    " crc INTEGER NOT NULL, UNIQUE(id, seq));"
    "CREATE TABLE IF NOT EXISTS journal_meta("
    " id TEXT PRIMARY KEY, highest_seq INTEGER NOT NULL) WITHOUT ROWID;";

/* Writes events as the previous Lore did: the event row and its meta row. */
static void old_write(sqlite3 *db, const char *id, int64_t first, int64_t last, const char *tags) {
  sqlite3_stmt *ins, *meta;
  assert_int_equal(sqlite3_prepare_v2(db,
                                      "INSERT INTO events(id, seq, manifest, version, tags,"
                                      " writer, ts, payload, crc)"
                                      " VALUES (?1, ?2, 'evt', 1, ?3, ?4, ?5, ?6, ?7)",
                                      -1, &ins, NULL),
                   SQLITE_OK);
  assert_int_equal(sqlite3_prepare_v2(db,
                                      "INSERT INTO journal_meta(id, highest_seq) VALUES (?1, ?2)"
                                      " ON CONFLICT(id) DO UPDATE SET highest_seq = ?2",
                                      -1, &meta, NULL),
                   SQLITE_OK);
  for (int64_t seq = first; seq <= last; seq++) {
    char payload[48];
    expected_payload(payload, sizeof payload, id, seq);
    sqlite3_bind_text(ins, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(ins, 2, seq);
    sqlite3_bind_text(ins, 3, tags, -1, SQLITE_STATIC);
    sqlite3_bind_text(ins, 4, "123e4567-e89b-42d3-a456-426614174000", -1, SQLITE_STATIC);
    sqlite3_bind_int64(ins, 5, 1600000000000 + seq);
    sqlite3_bind_blob(ins, 6, payload, (int)strlen(payload), SQLITE_TRANSIENT);
    sqlite3_bind_int64(ins, 7, crc32c(0, payload, strlen(payload)));
    assert_int_equal(sqlite3_step(ins), SQLITE_DONE);
    sqlite3_reset(ins);
  }
  sqlite3_bind_text(meta, 1, id, -1, SQLITE_STATIC);
  sqlite3_bind_int64(meta, 2, last);
  assert_int_equal(sqlite3_step(meta), SQLITE_DONE);
  sqlite3_finalize(ins);
  sqlite3_finalize(meta);
}

static int64_t query_int(const char *path, const char *sql) {
  sqlite3 *db;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  sqlite3_stmt *st;
  assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  int64_t v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return v;
}

static void test_migrates_previous_schema(void **state) {
  fixture *f = *state;
  if (!f->bc->sqlite) {
    skip();
    return;
  }
  char uri[600], path[512];
  f->bc->fresh(uri, sizeof uri, path, sizeof path);
  sqlite3 *db;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db, OLD_SCHEMA, NULL, NULL, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db,
                                "CREATE TABLE snapshots(id TEXT NOT NULL, seq INTEGER NOT NULL,"
                                " ts INTEGER NOT NULL, data BLOB NOT NULL, crc INTEGER NOT NULL,"
                                " PRIMARY KEY(id, seq));"
                                "INSERT INTO snapshots VALUES ('whole', 2, 1, x'01', 7);",
                                NULL, NULL, NULL),
                   SQLITE_OK);
  old_write(db, "whole", 1, 3, "");
  old_write(db, "trimmed", 1, 5, "");
  old_write(db, "gone", 1, 2, "");
  old_write(db, "tagged", 1, 1, "t1\nt2");
  old_write(db, "tagged", 2, 2, "t2");
  old_write(db, "tail", 1, 2, ""); /* the newest rows, deleted below */
  /* The old journal deleted from the start of a stream. */
  assert_int_equal(sqlite3_exec(db,
                                "DELETE FROM events WHERE id = 'trimmed' AND seq <= 2;"
                                "DELETE FROM events WHERE id IN ('gone', 'tail');",
                                NULL, NULL, NULL),
                   SQLITE_OK);
  sqlite3_close(db);
  int64_t old_whole2 = query_int(path, "SELECT \"offset\" FROM events WHERE id='whole' AND seq=2");
  int64_t old_max = query_int(path, "SELECT seq FROM sqlite_sequence WHERE name = 'events'");
  assert_int_equal(old_max, 14);

  /* Read-only opens never migrate (nor change anything). */
  journal_options ro = {.synchronous_full = 1, .read_only = 1};
  journal_t *j = NULL;
  assert_int_equal(journal_open(uri, &ro, &j), JOURNAL_ENOTLORE);

  j = open_ok(uri);
  expect_replay(j, "whole", 1, INT64_MAX, -1, 1, 3);
  expect_replay(j, "trimmed", 1, INT64_MAX, -1, 3, 5);
  expect_replay(j, "gone", 1, INT64_MAX, -1, 1, 0);
  replayed *r = replayed_new();
  assert_int_equal(journal_replay(j, "whole", 2, 2, -1, collect, r), 0);
  assert_int_equal(r->offset[0], old_whole2); /* offsets are kept */
  free(r);
  struct {
    const char *id;
    int64_t highest, deleted_to;
  } want[] = {{"whole", 3, 0}, {"trimmed", 5, 2}, {"gone", 2, 2}, {"tagged", 2, 0}, {"tail", 2, 2}};
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    journal_bounds b = bounds(j, want[i].id);
    assert_int_equal(b.highest, want[i].highest);
    assert_int_equal(b.deleted_to, want[i].deleted_to);
  }
  listed l = {0};
  assert_int_equal(journal_list_ids(j, collect_id, &l), 0);
  assert_int_equal(l.n, 5);
  assert_string_equal(l.ids[0], "gone");
  assert_int_equal(l.highest[0], 2);
  r = replayed_new();
  assert_int_equal(journal_replay_tag(j, "t2", 0, -1, collect, r), 0);
  assert_int_equal(r->n, 2);
  memset(r, 0, sizeof *r);
  assert_int_equal(journal_replay_tag(j, "t1", 0, -1, collect, r), 0);
  assert_int_equal(r->n, 1);
  free(r);
  meta_seen m = {0};
  assert_int_equal(journal_replay(j, "whole", 1, 1, -1, keep_meta, &m), 0);
  assert_true(m.ev.writer == TEST_WRITER); /* the UUID's first 64 bits */
  assert_int_equal(m.ev.timestamp_ms, 1600000000001);
  /* Offsets of the deleted newest rows are not given again. */
  assert_int_equal(max_offset(j), old_max);
  int64_t off = 0;
  assert_int_equal(write_tagged(j, "whole", 4, 1, "", &off), 0);
  assert_true(off > old_max);
  assert_int_equal(write_sync(j, "whole", 4, 1), JOURNAL_ECONFLICT);
  assert_int_equal(write_sync(j, "gone", 1, 1), JOURNAL_ECONFLICT);
  assert_int_equal(write_sync(j, "gone", 3, 1), 0);
  assert_int_equal(write_sync(j, "trimmed", 6, 1), 0);
  journal_close(j);

  assert_int_equal(query_int(path, "SELECT value FROM journal_info WHERE key = 'schema_version'"),
                   2);
  assert_int_equal(
      query_int(path, "SELECT count(*) FROM sqlite_master WHERE name = 'journal_meta'"), 0);
  assert_int_equal(query_int(path, "SELECT count(*) FROM snapshots"), 1);
  /* A second open finds the new schema and changes nothing. */
  j = open_ok(uri);
  expect_replay(j, "whole", 1, INT64_MAX, -1, 1, 4);
  expect_replay(j, "gone", 1, INT64_MAX, -1, 3, 3);
  journal_close(j);
  j = open_read_only(uri);
  expect_replay(j, "trimmed", 1, INT64_MAX, -1, 3, 6);
  journal_close(j);

  /* A newer Lore's database is refused, read-only or not. */
  exec_other(path, "UPDATE journal_info SET value = 99 WHERE key = 'schema_version'");
  assert_int_equal(journal_open(uri, NULL, &j), JOURNAL_ENOTSUP);
  assert_int_equal(journal_open(uri, &ro, &j), JOURNAL_ENOTSUP);
  f->bc->cleanup(path);
}

/* ---- schema versions (every backend with tables) ---- */

/* A database whose tables a newer Lore made is refused, read-only or not. */
static void test_newer_schema_refused(void **state) {
  fixture *f = *state;
  if (!f->bc->exec_sql) {
    skip();
    return;
  }
  const char *uri = reopenable_uri(f);
  f->bc->exec_sql(f->path, f->bc->sql->newer_schema);
  journal_t *j = NULL;
  assert_int_equal(journal_open(uri, NULL, &j), JOURNAL_ENOTSUP);
  journal_options ro = {.synchronous_full = 1, .read_only = 1};
  assert_int_equal(journal_open(uri, &ro, &j), JOURNAL_ENOTSUP);
}

/* postgres: tables of Lore's names that Lore did not make are left alone. */
static void test_foreign_tables_refused(void **state) {
  fixture *f = *state;
  if (!f->bc->leases) {
    skip();
    return;
  }
  char uri[600], schema[512], sql[1400];
  f->bc->fresh(uri, sizeof uri, schema, sizeof schema);
  snprintf(sql, sizeof sql,
           "CREATE SCHEMA %s; SET search_path TO %s; CREATE TABLE lore_events(x int);"
           " INSERT INTO lore_events VALUES (1);",
           schema, schema);
  f->bc->exec_sql("public", sql);
  journal_t *j = NULL;
  assert_int_equal(journal_open(uri, NULL, &j), JOURNAL_ENOTLORE);
  journal_options ro = {.synchronous_full = 1, .read_only = 1};
  assert_int_equal(journal_open(uri, &ro, &j), JOURNAL_ENOTLORE);
  /* Nothing was added beside it. */
  f->bc->exec_sql(schema,
                  "DO $$ BEGIN IF to_regclass('lore_schema') IS NOT NULL"
                  " OR (SELECT count(*) FROM lore_events) <> 1 THEN"
                  " RAISE EXCEPTION 'the foreign schema was changed'; END IF; END $$");
  f->bc->cleanup(schema);
}

/* ---- several processes on one journal (backends with leases) ----
 * Each journal_t stands for a process: its own connections, writer and
 * leases on the same database. */

static int fired_now(waiter *wt) {
  pthread_mutex_lock(&wt->mu);
  int n = wt->fired;
  pthread_mutex_unlock(&wt->mu);
  return n;
}

static void test_leases_exclude_other_journals(void **state) {
  fixture *f = *state;
  if (!f->bc->leases) {
    skip();
    return;
  }
  journal_t *j2 = open_ok(f->uri);
  assert_int_equal(request_sync(f->j, JOURNAL_WRITE_LEASE, "x", 0), 0);
  assert_int_equal(request_sync(j2, JOURNAL_WRITE_LEASE, "x", 0), JOURNAL_ELOCKED);
  assert_int_equal(request_sync(j2, JOURNAL_WRITE_LEASE, "y", 0), 0); /* other ids are free */
  assert_int_equal(request_sync(f->j, JOURNAL_WRITE_LEASE, "y", 0), JOURNAL_ELOCKED);

  /* A waiting LEASE completes once the holder lets go; the holder's leases
   * count (an actor stopped and spawned again overlap). */
  waiter *wt = waiter_new();
  journal_write w = {.kind = JOURNAL_WRITE_LEASE, .id = "x", .seq = 1, .done = on_done, .data = wt};
  w.status = 12345;
  assert_int_equal(journal_submit(j2, &w), 0);
  assert_int_equal(request_sync(f->j, JOURNAL_WRITE_LEASE, "x", 0), 0);
  assert_int_equal(request_sync(f->j, JOURNAL_WRITE_UNLEASE, "x", 0), 0);
  usleep(400000);
  assert_int_equal(fired_now(wt), 0);
  assert_int_equal(write_sync(f->j, "x", 1, 2), 0);
  assert_int_equal(request_sync(f->j, JOURNAL_WRITE_UNLEASE, "x", 0), 0);
  wait_fired(wt, 1);
  assert_int_equal(w.status, 0);
  assert_int_equal(request_sync(f->j, JOURNAL_WRITE_LEASE, "x", 0), JOURNAL_ELOCKED);

  /* The new holder continues the stream the old one wrote. */
  assert_int_equal(write_sync(j2, "x", 3, 2), 0);
  expect_replay(f->j, "x", 1, INT64_MAX, -1, 1, 4);

  /* Closing gives every lease back (its session ends); the next holder sees
   * every event. */
  journal_close(j2);
  assert_int_equal(request_sync(f->j, JOURNAL_WRITE_LEASE, "x", 1), 0);
  assert_int_equal(request_sync(f->j, JOURNAL_WRITE_LEASE, "y", 1), 0);
  assert_int_equal(write_sync(f->j, "x", 5, 1), 0);
  assert_int_equal(write_sync(f->j, "x", 5, 1), JOURNAL_ECONFLICT);
  expect_replay(f->j, "x", 1, INT64_MAX, -1, 1, 5);
  waiter_free(wt);
}

int64_t pg_lock_key(const char *schema, const char *name); /* journal_postgres_conn.c */

/* The holder's session ends behind its back (a network partition, an
 * administrator): another journal takes the lease over, and the old holder's
 * writes are fenced instead of appended. */
static void test_lost_lease_fences_writes(void **state) {
  fixture *f = *state;
  if (!f->bc->leases) {
    skip();
    return;
  }
  journal_t *j2 = open_ok(f->uri);
  assert_int_equal(request_sync(f->j, JOURNAL_WRITE_LEASE, "x", 0), 0);
  assert_int_equal(write_sync(f->j, "x", 1, 2), 0);
  char sql[400];
  snprintf(sql, sizeof sql,
           "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'"
           " AND granted AND objsubid = 1 AND ((classid::bigint << 32) | objid::bigint) = %lld",
           (long long)pg_lock_key(f->path, "x"));
  f->bc->exec_sql(f->path, sql);
  assert_int_equal(request_sync(j2, JOURNAL_WRITE_LEASE, "x", 1), 0);
  assert_int_equal(write_sync(j2, "x", 3, 1), 0);
  /* Whether the old holder finds its connection dead on this write or
   * reconnected already, its lease is gone: fenced, never appended. */
  assert_int_equal(write_sync(f->j, "x", 3, 1), JOURNAL_EFENCED);
  assert_int_equal(write_sync(f->j, "x", 4, 1), JOURNAL_EFENCED);
  assert_int_equal(delete_sync(f->j, "x", 1), JOURNAL_EFENCED);
  expect_replay(j2, "x", 1, INT64_MAX, -1, 1, 3);
  /* Ids it never leased are written as before, through a new connection. */
  assert_int_equal(write_sync(f->j, "free", 1, 1), 0);
  /* Leasing again: refused while the other holds it, granted after. */
  assert_int_equal(request_sync(f->j, JOURNAL_WRITE_LEASE, "x", 0), JOURNAL_ELOCKED);
  assert_int_equal(request_sync(j2, JOURNAL_WRITE_UNLEASE, "x", 0), 0);
  assert_int_equal(request_sync(f->j, JOURNAL_WRITE_LEASE, "x", 1), 0);
  assert_int_equal(write_sync(f->j, "x", 4, 1), 0);
  expect_replay(f->j, "x", 1, INT64_MAX, -1, 1, 4);
  journal_close(j2);
}

/* Offsets follow commit order across writers: a reader that follows the
 * journal by offset (always asking for what is after the highest offset it
 * has seen) while several journals write at once must end up having seen
 * every event. An event committed with an offset below one already read
 * would be skipped for good. */
enum { CO_JOURNALS = 3, CO_THREADS = 2, CO_WRITES = 150, CO_MAX_OFFSET = 1 << 20 };

typedef struct co_reader {
  journal_t *j;
  int stop; /* atomic */
  unsigned char *seen;
  int64_t cursor;
  int backwards; /* an offset not above the previous one within a call */
  int errors, passes;
} co_reader;

static int co_collect(const journal_event *ev, void *ud) {
  co_reader *r = ud;
  if (ev->offset <= r->cursor || ev->offset >= CO_MAX_OFFSET)
    r->backwards++;
  else
    r->seen[ev->offset] = 1;
  r->cursor = ev->offset;
  return 0;
}

static void *co_read_main(void *arg) {
  co_reader *r = arg;
  int last = 0;
  while (!last) {
    last = __atomic_load_n(&r->stop, __ATOMIC_ACQUIRE); /* one more pass after the writers */
    if (journal_replay_all(r->j, r->cursor, -1, co_collect, r) != 0) r->errors++;
    r->passes++;
  }
  return NULL;
}

typedef struct co_writer {
  journal_t *j;
  char id[24];
  int failures;
} co_writer;

static void *co_write_main(void *arg) {
  co_writer *w = arg;
  waiter *wt = waiter_new();
  twrite *t = calloc(CO_WRITES, sizeof *t);
  if (!t) abort();
  for (int i = 0; i < CO_WRITES; i++) {
    twrite_init(&t[i], w->id, i + 1, 1, wt);
    if (journal_submit(w->j, &t[i].w) != 0) w->failures++;
    if (i % 7 == 6) wait_fired(wt, i + 1); /* batches of varied sizes */
  }
  wait_fired(wt, CO_WRITES);
  for (int i = 0; i < CO_WRITES; i++) w->failures += t[i].w.status != 0;
  free(t);
  waiter_free(wt);
  return NULL;
}

static void test_offsets_follow_commit_order_across_journals(void **state) {
  fixture *f = *state;
  if (!f->bc->leases) {
    skip();
    return;
  }
  co_reader *r = calloc(1, sizeof *r);
  assert_non_null(r);
  r->seen = calloc(CO_MAX_OFFSET, 1);
  assert_non_null(r->seen);
  r->j = open_read_only(f->uri);
  journal_t *js[CO_JOURNALS];
  for (int i = 0; i < CO_JOURNALS; i++) js[i] = open_ok(f->uri);
  pthread_t rt, wt[CO_JOURNALS * CO_THREADS];
  co_writer w[CO_JOURNALS * CO_THREADS];
  assert_int_equal(pthread_create(&rt, NULL, co_read_main, r), 0);
  for (int i = 0; i < CO_JOURNALS * CO_THREADS; i++) {
    w[i] = (co_writer){.j = js[i % CO_JOURNALS]};
    snprintf(w[i].id, sizeof w[i].id, "co-%d", i);
    assert_int_equal(pthread_create(&wt[i], NULL, co_write_main, &w[i]), 0);
  }
  for (int i = 0; i < CO_JOURNALS * CO_THREADS; i++) pthread_join(wt[i], NULL);
  __atomic_store_n(&r->stop, 1, __ATOMIC_RELEASE);
  pthread_join(rt, NULL);
  for (int i = 0; i < CO_JOURNALS * CO_THREADS; i++) assert_int_equal(w[i].failures, 0);
  assert_int_equal(r->errors, 0);
  assert_int_equal(r->backwards, 0);
  replayed *all = replayed_new();
  assert_int_equal(journal_replay_all(f->j, 0, -1, collect, all), 0);
  assert_int_equal(all->n, 5 + CO_JOURNALS * CO_THREADS * CO_WRITES);
  size_t missed = 0;
  for (size_t i = 0; i < all->n && i < 4096; i++) missed += !r->seen[all->offset[i]];
  if (missed) fprintf(stderr, "the reader missed %zu events in %d passes\n", missed, r->passes);
  assert_int_equal(missed, 0);
  assert_true(r->passes > 1);
  free(all);
  for (int i = 0; i < CO_JOURNALS; i++) journal_close(js[i]);
  journal_close(r->j);
  free(r->seen);
  free(r);
}

/* Another journal's commits wake this journal's subscribers (LISTEN/NOTIFY);
 * its own are told once, by its writer. */
static void test_subscribers_hear_other_journals(void **state) {
  fixture *f = *state;
  if (!f->bc->leases) {
    skip();
    return;
  }
  journal_t *j2 = open_ok(f->uri);
  journal_t *r = open_read_only(f->uri);
  probe *p = calloc(2, sizeof *p);
  assert_non_null(p);
  journal_sub *s2 = journal_subscribe(j2, probe_fn, &p[0]);
  journal_sub *sr = journal_subscribe(r, probe_fn, &p[1]);
  int64_t off = 0;
  assert_int_equal(write_tagged(f->j, "n", 1, 1, "", &off), 0);
  for (int i = 0; i < 1000 && (__atomic_load_n(&p[0].max, __ATOMIC_ACQUIRE) < off ||
                               __atomic_load_n(&p[1].max, __ATOMIC_ACQUIRE) < off);
       i++)
    usleep(10000);
  assert_int_equal(__atomic_load_n(&p[0].max, __ATOMIC_ACQUIRE), off);
  assert_int_equal(__atomic_load_n(&p[1].max, __ATOMIC_ACQUIRE), off);
  int before = __atomic_load_n(&p[0].calls, __ATOMIC_ACQUIRE);
  int64_t off2 = 0;
  assert_int_equal(write_tagged(j2, "n2", 1, 1, "", &off2), 0);
  assert_int_equal(__atomic_load_n(&p[0].calls, __ATOMIC_ACQUIRE), before + 1);
  for (int i = 0; i < 1000 && __atomic_load_n(&p[1].max, __ATOMIC_ACQUIRE) < off2; i++)
    usleep(10000);
  assert_int_equal(__atomic_load_n(&p[1].max, __ATOMIC_ACQUIRE), off2);
  usleep(300000); /* a second notice of j2's own commit would have come by now */
  assert_int_equal(__atomic_load_n(&p[0].calls, __ATOMIC_ACQUIRE), before + 1);
  journal_unsubscribe(j2, s2);
  journal_unsubscribe(r, sr);
  journal_close(r);
  journal_close(j2);
  free(p);
}

/* ---- the suite, once per backend ---- */

/* Each case runs with a fresh fixture of the given backend. */
#define CASE(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
/* clang-format off */
static const struct CMUnitTest JOURNAL_TCK[] = {
  CASE(test_replay_all),
  CASE(test_replay_from_lower_bound),
  CASE(test_replay_to_upper_bound),
  CASE(test_replay_count_limit),
  CASE(test_replay_lower_and_upper),
  CASE(test_replay_lower_upper_and_limit),
  CASE(test_replay_lower_equals_upper),
  CASE(test_replay_limit_one),
  CASE(test_replay_limit_zero),
  CASE(test_replay_lower_above_upper),
  CASE(test_unknown_id),
  CASE(test_replay_stops_when_callback_asks),
  CASE(test_replay_across_pages),
  CASE(test_deleted_events_not_replayed),
  CASE(test_highest_seq_survives_deletes),
  CASE(test_bounds_and_deleted_to),
  CASE(test_no_deletions),
  CASE(test_delete_then_write_continues),
  CASE(test_gap_refused),
  CASE(test_gaps_and_duplicates_in_one_batch),
  CASE(test_delete_rejects_empty_id),
  CASE(test_leases),
  CASE(test_atomic_write_all_or_nothing),
  CASE(test_conflict_mid_write_rolls_back),
  CASE(test_invalid_write_rejected_neighbours_stored),
  CASE(test_payload_sizes),
  CASE(test_metadata_round_trips),
  CASE(test_sqlite_wal_is_checkpointed),
  CASE(test_sqlite_wal_space_ahead),
  CASE(test_crc_corruption_detected),
  CASE(test_sqlite_locked_database_fails_batch),
  CASE(test_sqlite_failure_mid_batch),
  CASE(test_group_commit_batches),
  CASE(test_callback_submits_next),
  CASE(test_close_drains_pending_writes),
  CASE(test_submit_after_close_begins),
  CASE(test_list_ids_sorted),
  CASE(test_list_ids_in_pages),
  CASE(test_reopen_keeps_events),
  CASE(test_concurrent_reads_during_writes),
  CASE(test_uris_and_errors),
  CASE(test_uri_parameters),
  CASE(test_offsets_unique_in_commit_order),
  CASE(test_offsets_never_reused),
  CASE(test_replay_all_offsets),
  CASE(test_max_offset),
  CASE(test_tags),
  CASE(test_stats),
  CASE(test_subscribers),
  CASE(test_sessions),
  CASE(test_read_only_open),
  CASE(test_open_directory),
  CASE(test_open_not_a_database),
  CASE(test_open_read_only_file),
  CASE(test_single_writer_lock),
  CASE(test_migrates_previous_schema),
  CASE(test_newer_schema_refused),
  CASE(test_foreign_tables_refused),
  CASE(test_leases_exclude_other_journals),
  CASE(test_lost_lease_fences_writes),
  CASE(test_offsets_follow_commit_order_across_journals),
  CASE(test_subscribers_hear_other_journals),
};
/* clang-format on */

enum { NCASES = sizeof JOURNAL_TCK / sizeof JOURNAL_TCK[0] };

/* Whether `name` is in the comma-separated list (NULL or "": memory,sqlite). */
static int selected(const char *list, const char *name) {
  if (!list || !list[0]) list = "memory,sqlite";
  size_t len = strlen(name);
  for (const char *p = list; *p;) {
    const char *end = strchr(p, ',');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    if (n == len && strncmp(p, name, n) == 0) return 1;
    if (!end) break;
    p = end + 1;
  }
  return 0;
}

/* The PostgreSQL cases fail, never skip, when there is no database to run them on. */
static int postgres_reachable(void) {
  if (!pg_conninfo()) {
    fprintf(stderr,
            "journal tck: postgres: FAILED: LORE_TEST_PG is not set (a libpq conninfo; "
            "scripts/pg-cluster.sh start makes a cluster and prints it)\n");
    return 0;
  }
  PGconn *c = PQconnectdb(pg_conninfo());
  int ok = PQstatus(c) == CONNECTION_OK;
  if (!ok)
    fprintf(stderr, "journal tck: postgres: FAILED: cannot connect to LORE_TEST_PG (%s): %s\n",
            pg_conninfo(), PQerrorMessage(c));
  PQfinish(c);
  return ok;
}

int main(void) {
  const char *list = getenv("LORE_TCK_BACKENDS");
  int failed = 0, ran = 0;
  for (size_t b = 0; b < sizeof BACKENDS / sizeof BACKENDS[0]; b++) {
    if (!selected(list, BACKENDS[b].name)) continue;
    if (strcmp(BACKENDS[b].name, "postgres") == 0 && !postgres_reachable()) {
      failed++;
      ran++;
      continue;
    }
    struct CMUnitTest tests[NCASES];
    for (size_t i = 0; i < NCASES; i++) {
      tests[i] = JOURNAL_TCK[i];
      tests[i].initial_state = (void *)&BACKENDS[b];
    }
    char group[64];
    snprintf(group, sizeof group, "journal tck: %s", BACKENDS[b].name);
    failed += _cmocka_run_group_tests(group, tests, NCASES, NULL, NULL);
    ran++;
  }
  if (!ran) {
    fprintf(stderr, "LORE_TCK_BACKENDS=%s names no known backend\n", list);
    return 1;
  }
  return failed;
}
