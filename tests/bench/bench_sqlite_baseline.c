/* bench_sqlite_baseline.c: the fastest hand-written SQLite event store, the baseline of
 * tests/bench/persist_bench.lua (figures only, never pass/fail).
 *
 * What a user who skipped Lore would write: its own minimal schema (never
 * Lore's), WAL, synchronous=FULL, SQLite's memory statistics off, prepared
 * statements bound with SQLITE_STATIC. Each event is the MessagePack map Lore
 * stores for the Lua app's events, {type = "added", sku = SKU, qty = QTY} with
 * SKU and QTY chosen from seq exactly as tests/bench/behaviours/cart.lua
 * chooses them, so payloads have the same bytes; ids are "cart-1", "cart-2"...
 *
 *   write  PATH ACTORS EVENTS   a fresh file; EVENTS rounds of one ACTORS-row transaction
 *                               (one event for each actor, as ACTORS actors persisting
 *                               concurrently are group-committed); the file is removed.
 *                               Prints: BASE write rows=N seconds=S payload_bytes=B
 *   fill   PATH ACTORS EVENTS   the same rows in 10,000-row transactions, not timed, kept
 *                               for the read figures. Prints: BASE fill rows=N
 *   wake   PATH ACTORS EVENTS   per id, one prepared SELECT of its events in seq order
 *                               (every payload byte touched, seqs checked).
 *                               Prints: BASE wake actors=N seconds=S
 *   replay PATH ID EVENTS       every event of ID in seq order, as wake does.
 *                               Prints: BASE replay rows=N seconds=S
 * The timed stretch excludes opening the file and preparing statements (Lore's
 * runs have opened their journal too before their clock starts). Errors go to
 * stderr with exit status 1; bad usage exits 2.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char SCHEMA[] =
    "CREATE TABLE events(off INTEGER PRIMARY KEY, pid TEXT NOT NULL, seq INTEGER NOT NULL,"
    " payload BLOB NOT NULL);"
    "CREATE UNIQUE INDEX events_pid_seq ON events(pid, seq);";
static const char INSERT_SQL[] = "INSERT INTO events(pid, seq, payload) VALUES (?1, ?2, ?3)";
static const char SELECT_SQL[] = "SELECT seq, payload FROM events WHERE pid = ?1 ORDER BY seq";

#define FILL_ROWS_PER_TX 10000

/* An id: "cart-" and a long fit with room to spare. */
typedef char cart_id[32];

/* cart.lua's choice of item for its seq-th event: SKUS[seq % 4 + 1], qty seq % 9 + 1. */
static const char *const SKUS[] = {"apple", "pear", "banana", "cherry"};

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *why) {
  fprintf(stderr, "bench_sqlite_baseline: %s: %s\n", what, why);
  exit(1);
}

static int usage(void) {
  fprintf(stderr,
          "usage: bench_sqlite_baseline write|fill|wake PATH ACTORS EVENTS\n"
          "       bench_sqlite_baseline replay PATH ID EVENTS\n");
  return 2;
}

static size_t put_str(unsigned char *p, const char *s) {
  size_t n = strlen(s); /* every string here is a fixstr: shorter than 32 bytes */
  p[0] = (unsigned char)(0xa0 | n);
  memcpy(p + 1, s, n);
  return n + 1;
}

/* The MessagePack map {type = "added", sku = SKU, qty = QTY} of event `seq`. */
static size_t encode_event(unsigned char *p, long long seq) {
  size_t n = 0;
  p[n++] = 0x83; /* fixmap, 3 pairs */
  n += put_str(p + n, "type");
  n += put_str(p + n, "added");
  n += put_str(p + n, "sku");
  n += put_str(p + n, SKUS[seq % 4]);
  n += put_str(p + n, "qty");
  p[n++] = (unsigned char)(seq % 9 + 1); /* positive fixint */
  return n;
}

static void exec_or_die(sqlite3 *db, const char *sql) {
  char *err = NULL;
  if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) die(sql, err ? err : "?");
}

static sqlite3_stmt *prepare_or_die(sqlite3 *db, const char *sql) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) die(sql, sqlite3_errmsg(db));
  return st;
}

static void remove_db(const char *path) {
  char buf[4200];
  unlink(path);
  snprintf(buf, sizeof buf, "%s-wal", path);
  unlink(buf);
  snprintf(buf, sizeof buf, "%s-shm", path);
  unlink(buf);
}

static sqlite3 *open_or_die(const char *path, int flags) {
  sqlite3 *db;
  if (sqlite3_open_v2(path, &db, flags, NULL) != SQLITE_OK) die(path, sqlite3_errmsg(db));
  exec_or_die(db, "PRAGMA journal_mode=WAL");
  exec_or_die(db, "PRAGMA synchronous=FULL");
  return db;
}

/* The ids "cart-1".."cart-N", made before the clock starts. */
static cart_id *make_ids(long actors) {
  cart_id *ids = malloc((size_t)actors * sizeof *ids);
  if (!ids) die("malloc", "out of memory");
  for (long a = 0; a < actors; a++) snprintf(ids[a], sizeof ids[a], "cart-%ld", a + 1);
  return ids;
}

/* Seq-major order: event 1 of every actor, then event 2 of every actor... as
 * actors living side by side write them. Commits every per_tx rows. */
static long long insert_rows(sqlite3 *db, cart_id *ids, long actors, long events, long per_tx) {
  sqlite3_stmt *st = prepare_or_die(db, INSERT_SQL);
  unsigned char payload[64];
  long long bytes = 0, rows = 0;
  for (long seq = 1; seq <= events; seq++) {
    size_t len = encode_event(payload, seq);
    for (long a = 0; a < actors; a++) {
      if (rows % per_tx == 0) exec_or_die(db, "BEGIN IMMEDIATE");
      sqlite3_bind_text(st, 1, ids[a], -1, SQLITE_STATIC);
      sqlite3_bind_int64(st, 2, seq);
      sqlite3_bind_blob(st, 3, payload, (int)len, SQLITE_STATIC);
      if (sqlite3_step(st) != SQLITE_DONE) die("insert", sqlite3_errmsg(db));
      sqlite3_reset(st);
      bytes += (long long)len;
      if (++rows % per_tx == 0) exec_or_die(db, "COMMIT");
    }
  }
  if (rows % per_tx != 0) exec_or_die(db, "COMMIT");
  sqlite3_finalize(st);
  return bytes;
}

static int base_write(const char *path, long actors, long events, int timed) {
  remove_db(path);
  cart_id *ids = make_ids(actors);
  sqlite3 *db = open_or_die(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  exec_or_die(db, SCHEMA);
  double t0 = now();
  long long bytes = insert_rows(db, ids, actors, events, timed ? actors : FILL_ROWS_PER_TX);
  double secs = now() - t0;
  sqlite3_close(db);
  free(ids);
  long long rows = (long long)actors * events;
  if (timed) {
    remove_db(path);
    printf("BASE write rows=%lld seconds=%.6f payload_bytes=%lld\n", rows, secs, bytes);
  } else {
    printf("BASE fill rows=%lld\n", rows);
  }
  return 0;
}

/* Reads every event of `id` in seq order; returns how many (each seq checked). */
static long read_events(sqlite3 *db, sqlite3_stmt *st, const char *id, unsigned *sum) {
  sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
  long rows = 0;
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    if (sqlite3_column_int64(st, 0) != rows + 1) die(id, "a gap in seq");
    const unsigned char *p = sqlite3_column_blob(st, 1);
    int len = sqlite3_column_bytes(st, 1);
    for (int k = 0; k < len; k++) *sum += p[k];
    rows++;
  }
  if (rc != SQLITE_DONE) die("select", sqlite3_errmsg(db));
  sqlite3_reset(st);
  return rows;
}

static int base_read(const char *path, cart_id *ids, long n_ids, long events, int wake) {
  sqlite3 *db = open_or_die(path, SQLITE_OPEN_READWRITE);
  sqlite3_stmt *st = prepare_or_die(db, SELECT_SQL);
  unsigned sum = 0;
  double t0 = now();
  for (long a = 0; a < n_ids; a++)
    if (read_events(db, st, ids[a], &sum) != events) die(ids[a], "not the expected event count");
  double secs = now() - t0;
  sqlite3_finalize(st);
  sqlite3_close(db);
  if (sum == 1) fprintf(stderr, "(sum)\n"); /* keeps the byte loop from being optimised away */
  if (wake)
    printf("BASE wake actors=%ld seconds=%.6f\n", n_ids, secs);
  else
    printf("BASE replay rows=%ld seconds=%.6f\n", events, secs);
  return 0;
}

int main(int argc, char **argv) {
  /* Before SQLite initialises: its memory statistics take a global mutex per allocation. */
  sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
  if (argc != 5) return usage();
  const char *mode = argv[1], *path = argv[2];
  long events = atol(argv[4]);
  if (events < 1) return usage();
  if (strcmp(mode, "replay") == 0) {
    cart_id id[1];
    if (strlen(argv[3]) >= sizeof id[0]) return usage();
    strcpy(id[0], argv[3]);
    return base_read(path, id, 1, events, 0);
  }
  long actors = atol(argv[3]);
  if (actors < 1) return usage();
  if (strcmp(mode, "write") == 0) return base_write(path, actors, events, 1);
  if (strcmp(mode, "fill") == 0) return base_write(path, actors, events, 0);
  if (strcmp(mode, "wake") == 0) {
    cart_id *ids = make_ids(actors);
    int r = base_read(path, ids, actors, events, 1);
    free(ids);
    return r;
  }
  return usage();
}
