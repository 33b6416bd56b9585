/*
 * fuzz_journal_row.c: one stored journal row, damaged, through recovery's read path.
 *
 * Once per process: a sqlite journal in a temp dir gets one valid event through
 * journal_submit; the NOT NULL constraints of its table are then dropped (as
 * a database written by another tool, or damaged, could have it), so NULL is
 * one of the values a column can hold. Per input: that row's columns are
 * overwritten with fuzzed values of fuzzed SQL types, the id is replayed with
 * journal_replay, and every payload handed back goes through codec_decode as
 * recovery does. The journal must answer events or JOURNAL_ECORRUPT, and never
 * hand out a payload whose CRC does not match.
 *
 * Input: for each column in COLUMNS' order, a selector byte (its value % 8):
 *   0 the journal's own value   1 NULL
 *   2 integer: 8 bytes, little-endian   3 real: 8 bytes, a double
 *   4 text, 5 blob: a length byte, then that many bytes; for the payload (the
 *     last column) the rest of the input instead
 *   6 integer: 1 byte, signed (small numbers: seq 1, version 0, ...)
 *   7 crc: the CRC32C of the payload as stored (as an integer); other columns:
 *     the journal's own value bound as text
 * Bytes past the end of the input read as zeros.
 */
#include <lauxlib.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codec.h"
#include "crc32c.h"
#include "journal.h"
#include "ref.h"

#define ROW_ID "fuzz-row"

/* The columns the fuzzer rewrites, by name only, so a change of the journal's
 * schema (other columns, other constraints) needs no change here. */
static const char *const COLUMNS[] = {"seq", "ts", "version", "manifest", "tags", "crc", "payload"};
enum { N_COLUMNS = sizeof COLUMNS / sizeof COLUMNS[0], CRC_COLUMN = 5, PAYLOAD_COLUMN = 6 };

static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "fuzz_journal_row: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  abort();
}

static const log_sink quiet = {.level = LOG_OFF};

static struct {
  char dir[4096], path[4200];
  journal_t *journal;
  sqlite3 *db;                        /* our own connection, for damaging the row */
  sqlite3_stmt *update;               /* sets COLUMNS (?1..?7) of the row whose rowid is ?8 */
  sqlite3_int64 rowid;                /* not (id, seq): seq is one of the columns rewritten */
  sqlite3_value *original[N_COLUMNS]; /* the row as journal_submit wrote it */
  lua_State *L;
} fx;

/* ---------------------------------------------------------------- the SQL */

/* Every statement that knows the journal's table is here. Keeps the row's
 * values as written, drops the NOT NULL constraints of `events` (the stored
 * records do not change, only the table's declaration, which connections read
 * when they open) and prepares the UPDATE that rewrites the row. The row is
 * found by its rowid: an UPDATE of (id, seq) that finds its row through
 * (id, seq) makes SQLite collect the rows in a temporary table first, which
 * costs a page cache per input. */
static void prepare_row_sql(void) {
  char sql[512];
  int n = snprintf(sql, sizeof sql, "SELECT rowid, ");
  for (int i = 0; i < N_COLUMNS; i++)
    n += snprintf(sql + n, sizeof sql - n, "%s%s", i ? ", " : "", COLUMNS[i]);
  snprintf(sql + n, sizeof sql - n, " FROM events WHERE id = '%s'", ROW_ID);
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(fx.db, sql, -1, &st, NULL) != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW)
    die("reading the written row: %s", sqlite3_errmsg(fx.db));
  fx.rowid = sqlite3_column_int64(st, 0);
  for (int i = 0; i < N_COLUMNS; i++)
    if (!(fx.original[i] = sqlite3_value_dup(sqlite3_column_value(st, i + 1))))
      die("out of memory");
  sqlite3_finalize(st);

  char *msg = NULL;
  if (sqlite3_exec(fx.db,
                   "PRAGMA writable_schema = ON;"
                   "UPDATE sqlite_schema SET sql = replace(sql, 'NOT NULL', '')"
                   " WHERE type = 'table' AND name = 'events';"
                   "PRAGMA writable_schema = OFF;",
                   NULL, NULL, &msg) != SQLITE_OK)
    die("dropping NOT NULL: %s", msg);
  /* This connection keeps the declaration it parsed: a new one reads the new. */
  sqlite3_close(fx.db);
  if (sqlite3_open(fx.path, &fx.db) != SQLITE_OK ||
      sqlite3_exec(fx.db, "PRAGMA synchronous = OFF", NULL, NULL, NULL) != SQLITE_OK)
    die("reopening %s: %s", fx.path, sqlite3_errmsg(fx.db));

  n = snprintf(sql, sizeof sql, "UPDATE events SET ");
  for (int i = 0; i < N_COLUMNS; i++)
    n += snprintf(sql + n, sizeof sql - n, "%s%s = ?%d", i ? ", " : "", COLUMNS[i], i + 1);
  snprintf(sql + n, sizeof sql - n, " WHERE rowid = ?%d", N_COLUMNS + 1);
  if (sqlite3_prepare_v2(fx.db, sql, -1, &fx.update, NULL) != SQLITE_OK)
    die("preparing %s: %s", sql, sqlite3_errmsg(fx.db));
}

/* ---------------------------------------------------------------- setup */

static void on_written(journal_write *w, int status) { w->status = status; }

/* Writes the one valid event, then closes the journal so that the schema
 * change is read by every connection opened after it. */
static void write_original_row(void) {
  static const char payload[] =
      "\x82\xa1n\x01\xa4tags\x92\xa1"
      "a\xa1"
      "b"; /* {n=1,tags={"a","b"}} */
  journal_options opt = {.synchronous_full = 0, .log = &quiet};
  char uri[4300];
  snprintf(uri, sizeof uri, "sqlite:%s", fx.path);
  journal_t *j;
  int rc = journal_open(uri, &opt, &j);
  if (rc) die("journal_open %s: %s", uri, journal_strerror(rc));
  journal_event ev = {.id = ROW_ID,
                      .seq = 1,
                      .manifest = "Fuzzed",
                      .version = 1,
                      .tags = "a\nb",
                      .writer = 1,
                      .timestamp_ms = 1700000000000,
                      .payload = payload,
                      .payload_len = sizeof payload - 1};
  journal_event_seal(&ev);
  journal_write w = {
      .kind = JOURNAL_WRITE_EVENTS, .events = &ev, .count = 1, .done = on_written, .status = 1};
  if ((rc = journal_submit(j, &w))) die("journal_submit: %s", journal_strerror(rc));
  journal_close(j); /* finishes the write first */
  if (w.status) die("the original event was not written: %s", journal_strerror(w.status));
}

static void remove_files(void) {
  static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
  for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
    char p[4300];
    snprintf(p, sizeof p, "%s%s", fx.path, suffixes[i]);
    unlink(p);
  }
  rmdir(fx.dir);
}

static void teardown(void) {
  if (fx.journal) journal_close(fx.journal);
  sqlite3_finalize(fx.update);
  for (int i = 0; i < N_COLUMNS; i++) sqlite3_value_free(fx.original[i]);
  sqlite3_close(fx.db);
  if (fx.L) lua_close(fx.L);
  remove_files();
}

static void setup(void) {
  const char *tmp = getenv("TMPDIR");
  snprintf(fx.dir, sizeof fx.dir, "%s/lore-fuzz-journal.XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
  if (!mkdtemp(fx.dir)) die("mkdtemp %s failed", fx.dir);
  snprintf(fx.path, sizeof fx.path, "%s/journal.db", fx.dir);
  atexit(teardown);
  write_original_row();
  if (sqlite3_open(fx.path, &fx.db) != SQLITE_OK) die("sqlite3_open %s", fx.path);
  prepare_row_sql();
  journal_options opt = {.synchronous_full = 0, .log = &quiet};
  char uri[4300];
  snprintf(uri, sizeof uri, "sqlite:%s", fx.path);
  int rc = journal_open(uri, &opt, &fx.journal);
  if (rc) die("reopening the journal: %s", journal_strerror(rc));
  if (!(fx.L = luaL_newstate())) die("out of memory");
  ref_init(fx.L);
}

/* ---------------------------------------------------------------- one input */

typedef struct {
  const uint8_t *p;
  size_t len, off;
} input;

static uint8_t next_byte(input *in) { return in->off < in->len ? in->p[in->off++] : 0; }

static void next_bytes(input *in, void *out, size_t n) {
  for (size_t i = 0; i < n; i++) ((uint8_t *)out)[i] = next_byte(in);
}

/* A byte string inside the input: `n` bytes from here (fewer if it ends). */
static const uint8_t *take(input *in, size_t n, size_t *got) {
  const uint8_t *p = in->p + in->off;
  *got = n < in->len - in->off ? n : in->len - in->off;
  in->off += *got;
  return p;
}

/* Binds parameter i + 1 as the input says; payload and payload_len receive the
 * bytes a blob or text payload is stored with. */
static void bind_column(input *in, int i, const void **payload, size_t *payload_len) {
  sqlite3_stmt *st = fx.update;
  int sel = next_byte(in) % 8;
  size_t n;
  const uint8_t *bytes;
  switch (sel) {
    case 0:
      sqlite3_bind_value(st, i + 1, fx.original[i]);
      if (i == PAYLOAD_COLUMN) {
        *payload = sqlite3_value_blob(fx.original[i]);
        *payload_len = (size_t)sqlite3_value_bytes(fx.original[i]);
      }
      return;
    case 1:
      sqlite3_bind_null(st, i + 1);
      return;
    case 2: {
      uint8_t b[8];
      next_bytes(in, b, 8);
      uint64_t v = 0;
      for (int k = 7; k >= 0; k--) v = (v << 8) | b[k];
      sqlite3_bind_int64(st, i + 1, (sqlite3_int64)v);
      return;
    }
    case 3: {
      double d;
      next_bytes(in, &d, sizeof d);
      sqlite3_bind_double(st, i + 1, d);
      return;
    }
    case 4:
    case 5:
      bytes = take(in, i == PAYLOAD_COLUMN ? in->len : next_byte(in), &n);
      if (sel == 4)
        sqlite3_bind_text(st, i + 1, (const char *)bytes, (int)n, SQLITE_STATIC);
      else
        sqlite3_bind_blob(st, i + 1, n ? (const void *)bytes : "", (int)n, SQLITE_STATIC);
      if (i == PAYLOAD_COLUMN) *payload = bytes, *payload_len = n;
      return;
    case 6:
      sqlite3_bind_int64(st, i + 1, (int8_t)next_byte(in));
      return;
    default:
      if (i == CRC_COLUMN) return; /* bound once the payload is known */
      bytes = sqlite3_value_text(fx.original[i]);
      n = (size_t)sqlite3_value_bytes(fx.original[i]);
      sqlite3_bind_text(st, i + 1, (const char *)bytes, (int)n, SQLITE_STATIC);
      if (i == PAYLOAD_COLUMN) *payload = bytes, *payload_len = n;
      return;
  }
}

/* Rewrites the row; 0, or -1 if SQLite refused the values (the row is then
 * put back as it was written, so no input depends on the one before). */
static int rewrite_row(const uint8_t *data, size_t size) {
  input in = {data, size, 0};
  const void *payload = "";
  size_t payload_len = 0;
  int crc_selector = 0;
  sqlite3_reset(fx.update);
  sqlite3_clear_bindings(fx.update);
  for (int i = 0; i < N_COLUMNS; i++) {
    if (i == CRC_COLUMN) crc_selector = in.off < in.len ? in.p[in.off] % 8 : 0;
    bind_column(&in, i, &payload, &payload_len);
  }
  if (crc_selector == 7)
    sqlite3_bind_int64(fx.update, CRC_COLUMN + 1, crc32c(0, payload, payload_len));
  sqlite3_bind_int64(fx.update, N_COLUMNS + 1, fx.rowid);
  if (sqlite3_step(fx.update) == SQLITE_DONE && sqlite3_changes(fx.db) == 1) return 0;
  sqlite3_reset(fx.update);
  sqlite3_clear_bindings(fx.update);
  for (int i = 0; i < N_COLUMNS; i++) sqlite3_bind_value(fx.update, i + 1, fx.original[i]);
  sqlite3_bind_int64(fx.update, N_COLUMNS + 1, fx.rowid);
  if (sqlite3_step(fx.update) != SQLITE_DONE || sqlite3_changes(fx.db) != 1)
    die("cannot restore the row: %s", sqlite3_errmsg(fx.db));
  return -1;
}

typedef struct {
  int events;
  int lean;    /* read by journal_replay_lean: no writer */
  int verbose; /* LORE_FUZZ_VERBOSE=1: print what the replay hands back (for triage) */
} replay_seen;

static int on_event(const journal_event *ev, void *ud) {
  replay_seen *seen = ud;
  seen->events++;
  if (!ev->id || strcmp(ev->id, ROW_ID) != 0) die("an event of another id");
  if (ev->seq < 1) die("an event with seq %lld, outside the range asked for", (long long)ev->seq);
  if (!ev->manifest || !ev->tags || (!seen->lean && !ev->writer))
    die("an event with a NULL string");
  if (!ev->payload && ev->payload_len) die("a NULL payload of %zu bytes", ev->payload_len);
  uint32_t crc = crc32c(0, ev->payload, ev->payload_len);
  if (crc != ev->crc32c)
    die("a payload whose CRC does not match: stored %08x, computed %08x", ev->crc32c, crc);
  /* As recovery does: the payload becomes a Lua value, or the replay fails. */
  char err[CODEC_ERR_MAX] = "";
  lua_State *L = fx.L;
  int decoded = codec_decode(L, ev->payload, ev->payload_len, err, sizeof err) == 0;
  if (lua_gettop(L) != decoded)
    die("%d values on the stack after a %s decode", lua_gettop(L), decoded ? "good" : "failed");
  lua_settop(L, 0);
  if (seen->verbose)
    fprintf(stderr,
            "event: seq %lld ts %lld version %d manifest \"%s\" tags \"%s\" payload %zu bytes, "
            "%s%s\n",
            (long long)ev->seq, (long long)ev->timestamp_ms, (int)ev->version, ev->manifest,
            ev->tags, ev->payload_len, decoded ? "decoded" : "not decoded: ", err);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!fx.journal) setup();
  if (rewrite_row(data, size) != 0) return -1; /* not worth keeping in the corpus */
  static int verbose = -1;
  if (verbose < 0) verbose = getenv("LORE_FUZZ_VERBOSE") && atoi(getenv("LORE_FUZZ_VERBOSE"));
  replay_seen seen = {.events = 0, .verbose = verbose};
  int rc = journal_replay(fx.journal, ROW_ID, 1, INT64_MAX, -1, on_event, &seen);
  if (verbose) fprintf(stderr, "replay: %d event(s), %s\n", seen.events, journal_strerror(rc));
  if (rc != 0 && rc != JOURNAL_ECORRUPT)
    die("journal_replay answered %d (%s), not events or JOURNAL_ECORRUPT", rc,
        journal_strerror(rc));
  if (seen.events > 1) die("one row replayed as %d events", seen.events);
  /* Recovery's lean read (no meta) of the same row: the same answers. */
  replay_seen lean = {.events = 0, .lean = 1, .verbose = verbose};
  int lean_rc = journal_replay_lean(fx.journal, ROW_ID, 1, INT64_MAX, -1, on_event, &lean);
  if (lean_rc != 0 && lean_rc != JOURNAL_ECORRUPT)
    die("journal_replay_lean answered %d (%s), not events or JOURNAL_ECORRUPT", lean_rc,
        journal_strerror(lean_rc));
  if (lean.events > 1) die("one row replayed lean as %d events", lean.events);
  /* A fresh Lua state now and then, so the decoded values' garbage stays small. */
  static unsigned inputs;
  if (++inputs % 4096 == 0) {
    lua_close(fx.L);
    if (!(fx.L = luaL_newstate())) die("out of memory");
    ref_init(fx.L);
  }
  return 0;
}
