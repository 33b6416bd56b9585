/* bench_raw_sqlite.c: raw SQLite baselines for tests/bench/persist_bench.lua (figures only).
 *
 * The same schema and pragmas as the journal (journal_sqlite.c), so the Lua
 * benchmark can set what the runtime does beside what SQLite alone does:
 *
 *   bench_raw_sqlite write PATH ROWS PER_TX IDS PAYLOAD_LEN [full|normal]
 *       a fresh database at PATH (removed again at the end); ROWS inserts,
 *       PER_TX per transaction, spread round-robin over IDS ids (as
 *       interleaved actors would write them), PAYLOAD_LEN-byte payloads.
 *       Prints: RAW write rows=N seconds=S rate=R
 *   bench_raw_sqlite read PATH ID
 *       reads every event of ID in seq order (every column a replay reads,
 *       every payload byte touched), best of 2, read-only.
 *       Prints: RAW read rows=N seconds=S rate=R
 *   bench_raw_sqlite payload PATH
 *       the stored events' average payload size and one manifest.
 *       Prints: RAW payload avg=B rows=N manifest=M
 * Errors go to stderr with exit status 1; bad usage exits 2.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "journal.h"
#include "journal_sqlite.h"

/* The baselines write the journal's own tables (journal_sqlite_schema). */
#define SCHEMA journal_sqlite_schema

static const char INSERT_SQL[] =
    "INSERT INTO events(id, seq, manifest, version, tags, writer, ts, payload, crc)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";

static const int64_t WRITER_ID = 0x123e4567e89b42d3;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *why) {
  fprintf(stderr, "bench_raw_sqlite: %s: %s\n", what, why);
  exit(1);
}

static int usage(void) {
  fprintf(stderr, "usage: bench_raw_sqlite write PATH ROWS PER_TX IDS PAYLOAD_LEN [full|normal]\n"
                  "       bench_raw_sqlite read PATH ID\n"
                  "       bench_raw_sqlite payload PATH\n");
  return 2;
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

static int raw_write(const char *path, long rows, long per_tx, long ids, long payload_len,
                     int full) {
  if (rows < 1 || per_tx < 1 || ids < 1 || payload_len < 0 || payload_len > 1 << 20) return usage();
  remove_db(path);
  unsigned char *payload = malloc((size_t)payload_len + 1);
  int64_t *seqs = calloc((size_t)ids, sizeof *seqs);
  if (!payload || !seqs) die("malloc", "out of memory");
  for (long i = 0; i < payload_len; i++) payload[i] = (unsigned char)(i * 37 + 11);
  uint32_t crc = crc32c(0, payload, (size_t)payload_len);
  sqlite3 *db;
  if (sqlite3_open(path, &db) != SQLITE_OK) die(path, sqlite3_errmsg(db));
  exec_or_die(db, "PRAGMA journal_mode=WAL");
  exec_or_die(db, full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
  exec_or_die(db, "PRAGMA temp_store=MEMORY");
  exec_or_die(db, SCHEMA);
  sqlite3_stmt *st = prepare_or_die(db, INSERT_SQL);
  char id[32];
  double t0 = now();
  for (long i = 0; i < rows;) {
    exec_or_die(db, "BEGIN IMMEDIATE");
    for (long k = 0; k < per_tx && i < rows; k++, i++) {
      long a = i % ids;
      snprintf(id, sizeof id, "actor-%ld", a);
      sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
      sqlite3_bind_int64(st, 2, ++seqs[a]);
      sqlite3_bind_text(st, 3, "tick", -1, SQLITE_STATIC);
      sqlite3_bind_int(st, 4, 1);
      sqlite3_bind_text(st, 5, "", -1, SQLITE_STATIC);
      sqlite3_bind_int64(st, 6, WRITER_ID);
      sqlite3_bind_int64(st, 7, 1700000000000 + i);
      sqlite3_bind_blob(st, 8, payload, (int)payload_len, SQLITE_STATIC);
      sqlite3_bind_int64(st, 9, crc);
      if (sqlite3_step(st) != SQLITE_DONE) die("insert", sqlite3_errmsg(db));
      sqlite3_reset(st);
    }
    exec_or_die(db, "COMMIT");
  }
  double secs = now() - t0;
  sqlite3_finalize(st);
  sqlite3_close(db);
  remove_db(path);
  free(payload);
  free(seqs);
  printf("RAW write rows=%ld seconds=%.6f rate=%.1f\n", rows, secs, (double)rows / secs);
  return 0;
}

static double read_once(sqlite3 *db, const char *id, long *rows_out) {
  sqlite3_stmt *st =
      prepare_or_die(db, "SELECT seq, manifest, version, tags, writer, ts, payload, crc"
                         " FROM events WHERE id = ?1 ORDER BY seq");
  sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
  long rows = 0;
  unsigned sum = 0;
  double t0 = now();
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    const unsigned char *p = sqlite3_column_blob(st, 6);
    int len = sqlite3_column_bytes(st, 6);
    for (int k = 0; k < len; k++) sum += p[k];
    rows++;
  }
  double secs = now() - t0;
  if (rc != SQLITE_DONE) die("read", sqlite3_errmsg(db));
  sqlite3_finalize(st);
  if (sum == 1) fprintf(stderr, "(sum)\n"); /* keeps the loop from being optimised away */
  *rows_out = rows;
  return secs;
}

static int raw_read(const char *path, const char *id) {
  sqlite3 *db;
  if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
    die(path, sqlite3_errmsg(db));
  long rows = 0;
  double a = read_once(db, id, &rows), b = read_once(db, id, &rows);
  double secs = a < b ? a : b;
  sqlite3_close(db);
  if (rows == 0) die(id, "no rows");
  printf("RAW read rows=%ld seconds=%.6f rate=%.1f\n", rows, secs, (double)rows / secs);
  return 0;
}

static int raw_payload(const char *path) {
  sqlite3 *db;
  if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
    die(path, sqlite3_errmsg(db));
  sqlite3_stmt *st = prepare_or_die(
      db, "SELECT avg(length(payload)), count(*), (SELECT manifest FROM events LIMIT 1) FROM events");
  if (sqlite3_step(st) != SQLITE_ROW) die("payload", sqlite3_errmsg(db));
  const unsigned char *m = sqlite3_column_text(st, 2);
  printf("RAW payload avg=%.1f rows=%lld manifest=%s\n", sqlite3_column_double(st, 0),
         (long long)sqlite3_column_int64(st, 1), m ? (const char *)m : "");
  sqlite3_finalize(st);
  sqlite3_close(db);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 3) return usage();
  const char *mode = argv[1], *path = argv[2];
  if (strcmp(mode, "write") == 0 && (argc == 7 || argc == 8)) {
    int full = argc == 7 || strcmp(argv[7], "normal") != 0;
    return raw_write(path, atol(argv[3]), atol(argv[4]), atol(argv[5]), atol(argv[6]), full);
  }
  if (strcmp(mode, "read") == 0 && argc == 4) return raw_read(path, argv[3]);
  if (strcmp(mode, "payload") == 0 && argc == 3) return raw_payload(path);
  return usage();
}
