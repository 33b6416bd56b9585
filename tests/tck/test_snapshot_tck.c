/* test_snapshot_tck.c: snapshot store TCK after Akka's SnapshotStoreSpec, run for every backend. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "snapshot_store.h"

/*
 * Every case runs against every store LORE_TCK_BACKENDS names (comma
 * separated: memory (both memory: and memory:NAME), sqlite, dir, postgres;
 * default memory,sqlite,dir). "postgres" needs LORE_TEST_PG, a libpq conninfo
 * of a database the suite may create schemas in (scripts/pg-cluster.sh): each
 * case gets a schema of its own.
 */
typedef enum { K_MEMORY, K_MEMORY_NAMED, K_SQLITE, K_DIR, K_POSTGRES } kind_t;

typedef struct backend_cfg {
  kind_t kind;
} backend_cfg;

/* Not const: cmocka's prestate slot is a plain void *. */
static backend_cfg cfg_memory = {K_MEMORY};
static backend_cfg cfg_memory_named = {K_MEMORY_NAMED};
static backend_cfg cfg_sqlite = {K_SQLITE};
static backend_cfg cfg_dir = {K_DIR};
static backend_cfg cfg_postgres = {K_POSTGRES};

typedef struct fixture {
  kind_t kind;
  char path[PATH_MAX]; /* sqlite file, dir, memory store name or postgres schema */
  char uri[PATH_MAX + 16];
  snapshot_store_t *s;
} fixture;

static char run_dir[PATH_MAX / 2]; /* unique per run, under $LORE_TEST_TMP or /tmp */
static unsigned case_no;

/* ---- helpers ---------------------------------------------------------------------------- */

static snapshot_criteria crit(int64_t max_seq, int64_t max_ts, int64_t min_seq, int64_t min_ts) {
  snapshot_criteria c = {
      .max_seq = max_seq, .max_ts = max_ts, .min_seq = min_seq, .min_ts = min_ts};
  return c;
}

static snapshot_criteria upto(int64_t max_seq, int64_t max_ts) {
  return crit(max_seq, max_ts, 0, 0);
}

static void payload_for(const char *id, int64_t seq, char *buf, size_t cap) {
  snprintf(buf, cap, "state of %s at %" PRId64, id, seq);
}

static void save_str(snapshot_store_t *s, const char *id, int64_t seq, int64_t ts,
                     const char *str) {
  snapshot_meta m = {.seq = seq, .timestamp_ms = ts};
  assert_int_equal(snapshot_store_save(s, id, &m, str, strlen(str)), SNAPSHOT_OK);
}

static void save_default(snapshot_store_t *s, const char *id, int64_t seq, int64_t ts) {
  char buf[128];
  payload_for(id, seq, buf, sizeof buf);
  save_str(s, id, seq, ts, buf);
}

/* Loads and checks seq, timestamp and the exact bytes. */
static void expect_load(snapshot_store_t *s, const char *id, const snapshot_criteria *c, int skip,
                        int64_t seq, int64_t ts, const char *str) {
  snapshot_meta m = {-1, -1};
  void *data = NULL;
  size_t len = 0;
  assert_int_equal(snapshot_store_load(s, id, c, skip, &m, &data, &len), SNAPSHOT_OK);
  assert_non_null(data);
  assert_int_equal(m.seq, seq);
  assert_int_equal(m.timestamp_ms, ts);
  assert_int_equal(len, strlen(str));
  assert_memory_equal(data, str, len);
  free(data);
}

static void expect_default(snapshot_store_t *s, const char *id, const snapshot_criteria *c,
                           int skip, int64_t seq) {
  char buf[128];
  payload_for(id, seq, buf, sizeof buf);
  expect_load(s, id, c, skip, seq, 100 * seq, buf);
}

static void expect_none(snapshot_store_t *s, const char *id, const snapshot_criteria *c, int skip) {
  snapshot_meta m;
  void *data = (void *)1;
  size_t len = 99;
  assert_int_equal(snapshot_store_load(s, id, c, skip, &m, &data, &len), SNAPSHOT_ENOTFOUND);
  assert_null(data);
  assert_int_equal(len, 0);
}

static void expect_corrupt(snapshot_store_t *s, const char *id, const snapshot_criteria *c,
                           int skip, int64_t seq) {
  snapshot_meta m = {-1, -1};
  void *data = (void *)1;
  size_t len = 99;
  assert_int_equal(snapshot_store_load(s, id, c, skip, &m, &data, &len), SNAPSHOT_ECORRUPT);
  assert_null(data);
  assert_int_equal(len, 0);
  assert_int_equal(m.seq, seq); /* so the caller can say which snapshot was bad */
}

/* Asserts the list of id's snapshots matching c is exactly `seqs` (youngest first). */
static void expect_list(snapshot_store_t *s, const char *id, const snapshot_criteria *c,
                        const int64_t *seqs, size_t nseqs) {
  snapshot_meta out[512];
  size_t n = 12345;
  assert_int_equal(snapshot_store_list(s, id, c, out, 512, &n), SNAPSHOT_OK);
  assert_int_equal(n, nseqs);
  for (size_t i = 0; i < n; i++) assert_int_equal(out[i].seq, seqs[i]);
}

static int mkdir_p(const char *path) {
  char tmp[PATH_MAX];
  snprintf(tmp, sizeof tmp, "%s", path);
  for (char *p = tmp + 1; *p; p++) {
    if (*p != '/') continue;
    *p = '\0';
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return -1;
    *p = '/';
  }
  return mkdir(tmp, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

/* Removes a flat directory and everything in it. */
static int rm_dir(const char *path) {
  DIR *d = opendir(path);
  if (!d) return errno == ENOENT ? 0 : -1;
  struct dirent *de;
  char p[PATH_MAX + 300];
  int rc = 0;
  while ((de = readdir(d)) != NULL) {
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
    snprintf(p, sizeof p, "%s/%s", path, de->d_name);
    if (unlink(p) != 0) rc = -1;
  }
  closedir(d);
  return rmdir(path) == 0 ? rc : -1;
}

/* Counts directory entries whose name starts with prefix. */
static int count_files(const char *dir, const char *prefix) {
  DIR *d = opendir(dir);
  if (!d) return -1;
  int n = 0;
  struct dirent *de;
  while ((de = readdir(d)) != NULL)
    if (strncmp(de->d_name, prefix, strlen(prefix)) == 0) n++;
  closedir(d);
  return n;
}

static const char *pg_conninfo(void) {
  const char *c = getenv("LORE_TEST_PG");
  return c && c[0] ? c : NULL;
}

/* Runs SQL in a postgres case's schema, from outside the store. */
static void pg_exec_in(const char *schema, const char *sql) {
  PGconn *c = PQconnectdb(pg_conninfo());
  assert_int_equal(PQstatus(c), CONNECTION_OK);
  char set[PATH_MAX + 64];
  snprintf(set, sizeof set, "SET client_min_messages = warning; SET search_path TO %s", schema);
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

static int is_persistent(const fixture *f) { return f->kind != K_MEMORY; }

static void reopen(fixture *f) {
  snapshot_store_close(f->s);
  f->s = NULL;
  assert_int_equal(snapshot_store_open(f->uri, NULL, &f->s), SNAPSHOT_OK);
  assert_non_null(f->s);
}

/* ---- fixture: p has snapshots at seq 11..15, timestamps 100 * seq ------------------------ */

static int setup(void **state) {
  const backend_cfg *cfg = *state;
  fixture *f = calloc(1, sizeof *f);
  if (!f) return -1;
  f->kind = cfg->kind;
  unsigned n = ++case_no;
  switch (f->kind) {
    case K_MEMORY:
      snprintf(f->uri, sizeof f->uri, "memory:");
      break;
    case K_MEMORY_NAMED:
      snprintf(f->path, sizeof f->path, "tck-%ld-%u", (long)getpid(), n);
      snprintf(f->uri, sizeof f->uri, "memory:%s", f->path);
      break;
    case K_SQLITE:
      snprintf(f->path, sizeof f->path, "%s/case-%u.db", run_dir, n);
      snprintf(f->uri, sizeof f->uri, "sqlite:%s", f->path);
      break;
    case K_DIR:
      snprintf(f->path, sizeof f->path, "%s/case-%u.snapdir", run_dir, n);
      snprintf(f->uri, sizeof f->uri, "dir:%s", f->path);
      break;
    case K_POSTGRES:
      snprintf(f->path, sizeof f->path, "snap_tck_%ld_%u", (long)getpid(), n);
      snprintf(f->uri, sizeof f->uri, "postgres:%.3000s?schema=%.63s", pg_conninfo(), f->path);
      break;
  }
  *state = f;
  if (snapshot_store_open(f->uri, NULL, &f->s) != SNAPSHOT_OK) return -1;
  for (int64_t seq = 11; seq <= 15; seq++) {
    char buf[128];
    payload_for("p", seq, buf, sizeof buf);
    snapshot_meta m = {.seq = seq, .timestamp_ms = 100 * seq};
    if (snapshot_store_save(f->s, "p", &m, buf, strlen(buf)) != SNAPSHOT_OK) return -1;
  }
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  int rc = 0;
  snapshot_store_close(f->s);
  if (f->kind == K_SQLITE) {
    const char *suffix[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
      char p[PATH_MAX + 8];
      snprintf(p, sizeof p, "%s%s", f->path, suffix[i]);
      if (unlink(p) != 0 && errno != ENOENT) rc = -1;
    }
  } else if (f->kind == K_DIR) {
    /* A save must never leave its temporary file behind. */
    if (count_files(f->path, ".tmp") > 0) rc = -1;
    if (rm_dir(f->path) != 0) rc = -1;
  } else if (f->kind == K_POSTGRES) {
    char sql[PATH_MAX + 64];
    snprintf(sql, sizeof sql, "DROP SCHEMA IF EXISTS %s CASCADE", f->path);
    pg_exec_in("public", sql);
  }
  free(f);
  return rc;
}

/* ---- the cases ----------------------------------------------------------------------------- */

static void test_nothing_for_unknown_id(void **state) {
  fixture *f = *state;
  snapshot_criteria all = snapshot_criteria_latest();
  expect_none(f->s, "unknown", &all, 0);
  expect_none(f->s, "pp", &all, 0); /* a longer id sharing a prefix */
  expect_none(f->s, "", &all, 0);
  size_t n = 7;
  snapshot_meta out[4];
  assert_int_equal(snapshot_store_list(f->s, "unknown", &all, out, 4, &n), SNAPSHOT_OK);
  assert_int_equal(n, 0);
}

/* is_empty never says "empty" while a snapshot is stored; the sqlite store
 * (whose recoveries skip their loads on it) says so once the last one goes. */
static void test_is_empty(void **state) {
  fixture *f = *state;
  snapshot_criteria all = snapshot_criteria_latest();
  int empty = -1;
  assert_int_equal(snapshot_store_is_empty(f->s, &empty), SNAPSHOT_OK);
  assert_int_equal(empty, 0);
  assert_int_equal(snapshot_store_delete(f->s, "p", &all), SNAPSHOT_OK);
  assert_int_equal(snapshot_store_is_empty(f->s, &empty), SNAPSHOT_OK);
  if (f->kind == K_SQLITE) assert_int_equal(empty, 1);
  snapshot_meta m = {.seq = 3, .timestamp_ms = 300};
  assert_int_equal(snapshot_store_save(f->s, "q", &m, "x", 1), SNAPSHOT_OK);
  assert_int_equal(snapshot_store_is_empty(f->s, &empty), SNAPSHOT_OK);
  assert_int_equal(empty, 0);
  assert_int_equal(snapshot_store_is_empty(NULL, &empty), SNAPSHOT_EINVAL);
  assert_int_equal(snapshot_store_is_empty(f->s, NULL), SNAPSHOT_EINVAL);
}

static void test_nothing_for_non_matching_timestamp(void **state) {
  fixture *f = *state;
  snapshot_criteria c = upto(INT64_MAX, 99);
  expect_none(f->s, "p", &c, 0);
  c = crit(INT64_MAX, INT64_MAX, 0, 1501); /* min_ts above all */
  expect_none(f->s, "p", &c, 0);
}

static void test_nothing_for_non_matching_seq(void **state) {
  fixture *f = *state;
  snapshot_criteria c = upto(10, INT64_MAX);
  expect_none(f->s, "p", &c, 0);
  c = crit(INT64_MAX, INT64_MAX, 16, 0);
  expect_none(f->s, "p", &c, 0);
  c = crit(12, INT64_MAX, 13, 0); /* empty range */
  expect_none(f->s, "p", &c, 0);
}

static void test_load_most_recent(void **state) {
  fixture *f = *state;
  snapshot_criteria all = snapshot_criteria_latest();
  expect_default(f->s, "p", &all, 0, 15);
  expect_default(f->s, "p", NULL, 0, 15); /* NULL criteria means latest */
}

static void test_load_under_upper_seq_bound(void **state) {
  fixture *f = *state;
  snapshot_criteria c = upto(13, INT64_MAX);
  expect_default(f->s, "p", &c, 0, 13);
}

static void test_load_under_seq_and_ts_bounds(void **state) {
  fixture *f = *state;
  snapshot_criteria c = upto(13, 1200);
  expect_default(f->s, "p", &c, 0, 12);
  c = upto(13, 1300); /* bounds are inclusive */
  expect_default(f->s, "p", &c, 0, 13);
  c = crit(INT64_MAX, INT64_MAX, 12, 1100); /* lower bounds alone */
  expect_default(f->s, "p", &c, 0, 15);
  c = crit(12, 1200, 12, 1200); /* exactly one */
  expect_default(f->s, "p", &c, 0, 12);
}

static void test_delete_single_by_seq(void **state) {
  fixture *f = *state;
  snapshot_criteria one = crit(13, INT64_MAX, 13, 0);
  assert_int_equal(snapshot_store_delete(f->s, "p", &one), SNAPSHOT_OK);
  static const int64_t left[] = {15, 14, 12, 11};
  expect_list(f->s, "p", NULL, left, 4);
  snapshot_criteria c = upto(13, INT64_MAX);
  expect_default(f->s, "p", &c, 0, 12);
  /* Deleting what is already gone is not an error. */
  assert_int_equal(snapshot_store_delete(f->s, "p", &one), SNAPSHOT_OK);
  expect_list(f->s, "p", NULL, left, 4);
}

static void test_delete_by_seq_and_ts_bounds(void **state) {
  fixture *f = *state;
  snapshot_criteria c = upto(13, 1300);
  assert_int_equal(snapshot_store_delete(f->s, "p", &c), SNAPSHOT_OK);
  expect_none(f->s, "p", &c, 0);
  snapshot_criteria c14 = upto(14, 1400);
  expect_default(f->s, "p", &c14, 0, 14);
  static const int64_t left[] = {15, 14};
  expect_list(f->s, "p", NULL, left, 2);
}

static void test_no_delete_when_ts_bound_does_not_match(void **state) {
  fixture *f = *state;
  snapshot_criteria c = upto(13, 99);
  assert_int_equal(snapshot_store_delete(f->s, "p", &c), SNAPSHOT_OK);
  static const int64_t all[] = {15, 14, 13, 12, 11};
  expect_list(f->s, "p", NULL, all, 5);
  /* Akka's variant: the timestamp bound just below seq 13's spares 13 but not 11 and 12. */
  c = upto(13, 1299);
  assert_int_equal(snapshot_store_delete(f->s, "p", &c), SNAPSHOT_OK);
  snapshot_criteria c13 = upto(13, 1300);
  expect_default(f->s, "p", &c13, 0, 13);
  static const int64_t left[] = {15, 14, 13};
  expect_list(f->s, "p", NULL, left, 3);
}

static void test_save_over_same_seq_replaces(void **state) {
  fixture *f = *state;
  save_str(f->s, "p", 13, 1350, "replaced thirteen");
  snapshot_criteria c = upto(13, INT64_MAX);
  expect_load(f->s, "p", &c, 0, 13, 1350, "replaced thirteen");
  save_str(f->s, "p", 14, 1400, "fourteen again"); /* same timestamp too */
  c = upto(14, INT64_MAX);
  expect_load(f->s, "p", &c, 0, 14, 1400, "fourteen again");
  save_str(f->s, "p", 12, 50, "twelve, older clock"); /* a smaller timestamp still wins */
  c = upto(12, INT64_MAX);
  expect_load(f->s, "p", &c, 0, 12, 50, "twelve, older clock");
  static const int64_t all[] = {15, 14, 13, 12, 11};
  expect_list(f->s, "p", NULL, all, 5);
  snapshot_meta out[8];
  size_t n = 0;
  assert_int_equal(snapshot_store_list(f->s, "p", NULL, out, 8, &n), SNAPSHOT_OK);
  assert_int_equal(n, 5);
  assert_int_equal(out[2].timestamp_ms, 1350);
  assert_int_equal(out[3].timestamp_ms, 50);
  if (f->kind == K_DIR) { /* one file per (id, seq): the old timestamps' files are gone */
    assert_int_equal(count_files(f->path, "70-13-"), 1);
    assert_int_equal(count_files(f->path, "70-12-"), 1);
    assert_int_equal(count_files(f->path, "70-"), 5);
  }
}

static void test_large_snapshot_roundtrip(void **state) {
  fixture *f = *state;
  size_t len = 10u * 1024 * 1024;
  unsigned char *big = malloc(len);
  assert_non_null(big);
  uint64_t x = 0x9E3779B97F4A7C15ull;
  for (size_t i = 0; i < len; i++) { /* xorshift: every byte value, no pattern to hide bugs */
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    big[i] = (unsigned char)(x >> 32);
  }
  snapshot_meta m = {.seq = 16, .timestamp_ms = 1600};
  assert_int_equal(snapshot_store_save(f->s, "p", &m, big, len), SNAPSHOT_OK);
  snapshot_meta got = {0, 0};
  void *data = NULL;
  size_t glen = 0;
  assert_int_equal(snapshot_store_load(f->s, "p", NULL, 0, &got, &data, &glen), SNAPSHOT_OK);
  assert_int_equal(got.seq, 16);
  assert_int_equal(got.timestamp_ms, 1600);
  assert_int_equal(glen, len);
  assert_int_equal(memcmp(data, big, len), 0);
  free(data);
  free(big);
}

static void test_empty_snapshot_roundtrip(void **state) {
  fixture *f = *state;
  snapshot_meta m = {.seq = 20, .timestamp_ms = 2000};
  assert_int_equal(snapshot_store_save(f->s, "p", &m, NULL, 0), SNAPSHOT_OK);
  snapshot_meta got = {0, 0};
  void *data = NULL;
  size_t len = 5;
  assert_int_equal(snapshot_store_load(f->s, "p", NULL, 0, &got, &data, &len), SNAPSHOT_OK);
  assert_int_equal(got.seq, 20);
  assert_int_equal(len, 0);
  assert_non_null(data); /* always a buffer the caller frees, even when empty */
  free(data);
}

static void test_retention_keeps_newest_k(void **state) {
  fixture *f = *state;
  const int64_t total = 200;
  const size_t keep = 3;
  for (int64_t seq = 1; seq <= total; seq++) save_default(f->s, "r", seq, 100 * seq);
  snapshot_meta newest[3];
  size_t n = 0;
  assert_int_equal(snapshot_store_list(f->s, "r", NULL, newest, keep, &n), SNAPSHOT_OK);
  assert_int_equal(n, keep);
  int64_t kth = newest[keep - 1].seq;
  assert_int_equal(kth, total - (int64_t)keep + 1);
  snapshot_criteria older = upto(kth - 1, INT64_MAX);
  assert_int_equal(snapshot_store_delete(f->s, "r", &older), SNAPSHOT_OK);
  static const int64_t left[] = {200, 199, 198};
  expect_list(f->s, "r", NULL, left, 3);
  expect_default(f->s, "r", NULL, 0, 200);
  expect_default(f->s, "r", NULL, 2, 198);
  expect_none(f->s, "r", NULL, 3);
  static const int64_t p_all[] = {15, 14, 13, 12, 11}; /* other ids untouched */
  expect_list(f->s, "p", NULL, p_all, 5);
  if (f->kind == K_DIR) assert_int_equal(count_files(f->path, "72-"), 3);
}

static void test_load_with_skip_falls_back(void **state) {
  fixture *f = *state;
  expect_default(f->s, "p", NULL, 0, 15);
  expect_default(f->s, "p", NULL, 1, 14);
  expect_default(f->s, "p", NULL, 4, 11);
  expect_none(f->s, "p", NULL, 5);
  snapshot_criteria c = upto(13, INT64_MAX);
  expect_default(f->s, "p", &c, 1, 12);
  expect_none(f->s, "p", &c, 3);
  /* list honours cap and order */
  snapshot_meta out[2];
  size_t n = 0;
  assert_int_equal(snapshot_store_list(f->s, "p", NULL, out, 2, &n), SNAPSHOT_OK);
  assert_int_equal(n, 2);
  assert_int_equal(out[0].seq, 15);
  assert_int_equal(out[0].timestamp_ms, 1500);
  assert_int_equal(out[1].seq, 14);
  assert_int_equal(snapshot_store_list(f->s, "p", NULL, NULL, 0, &n), SNAPSHOT_OK);
  assert_int_equal(n, 0);
}

/* Flips one byte of a file at offset (negative: from the end). */
static void flip_byte(const char *path, long offset) {
  int fd = open(path, O_RDWR);
  assert_true(fd >= 0);
  struct stat st;
  assert_int_equal(fstat(fd, &st), 0);
  off_t at = offset >= 0 ? offset : st.st_size + offset;
  unsigned char b;
  assert_int_equal(pread(fd, &b, 1, at), 1);
  b ^= 0x40;
  assert_int_equal(pwrite(fd, &b, 1, at), 1);
  assert_int_equal(close(fd), 0);
}

static void sql_exec_blob_flip(const char *path, int64_t seq) {
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_busy_timeout(db, 5000), SQLITE_OK);
  sqlite3_stmt *st = NULL;
  /* Flip one byte inside the blob, keep the stored crc: what a damaged page looks like. */
  assert_int_equal(sqlite3_prepare_v2(db,
                                      "UPDATE snapshots SET data = CAST("
                                      "substr(data, 1, 2) || x'ff' || substr(data, 4) AS BLOB) "
                                      "WHERE id = ?1 AND seq = ?2",
                                      -1, &st, NULL),
                   SQLITE_OK);
  assert_int_equal(sqlite3_bind_text(st, 1, "p", -1, SQLITE_STATIC), SQLITE_OK);
  assert_int_equal(sqlite3_bind_int64(st, 2, seq), SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_DONE);
  assert_int_equal(sqlite3_changes(db), 1);
  sqlite3_finalize(st);
  assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

static void sql_exec(const char *path, const char *sql) {
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_busy_timeout(db, 5000), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

static void test_corrupt_snapshot_falls_back(void **state) {
  fixture *f = *state;
  if (f->kind != K_SQLITE && f->kind != K_DIR && f->kind != K_POSTGRES) {
    skip(); /* memory holds no bytes that can rot */
    return;
  }
  char file[PATH_MAX + 64];
  if (f->kind == K_SQLITE) {
    sql_exec_blob_flip(f->path, 15);
  } else if (f->kind == K_POSTGRES) {
    pg_exec_in(f->path,
               "UPDATE lore_snapshots SET data = set_byte(data, 2, 255)"
               " WHERE id = 'p' AND seq = 15");
  } else {
    snprintf(file, sizeof file, "%s/70-15-1500.snap", f->path);
    flip_byte(file, -3); /* inside the data */
  }
  expect_corrupt(f->s, "p", NULL, 0, 15);
  expect_default(f->s, "p", NULL, 1, 14); /* the caller's fallback: skip + 1 */
  snapshot_criteria c = upto(14, INT64_MAX);
  expect_default(f->s, "p", &c, 0, 14);
  /* The corrupt snapshot is still listed (list reads no data) and can be deleted. */
  static const int64_t all[] = {15, 14, 13, 12, 11};
  expect_list(f->s, "p", NULL, all, 5);
  snapshot_criteria one = crit(15, INT64_MAX, 15, 0);
  assert_int_equal(snapshot_store_delete(f->s, "p", &one), SNAPSHOT_OK);
  expect_default(f->s, "p", NULL, 0, 14);
}

static void test_corrupt_variants(void **state) {
  fixture *f = *state;
  if (f->kind == K_SQLITE) {
    sql_exec(f->path, "UPDATE snapshots SET crc = (crc + 1) % 4294967296 WHERE seq = 14");
    sql_exec(f->path,
             "UPDATE snapshots SET data = substr(data, 1, length(data) - 1) "
             "WHERE seq = 13");
    sql_exec(f->path, "UPDATE snapshots SET crc = -1 WHERE seq = 12");
  } else if (f->kind == K_POSTGRES) {
    pg_exec_in(f->path,
               "UPDATE lore_snapshots SET crc = (crc + 1) % 4294967296 WHERE seq = 14;"
               "UPDATE lore_snapshots SET data = substring(data from 1 for"
               " length(data) - 1) WHERE seq = 13;"
               "UPDATE lore_snapshots SET crc = -1 WHERE seq = 12");
  } else if (f->kind == K_DIR) {
    char file[PATH_MAX + 64];
    snprintf(file, sizeof file, "%s/70-14-1400.snap", f->path);
    assert_int_equal(truncate(file, 20), 0); /* torn inside the header */
    snprintf(file, sizeof file, "%s/70-13-1300.snap", f->path);
    struct stat st;
    assert_int_equal(stat(file, &st), 0);
    assert_int_equal(truncate(file, st.st_size - 1), 0); /* torn inside the data */
    snprintf(file, sizeof file, "%s/70-12-1200.snap", f->path);
    flip_byte(file, 20); /* the header's seq no longer matches the name */
  } else {
    skip();
    return;
  }
  snapshot_criteria c = upto(14, INT64_MAX);
  expect_corrupt(f->s, "p", &c, 0, 14);
  expect_corrupt(f->s, "p", &c, 1, 13);
  expect_corrupt(f->s, "p", &c, 2, 12);
  expect_default(f->s, "p", &c, 3, 11);
  expect_default(f->s, "p", NULL, 0, 15);
}

static void test_survives_close_and_reopen(void **state) {
  fixture *f = *state;
  save_str(f->s, "q", 7, 700, "q seven");
  reopen(f);
  if (!is_persistent(f)) { /* a private memory store dies with its handle */
    expect_none(f->s, "p", NULL, 0);
    expect_none(f->s, "q", NULL, 0);
    return;
  }
  static const int64_t all[] = {15, 14, 13, 12, 11};
  expect_list(f->s, "p", NULL, all, 5);
  expect_default(f->s, "p", NULL, 0, 15);
  expect_load(f->s, "q", NULL, 0, 7, 700, "q seven");
  /* And a second handle on the same store sees the same data, including new saves. */
  snapshot_store_t *other = NULL;
  assert_int_equal(snapshot_store_open(f->uri, NULL, &other), SNAPSHOT_OK);
  save_str(other, "q", 8, 800, "q eight");
  expect_load(f->s, "q", NULL, 0, 8, 800, "q eight");
  snapshot_store_close(other);
}

static void test_ids_are_isolated(void **state) {
  fixture *f = *state;
  char long_a[301], long_b[301];
  memset(long_a, 'x', 300);
  long_a[300] = '\0';
  memcpy(long_b, long_a, sizeof long_a);
  long_b[299] = 'y'; /* same long prefix, different tail */
  const char *ids[] = {"p2", "", "a/b-c.d", "../etc", "caf\xc3\xa9 \xe2\x9c\x93", long_a, long_b};
  size_t nids = sizeof ids / sizeof ids[0];
  for (size_t i = 0; i < nids; i++) save_default(f->s, ids[i], 1, 100);
  for (size_t i = 0; i < nids; i++) {
    expect_default(f->s, ids[i], NULL, 0, 1);
    static const int64_t one[] = {1};
    expect_list(f->s, ids[i], NULL, one, 1);
  }
  assert_int_equal(snapshot_store_delete(f->s, long_a, NULL), SNAPSHOT_OK);
  expect_none(f->s, long_a, NULL, 0);
  expect_default(f->s, long_b, NULL, 0, 1);
  assert_int_equal(snapshot_store_delete(f->s, "p2", NULL), SNAPSHOT_OK);
  static const int64_t p_all[] = {15, 14, 13, 12, 11};
  expect_list(f->s, "p", NULL, p_all, 5);
  expect_default(f->s, "", NULL, 0, 1);
}

static void test_bad_arguments(void **state) {
  fixture *f = *state;
  snapshot_meta m = {.seq = -1, .timestamp_ms = 0};
  assert_int_equal(snapshot_store_save(f->s, "p", &m, "x", 1), SNAPSHOT_EINVAL);
  m = (snapshot_meta){.seq = 1, .timestamp_ms = -5};
  assert_int_equal(snapshot_store_save(f->s, "p", &m, "x", 1), SNAPSHOT_EINVAL);
  m.timestamp_ms = 5;
  assert_int_equal(snapshot_store_save(f->s, NULL, &m, "x", 1), SNAPSHOT_EINVAL);
  assert_int_equal(snapshot_store_save(f->s, "p", NULL, "x", 1), SNAPSHOT_EINVAL);
  assert_int_equal(snapshot_store_save(f->s, "p", &m, NULL, 1), SNAPSHOT_EINVAL);
  void *data = (void *)1;
  size_t len = 3;
  assert_int_equal(snapshot_store_load(f->s, "p", NULL, -1, &m, &data, &len), SNAPSHOT_EINVAL);
  assert_null(data);
  assert_int_equal(snapshot_store_load(f->s, NULL, NULL, 0, &m, &data, &len), SNAPSHOT_EINVAL);
  assert_int_equal(snapshot_store_delete(f->s, NULL, NULL), SNAPSHOT_EINVAL);
  size_t n = 9;
  assert_int_equal(snapshot_store_list(f->s, "p", NULL, NULL, 3, &n), SNAPSHOT_EINVAL);
  assert_int_equal(n, 0);
  static const int64_t all[] = {15, 14, 13, 12, 11}; /* nothing changed */
  expect_list(f->s, "p", NULL, all, 5);
  /* meta may be NULL on load */
  data = NULL;
  assert_int_equal(snapshot_store_load(f->s, "p", NULL, 0, NULL, &data, &len), SNAPSHOT_OK);
  free(data);
}

#define THREADS 8
#define PER_THREAD 40

typedef struct worker {
  snapshot_store_t *s;
  int index;
  int failures;
} worker;

/* cmocka's asserts are not thread-safe: workers count failures, the test asserts on the sum. */
static void *worker_main(void *arg) {
  worker *w = arg;
  char id[32], buf[64];
  snprintf(id, sizeof id, "w%d", w->index);
  for (int64_t seq = 1; seq <= PER_THREAD; seq++) {
    snprintf(buf, sizeof buf, "%s@%" PRId64, id, seq);
    snapshot_meta m = {.seq = seq, .timestamp_ms = seq};
    if (snapshot_store_save(w->s, id, &m, buf, strlen(buf)) != 0) w->failures++;
    /* A shared id written by everyone at distinct seqs. */
    snapshot_meta sm = {.seq = w->index * 1000 + seq, .timestamp_ms = seq};
    if (snapshot_store_save(w->s, "shared", &sm, buf, strlen(buf)) != 0) w->failures++;
    void *data = NULL;
    size_t len = 0;
    snapshot_meta got;
    if (snapshot_store_load(w->s, id, NULL, 0, &got, &data, &len) != 0 || got.seq != seq ||
        len != strlen(buf) || memcmp(data, buf, len) != 0)
      w->failures++;
    free(data);
    if (snapshot_store_load(w->s, "shared", NULL, 0, &got, &data, &len) != 0) w->failures++;
    free(data);
    if (seq % 10 == 0) { /* retention while others write */
      snapshot_criteria old = upto(seq - 2, INT64_MAX);
      if (snapshot_store_delete(w->s, id, &old) != 0) w->failures++;
    }
  }
  return NULL;
}

static void test_concurrent_use(void **state) {
  fixture *f = *state;
  pthread_t t[THREADS];
  worker w[THREADS];
  for (int i = 0; i < THREADS; i++) {
    w[i] = (worker){.s = f->s, .index = i + 1, .failures = 0};
    assert_int_equal(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
  }
  for (int i = 0; i < THREADS; i++) assert_int_equal(pthread_join(t[i], NULL), 0);
  for (int i = 0; i < THREADS; i++) {
    assert_int_equal(w[i].failures, 0);
    char id[32];
    snprintf(id, sizeof id, "w%d", i + 1);
    /* last retention ran at seq 40 keeping 39 and 40 */
    static const int64_t left[] = {40, 39};
    expect_list(f->s, id, NULL, left, 2);
  }
  snapshot_meta out[THREADS * PER_THREAD + 1];
  size_t n = 0;
  assert_int_equal(snapshot_store_list(f->s, "shared", NULL, out, THREADS * PER_THREAD + 1, &n),
                   SNAPSHOT_OK);
  assert_int_equal(n, THREADS * PER_THREAD);
  assert_int_equal(out[0].seq, THREADS * 1000 + PER_THREAD);
}

/* ---- store-independent checks ---------------------------------------------------------- */

static void test_uri_parsing(void **state) {
  (void)state;
  snapshot_store_t *s = (snapshot_store_t *)1;
  assert_int_equal(snapshot_store_open("bogus:x", NULL, &s), SNAPSHOT_EURI);
  assert_null(s);
  assert_int_equal(snapshot_store_open("no-scheme", NULL, &s), SNAPSHOT_EURI);
  assert_int_equal(snapshot_store_open("memoryx:", NULL, &s), SNAPSHOT_EURI);
  assert_int_equal(snapshot_store_open("mem:", NULL, &s), SNAPSHOT_EURI);
  assert_int_equal(snapshot_store_open("sqlite:", NULL, &s), SNAPSHOT_EURI);
  assert_int_equal(snapshot_store_open("dir:", NULL, &s), SNAPSHOT_EURI);
  /* postgres: a conninfo libpq refuses, and parameters that are not Lore's or libpq's. */
  assert_int_equal(snapshot_store_open("postgres:x", NULL, &s), SNAPSHOT_EURI);
  assert_int_equal(snapshot_store_open("postgres:dbname=x?pool=0", NULL, &s), SNAPSHOT_EURI);
  assert_int_equal(snapshot_store_open("postgres:dbname=x?mode=xx", NULL, &s), SNAPSHOT_EURI);
  assert_int_equal(snapshot_store_open("postgres:dbname=x?bogus=1", NULL, &s), SNAPSHOT_EURI);
  assert_int_equal(snapshot_store_open("", NULL, &s), SNAPSHOT_EURI);
  assert_int_equal(snapshot_store_open(NULL, NULL, &s), SNAPSHOT_EURI);
  assert_int_equal(snapshot_store_open("memory:", NULL, NULL), SNAPSHOT_EINVAL);
  assert_null(s);
  /* A directory that cannot be created is an I/O error, not a crash. */
  assert_int_equal(snapshot_store_open("dir:/proc/no/such/place", NULL, &s), SNAPSHOT_EIO);
  assert_int_equal(snapshot_store_open("sqlite:/proc/no/such/place.db", NULL, &s), SNAPSHOT_EIO);
  assert_null(s);
  snapshot_store_close(NULL); /* harmless */
}

static void test_strerror_and_criteria(void **state) {
  (void)state;
  const int codes[] = {SNAPSHOT_OK,   SNAPSHOT_EIO,    SNAPSHOT_ENOTFOUND, SNAPSHOT_ECORRUPT,
                       SNAPSHOT_EURI, SNAPSHOT_ENOMEM, SNAPSHOT_EINVAL};
  const char *unknown = snapshot_strerror(12345);
  assert_non_null(unknown);
  for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
    const char *msg = snapshot_strerror(codes[i]);
    assert_non_null(msg);
    assert_string_not_equal(msg, unknown);
    for (size_t j = 0; j < i; j++) assert_string_not_equal(msg, snapshot_strerror(codes[j]));
  }
  snapshot_criteria c = snapshot_criteria_latest();
  assert_true(c.max_seq == INT64_MAX && c.max_ts == INT64_MAX);
  assert_true(c.min_seq == 0 && c.min_ts == 0);
}

static void test_crc32c(void **state) {
  (void)state;
  assert_int_equal(crc32c(0, "123456789", 9), 0xE3069283u); /* the standard check */
  assert_int_equal(crc32c(0, NULL, 0), 0);
  uint32_t chained = crc32c(crc32c(0, "1234", 4), "56789", 5);
  assert_int_equal(chained, 0xE3069283u);
  /* RFC 3720 (iSCSI) vectors: long enough to go through the 8-byte loop. */
  unsigned char v[32];
  memset(v, 0, sizeof v);
  assert_int_equal(crc32c(0, v, 32), 0x8A9136AAu);
  memset(v, 0xFF, sizeof v);
  assert_int_equal(crc32c(0, v, 32), 0x62A8AB43u);
  for (int i = 0; i < 32; i++) v[i] = (unsigned char)i;
  assert_int_equal(crc32c(0, v, 32), 0x46DD794Eu);
  for (int i = 0; i < 32; i++) v[i] = (unsigned char)(31 - i);
  assert_int_equal(crc32c(0, v, 32), 0x113FDB5Cu);
  /* Split at every point (unaligned heads and tails) gives the same result. */
  for (size_t cut = 0; cut <= 32; cut++)
    assert_int_equal(crc32c(crc32c(0, v, cut), v + cut, 32 - cut), 0x113FDB5Cu);
}

/* The snapshot table can live in the journal's database file without disturbing it. */
static void test_sqlite_shares_journal_file(void **state) {
  (void)state;
  char path[PATH_MAX], uri[PATH_MAX + 16];
  snprintf(path, sizeof path, "%s/shared-journal.db", run_dir);
  snprintf(uri, sizeof uri, "sqlite:%s", path);
  sql_exec(path,
           "PRAGMA journal_mode=WAL; CREATE TABLE events(id TEXT, seq INTEGER, x BLOB);"
           "CREATE TABLE journal_meta(id TEXT PRIMARY KEY, hi INTEGER);"
           "INSERT INTO events VALUES('p', 1, x'01'), ('p', 2, x'02');");
  snapshot_store_t *s = NULL;
  assert_int_equal(snapshot_store_open(uri, NULL, &s), SNAPSHOT_OK);
  save_str(s, "p", 2, 20, "after two events");
  expect_load(s, "p", NULL, 0, 2, 20, "after two events");
  snapshot_store_close(s);
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  sqlite3_stmt *st = NULL;
  assert_int_equal(sqlite3_prepare_v2(db,
                                      "SELECT (SELECT count(*) FROM events), "
                                      "(SELECT count(*) FROM snapshots)",
                                      -1, &st, NULL),
                   SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  assert_int_equal(sqlite3_column_int(st, 0), 2);
  assert_int_equal(sqlite3_column_int(st, 1), 1);
  sqlite3_finalize(st);
  assert_int_equal(sqlite3_close(db), SQLITE_OK);
  const char *suffix[] = {"", "-wal", "-shm"};
  for (int i = 0; i < 3; i++) {
    char p[PATH_MAX + 8];
    snprintf(p, sizeof p, "%s%s", path, suffix[i]);
    assert_true(unlink(p) == 0 || errno == ENOENT);
  }
}

static void test_sqlite_uses_wal(void **state) {
  (void)state;
  char path[PATH_MAX], uri[PATH_MAX + 16];
  snprintf(path, sizeof path, "%s/wal-check.db", run_dir);
  snprintf(uri, sizeof uri, "sqlite:%s", path);
  snapshot_store_t *s = NULL;
  assert_int_equal(snapshot_store_open(uri, NULL, &s), SNAPSHOT_OK);
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  sqlite3_stmt *st = NULL;
  assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
  sqlite3_finalize(st);
  assert_int_equal(sqlite3_close(db), SQLITE_OK);
  snapshot_store_close(s);
  const char *suffix[] = {"", "-wal", "-shm"};
  for (int i = 0; i < 3; i++) {
    char p[PATH_MAX + 8];
    snprintf(p, sizeof p, "%s%s", path, suffix[i]);
    assert_true(unlink(p) == 0 || errno == ENOENT);
  }
}

static void copy_file(const char *from, const char *to) {
  FILE *in = fopen(from, "rb");
  assert_non_null(in);
  FILE *out = fopen(to, "wb");
  assert_non_null(out);
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, in)) > 0) assert_int_equal(fwrite(buf, 1, n, out), n);
  assert_int_equal(fclose(in), 0);
  assert_int_equal(fclose(out), 0);
}

/* A crash between a save's rename and its removal of the older file leaves two files for one
 * seq: the higher timestamp is the one seen, and a delete of that seq removes both. */
static void test_dir_duplicate_seq_after_crash(void **state) {
  (void)state;
  char a[PATH_MAX], b[PATH_MAX], uri[PATH_MAX + 16], from[PATH_MAX + 64], to[PATH_MAX + 64];
  snprintf(a, sizeof a, "%s/dup-a", run_dir);
  snprintf(b, sizeof b, "%s/dup-b", run_dir);
  snapshot_store_t *sa = NULL, *sb = NULL;
  snprintf(uri, sizeof uri, "dir:%s", a);
  assert_int_equal(snapshot_store_open(uri, NULL, &sa), SNAPSHOT_OK);
  snprintf(uri, sizeof uri, "dir:%s", b);
  assert_int_equal(snapshot_store_open(uri, NULL, &sb), SNAPSHOT_OK);
  save_str(sa, "d", 5, 500, "newer clock");
  save_str(sa, "d", 4, 400, "four");
  save_str(sb, "d", 5, 450, "older clock");
  snprintf(from, sizeof from, "%s/64-5-450.snap", b);
  snprintf(to, sizeof to, "%s/64-5-450.snap", a);
  copy_file(from, to);
  assert_int_equal(count_files(a, "64-5-"), 2);
  expect_load(sa, "d", NULL, 0, 5, 500, "newer clock");
  expect_load(sa, "d", NULL, 1, 4, 400, "four"); /* the duplicate is not a separate snapshot */
  static const int64_t seqs[] = {5, 4};
  expect_list(sa, "d", NULL, seqs, 2);
  snapshot_criteria c = crit(INT64_MAX, 460, 0, 440); /* only the shadowed file matches: no-op */
  assert_int_equal(snapshot_store_delete(sa, "d", &c), SNAPSHOT_OK);
  expect_load(sa, "d", NULL, 0, 5, 500, "newer clock");
  c = crit(5, INT64_MAX, 5, 0);
  assert_int_equal(snapshot_store_delete(sa, "d", &c), SNAPSHOT_OK);
  assert_int_equal(count_files(a, "64-5-"), 0);
  expect_load(sa, "d", NULL, 0, 4, 400, "four");
  /* Same again, healed by a save of that seq instead. */
  copy_file(from, to);
  save_str(sa, "d", 5, 300, "newest save, oldest clock");
  assert_int_equal(count_files(a, "64-5-"), 1);
  expect_load(sa, "d", NULL, 0, 5, 300, "newest save, oldest clock");
  snapshot_store_close(sa);
  snapshot_store_close(sb);
  assert_int_equal(rm_dir(a), 0);
  assert_int_equal(rm_dir(b), 0);
}

/* Temporary files of a crashed save are removed at open once old; young ones may be in use. */
static void test_dir_sweeps_stale_temps(void **state) {
  (void)state;
  char d[PATH_MAX], uri[PATH_MAX + 16], old_tmp[PATH_MAX + 64], young_tmp[PATH_MAX + 64];
  snprintf(d, sizeof d, "%s/sweep", run_dir);
  assert_int_equal(mkdir_p(d), 0);
  snprintf(old_tmp, sizeof old_tmp, "%s/.tmp-snap-1-1", d);
  snprintf(young_tmp, sizeof young_tmp, "%s/.tmp-snap-1-2", d);
  FILE *f = fopen(old_tmp, "wb");
  assert_non_null(f);
  assert_int_equal(fclose(f), 0);
  f = fopen(young_tmp, "wb");
  assert_non_null(f);
  assert_int_equal(fclose(f), 0);
  struct timespec times[2] = {{.tv_sec = 1000000, .tv_nsec = 0}, {.tv_sec = 1000000}};
  assert_int_equal(utimensat(AT_FDCWD, old_tmp, times, 0), 0);
  snprintf(uri, sizeof uri, "dir:%s", d);
  snapshot_store_t *s = NULL;
  assert_int_equal(snapshot_store_open(uri, NULL, &s), SNAPSHOT_OK);
  assert_int_equal(access(old_tmp, F_OK), -1);
  assert_int_equal(access(young_tmp, F_OK), 0);
  expect_none(s, "p", NULL, 0); /* temp files are never snapshots */
  snapshot_store_close(s);
  assert_int_equal(rm_dir(d), 0);
}

/* ---- main -------------------------------------------------------------------------------- */

#define TCK_CASE(fn, cfg) cmocka_unit_test_prestate_setup_teardown(fn, setup, teardown, &cfg)
/* One suite, parameterised by the backend: every case runs against every store. */
// clang-format off
#define TCK_SUITE(cfg) {                                                                           \
    TCK_CASE(test_nothing_for_unknown_id, cfg),                                                    \
    TCK_CASE(test_is_empty, cfg),                                                                  \
    TCK_CASE(test_nothing_for_non_matching_timestamp, cfg),                                        \
    TCK_CASE(test_nothing_for_non_matching_seq, cfg),                                              \
    TCK_CASE(test_load_most_recent, cfg),                                                          \
    TCK_CASE(test_load_under_upper_seq_bound, cfg),                                                \
    TCK_CASE(test_load_under_seq_and_ts_bounds, cfg),                                              \
    TCK_CASE(test_delete_single_by_seq, cfg),                                                      \
    TCK_CASE(test_delete_by_seq_and_ts_bounds, cfg),                                               \
    TCK_CASE(test_no_delete_when_ts_bound_does_not_match, cfg),                                    \
    TCK_CASE(test_save_over_same_seq_replaces, cfg),                                               \
    TCK_CASE(test_large_snapshot_roundtrip, cfg),                                                  \
    TCK_CASE(test_empty_snapshot_roundtrip, cfg),                                                  \
    TCK_CASE(test_retention_keeps_newest_k, cfg),                                                  \
    TCK_CASE(test_load_with_skip_falls_back, cfg),                                                 \
    TCK_CASE(test_corrupt_snapshot_falls_back, cfg),                                               \
    TCK_CASE(test_corrupt_variants, cfg),                                                          \
    TCK_CASE(test_survives_close_and_reopen, cfg),                                                 \
    TCK_CASE(test_ids_are_isolated, cfg),                                                          \
    TCK_CASE(test_bad_arguments, cfg),                                                             \
    TCK_CASE(test_concurrent_use, cfg),                                                            \
  }
// clang-format on

/* Whether `name` is in the comma-separated list. */
static int selected(const char *list, const char *name) {
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
            "snapshot tck: postgres: FAILED: LORE_TEST_PG is not set (a libpq conninfo; "
            "scripts/pg-cluster.sh start makes a cluster and prints it)\n");
    return 0;
  }
  PGconn *c = PQconnectdb(pg_conninfo());
  int ok = PQstatus(c) == CONNECTION_OK;
  if (!ok)
    fprintf(stderr, "snapshot tck: postgres: FAILED: cannot connect to LORE_TEST_PG (%s): %s\n",
            pg_conninfo(), PQerrorMessage(c));
  PQfinish(c);
  return ok;
}

int main(void) {
  const char *base = getenv("LORE_TEST_TMP");
  if (!base || !*base) base = "/tmp";
  if (mkdir_p(base) != 0) {
    fprintf(stderr, "cannot create %s: %s\n", base, strerror(errno));
    return 1;
  }
  snprintf(run_dir, sizeof run_dir, "%s/lore-snapshot-tck-XXXXXX", base);
  if (!mkdtemp(run_dir)) {
    fprintf(stderr, "mkdtemp %s: %s\n", run_dir, strerror(errno));
    return 1;
  }

  const struct CMUnitTest memory[] = TCK_SUITE(cfg_memory);
  const struct CMUnitTest memory_named[] = TCK_SUITE(cfg_memory_named);
  const struct CMUnitTest sqlite[] = TCK_SUITE(cfg_sqlite);
  const struct CMUnitTest dir[] = TCK_SUITE(cfg_dir);
  const struct CMUnitTest postgres[] = TCK_SUITE(cfg_postgres);
  const struct CMUnitTest general[] = {
      cmocka_unit_test(test_uri_parsing),
      cmocka_unit_test(test_strerror_and_criteria),
      cmocka_unit_test(test_crc32c),
      cmocka_unit_test(test_sqlite_shares_journal_file),
      cmocka_unit_test(test_sqlite_uses_wal),
      cmocka_unit_test(test_dir_duplicate_seq_after_crash),
      cmocka_unit_test(test_dir_sweeps_stale_temps),
  };

  const char *list = getenv("LORE_TCK_BACKENDS");
  if (!list || !list[0]) list = "memory,sqlite,dir";
  int failed = 0, ran = 0;
  /* The checks of no store in particular (and of sqlite's and dir's own ways). */
  if (selected(list, "sqlite") || selected(list, "dir"))
    failed += cmocka_run_group_tests_name("snapshot store (general)", general, NULL, NULL);
  if (selected(list, "memory")) {
    failed += cmocka_run_group_tests_name("snapshot TCK memory:", memory, NULL, NULL);
    failed += cmocka_run_group_tests_name("snapshot TCK memory:NAME", memory_named, NULL, NULL);
    ran++;
  }
  if (selected(list, "sqlite")) {
    failed += cmocka_run_group_tests_name("snapshot TCK sqlite:", sqlite, NULL, NULL);
    ran++;
  }
  if (selected(list, "dir")) {
    failed += cmocka_run_group_tests_name("snapshot TCK dir:", dir, NULL, NULL);
    ran++;
  }
  if (selected(list, "postgres")) {
    ran++;
    if (postgres_reachable())
      failed += cmocka_run_group_tests_name("snapshot TCK postgres:", postgres, NULL, NULL);
    else
      failed++;
  }
  if (!ran) {
    fprintf(stderr, "LORE_TCK_BACKENDS=%s names no known snapshot store\n", list);
    failed++;
  }

  /* Every case cleaned up after itself, so the run directory must be empty now. */
  if (rmdir(run_dir) != 0) {
    fprintf(stderr, "run dir %s not empty or not removable: %s\n", run_dir, strerror(errno));
    failed++;
  }
  return failed ? 1 : 0;
}
