/* bench_journal.c: journal throughput against raw SQLite on the same schema (figures only). */
#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "journal.h"
#include "journal_sqlite.h"

/*
 * Usage: bench_journal [SCALE]   (or BENCH_SCALE=0.01 for a smoke run)
 * SCALE multiplies every size and duration; 1 is the full run (about a minute).
 * BENCH_ACTORS (default 1000) and BENCH_THREADS (default 4) shape case (c);
 * BENCH_ONLY=ce runs only the cases named by those letters.
 * Files go to a fresh directory under LORE_TEST_TMP or /tmp, removed at the end.
 */

#define PAYLOAD_LEN 100

/* The baselines write the journal's own tables (journal_sqlite_schema). */
#define SCHEMA journal_sqlite_schema

/* The alternative layout ARCHITECTURE.md asks to compare: keyed by (id, seq). */
static const char SCHEMA_KEYED[] =
    "CREATE TABLE IF NOT EXISTS events("
    " id TEXT NOT NULL, seq INTEGER NOT NULL, manifest TEXT NOT NULL, version INTEGER NOT NULL,"
    " tags TEXT NOT NULL, writer TEXT NOT NULL, ts INTEGER NOT NULL, payload BLOB NOT NULL,"
    " crc INTEGER NOT NULL, PRIMARY KEY(id, seq)) WITHOUT ROWID;";

static const int64_t WRITER_ID = 0x123e4567e89b42d3;
static unsigned char payload[PAYLOAD_LEN];
static char dir[512];
static int file_no;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *why) {
  fprintf(stderr, "bench_journal: %s: %s\n", what, why);
  exit(1);
}

static void new_path(char *buf, size_t size, const char *name) {
  snprintf(buf, size, "%s/%02d-%s.db", dir, ++file_no, name);
}

static void remove_db(const char *path) {
  char buf[600];
  unlink(path);
  snprintf(buf, sizeof buf, "%s-wal", path);
  unlink(buf);
  snprintf(buf, sizeof buf, "%s-shm", path);
  unlink(buf);
}

/* ---- the table of results ---- */

typedef struct row {
  char name[64];
  double figure;
  const char *unit;
  double baseline; /* 0: none */
  char note[80];
} row;

static row rows[16];
static int nrows;

static row *result(const char *name, double figure, const char *unit, double baseline,
                   const char *note) {
  row *r = &rows[nrows++];
  snprintf(r->name, sizeof r->name, "%s", name);
  r->figure = figure;
  r->unit = unit;
  r->baseline = baseline;
  snprintf(r->note, sizeof r->note, "%s", note ? note : "");
  fprintf(stderr, "  %-44s %12.0f %s\n", name, figure, unit);
  return r;
}

static void print_table(void) {
  printf("\n%-44s %14s %-9s %14s %7s  %s\n", "case", "figure", "unit", "baseline", "ratio", "note");
  for (int i = 0; i < nrows; i++) {
    row *r = &rows[i];
    if (r->baseline > 0)
      printf("%-44s %14.0f %-9s %14.0f %7.2f  %s\n", r->name, r->figure, r->unit, r->baseline,
             r->figure / r->baseline, r->note);
    else
      printf("%-44s %14.0f %-9s %14s %7s  %s\n", r->name, r->figure, r->unit, "-", "-", r->note);
  }
}

/* ---- raw SQLite ---- */

static sqlite3 *raw_open(const char *path, const char *schema) {
  sqlite3 *db;
  if (sqlite3_open(path, &db) != SQLITE_OK) die(path, sqlite3_errmsg(db));
  char *err = NULL;
  const char *setup = "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA temp_store=MEMORY;";
  if (sqlite3_exec(db, setup, NULL, NULL, &err) != SQLITE_OK ||
      sqlite3_exec(db, schema, NULL, NULL, &err) != SQLITE_OK)
    die(path, err);
  return db;
}

static void exec_or_die(sqlite3 *db, const char *sql) {
  char *err = NULL;
  if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) die(sql, err);
}

static sqlite3_stmt *prepare_or_die(sqlite3 *db, const char *sql) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) die(sql, sqlite3_errmsg(db));
  return st;
}

static void raw_insert(sqlite3_stmt *st, const char *id, int64_t seq) {
  sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, seq);
  sqlite3_bind_text(st, 3, "ItemAdded", -1, SQLITE_STATIC);
  sqlite3_bind_int(st, 4, 1);
  sqlite3_bind_text(st, 5, "", -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 6, WRITER_ID);
  sqlite3_bind_int64(st, 7, 1700000000000 + seq);
  sqlite3_bind_blob(st, 8, payload, PAYLOAD_LEN, SQLITE_STATIC);
  sqlite3_bind_int64(st, 9, crc32c(0, payload, PAYLOAD_LEN));
  if (sqlite3_step(st) != SQLITE_DONE) die("insert", sqlite3_errmsg(sqlite3_db_handle(st)));
  sqlite3_reset(st);
}

static const char INSERT_SQL[] =
    "INSERT INTO events(id, seq, manifest, version, tags, writer, ts, payload, crc)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";

/* Inserts n rows, `per_tx` per transaction, spread round-robin over `ids` ids
 * (as interleaved actors would write them). Returns rows/s. */
static double raw_write(const char *path, const char *schema, long n, long per_tx, int ids) {
  sqlite3 *db = raw_open(path, schema);
  sqlite3_stmt *st = prepare_or_die(db, INSERT_SQL);
  char id[32];
  double t0 = now();
  for (long i = 0; i < n;) {
    exec_or_die(db, "BEGIN IMMEDIATE");
    for (long k = 0; k < per_tx && i < n; k++, i++) {
      snprintf(id, sizeof id, "actor-%d", (int)(i % ids));
      raw_insert(st, id, i / ids + 1);
    }
    exec_or_die(db, "COMMIT");
  }
  double rate = (double)n / (now() - t0);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return rate;
}

/* Reads every event of each id in turn, as a recovery would, touching every
 * payload byte. Returns rows/s. */
static double raw_read(const char *path, int ids, long *rows_out) {
  sqlite3 *db;
  if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) die(path, "open");
  sqlite3_stmt *st =
      prepare_or_die(db, "SELECT seq, manifest, version, tags, writer, ts, payload, crc"
                         " FROM events WHERE id = ?1 ORDER BY seq");
  char id[32];
  long rows_read = 0;
  unsigned sum = 0;
  double t0 = now();
  for (int a = 0; a < ids; a++) {
    snprintf(id, sizeof id, "actor-%d", a);
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    while (sqlite3_step(st) == SQLITE_ROW) {
      const unsigned char *p = sqlite3_column_blob(st, 6);
      int len = sqlite3_column_bytes(st, 6);
      for (int k = 0; k < len; k++) sum += p[k];
      rows_read++;
    }
    sqlite3_reset(st);
  }
  double rate = (double)rows_read / (now() - t0);
  if (sum == 1) fprintf(stderr, "(sum)\n"); /* keeps the loop from being optimised away */
  sqlite3_finalize(st);
  sqlite3_close(db);
  if (rows_out) *rows_out = rows_read;
  return rate;
}

/* ---- the journal ---- */

static void fill_event(journal_event *ev, const char *id, int64_t seq) {
  *ev = (journal_event){.id = id,
                        .seq = seq,
                        .manifest = "ItemAdded",
                        .version = 1,
                        .tags = "",
                        .writer = WRITER_ID,
                        .timestamp_ms = 1700000000000 + seq,
                        .payload = payload,
                        .payload_len = PAYLOAD_LEN};
  journal_event_seal(ev);
}

typedef struct driver driver;

/* A persisting actor: its next event goes out when its previous one is durable. */
typedef struct actor {
  journal_write w;
  journal_event ev;
  char id[32];
  int64_t seq;
  driver *d;
  struct actor *next_ready;
} actor;

/* A scheduler thread: completions come back to it, it submits the next events. */
struct driver {
  pthread_t thread;
  journal_t *j;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  actor *ready;
  actor *actors;
  int nactors;
  int in_flight; /* mu */
  double deadline;
  long completed, failed;
};

static void actor_done(journal_write *w, int status) {
  actor *a = w->data;
  driver *d = a->d;
  pthread_mutex_lock(&d->mu);
  if (status == 0)
    d->completed++;
  else
    d->failed++;
  d->in_flight--;
  a->next_ready = d->ready;
  d->ready = a;
  pthread_cond_signal(&d->cv);
  pthread_mutex_unlock(&d->mu);
}

static void actor_persist(actor *a) {
  a->seq++;
  fill_event(&a->ev, a->id, a->seq);
  a->w = (journal_write){
      .kind = JOURNAL_WRITE_EVENTS, .events = &a->ev, .count = 1, .done = actor_done, .data = a};
  pthread_mutex_lock(&a->d->mu);
  a->d->in_flight++;
  pthread_mutex_unlock(&a->d->mu);
  if (journal_submit(a->d->j, &a->w) != 0) die("submit", "journal closed");
}

static void *driver_main(void *arg) {
  driver *d = arg;
  for (int i = 0; i < d->nactors; i++) actor_persist(&d->actors[i]);
  pthread_mutex_lock(&d->mu);
  for (;;) {
    while (!d->ready && d->in_flight > 0) pthread_cond_wait(&d->cv, &d->mu);
    int done = now() >= d->deadline;
    if (done && d->in_flight == 0) break;
    actor *list = d->ready;
    d->ready = NULL;
    pthread_mutex_unlock(&d->mu);
    if (!done) {
      while (list) {
        actor *a = list;
        list = a->next_ready;
        actor_persist(a);
      }
    }
    pthread_mutex_lock(&d->mu);
  }
  pthread_mutex_unlock(&d->mu);
  return NULL;
}

/* Case (c): `nactors` actors on `nthreads` scheduler threads, each persisting
 * its next event as soon as the previous one is durable, for `seconds`. */
static double journal_actors(const char *path, int nactors, int nthreads, double seconds,
                             double *avg_batch) {
  char uri[700];
  snprintf(uri, sizeof uri, "sqlite:%s", path);
  journal_t *j;
  int rc = journal_open(uri, NULL, &j);
  if (rc < 0) die(uri, journal_strerror(rc));
  actor *actors = calloc((size_t)nactors, sizeof *actors);
  driver *drivers = calloc((size_t)nthreads, sizeof *drivers);
  if (!actors || !drivers) die("calloc", "out of memory");
  double t0 = now();
  for (int t = 0; t < nthreads; t++) {
    driver *d = &drivers[t];
    d->j = j;
    d->deadline = t0 + seconds;
    d->actors = actors + (long)nactors * t / nthreads;
    d->nactors = (int)((long)nactors * (t + 1) / nthreads - (long)nactors * t / nthreads);
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
    for (int i = 0; i < d->nactors; i++) {
      snprintf(d->actors[i].id, sizeof d->actors[i].id, "actor-%d-%d", t, i);
      d->actors[i].d = d;
    }
  }
  for (int t = 0; t < nthreads; t++)
    pthread_create(&drivers[t].thread, NULL, driver_main, &drivers[t]);
  long completed = 0, failed = 0;
  for (int t = 0; t < nthreads; t++) {
    pthread_join(drivers[t].thread, NULL);
    completed += drivers[t].completed;
    failed += drivers[t].failed;
    pthread_mutex_destroy(&drivers[t].mu);
    pthread_cond_destroy(&drivers[t].cv);
  }
  double elapsed = now() - t0;
  uint64_t batches, writes;
  journal_writer_stats(j, &batches, &writes);
  journal_close(j);
  if (failed) fprintf(stderr, "bench_journal: %ld writes failed\n", failed);
  *avg_batch = batches ? (double)writes / (double)batches : 0;
  free(actors);
  free(drivers);
  return (double)completed / elapsed;
}

typedef struct one_waiter {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int done;
  int status;
} one_waiter;

static void one_done(journal_write *w, int status) {
  one_waiter *ow = w->data;
  pthread_mutex_lock(&ow->mu);
  ow->done = 1;
  ow->status = status;
  pthread_cond_signal(&ow->cv);
  pthread_mutex_unlock(&ow->mu);
}

/* Case (d): one actor, one event at a time, waiting for each to be durable. */
static double journal_single(const char *path, double seconds, long max_events) {
  char uri[700];
  snprintf(uri, sizeof uri, "sqlite:%s", path);
  journal_t *j;
  int rc = journal_open(uri, NULL, &j);
  if (rc < 0) die(uri, journal_strerror(rc));
  one_waiter ow = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
  journal_event ev;
  long n = 0;
  double t0 = now(), t;
  do {
    fill_event(&ev, "solo", n + 1);
    journal_write w = {
        .kind = JOURNAL_WRITE_EVENTS, .events = &ev, .count = 1, .done = one_done, .data = &ow};
    ow.done = 0;
    if (journal_submit(j, &w) != 0) die("submit", "closed");
    pthread_mutex_lock(&ow.mu);
    while (!ow.done) pthread_cond_wait(&ow.cv, &ow.mu);
    pthread_mutex_unlock(&ow.mu);
    if (ow.status != 0) die("write", journal_strerror(ow.status));
    n++;
    t = now();
  } while (t - t0 < seconds && n < max_events);
  journal_close(j);
  return (double)n / (t - t0);
}

typedef struct replay_sum {
  long n;
  unsigned sum;
} replay_sum;

static int sum_payload(const journal_event *ev, void *ud) {
  replay_sum *s = ud;
  const unsigned char *p = ev->payload;
  for (size_t k = 0; k < ev->payload_len; k++) s->sum += p[k];
  s->n++;
  return 0;
}

/* Replays every id's events through the journal (CRC checked, 1000-row pages). */
static double journal_read(const char *path, int ids, long expect_rows) {
  char uri[700], id[32];
  snprintf(uri, sizeof uri, "sqlite:%s", path);
  journal_t *j;
  int rc = journal_open(uri, NULL, &j);
  if (rc < 0) die(uri, journal_strerror(rc));
  replay_sum s = {0};
  double t0 = now();
  for (int a = 0; a < ids; a++) {
    snprintf(id, sizeof id, "actor-%d", a);
    rc = journal_replay(j, id, 1, INT64_MAX, -1, sum_payload, &s);
    if (rc < 0) die("replay", journal_strerror(rc));
  }
  double rate = (double)s.n / (now() - t0);
  journal_close(j);
  if (s.n != expect_rows)
    fprintf(stderr, "bench_journal: replayed %ld of %ld rows\n", s.n, expect_rows);
  return rate;
}

static double best(double a, double b) { return a > b ? a : b; }

static const char *only;

static int wanted(char c) { return !only || strchr(only, c); }

int main(int argc, char **argv) {
  double scale = 1;
  const char *s = argc > 1 ? argv[1] : getenv("BENCH_SCALE");
  if (s) scale = atof(s);
  if (scale <= 0) scale = 1;
  int nactors = getenv("BENCH_ACTORS") ? atoi(getenv("BENCH_ACTORS")) : 1000;
  int nthreads = getenv("BENCH_THREADS") ? atoi(getenv("BENCH_THREADS")) : 4;
  if (nactors < 1) nactors = 1;
  if (nthreads < 1) nthreads = 1;
  if (nthreads > nactors) nthreads = nactors;
  for (int i = 0; i < PAYLOAD_LEN; i++) payload[i] = (unsigned char)(i * 37 + 11);

  const char *base = getenv("LORE_TEST_TMP");
  if (!base || !base[0]) base = "/tmp";
  mkdir(base, 0755);
  snprintf(dir, sizeof dir, "%s/bench-journal-XXXXXX", base);
  if (!mkdtemp(dir)) die(dir, strerror(errno));

  long batched_rows = (long)(200000 * scale);
  long single_rows = (long)(1000 * scale);
  long read_rows = (long)(1000000 * scale);
  long layout_rows = (long)(200000 * scale);
  double seconds = 3 * scale < 0.2 ? 0.2 : 3 * scale;
  if (batched_rows < 1000) batched_rows = 1000;
  if (single_rows < 10) single_rows = 10;
  if (read_rows < 1000) read_rows = 1000;
  if (layout_rows < 1000) layout_rows = 1000;
  fprintf(stderr, "bench_journal: scale %g, %d actors on %d threads, %d-byte payloads, in %s\n",
          scale, nactors, nthreads, PAYLOAD_LEN, dir);

  only = getenv("BENCH_ONLY");
  char path[600];
  double raw_batched = 0, raw_single = 0;
  /* (a) and (b): what SQLite does alone with this schema, synchronous=FULL. */
  if (wanted('a')) {
    new_path(path, sizeof path, "raw-batched");
    raw_batched = raw_write(path, SCHEMA, batched_rows, 1000, nactors);
    result("(a) raw sqlite, 1000-row transactions", raw_batched, "rows/s", 0, "INSERT only");
    remove_db(path);
  }
  if (wanted('b')) {
    new_path(path, sizeof path, "raw-single");
    raw_single = raw_write(path, SCHEMA, single_rows, 1, 1);
    result("(b) raw sqlite, 1 row per transaction", raw_single, "rows/s", 0, "one fsync per row");
    remove_db(path);
  }

  /* (c) and (d): the journal, synchronous=FULL. */
  char note[80], name[64];
  if (wanted('c')) {
    new_path(path, sizeof path, "journal-actors");
    double avg_batch = 0;
    double actors_rate = journal_actors(path, nactors, nthreads, seconds, &avg_batch);
    snprintf(note, sizeof note, "avg batch %.0f writes; baseline (a)", avg_batch);
    snprintf(name, sizeof name, "(c) journal, %d concurrent actors", nactors);
    result(name, actors_rate, "events/s", raw_batched, note);
    remove_db(path);
  }
  if (wanted('d')) {
    new_path(path, sizeof path, "journal-single");
    double single_rate = journal_single(path, seconds, single_rows * 10);
    result("(d) journal, 1 actor, 1 event at a time", single_rate, "events/s", raw_single,
           "baseline (b)");
    remove_db(path);
  }

  if (wanted('e')) {
    /* (e): one id's long stream, raw vs replay (pages, CRC, callbacks). */
    new_path(path, sizeof path, "read");
    raw_write(path, SCHEMA, read_rows, 10000, 1);
    long got = 0;
    double raw_rd = best(raw_read(path, 1, &got), raw_read(path, 1, &got));
    double jr_rd = best(journal_read(path, 1, got), journal_read(path, 1, got));
    snprintf(name, sizeof name, "(e) raw sqlite read, %ld rows of one id", got);
    result(name, raw_rd, "rows/s", 0, "best of 2");
    snprintf(name, sizeof name, "(e) journal_replay, %ld rows of one id", got);
    result(name, jr_rd, "events/s", raw_rd, "best of 2; baseline raw read");
    remove_db(path);
  }
  if (wanted('f')) {
    /* (f) the two table layouts of ARCHITECTURE.md, with actors interleaved. */
    new_path(path, sizeof path, "layout-offset");
    double off_w = raw_write(path, SCHEMA, layout_rows, 1000, nactors);
    double off_r = best(raw_read(path, nactors, NULL), raw_read(path, nactors, NULL));
    remove_db(path);
    new_path(path, sizeof path, "layout-keyed");
    double key_w = raw_write(path, SCHEMA_KEYED, layout_rows, 1000, nactors);
    double key_r = best(raw_read(path, nactors, NULL), raw_read(path, nactors, NULL));
    remove_db(path);
    snprintf(name, sizeof name, "(f) offset table, write %d interleaved ids", nactors);
    result(name, off_w, "rows/s", 0, "1000-row transactions");
    snprintf(name, sizeof name, "(f) (id,seq)-keyed table, same writes");
    result(name, key_w, "rows/s", off_w, "baseline: offset table");
    snprintf(name, sizeof name, "(f) offset table, read each id in turn");
    result(name, off_r, "rows/s", 0, "");
    snprintf(name, sizeof name, "(f) (id,seq)-keyed table, same reads");
    result(name, key_r, "rows/s", off_r, "baseline: offset table");
  }
  print_table();
  rmdir(dir);
  return 0;
}
