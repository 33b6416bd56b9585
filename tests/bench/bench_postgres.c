/* bench_postgres.c: the fastest hand-written libpq event store, the baseline of
 * tests/bench/postgres_bench.lua (figures only, never pass/fail).
 *
 * What a user who skipped Lore would write on PostgreSQL: its own minimal table
 * (never Lore's), events(off bigserial primary key, pid, seq, payload bytea,
 * unique (pid, seq)), binary parameters and results, and the best batching a
 * program can do: each batch of rows is one statement in autocommit, so one
 * transaction and one round trip, either a prepared multi-row INSERT
 * ("insert") or a binary COPY ("copy"). Each event is the MessagePack map Lore
 * stores for tests/bench/behaviours/cart.lua's events, {type = "added", sku =
 * SKU, qty = QTY}, chosen from seq as cart.lua does: the same payload bytes.
 * Ids are "cart-1", "cart-2", ...
 *
 *   write  CONNINFO SCHEMA ACTORS EVENTS [insert|copy]
 *            a fresh schema; EVENTS transactions of ACTORS rows (one event of each
 *            actor, as ACTORS actors persisting at once are group-committed);
 *            Prints: BASE write rows=N seconds=S method=M
 *   fill   CONNINFO SCHEMA ID EVENTS
 *            a fresh schema with EVENTS events of ID (COPY, not timed)
 *   replay CONNINFO SCHEMA ID EVENTS
 *            every event of ID in seq order, one query, binary rows, every payload
 *            byte touched and seqs checked. Prints: BASE replay rows=N seconds=S
 *   drop   CONNINFO SCHEMA
 * The timed stretch excludes connecting and preparing (Lore's clock starts with
 * its journal open too). Errors go to stderr with exit status 1; bad usage 2.
 */
#include <libpq-fe.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const SKUS[] = {"apple", "pear", "banana", "cherry"};

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *why) {
  fprintf(stderr, "bench_postgres: %s: %s\n", what, why);
  exit(1);
}

static int usage(void) {
  fprintf(stderr,
          "usage: bench_postgres write CONNINFO SCHEMA ACTORS EVENTS [insert|copy]\n"
          "       bench_postgres fill|replay CONNINFO SCHEMA ID EVENTS\n"
          "       bench_postgres drop CONNINFO SCHEMA\n");
  return 2;
}

static size_t put_str(unsigned char *p, const char *s) {
  size_t n = strlen(s); /* every string here is a fixstr */
  p[0] = (unsigned char)(0xa0 | n);
  memcpy(p + 1, s, n);
  return n + 1;
}

/* The MessagePack map {type = "added", sku = SKU, qty = QTY} of event `seq`. */
static size_t encode_event(unsigned char *p, long long seq) {
  size_t n = 0;
  p[n++] = 0x83;
  n += put_str(p + n, "type");
  n += put_str(p + n, "added");
  n += put_str(p + n, "sku");
  n += put_str(p + n, SKUS[seq % 4]);
  n += put_str(p + n, "qty");
  p[n++] = (unsigned char)(seq % 9 + 1);
  return n;
}

static void be64(unsigned char *out, int64_t v) {
  uint64_t u = (uint64_t)v;
  for (int i = 7; i >= 0; i--) {
    out[i] = (unsigned char)u;
    u >>= 8;
  }
}

static int64_t get64(const char *p) {
  const unsigned char *u = (const unsigned char *)p;
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = v << 8 | u[i];
  return (int64_t)v;
}

static void check(PGconn *c, PGresult *r, const char *what) {
  ExecStatusType st = PQresultStatus(r);
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_COPY_IN)
    die(what, r ? PQresultErrorMessage(r) : PQerrorMessage(c));
}

static void exec_or_die(PGconn *c, const char *sql) {
  PGresult *r = PQexec(c, sql);
  check(c, r, sql);
  PQclear(r);
}

static PGconn *connect_or_die(const char *conninfo, const char *schema) {
  PGconn *c = PQconnectdb(conninfo);
  if (PQstatus(c) != CONNECTION_OK) die("connect", PQerrorMessage(c));
  exec_or_die(c, "SET client_min_messages = warning");
  char sql[256];
  snprintf(sql, sizeof sql, "SET search_path TO \"%s\"", schema);
  exec_or_die(c, sql);
  return c;
}

static void fresh_schema(PGconn *c, const char *schema) {
  char sql[512];
  snprintf(sql, sizeof sql,
           "DROP SCHEMA IF EXISTS \"%s\" CASCADE; CREATE SCHEMA \"%s\";"
           "CREATE TABLE events(off bigserial PRIMARY KEY, pid text NOT NULL,"
           " seq bigint NOT NULL, payload bytea NOT NULL, UNIQUE (pid, seq))",
           schema, schema);
  exec_or_die(c, sql);
}

/* ---- writing ---- */

/* One prepared INSERT of `rows` rows: ($1, $2, $3), ($4, $5, $6), ... */
static void prepare_insert(PGconn *c, long rows) {
  size_t cap = 64 + (size_t)rows * 48;
  char *sql = malloc(cap);
  if (!sql) die("malloc", "out of memory");
  size_t n = (size_t)snprintf(sql, cap, "INSERT INTO events(pid, seq, payload) VALUES ");
  for (long i = 0; i < rows; i++)
    n += (size_t)snprintf(sql + n, cap - n, "%s($%ld, $%ld, $%ld)", i ? ", " : "", 3 * i + 1,
                          3 * i + 2, 3 * i + 3);
  PGresult *r = PQprepare(c, "ins", sql, 0, NULL);
  check(c, r, "prepare");
  PQclear(r);
  free(sql);
}

typedef struct batch {
  long rows;
  char (*ids)[32];
  unsigned char (*seqs)[8];
  unsigned char (*payloads)[32];
  int *payload_lens;
  const char **values;
  int *lengths, *formats;
  unsigned char *copy; /* the COPY body of one batch */
  size_t copy_len;
} batch;

static void batch_init(batch *b, long rows) {
  b->rows = rows;
  b->ids = calloc((size_t)rows, sizeof *b->ids);
  b->seqs = calloc((size_t)rows, sizeof *b->seqs);
  b->payloads = calloc((size_t)rows, sizeof *b->payloads);
  b->payload_lens = calloc((size_t)rows, sizeof *b->payload_lens);
  b->values = calloc((size_t)rows * 3, sizeof *b->values);
  b->lengths = calloc((size_t)rows * 3, sizeof *b->lengths);
  b->formats = calloc((size_t)rows * 3, sizeof *b->formats);
  b->copy = malloc(19 + (size_t)rows * 128 + 2);
  if (!b->ids || !b->seqs || !b->payloads || !b->payload_lens || !b->values || !b->lengths ||
      !b->formats || !b->copy)
    die("malloc", "out of memory");
}

static void batch_free(batch *b) {
  free(b->ids);
  free(b->seqs);
  free(b->payloads);
  free(b->payload_lens);
  free(b->values);
  free(b->lengths);
  free(b->formats);
  free(b->copy);
}

static void put16(unsigned char **p, int v) {
  (*p)[0] = (unsigned char)(v >> 8);
  (*p)[1] = (unsigned char)v;
  *p += 2;
}

static void put32(unsigned char **p, int32_t v) {
  uint32_t u = (uint32_t)v;
  (*p)[0] = (unsigned char)(u >> 24);
  (*p)[1] = (unsigned char)(u >> 16);
  (*p)[2] = (unsigned char)(u >> 8);
  (*p)[3] = (unsigned char)u;
  *p += 4;
}

/* The rows of batch `round` (event round+1 of actors 1..rows, or of `id`), as
 * parameters and as a binary COPY body: made before the clock starts. */
static void batch_fill(batch *b, long round, const char *id, long first_seq) {
  static const unsigned char header[] = {'P', 'G', 'C', 'O', 'P', 'Y', '\n', 0xff, '\r', '\n', 0};
  unsigned char *p = b->copy;
  memcpy(p, header, sizeof header);
  p += sizeof header;
  put32(&p, 0); /* flags */
  put32(&p, 0); /* header extension */
  for (long a = 0; a < b->rows; a++) {
    long long seq = id ? first_seq + a : round + 1;
    if (id)
      snprintf(b->ids[a], sizeof b->ids[a], "%s", id);
    else
      snprintf(b->ids[a], sizeof b->ids[a], "cart-%ld", a + 1);
    be64(b->seqs[a], seq);
    b->payload_lens[a] = (int)encode_event(b->payloads[a], seq);
    b->values[3 * a] = b->ids[a];
    b->values[3 * a + 1] = (const char *)b->seqs[a];
    b->values[3 * a + 2] = (const char *)b->payloads[a];
    b->lengths[3 * a + 1] = 8;
    b->lengths[3 * a + 2] = b->payload_lens[a];
    b->formats[3 * a + 1] = b->formats[3 * a + 2] = 1;
    put16(&p, 3);
    int idlen = (int)strlen(b->ids[a]);
    put32(&p, idlen);
    memcpy(p, b->ids[a], (size_t)idlen);
    p += idlen;
    put32(&p, 8);
    memcpy(p, b->seqs[a], 8);
    p += 8;
    put32(&p, b->payload_lens[a]);
    memcpy(p, b->payloads[a], (size_t)b->payload_lens[a]);
    p += b->payload_lens[a];
  }
  put16(&p, -1); /* trailer */
  b->copy_len = (size_t)(p - b->copy);
}

static void write_insert(PGconn *c, batch *b) {
  PGresult *r = PQexecPrepared(c, "ins", (int)b->rows * 3, b->values, b->lengths, b->formats, 0);
  check(c, r, "insert");
  PQclear(r);
}

static void write_copy(PGconn *c, batch *b) {
  PGresult *r = PQexec(c, "COPY events(pid, seq, payload) FROM STDIN (FORMAT binary)");
  check(c, r, "copy");
  PQclear(r);
  if (PQputCopyData(c, (const char *)b->copy, (int)b->copy_len) != 1 || PQputCopyEnd(c, NULL) != 1)
    die("copy", PQerrorMessage(c));
  r = PQgetResult(c);
  check(c, r, "copy end");
  PQclear(r);
  while ((r = PQgetResult(c))) PQclear(r);
}

static int cmd_write(const char *conninfo, const char *schema, long actors, long events,
                     const char *method) {
  int copy = strcmp(method, "copy") == 0;
  if (!copy && strcmp(method, "insert") != 0) return usage();
  PGconn *c = connect_or_die(conninfo, schema);
  fresh_schema(c, schema);
  if (!copy) prepare_insert(c, actors);
  batch *b = calloc((size_t)events, sizeof *b);
  if (!b) die("malloc", "out of memory");
  for (long e = 0; e < events; e++) {
    batch_init(&b[e], actors);
    batch_fill(&b[e], e, NULL, 0);
  }
  double t0 = now();
  for (long e = 0; e < events; e++) (copy ? write_copy : write_insert)(c, &b[e]);
  double secs = now() - t0;
  for (long e = 0; e < events; e++) batch_free(&b[e]);
  free(b);
  printf("BASE write rows=%ld seconds=%.6f method=%s\n", actors * events, secs, method);
  PQfinish(c);
  return 0;
}

static int cmd_fill(const char *conninfo, const char *schema, const char *id, long events) {
  PGconn *c = connect_or_die(conninfo, schema);
  fresh_schema(c, schema);
  enum { PER_COPY = 10000 };
  batch b;
  batch_init(&b, PER_COPY);
  for (long done = 0; done < events; done += b.rows) {
    b.rows = events - done < PER_COPY ? events - done : PER_COPY;
    batch_fill(&b, 0, id, done + 1);
    write_copy(c, &b);
  }
  batch_free(&b);
  exec_or_die(c, "ANALYZE events");
  printf("BASE fill rows=%ld\n", events);
  PQfinish(c);
  return 0;
}

static int cmd_replay(const char *conninfo, const char *schema, const char *id, long events) {
  PGconn *c = connect_or_die(conninfo, schema);
  PGresult *r =
      PQprepare(c, "sel", "SELECT seq, payload FROM events WHERE pid = $1 ORDER BY seq", 0, NULL);
  check(c, r, "prepare");
  PQclear(r);
  const char *v[] = {id};
  double t0 = now();
  r = PQexecPrepared(c, "sel", 1, v, NULL, NULL, 1);
  check(c, r, "select");
  long rows = PQntuples(r);
  unsigned sum = 0;
  for (long i = 0; i < rows; i++) {
    if (get64(PQgetvalue(r, (int)i, 0)) != i + 1) die("replay", "seqs out of order");
    const unsigned char *p = (const unsigned char *)PQgetvalue(r, (int)i, 1);
    int n = PQgetlength(r, (int)i, 1);
    for (int k = 0; k < n; k++) sum += p[k];
  }
  double secs = now() - t0;
  PQclear(r);
  if (rows != events) die("replay", "wrong number of rows");
  printf("BASE replay rows=%ld seconds=%.6f checksum=%u\n", rows, secs, sum);
  PQfinish(c);
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 4 && strcmp(argv[1], "drop") == 0) {
    PGconn *c = PQconnectdb(argv[2]);
    if (PQstatus(c) != CONNECTION_OK) die("connect", PQerrorMessage(c));
    exec_or_die(c, "SET client_min_messages = warning");
    char sql[256];
    snprintf(sql, sizeof sql, "DROP SCHEMA IF EXISTS \"%s\" CASCADE", argv[3]);
    exec_or_die(c, sql);
    PQfinish(c);
    return 0;
  }
  if (argc < 6) return usage();
  const char *cmd = argv[1], *conninfo = argv[2], *schema = argv[3];
  long n = strtol(argv[5], NULL, 10);
  if (n < 1) return usage();
  if (strcmp(cmd, "write") == 0) {
    long actors = strtol(argv[4], NULL, 10);
    if (actors < 1) return usage();
    return cmd_write(conninfo, schema, actors, n, argc > 6 ? argv[6] : "insert");
  }
  if (strcmp(cmd, "fill") == 0) return cmd_fill(conninfo, schema, argv[4], n);
  if (strcmp(cmd, "replay") == 0) return cmd_replay(conninfo, schema, argv[4], n);
  return usage();
}
