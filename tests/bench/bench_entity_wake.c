/* bench_entity_wake.c: the baseline of entities_bench.lua's wake-up latency (figures only).
 *
 *   bench_entity_wake PATH IDS SAMPLE
 *
 * PATH is a file `bench_sqlite_baseline fill PATH IDS EVENTS` wrote (ids cart-1..cart-IDS,
 * the event bytes entities_bench.lua's carts persist). Reads the events of SAMPLE ids
 * spread evenly over them, the ids entities_bench.lua wakes (cart-1, then every
 * IDS / SAMPLE-th), each with one prepared SELECT in seq order, every payload byte
 * touched, and times each read on its own: what waking an entity costs at the least,
 * one stream read by hand from a connection already open.
 * Prints: SAMPLES s1 s2 ... (seconds per read). Errors: exit 1; bad usage: exit 2.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static const char SELECT_SQL[] = "SELECT seq, payload FROM events WHERE pid = ?1 ORDER BY seq";

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(sqlite3 *db, const char *what) {
  fprintf(stderr, "bench_entity_wake: %s: %s\n", what, db ? sqlite3_errmsg(db) : "?");
  exit(1);
}

int main(int argc, char **argv) {
  sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
  if (argc != 4) {
    fprintf(stderr, "usage: bench_entity_wake PATH IDS SAMPLE\n");
    return 2;
  }
  long ids = atol(argv[2]), sample = atol(argv[3]);
  if (ids < 1 || sample < 1 || sample > ids) {
    fprintf(stderr, "usage: bench_entity_wake PATH IDS SAMPLE (1 <= SAMPLE <= IDS)\n");
    return 2;
  }
  sqlite3 *db;
  if (sqlite3_open_v2(argv[1], &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) die(db, argv[1]);
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db, SELECT_SQL, -1, &st, NULL) != SQLITE_OK) die(db, SELECT_SQL);
  double *secs = malloc((size_t)sample * sizeof *secs);
  if (!secs) die(NULL, "out of memory");
  unsigned sum = 0;
  printf("SAMPLES");
  for (long k = 0; k < sample; k++) {
    char id[32];
    snprintf(id, sizeof id, "cart-%ld", 1 + k * (ids / sample));
    double t0 = now();
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    long rows = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
      if (sqlite3_column_int64(st, 0) != rows + 1) die(NULL, "a gap in seq");
      const unsigned char *p = sqlite3_column_blob(st, 1);
      int len = sqlite3_column_bytes(st, 1);
      for (int i = 0; i < len; i++) sum += p[i];
      rows++;
    }
    if (rc != SQLITE_DONE) die(db, "select");
    sqlite3_reset(st);
    secs[k] = now() - t0;
    if (rows == 0) die(NULL, "an id without events (was the file filled with IDS ids?)");
  }
  for (long k = 0; k < sample; k++) printf(" %.9f", secs[k]);
  printf("\n");
  if (sum == 1) fprintf(stderr, "(sum)\n"); /* keeps the byte loop from being optimised away */
  free(secs);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return 0;
}
