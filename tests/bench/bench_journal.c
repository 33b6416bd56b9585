/* bench_journal.c: journal throughput beside raw SQLite on the fastest hand-written schema (figures
 * only). */
#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "crc32c.h"
#include "journal.h"
#include "journal_sqlite.h"

/*
 * Usage: bench_journal [SCALE]   (or BENCH_SCALE=0.01 for a smoke run)
 * SCALE multiplies every size and duration; 1 is the full run (a few minutes).
 * BENCH_ROUNDS (default 3, 1 when SCALE < 0.1): each case and its baselines
 * run alternately that many times; the table gives min / median / max.
 * BENCH_ACTORS (default 1000) and BENCH_THREADS (default 4) shape case (a);
 * BENCH_ONLY=ab runs only the cases named by those letters.
 * Files go to a fresh directory under LORE_TEST_TMP or /tmp, removed at the end.
 *
 * The baselines, in the same process and run:
 * - "fastest": what a user would write by hand for the same job, nothing
 *   more: events(off INTEGER PRIMARY KEY, pid, seq, payload), UNIQUE(pid, seq),
 *   WAL, synchronous=FULL, memory statistics off, prepared statements,
 *   SQLite's own checkpoints.
 * - "journal schema": the same INSERTs into the journal's own tables (its
 *   columns and CRC, but none of its logic).
 *
 * Cases:
 * (a) `actors` actors on `threads` scheduler threads, each persisting its next
 *     event once the previous is durable; the raw baselines insert in
 *     transactions as large as the journal's average batch, ids interleaved.
 * (b) one actor, one event at a time; the raw baseline commits one row per
 *     transaction.
 * (c) replay of one id's 1,000,000 events (CRC checked) against reading the
 *     same rows raw, every payload byte touched; and journal_replay_lean
 *     (what a recovery reads) beside a raw read of its four columns, each
 *     payload's CRC checked: what a plain SELECT of them through the
 *     (id, seq) index costs (the journal reads a stream's runs from the
 *     table instead).
 * (d) the fixed cost of a read: journal_replay calls that return one event,
 *     and journal_bounds_of calls, per second (on (c)'s file).
 */

#define PAYLOAD_LEN 100
#define MAX_ROUNDS 15

static const char FASTEST_SCHEMA[] =
    "CREATE TABLE events(off INTEGER PRIMARY KEY, pid TEXT NOT NULL, seq INTEGER NOT NULL,"
    " payload BLOB NOT NULL, UNIQUE(pid, seq));";
static const char FASTEST_INSERT[] = "INSERT INTO events(pid, seq, payload) VALUES (?1, ?2, ?3)";
static const char FASTEST_READ[] = "SELECT seq, payload FROM events WHERE pid = ?1 ORDER BY seq";

static const char JOURNAL_READ[] =
    "SELECT seq, manifest, version, tags, writer, ts, payload, crc"
    " FROM events WHERE id = ?1 ORDER BY seq";
static const char LEAN_READ[] =
    "SELECT seq, manifest, payload, crc FROM events WHERE id = ?1 ORDER BY seq";

/* raw_read's statements: the fastest schema's, every journal column, or a
 * recovery's four (payload CRCs checked). */
enum { READ_FASTEST, READ_JOURNAL, READ_LEAN };

static const int64_t WRITER_ID = 0x123e4567e89b42d3;
static unsigned char payload[PAYLOAD_LEN];
static uint32_t payload_crc;
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
  snprintf(buf, size, "%s/%03d-%s.db", dir, ++file_no, name);
}

static void remove_db(const char *path) {
  char buf[600];
  unlink(path);
  const char *suffix[] = {"-wal", "-shm", "-lock"};
  for (int i = 0; i < 3; i++) {
    snprintf(buf, sizeof buf, "%s%s", path, suffix[i]);
    unlink(buf);
  }
}

/* ---- results: one series of rounds per figure ---- */

typedef struct series {
  char name[72];
  const char *unit;
  double v[MAX_ROUNDS];
  int n;
  int baseline; /* index of the series it is compared with, -1: none */
  char note[96];
} series;

static series table[24];
static int nseries;

static int series_new(const char *name, const char *unit, int baseline, const char *note) {
  series *s = &table[nseries];
  snprintf(s->name, sizeof s->name, "%s", name);
  s->unit = unit;
  s->baseline = baseline;
  snprintf(s->note, sizeof s->note, "%s", note ? note : "");
  return nseries++;
}

static void record(int i, double v) {
  series *s = &table[i];
  if (s->n < MAX_ROUNDS) s->v[s->n++] = v;
  fprintf(stderr, "  %-52s %12.0f %s\n", s->name, v, s->unit);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(const series *s) {
  double v[MAX_ROUNDS];
  memcpy(v, s->v, (size_t)s->n * sizeof v[0]);
  qsort(v, (size_t)s->n, sizeof v[0], cmp_double);
  return s->n % 2 ? v[s->n / 2] : (v[s->n / 2 - 1] + v[s->n / 2]) / 2;
}

static void print_table(int rounds) {
  printf("\n%d round(s), cases and baselines alternating; ratio = median / baseline's median\n",
         rounds);
  printf("%-52s %11s %11s %11s %-9s %6s  %s\n", "case", "min", "median", "max", "unit", "ratio",
         "note");
  for (int i = 0; i < nseries; i++) {
    series *s = &table[i];
    if (!s->n) continue;
    double lo = s->v[0], hi = s->v[0];
    for (int k = 1; k < s->n; k++) {
      if (s->v[k] < lo) lo = s->v[k];
      if (s->v[k] > hi) hi = s->v[k];
    }
    char ratio[16] = "-";
    if (s->baseline >= 0 && table[s->baseline].n)
      snprintf(ratio, sizeof ratio, "%.2f", median(s) / median(&table[s->baseline]));
    printf("%-52s %11.0f %11.0f %11.0f %-9s %6s  %s\n", s->name, lo, median(s), hi, s->unit, ratio,
           s->note);
  }
}

/* ---- raw SQLite ---- */

static void exec_or_die(sqlite3 *db, const char *sql) {
  char *err = NULL;
  if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) die(sql, err ? err : "?");
}

static sqlite3_stmt *prepare_or_die(sqlite3 *db, const char *sql) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) die(sql, sqlite3_errmsg(db));
  return st;
}

static sqlite3 *raw_open(const char *path, const char *schema) {
  sqlite3 *db;
  if (sqlite3_open(path, &db) != SQLITE_OK) die(path, sqlite3_errmsg(db));
  exec_or_die(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;");
  exec_or_die(db, schema);
  return db;
}

static void step_done(sqlite3_stmt *st) {
  if (sqlite3_step(st) != SQLITE_DONE) die("step", sqlite3_errmsg(sqlite3_db_handle(st)));
  sqlite3_reset(st);
}

/* Binds one event for the fastest schema (fastest != 0) or the journal's. */
static void raw_bind(sqlite3_stmt *st, int fastest, const char *id, int64_t seq) {
  if (fastest) {
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, seq);
    sqlite3_bind_blob(st, 3, payload, PAYLOAD_LEN, SQLITE_STATIC);
    return;
  }
  sqlite3_bind_null(st, 1);
  sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 3, seq);
  sqlite3_bind_text(st, 4, "ItemAdded", -1, SQLITE_STATIC);
  sqlite3_bind_int(st, 5, 1);
  sqlite3_bind_text(st, 6, "", -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 7, WRITER_ID);
  sqlite3_bind_int64(st, 8, 1700000000000 + seq);
  sqlite3_bind_blob(st, 9, payload, PAYLOAD_LEN, SQLITE_STATIC);
  sqlite3_bind_int64(st, 10, payload_crc);
}

/* Inserts n rows, `per_tx` per transaction, spread round-robin over `ids` ids
 * (as interleaved actors would write them) into a fresh file. Returns rows/s. */
static double raw_write(const char *path, int fastest, long n, long per_tx, int ids) {
  sqlite3 *db = raw_open(path, fastest ? FASTEST_SCHEMA : journal_sqlite_schema);
  sqlite3_stmt *ins = prepare_or_die(db, fastest ? FASTEST_INSERT : journal_sqlite_insert_event);
  sqlite3_stmt *begin = prepare_or_die(db, "BEGIN IMMEDIATE");
  sqlite3_stmt *commit = prepare_or_die(db, "COMMIT");
  char(*names)[24] = malloc((size_t)ids * sizeof *names);
  if (!names) die("malloc", "out of memory");
  for (int a = 0; a < ids; a++) snprintf(names[a], sizeof names[a], "actor-%d", a);
  double t0 = now();
  for (long i = 0; i < n;) {
    step_done(begin);
    for (long k = 0; k < per_tx && i < n; k++, i++) {
      raw_bind(ins, fastest, names[i % ids], i / ids + 1);
      step_done(ins);
    }
    step_done(commit);
  }
  double rate = (double)n / (now() - t0);
  sqlite3_finalize(ins);
  sqlite3_finalize(begin);
  sqlite3_finalize(commit);
  sqlite3_close(db);
  free(names);
  return rate;
}

/* Reads every event of `id` in seq order, touching every payload byte
 * (READ_LEAN: by its CRC, checked against the row's). */
static double raw_read(const char *path, int how, const char *id, long *rows_out) {
  sqlite3 *db;
  if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) die(path, "open");
  sqlite3_stmt *st = prepare_or_die(db, how == READ_FASTEST   ? FASTEST_READ
                                        : how == READ_JOURNAL ? JOURNAL_READ
                                                              : LEAN_READ);
  int col = how == READ_FASTEST ? 1 : how == READ_JOURNAL ? 6 : 2;
  long rows = 0;
  unsigned sum = 0;
  double t0 = now();
  sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
  while (sqlite3_step(st) == SQLITE_ROW) {
    const unsigned char *p = sqlite3_column_blob(st, col);
    int len = sqlite3_column_bytes(st, col);
    if (how == READ_LEAN) {
      sum += (unsigned)sqlite3_column_bytes(st, 1); /* the manifest, as a recovery reads it */
      if (crc32c(0, p, (size_t)len) != (uint32_t)sqlite3_column_int64(st, 3)) die(id, "bad CRC");
    } else {
      for (int k = 0; k < len; k++) sum += p[k];
    }
    rows++;
  }
  double rate = (double)rows / (now() - t0);
  if (sum == 1) fprintf(stderr, "(sum)\n"); /* keeps the loop from being optimised away */
  sqlite3_finalize(st);
  sqlite3_close(db);
  *rows_out = rows;
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

static journal_t *open_journal(const char *path) {
  char uri[700];
  snprintf(uri, sizeof uri, "sqlite:%s", path);
  journal_t *j;
  int rc = journal_open(uri, NULL, &j);
  if (rc < 0) die(uri, journal_strerror(rc));
  return j;
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

/* Case (a). Returns events/s; *avg_batch gets writes per journal batch. */
static double journal_actors(const char *path, int nactors, int nthreads, double seconds,
                             double *avg_batch) {
  journal_t *j = open_journal(path);
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

/* Case (b): one actor, one event at a time, waiting for each to be durable. */
static double journal_single(const char *path, double seconds, long max_events) {
  journal_t *j = open_journal(path);
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

/* Case (c): replays one id through an open journal (pages, CRC, callbacks). */
static double journal_read(journal_t *j, int lean, const char *id, long expect_rows) {
  replay_sum s = {0};
  double t0 = now();
  int rc = lean ? journal_replay_lean(j, id, 1, INT64_MAX, -1, sum_payload, &s)
                : journal_replay(j, id, 1, INT64_MAX, -1, sum_payload, &s);
  if (rc < 0) die("replay", journal_strerror(rc));
  double rate = (double)s.n / (now() - t0);
  if (s.n != expect_rows)
    fprintf(stderr, "bench_journal: replayed %ld of %ld rows\n", s.n, expect_rows);
  return rate;
}

/* Case (d): calls per second for one second (or `calls` calls). */
static double journal_calls(journal_t *j, int bounds, long calls) {
  replay_sum s = {0};
  journal_bounds b;
  long n = 0;
  double t0 = now(), t;
  do {
    for (int k = 0; k < 100; k++, n++) {
      int rc = bounds ? journal_bounds_of(j, "actor-0", &b)
                      : journal_replay(j, "actor-0", 1 + n % 1000, INT64_MAX, 1, sum_payload, &s);
      if (rc < 0) die(bounds ? "bounds" : "replay", journal_strerror(rc));
    }
    t = now();
  } while (t - t0 < 1 && n < calls);
  return (double)n / (t - t0);
}

static const char *only;

static int wanted(char c) { return !only || strchr(only, c); }

int main(int argc, char **argv) {
  /* As in the journal: no memory statistics (a global mutex per allocation). */
  sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
  double scale = 1;
  const char *s = argc > 1 ? argv[1] : getenv("BENCH_SCALE");
  if (s) scale = atof(s);
  if (scale <= 0) scale = 1;
  int nactors = getenv("BENCH_ACTORS") ? atoi(getenv("BENCH_ACTORS")) : 1000;
  int nthreads = getenv("BENCH_THREADS") ? atoi(getenv("BENCH_THREADS")) : 4;
  int rounds = getenv("BENCH_ROUNDS") ? atoi(getenv("BENCH_ROUNDS")) : scale < 0.1 ? 1 : 3;
  if (nactors < 1) nactors = 1;
  if (nthreads < 1) nthreads = 1;
  if (nthreads > nactors) nthreads = nactors;
  if (rounds < 1) rounds = 1;
  if (rounds > MAX_ROUNDS) rounds = MAX_ROUNDS;
  for (int i = 0; i < PAYLOAD_LEN; i++) payload[i] = (unsigned char)(i * 37 + 11);
  payload_crc = crc32c(0, payload, PAYLOAD_LEN);

  const char *base = getenv("LORE_TEST_TMP");
  if (!base || !base[0]) base = "/tmp";
  mkdir(base, 0755);
  snprintf(dir, sizeof dir, "%s/bench-journal-XXXXXX", base);
  if (!mkdtemp(dir)) die(dir, strerror(errno));

  long single_rows = (long)(1000 * scale);
  long read_rows = (long)(1000000 * scale);
  double seconds = 3 * scale < 0.2 ? 0.2 : 3 * scale;
  if (single_rows < 10) single_rows = 10;
  if (read_rows < 1000) read_rows = 1000;
  fprintf(
      stderr,
      "bench_journal: scale %g, %d round(s), %d actors on %d threads, %d-byte payloads, in %s\n",
      scale, rounds, nactors, nthreads, PAYLOAD_LEN, dir);
  only = getenv("BENCH_ONLY");

  char name[72], note[96], path[600];
  int a_fast = -1, a_jsch = -1, a_jour = -1, b_fast = -1, b_jour = -1;
  int c_fast = -1, c_jsch = -1, c_jour = -1, c_lean_raw = -1, c_lean = -1;
  int d_replay = -1, d_bounds = -1;
  if (wanted('a')) {
    snprintf(name, sizeof name, "(a) raw fastest schema, %d ids interleaved", nactors);
    a_fast = series_new(name, "rows/s", -1, "transactions as large as the journal's batches");
    a_jsch = series_new("(a) raw journal schema, same", "rows/s", a_fast, "INSERT only");
    snprintf(name, sizeof name, "(a) journal, %d concurrent actors", nactors);
    a_jour = series_new(name, "events/s", a_fast, "");
  }
  if (wanted('b')) {
    b_fast = series_new("(b) raw fastest schema, 1 row per transaction", "rows/s", -1,
                        "one fsync per row");
    b_jour = series_new("(b) journal, 1 actor, 1 event at a time", "events/s", b_fast, "");
  }
  if (wanted('c')) {
    snprintf(name, sizeof name, "(c) raw fastest schema read, %ld rows of one id", read_rows);
    c_fast = series_new(name, "rows/s", -1, "seq, payload");
    c_jsch = series_new("(c) raw journal schema read, same rows", "rows/s", c_fast,
                        "every column a replay reads");
    snprintf(name, sizeof name, "(c) journal_replay, %ld events of one id", read_rows);
    c_jour = series_new(name, "events/s", c_fast, "pages, CRC, callbacks");
    c_lean_raw = series_new("(c) raw journal schema read, a recovery's columns", "rows/s", c_fast,
                            "seq, manifest, payload, crc; CRC checked");
    c_lean = series_new("(c) journal_replay_lean, same rows", "events/s", c_fast,
                        "what a recovery reads; compare the row above");
  }

  if (wanted('d')) {
    d_replay = series_new("(d) journal_replay calls returning 1 event", "calls/s", -1,
                          "fixed cost per replay");
    d_bounds = series_new("(d) journal_bounds_of calls", "calls/s", -1, "");
  }

  /* (c)'s files are written once: reading does not change them. */
  char read_fast[600], read_jour[600];
  journal_t *reader = NULL;
  if (wanted('c') || wanted('d')) {
    new_path(read_fast, sizeof read_fast, "read-fastest");
    new_path(read_jour, sizeof read_jour, "read-journal");
    raw_write(read_fast, 1, read_rows, 10000, 1);
    raw_write(read_jour, 0, read_rows, 10000, 1);
    reader = open_journal(read_jour);
  }

  double avg_batch_sum = 0;
  for (int r = 0; r < rounds; r++) {
    fprintf(stderr, "round %d of %d\n", r + 1, rounds);
    if (wanted('a')) {
      double avg_batch = 0;
      new_path(path, sizeof path, "journal-actors");
      record(a_jour, journal_actors(path, nactors, nthreads, seconds, &avg_batch));
      remove_db(path);
      avg_batch_sum += avg_batch;
      long per_tx = avg_batch >= 1 ? (long)(avg_batch + 0.5) : 1;
      long rows = (long)(table[a_jour].v[table[a_jour].n - 1] * seconds);
      if (rows < 1000) rows = 1000;
      new_path(path, sizeof path, "raw-fastest-batched");
      record(a_fast, raw_write(path, 1, rows, per_tx, nactors));
      remove_db(path);
      new_path(path, sizeof path, "raw-journal-batched");
      record(a_jsch, raw_write(path, 0, rows, per_tx, nactors));
      remove_db(path);
    }
    if (wanted('b')) {
      new_path(path, sizeof path, "journal-single");
      record(b_jour, journal_single(path, seconds, single_rows * 10));
      remove_db(path);
      new_path(path, sizeof path, "raw-fastest-single");
      record(b_fast, raw_write(path, 1, single_rows, 1, 1));
      remove_db(path);
    }
    if (wanted('c')) {
      long got = 0;
      record(c_fast, raw_read(read_fast, READ_FASTEST, "actor-0", &got));
      record(c_jsch, raw_read(read_jour, READ_JOURNAL, "actor-0", &got));
      record(c_jour, journal_read(reader, 0, "actor-0", got));
      record(c_lean_raw, raw_read(read_jour, READ_LEAN, "actor-0", &got));
      record(c_lean, journal_read(reader, 1, "actor-0", got));
    }
    if (wanted('d')) {
      record(d_replay, journal_calls(reader, 0, (long)(1000000 * scale)));
      record(d_bounds, journal_calls(reader, 1, (long)(1000000 * scale)));
    }
  }
  if (wanted('a')) {
    snprintf(note, sizeof note, "avg batch %.0f writes; baseline: fastest", avg_batch_sum / rounds);
    snprintf(table[a_jour].note, sizeof table[a_jour].note, "%s", note);
  }
  if (reader) {
    journal_close(reader);
    remove_db(read_fast);
    remove_db(read_jour);
  }
  print_table(rounds);
  rmdir(dir);
  return 0;
}
