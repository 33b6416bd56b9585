/* test_journal_seqmap.c: the writer's id -> highest seq map stays bounded (least recently
 * used ids go first) and a forgotten id is read again, so gaps and duplicates are still
 * refused. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "journal.h"
#include "journal_seqmap.h"

/* --- the map itself --- */

static seqmap_entry *add(seqmap *m, const char *id, int64_t highest) {
  seqmap_entry *e = seqmap_add(m, id, seqmap_hash(id), highest);
  assert_non_null(e);
  return e;
}

static seqmap_entry *find(seqmap *m, const char *id) { return seqmap_find(m, id, seqmap_hash(id)); }

static void trim_drops_least_recently_used(void **state) {
  (void)state;
  seqmap m;
  seqmap_init(&m);
  m.limit = 4;
  char id[16];
  for (int i = 0; i < 10; i++) {
    snprintf(id, sizeof id, "id-%d", i);
    add(&m, id, i + 1);
  }
  assert_non_null(find(&m, "id-0")); /* used again: now the newest */
  assert_int_equal(seqmap_shared_count(&m), 10);
  seqmap_trim(&m);
  assert_int_equal(m.count, 4);
  assert_int_equal(seqmap_shared_count(&m), 4);
  assert_non_null(find(&m, "id-0"));
  for (int i = 7; i < 10; i++) {
    snprintf(id, sizeof id, "id-%d", i);
    seqmap_entry *e = find(&m, id);
    assert_non_null(e);
    assert_int_equal(e->highest, i + 1);
  }
  for (int i = 1; i < 7; i++) {
    snprintf(id, sizeof id, "id-%d", i);
    assert_null(find(&m, id));
  }
  seqmap_free(&m);
}

/* Inside a batch the entries are in use (the undo log points at them): no trim. */
static void no_trim_inside_a_batch(void **state) {
  (void)state;
  seqmap m;
  seqmap_init(&m);
  m.limit = 2;
  assert_int_equal(seqmap_begin(&m, 8), 0);
  seqmap_entry *a = add(&m, "a", 1), *b = add(&m, "b", 1), *c = add(&m, "c", 1);
  seqmap_set(&m, a, 5);
  seqmap_set(&m, b, 6);
  seqmap_set(&m, c, 7);
  seqmap_trim(&m);
  assert_int_equal(m.count, 3);
  seqmap_rollback(&m); /* every entry still there to be put back */
  assert_int_equal(a->highest, 1);
  assert_int_equal(b->highest, 1);
  assert_int_equal(c->highest, 1);
  seqmap_trim(&m);
  assert_int_equal(m.count, 2);
  assert_null(find(&m, "a"));
  seqmap_free(&m);
}

/* A map that only ever grows in ids, trimmed as the writer does, holds the limit. */
static void many_ids_stay_bounded(void **state) {
  (void)state;
  seqmap m;
  seqmap_init(&m);
  m.limit = 1000;
  char id[32];
  for (int batch = 0; batch < 200; batch++) {
    assert_int_equal(seqmap_begin(&m, 100), 0);
    for (int i = 0; i < 100; i++) {
      snprintf(id, sizeof id, "entity-%d-%d", batch, i);
      seqmap_set(&m, add(&m, id, 0), 1);
    }
    seqmap_commit(&m);
    seqmap_trim(&m);
    assert_true(m.count <= 1000);
  }
  assert_int_equal(m.count, 1000);
  seqmap_free(&m);
}

/* --- through the sqlite journal's writer --- */

typedef struct waiter {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int fired;
} waiter;

static void on_done(journal_write *w, int status) {
  (void)status;
  waiter *wt = w->data;
  pthread_mutex_lock(&wt->mu);
  wt->fired++;
  pthread_cond_signal(&wt->cv);
  pthread_mutex_unlock(&wt->mu);
}

/* Writes one event (id, seq) and returns the write's status. */
static int write_one(journal_t *j, const char *id, int64_t seq) {
  waiter wt = {.fired = 0};
  pthread_mutex_init(&wt.mu, NULL);
  pthread_cond_init(&wt.cv, NULL);
  char payload[32];
  snprintf(payload, sizeof payload, "%s #%lld", id, (long long)seq);
  journal_event ev = {.id = id,
                      .seq = seq,
                      .manifest = "evt",
                      .version = 1,
                      .tags = "",
                      .writer = 1,
                      .timestamp_ms = 1700000000000,
                      .payload = payload,
                      .payload_len = strlen(payload)};
  journal_event_seal(&ev);
  journal_write w = {
      .kind = JOURNAL_WRITE_EVENTS, .events = &ev, .count = 1, .done = on_done, .data = &wt};
  assert_int_equal(journal_submit(j, &w), 0);
  pthread_mutex_lock(&wt.mu);
  while (!wt.fired) pthread_cond_wait(&wt.cv, &wt.mu);
  pthread_mutex_unlock(&wt.mu);
  pthread_mutex_destroy(&wt.mu);
  pthread_cond_destroy(&wt.cv);
  return w.status;
}

static void sqlite_writer_map_is_bounded(void **state) {
  (void)state;
  const char *tmp = getenv("LORE_TEST_TMP");
  char path[512];
  snprintf(path, sizeof path, "%s/seqmap-%d.db", tmp && *tmp ? tmp : "/tmp", (int)getpid());
  char cmd[600];
  snprintf(cmd, sizeof cmd, "mkdir -p '%s'", tmp && *tmp ? tmp : "/tmp");
  assert_int_equal(system(cmd), 0);
  char uri[600];
  snprintf(uri, sizeof uri, "sqlite:%s?synchronous=normal", path);
  journal_options opt = {0};
  opt.writer_ids_max = 50;
  journal_t *j = NULL;
  assert_int_equal(journal_open(uri, &opt, &j), 0);

  char id[32];
  for (int i = 0; i < 500; i++) { /* 500 entities, each writes and goes away */
    snprintf(id, sizeof id, "e-%d", i);
    assert_int_equal(write_one(j, id, 1), 0);
    assert_true(journal_writer_ids(j) <= 50);
  }
  assert_true(journal_writer_ids(j) > 0);

  /* e-0 was forgotten long ago: its highest seq is read again, and the check
   * it guards holds: a duplicate and a gap are refused, the next seq taken. */
  assert_int_equal(write_one(j, "e-0", 1), JOURNAL_ECONFLICT);
  assert_int_equal(write_one(j, "e-1", 3), JOURNAL_ECONFLICT);
  assert_int_equal(write_one(j, "e-0", 2), 0);
  assert_int_equal(write_one(j, "e-0", 2), JOURNAL_ECONFLICT);
  assert_true(journal_writer_ids(j) <= 50);
  journal_close(j);
  for (const char *suffix = ""; suffix; suffix = *suffix ? NULL : "-wal") {
    char f[620];
    snprintf(f, sizeof f, "%s%s", path, suffix);
    unlink(f);
  }
  snprintf(cmd, sizeof cmd, "%s-shm", path);
  unlink(cmd);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(trim_drops_least_recently_used),
      cmocka_unit_test(no_trim_inside_a_batch),
      cmocka_unit_test(many_ids_stay_bounded),
      cmocka_unit_test(sqlite_writer_map_is_bounded),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
