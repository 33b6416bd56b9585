/* test_journal_tck.c: the journal compliance suite (after Akka JournalSpec), for every backend. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "journal.h"

/* ---- the backends under test ---- */

typedef struct backend_case {
  const char *name;
  int sqlite;
} backend_case;

static const backend_case MEMORY = {"memory", 0};
static const backend_case SQLITE = {"sqlite", 1};

typedef struct fixture {
  const backend_case *bc;
  char path[512]; /* sqlite: the database file */
  char uri[600];
  journal_t *j;
} fixture;

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
  snprintf(buf, sizeof buf, "%s-wal", path);
  unlink(buf);
  snprintf(buf, sizeof buf, "%s-shm", path);
  unlink(buf);
}

/* A URI that a later journal_open finds again: the fixture's file for sqlite
 * (whose journal is closed first), a fresh named store for memory. */
static const char *reopenable_uri(fixture *f) {
  if (f->bc->sqlite) {
    journal_close(f->j);
    f->j = NULL;
  } else {
    snprintf(f->uri, sizeof f->uri, "memory:tck-%d-%d", (int)getpid(), ++file_counter);
  }
  return f->uri;
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
                               .writer = "00000000-0000-4000-8000-000000000000",
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

/* Writes `count` events of `id` from seq `first` as one atomic write and waits. */
static int write_sync(journal_t *j, const char *id, int64_t first, size_t count) {
  waiter *wt = waiter_new();
  twrite t;
  twrite_init(&t, id, first, count, wt);
  t.w.status = 12345;
  assert_int_equal(journal_submit(j, &t.w), 0);
  wait_fired(wt, 1);
  waiter_free(wt);
  assert_int_not_equal(t.w.status, 12345);
  return t.w.status;
}

static int delete_sync(journal_t *j, const char *id, int64_t to) {
  waiter *wt = waiter_new();
  journal_write w = {
      .kind = JOURNAL_WRITE_DELETE, .delete_id = id, .delete_to = to, .done = on_done, .data = wt};
  assert_int_equal(journal_submit(j, &w), 0);
  wait_fired(wt, 1);
  waiter_free(wt);
  return w.status;
}

/* ---- replaying ---- */

typedef struct replayed {
  int64_t seq[4096];
  size_t n;
  size_t stop_after; /* 0: never stop */
  int bad_payload;   /* count of events whose payload or metadata came back wrong */
} replayed;

static int collect(const journal_event *ev, void *ud) {
  replayed *r = ud;
  char want[48];
  expected_payload(want, sizeof want, ev->id, ev->seq);
  if (ev->payload_len != strlen(want) || memcmp(ev->payload, want, ev->payload_len) != 0 ||
      ev->crc32c != crc32c(0, ev->payload, ev->payload_len) || strcmp(ev->manifest, "evt") != 0)
    r->bad_payload++;
  if (r->n < sizeof r->seq / sizeof r->seq[0]) r->seq[r->n] = ev->seq;
  r->n++;
  return r->stop_after && r->n >= r->stop_after;
}

/* Replays and asserts the result is exactly seqs first..last (none if last < first). */
static void expect_replay(journal_t *j, const char *id, int64_t from, int64_t to, int64_t max,
                          int64_t first, int64_t last) {
  replayed r = {0};
  assert_int_equal(journal_replay(j, id, from, to, max, collect, &r), 0);
  size_t want = last >= first ? (size_t)(last - first + 1) : 0;
  assert_true(want <= sizeof r.seq / sizeof r.seq[0]);
  assert_int_equal(r.n, want);
  for (size_t i = 0; i < want; i++) assert_int_equal(r.seq[i], first + (int64_t)i);
  assert_int_equal(r.bad_payload, 0);
}

static int64_t highest(journal_t *j, const char *id) {
  int64_t h = -1;
  assert_int_equal(journal_highest_seq(j, id, &h), 0);
  return h;
}

/* ---- fixture ---- */

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  assert_non_null(f);
  f->bc = *state;
  if (f->bc->sqlite) {
    snprintf(f->path, sizeof f->path, "%s/journal-tck-%d-%d.db", tmp_dir(), (int)getpid(),
             ++file_counter);
    remove_db(f->path);
    snprintf(f->uri, sizeof f->uri, "sqlite:%s", f->path);
  } else {
    snprintf(f->uri, sizeof f->uri, "memory:");
  }
  assert_int_equal(journal_open(f->uri, NULL, &f->j), 0);
  /* Every case starts from events 1..5 of "a" (one write each, as persist does). */
  for (int64_t seq = 1; seq <= 5; seq++) assert_int_equal(write_sync(f->j, "a", seq, 1), 0);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  journal_close(f->j);
  if (f->bc->sqlite) remove_db(f->path);
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

/* ---- deletes ---- */

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

/* A write that does not continue the stream exactly would leave a hole (a
 * write issued after one that failed): refused, nothing stored. */
static void test_gap_refused(void **state) {
  fixture *f = *state;
  assert_int_equal(write_sync(f->j, "a", 7, 2), JOURNAL_ECONFLICT);
  assert_int_equal(highest(f->j, "a"), 5);
  expect_replay(f->j, "a", 1, INT64_MAX, -1, 1, 5);
  assert_int_equal(write_sync(f->j, "a", 6, 1), 0);
  assert_int_equal(highest(f->j, "a"), 6);
}

static void test_delete_rejects_empty_id(void **state) {
  fixture *f = *state;
  assert_int_equal(delete_sync(f->j, "", 3), JOURNAL_EREJECTED);
  expect_replay(f->j, "a", 1, INT64_MAX, -1, 1, 5);
}

/* ---- atomic writes ---- */

static void test_atomic_write_all_or_nothing(void **state) {
  fixture *f = *state;
  assert_int_equal(write_sync(f->j, "a", 6, 3), 0);
  expect_replay(f->j, "a", 1, INT64_MAX, -1, 1, 8);
  assert_int_equal(highest(f->j, "a"), 8);
  /* x has only #2; a write of 1..3 clashes on its second event and stores nothing. */
  assert_int_equal(write_sync(f->j, "x", 2, 1), 0);
  assert_int_equal(write_sync(f->j, "x", 1, 3), JOURNAL_ECONFLICT);
  expect_replay(f->j, "x", 1, INT64_MAX, -1, 2, 2);
  assert_int_equal(highest(f->j, "x"), 2);
  /* Overlapping the end of a's stream: refused whole. */
  assert_int_equal(write_sync(f->j, "a", 8, 3), JOURNAL_ECONFLICT);
  expect_replay(f->j, "a", 1, INT64_MAX, -1, 1, 8);
  assert_int_equal(highest(f->j, "a"), 8);
}

/* sqlite: the clash found by the events' UNIQUE index halfway through a write
 * (journal_meta lagging behind, as after a manual repair) undoes that write's
 * first event and its meta row too. */
static void test_sqlite_conflict_mid_write_rolls_back(void **state) {
  fixture *f = *state;
  if (!f->bc->sqlite) {
    skip();
    return;
  }
  sqlite3 *db;
  assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
  sqlite3_busy_timeout(db, 5000);
  assert_int_equal(sqlite3_exec(db,
                                "DELETE FROM events WHERE id = 'a' AND seq = 4;"
                                "DELETE FROM journal_meta WHERE id = 'a';",
                                NULL, NULL, NULL),
                   SQLITE_OK);
  sqlite3_close(db);
  /* 4 is free, 5 clashes: neither 4 nor 6 nor the meta row may stay. */
  assert_int_equal(write_sync(f->j, "a", 4, 3), JOURNAL_ECONFLICT);
  replayed r = {0};
  assert_int_equal(journal_replay(f->j, "a", 1, INT64_MAX, -1, collect, &r), 0);
  assert_int_equal(r.n, 4);
  int64_t want[] = {1, 2, 3, 5};
  for (int i = 0; i < 4; i++) assert_int_equal(r.seq[i], want[i]);
  assert_int_equal(highest(f->j, "a"), 0);
}

/* Invalid or clashing writes fail alone; their neighbours in the same batch
 * (one transaction) are stored. */
static void test_invalid_write_rejected_neighbours_stored(void **state) {
  fixture *f = *state;
  waiter *wt = waiter_new();
  uint64_t batches0, writes0, batches1, writes1;
  journal_stats(f->j, &batches0, &writes0);
  enum { N = 10 };
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
  int want[N] = {0,
                 JOURNAL_EREJECTED,
                 JOURNAL_EREJECTED,
                 0,
                 JOURNAL_ECONFLICT,
                 JOURNAL_EREJECTED,
                 JOURNAL_EREJECTED,
                 JOURNAL_EREJECTED,
                 JOURNAL_EREJECTED,
                 0};

  journal_pause_for_test(f->j, 1);
  for (int i = 0; i < N; i++) assert_int_equal(journal_submit(f->j, &t[i].w), 0);
  journal_pause_for_test(f->j, 0);
  wait_fired(wt, N);

  for (int i = 0; i < N; i++) assert_int_equal(t[i].w.status, want[i]);
  journal_stats(f->j, &batches1, &writes1);
  assert_int_equal(batches1 - batches0, 1);
  assert_int_equal(writes1 - writes0, N);
  expect_replay(f->j, "ok1", 1, INT64_MAX, -1, 1, 1);
  expect_replay(f->j, "ok2", 1, INT64_MAX, -1, 1, 2);
  expect_replay(f->j, "a", 1, INT64_MAX, -1, 1, 6);
  const char *none[] = {"zero", "gap", "mixed", "other", "nullpl", "unsealed"};
  for (size_t i = 0; i < sizeof none / sizeof none[0]; i++) {
    expect_replay(f->j, none[i], 0, INT64_MAX, -1, 1, 0);
    assert_int_equal(highest(f->j, none[i]), 0);
  }
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
  replayed r = {0};
  assert_int_equal(journal_replay(f->j, "empty", 1, INT64_MAX, -1, collect, &r), 0);
  assert_int_equal(r.n, 2);
  assert_int_equal(r.bad_payload, 2); /* collect expects text; these are empty */

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
  char manifest[32], tags[32], writer[40];
  unsigned char payload[16];
} meta_seen;

static int keep_meta(const journal_event *ev, void *ud) {
  meta_seen *m = ud;
  m->n++;
  m->ev = *ev;
  snprintf(m->manifest, sizeof m->manifest, "%s", ev->manifest);
  snprintf(m->tags, sizeof m->tags, "%s", ev->tags);
  snprintf(m->writer, sizeof m->writer, "%s", ev->writer);
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
                      .writer = "123e4567-e89b-42d3-a456-426614174000",
                      .timestamp_ms = 1717171717171,
                      .payload = payload,
                      .payload_len = sizeof payload};
  journal_event_seal(&ev);
  journal_write w = {
      .kind = JOURNAL_WRITE_EVENTS, .events = &ev, .count = 1, .done = on_done, .data = wt};
  assert_int_equal(journal_submit(f->j, &w), 0);
  wait_fired(wt, 1);
  assert_int_equal(w.status, 0);

  meta_seen m = {0};
  assert_int_equal(journal_replay(f->j, "meta", 1, INT64_MAX, -1, keep_meta, &m), 0);
  assert_int_equal(m.n, 1);
  assert_int_equal(m.ev.seq, 1);
  assert_string_equal(m.manifest, "Deposited");
  assert_int_equal(m.ev.version, 3);
  assert_string_equal(m.tags, "account\nvip");
  assert_string_equal(m.writer, "123e4567-e89b-42d3-a456-426614174000");
  assert_int_equal(m.ev.timestamp_ms, 1717171717171);
  assert_int_equal(m.ev.payload_len, sizeof payload);
  assert_memory_equal(m.payload, payload, sizeof payload);
  assert_int_equal(m.ev.crc32c, ev.crc32c);

  /* NULL strings are stored as empty ones. */
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
  assert_string_equal(m.writer, "");
  waiter_free(wt);
}

/* ---- storage failures (sqlite: injected through a second connection) ---- */

static void exec_other(const char *path, const char *sql) {
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

/* Another process holds the write lock past the busy timeout: the whole batch
 * fails with JOURNAL_EIO, stores nothing, and the writer carries on. */
static void test_sqlite_locked_database_fails_batch(void **state) {
  fixture *f = *state;
  if (!f->bc->sqlite) {
    skip();
    return;
  }
  const char *uri = reopenable_uri(f);
  journal_options opt = {.synchronous_full = 1, .busy_timeout_ms = 20};
  journal_t *j;
  assert_int_equal(journal_open(uri, &opt, &j), 0);
  sqlite3 *other;
  assert_int_equal(sqlite3_open(f->path, &other), SQLITE_OK);
  assert_int_equal(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
  assert_int_equal(write_sync(j, "locked", 1, 2), JOURNAL_EIO);
  assert_int_equal(delete_sync(j, "a", 5), JOURNAL_EIO);
  assert_int_equal(sqlite3_exec(other, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(other);
  assert_int_equal(highest(j, "locked"), 0);
  expect_replay(j, "a", 1, INT64_MAX, -1, 1, 5);
  assert_int_equal(write_sync(j, "locked", 1, 2), 0);
  expect_replay(j, "locked", 1, INT64_MAX, -1, 1, 2);
  journal_close(j);
}

/* A failure that ends the transaction halfway through a batch (a trigger doing
 * RAISE(ROLLBACK) stands in for a full disk) fails every write of the batch;
 * one that only aborts its statement fails that write alone. */
static void test_sqlite_failure_mid_batch(void **state) {
  fixture *f = *state;
  if (!f->bc->sqlite) {
    skip();
    return;
  }
  waiter *wt = waiter_new();
  twrite t[3];
  exec_other(f->path, "CREATE TRIGGER boom BEFORE INSERT ON events WHEN NEW.id = 'boom'"
                      " BEGIN SELECT RAISE(ROLLBACK, 'injected'); END;");
  twrite_init(&t[0], "t1", 1, 1, wt);
  twrite_init(&t[1], "boom", 1, 1, wt);
  twrite_init(&t[2], "t2", 1, 1, wt);
  journal_pause_for_test(f->j, 1);
  for (int i = 0; i < 3; i++) assert_int_equal(journal_submit(f->j, &t[i].w), 0);
  journal_pause_for_test(f->j, 0);
  wait_fired(wt, 3);
  for (int i = 0; i < 3; i++) assert_int_equal(t[i].w.status, JOURNAL_EIO);
  assert_int_equal(highest(f->j, "t1"), 0);
  assert_int_equal(highest(f->j, "t2"), 0);
  assert_int_equal(highest(f->j, "boom"), 0);

  exec_other(f->path, "DROP TRIGGER boom;"
                      "CREATE TRIGGER boom BEFORE INSERT ON events WHEN NEW.id = 'boom'"
                      " BEGIN SELECT RAISE(ABORT, 'injected'); END;");
  twrite_init(&t[0], "t1", 1, 1, wt);
  twrite_init(&t[1], "boom", 1, 2, wt);
  twrite_init(&t[2], "t2", 1, 1, wt);
  journal_pause_for_test(f->j, 1);
  for (int i = 0; i < 3; i++) assert_int_equal(journal_submit(f->j, &t[i].w), 0);
  journal_pause_for_test(f->j, 0);
  wait_fired(wt, 6);
  assert_int_equal(t[0].w.status, 0);
  assert_int_equal(t[1].w.status, JOURNAL_EREJECTED);
  assert_int_equal(t[2].w.status, 0);
  expect_replay(f->j, "t1", 1, INT64_MAX, -1, 1, 1);
  expect_replay(f->j, "t2", 1, INT64_MAX, -1, 1, 1);
  assert_int_equal(highest(f->j, "boom"), 0);
  exec_other(f->path, "DROP TRIGGER boom");
  assert_int_equal(write_sync(f->j, "boom", 1, 1), 0);
  waiter_free(wt);
}

/* ---- corruption ---- */

static void test_crc_corruption_detected(void **state) {
  fixture *f = *state;
  if (!f->bc->sqlite) {
    skip(); /* memory has no bytes outside the process to damage */
    return;
  }
  sqlite3 *db;
  assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
  sqlite3_busy_timeout(db, 5000);
  /* Same length, one byte changed: only the CRC can tell. */
  char damaged[48];
  expected_payload(damaged, sizeof damaged, "a", 3);
  damaged[0] ^= 0x20;
  sqlite3_stmt *st;
  assert_int_equal(sqlite3_prepare_v2(db,
                                      "UPDATE events SET payload = ?1 WHERE id = 'a' AND seq = 3",
                                      -1, &st, NULL),
                   SQLITE_OK);
  sqlite3_bind_blob(st, 1, damaged, (int)strlen(damaged), SQLITE_STATIC);
  assert_int_equal(sqlite3_step(st), SQLITE_DONE);
  assert_int_equal(sqlite3_changes(db), 1);
  sqlite3_finalize(st);
  sqlite3_close(db);

  replayed r = {0};
  assert_int_equal(journal_replay(f->j, "a", 1, INT64_MAX, -1, collect, &r), JOURNAL_ECORRUPT);
  assert_int_equal(r.n, 2); /* the events before the damaged one, then the stop */
  assert_int_equal(r.seq[0], 1);
  assert_int_equal(r.seq[1], 2);
  assert_int_equal(r.bad_payload, 0);
  /* A range that avoids the damage still replays. */
  expect_replay(f->j, "a", 4, INT64_MAX, -1, 4, 5);
  assert_int_equal(highest(f->j, "a"), 5);
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
  journal_stats(f->j, &batches0, &writes0);
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
  journal_stats(f->j, &batches1, &writes1);
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
  journal_t *j;
  assert_int_equal(journal_open(uri, NULL, &j), 0);
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

  assert_int_equal(journal_open(uri, NULL, &j), 0);
  expect_replay(j, "drain", 1, INT64_MAX, -1, 1, N);
  if (f->bc->sqlite) expect_replay(j, "a", 1, INT64_MAX, -1, 1, 5);
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
  assert_int_equal(journal_open(reopenable_uri(f), NULL, &l->j), 0);
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

static void test_reopen_keeps_events(void **state) {
  fixture *f = *state;
  const char *uri = reopenable_uri(f);
  journal_t *j;
  assert_int_equal(journal_open(uri, NULL, &j), 0);
  assert_int_equal(write_sync(j, "kept", 1, 3), 0);
  assert_int_equal(delete_sync(j, "kept", 1), 0);
  journal_close(j);

  assert_int_equal(journal_open(uri, NULL, &j), 0);
  expect_replay(j, "kept", 1, INT64_MAX, -1, 2, 3);
  assert_int_equal(highest(j, "kept"), 3);
  if (f->bc->sqlite) expect_replay(j, "a", 1, INT64_MAX, -1, 1, 5);
  assert_int_equal(write_sync(j, "kept", 4, 1), 0);
  assert_int_equal(write_sync(j, "kept", 3, 1), JOURNAL_ECONFLICT);
  journal_close(j);

  /* Two journals open on the same store at once see each other's writes. */
  journal_t *j1, *j2;
  assert_int_equal(journal_open(uri, NULL, &j1), 0);
  assert_int_equal(journal_open(uri, NULL, &j2), 0);
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
    int64_t h = 0;
    if (journal_highest_seq(r->j, "conc", &h) != 0) r->failures++;
    if (journal_replay(r->j, "conc", 1, INT64_MAX, -1, collect, seen) != 0) r->failures++;
    /* A replay sees a gap-free prefix of the stream, at least up to the highest
     * seq read before it. */
    if (seen->bad_payload || (int64_t)seen->n < h) r->failures++;
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
  assert_int_equal(journal_open("memorys:", NULL, &j), JOURNAL_EURI);
  assert_int_equal(journal_open("sqlite:/nonexistent-dir-lore/x.db", NULL, &j), JOURNAL_EIO);
  assert_ptr_equal(j, before);
  int codes[] = {JOURNAL_OK,      JOURNAL_EIO,  JOURNAL_EREJECTED, JOURNAL_ECORRUPT,
                 JOURNAL_ECLOSED, JOURNAL_EURI, JOURNAL_ENOMEM,    JOURNAL_ECONFLICT};
  for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
    assert_non_null(journal_strerror(codes[i]));
    assert_true(strlen(journal_strerror(codes[i])) > 0);
  }
  assert_string_equal(journal_strerror(JOURNAL_ECLOSED), "journal is closed");
  assert_non_null(strstr(journal_strerror(-ENOENT), "no such file"));
  assert_non_null(journal_strerror(-424242)); /* unknown: a message, no leak */
}

/* ---- the suite, once per backend ---- */

/* Each case runs with a fresh fixture of the given backend. */
#define CASE(fn, bc) cmocka_unit_test_prestate_setup_teardown(fn, setup, teardown, (void *)(bc))
/* clang-format off */
#define JOURNAL_TCK(bc) \
  CASE(test_replay_all, bc), \
  CASE(test_replay_from_lower_bound, bc), \
  CASE(test_replay_to_upper_bound, bc), \
  CASE(test_replay_count_limit, bc), \
  CASE(test_replay_lower_and_upper, bc), \
  CASE(test_replay_lower_upper_and_limit, bc), \
  CASE(test_replay_lower_equals_upper, bc), \
  CASE(test_replay_limit_one, bc), \
  CASE(test_replay_limit_zero, bc), \
  CASE(test_replay_lower_above_upper, bc), \
  CASE(test_unknown_id, bc), \
  CASE(test_replay_stops_when_callback_asks, bc), \
  CASE(test_replay_across_pages, bc), \
  CASE(test_deleted_events_not_replayed, bc), \
  CASE(test_highest_seq_survives_deletes, bc), \
  CASE(test_gap_refused, bc), \
  CASE(test_delete_rejects_empty_id, bc), \
  CASE(test_atomic_write_all_or_nothing, bc), \
  CASE(test_sqlite_conflict_mid_write_rolls_back, bc), \
  CASE(test_invalid_write_rejected_neighbours_stored, bc), \
  CASE(test_payload_sizes, bc), \
  CASE(test_metadata_round_trips, bc), \
  CASE(test_crc_corruption_detected, bc), \
  CASE(test_sqlite_locked_database_fails_batch, bc), \
  CASE(test_sqlite_failure_mid_batch, bc), \
  CASE(test_group_commit_batches, bc), \
  CASE(test_callback_submits_next, bc), \
  CASE(test_close_drains_pending_writes, bc), \
  CASE(test_submit_after_close_begins, bc), \
  CASE(test_list_ids_sorted, bc), \
  CASE(test_reopen_keeps_events, bc), \
  CASE(test_concurrent_reads_during_writes, bc), \
  CASE(test_uris_and_errors, bc)
/* clang-format on */

int main(void) {
  const struct CMUnitTest memory_tests[] = {JOURNAL_TCK(&MEMORY)};
  const struct CMUnitTest sqlite_tests[] = {JOURNAL_TCK(&SQLITE)};
  int failed = cmocka_run_group_tests_name("journal tck: memory", memory_tests, NULL, NULL);
  failed += cmocka_run_group_tests_name("journal tck: sqlite", sqlite_tests, NULL, NULL);
  return failed;
}
