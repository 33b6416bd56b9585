/* test_journal_cohort.c: group commit keeps actors that each have one write in flight in one
 * batch per commit, instead of two alternating cohorts (journal.c, wait_for_cohort). */
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

enum { ACTORS = 8, ROUNDS = 40 };

/*
 * A chain: each actor's next write is submitted after its previous one's
 * callback, but from another thread (as an actor's worker would), so the
 * writer thread returns to its queue while the actors' next writes are still
 * trickling in: the situation that splits a writer without the rule into two
 * cohorts.
 */
typedef struct actor {
  char id[32];
  int64_t seq;
  char payload[24];
  journal_event ev;
  journal_write w;
  struct chain *chain;
  struct actor *next_done; /* the relay's queue */
} actor;

typedef struct chain {
  journal_t *j;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  actor *done_head, **done_tail;
  int rounds, finished, failed, stop;
  actor actors[ACTORS];
} chain;

static void actor_fill(actor *a) {
  snprintf(a->payload, sizeof a->payload, "e%lld", (long long)a->seq);
  a->ev = (journal_event){.id = a->id,
                          .seq = a->seq,
                          .manifest = "t",
                          .version = 1,
                          .tags = "",
                          .payload = a->payload,
                          .payload_len = strlen(a->payload)};
  journal_event_seal(&a->ev);
  a->w = (journal_write){.kind = JOURNAL_WRITE_EVENTS, .events = &a->ev, .count = 1, .data = a};
}

static void on_done(journal_write *w, int status) {
  actor *a = w->data;
  chain *c = a->chain;
  pthread_mutex_lock(&c->mu);
  if (status != 0) c->failed++;
  a->next_done = NULL;
  *c->done_tail = a;
  c->done_tail = &a->next_done;
  pthread_cond_broadcast(&c->cv); /* the relay and the test share cv */
  pthread_mutex_unlock(&c->mu);
}

/* The actors' side: takes completions one at a time and submits the actor's
 * next write, until every actor has written `rounds` events. */
static void *relay(void *arg) {
  chain *c = arg;
  pthread_mutex_lock(&c->mu);
  while (!c->stop) {
    if (!c->done_head) {
      pthread_cond_wait(&c->cv, &c->mu);
      continue;
    }
    actor *a = c->done_head;
    c->done_head = a->next_done;
    if (!c->done_head) c->done_tail = &c->done_head;
    if (a->seq == c->rounds) {
      if (++c->finished == ACTORS) pthread_cond_broadcast(&c->cv);
      continue;
    }
    pthread_mutex_unlock(&c->mu);
    a->seq++;
    actor_fill(a);
    a->w.done = on_done;
    if (journal_submit(c->j, &a->w) != 0) {
      pthread_mutex_lock(&c->mu);
      c->failed++;
      c->finished++;
      pthread_cond_broadcast(&c->cv);
      continue;
    }
    pthread_mutex_lock(&c->mu);
  }
  pthread_mutex_unlock(&c->mu);
  return NULL;
}

static journal_t *open_memory(int64_t cohort_wait_us) {
  static int counter;
  char uri[64];
  snprintf(uri, sizeof uri, "memory:cohort-%d-%d", (int)getpid(), ++counter);
  journal_options opt = {.synchronous_full = 1, .cohort_wait_us = cohort_wait_us};
  journal_t *j = NULL;
  assert_int_equal(journal_open(uri, &opt, &j), 0);
  return j;
}

/* Runs `actors` chains of `rounds` writes each; the first writes are one batch. */
static void run_chains(journal_t *j, int actors, int rounds) {
  chain *c = calloc(1, sizeof *c);
  assert_non_null(c);
  c->j = j;
  c->rounds = rounds;
  c->done_tail = &c->done_head;
  pthread_mutex_init(&c->mu, NULL);
  pthread_cond_init(&c->cv, NULL);
  c->finished = ACTORS - actors; /* the unused slots */
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, relay, c), 0);
  journal_pause_for_test(j, 1);
  for (int i = 0; i < actors; i++) {
    actor *a = &c->actors[i];
    snprintf(a->id, sizeof a->id, "actor-%d", i);
    a->chain = c;
    a->seq = 1;
    actor_fill(a);
    a->w.done = on_done;
    assert_int_equal(journal_submit(j, &a->w), 0);
  }
  journal_pause_for_test(j, 0);
  pthread_mutex_lock(&c->mu);
  while (c->finished < ACTORS) pthread_cond_wait(&c->cv, &c->mu);
  c->stop = 1;
  pthread_cond_broadcast(&c->cv);
  int failed = c->failed;
  pthread_mutex_unlock(&c->mu);
  pthread_join(th, NULL);
  assert_int_equal(failed, 0);
  pthread_mutex_destroy(&c->mu);
  pthread_cond_destroy(&c->cv);
  free(c);
}

/* The bound is far beyond any scheduling delay, so the writer always waits
 * for the whole cohort: every commit carries every actor's write. */
static void test_chains_commit_as_one_cohort(void **state) {
  (void)state;
  journal_t *j = open_memory(60 * 1000 * 1000);
  run_chains(j, ACTORS, ROUNDS);
  uint64_t batches, writes, waits, timeouts;
  journal_writer_stats(j, &batches, &writes);
  journal_cohort_stats(j, &waits, &timeouts);
  assert_int_equal(writes, ACTORS * ROUNDS);
  assert_int_equal(batches, ROUNDS);
  assert_int_equal(timeouts, 0);
  journal_bounds b;
  assert_int_equal(journal_bounds_of(j, "actor-3", &b), 0);
  assert_int_equal(b.highest, ROUNDS);
  journal_close(j);
}

/* A lone actor's write is its whole cohort: the writer never waits for it. */
static void test_lone_actor_never_waits(void **state) {
  (void)state;
  journal_t *j = open_memory(60 * 1000 * 1000);
  run_chains(j, 1, ROUNDS);
  uint64_t batches, writes, waits, timeouts;
  journal_writer_stats(j, &batches, &writes);
  journal_cohort_stats(j, &waits, &timeouts);
  assert_int_equal(writes, ROUNDS);
  assert_int_equal(batches, ROUNDS);
  assert_int_equal(waits, 0);
  journal_close(j);
}

typedef struct fired {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int n;
} fired;

static void count_fired(journal_write *w, int status) {
  fired *f = w->data;
  assert_int_equal(status, 0);
  pthread_mutex_lock(&f->mu);
  f->n++;
  pthread_cond_broadcast(&f->cv);
  pthread_mutex_unlock(&f->mu);
}

static void wait_fired(fired *f, int n) {
  pthread_mutex_lock(&f->mu);
  while (f->n < n) pthread_cond_wait(&f->cv, &f->mu);
  pthread_mutex_unlock(&f->mu);
}

/* A cohort that does not come back costs one bounded wait, and the next
 * batch does not wait again. */
static void test_missing_cohort_waits_once(void **state) {
  (void)state;
  journal_t *j = open_memory(1000);
  fired f = {.n = 0};
  pthread_mutex_init(&f.mu, NULL);
  pthread_cond_init(&f.cv, NULL);
  enum { FIRST = 5 };
  journal_event ev[FIRST + 2];
  journal_write w[FIRST + 2];
  char ids[FIRST][32];
  for (int i = 0; i < FIRST + 2; i++) {
    int k = i < FIRST ? i : 0;
    snprintf(ids[k], sizeof ids[k], "lone-%d", k);
    ev[i] = (journal_event){.id = ids[k],
                            .seq = i < FIRST ? 1 : i - FIRST + 2,
                            .manifest = "t",
                            .version = 1,
                            .tags = "",
                            .payload = "x",
                            .payload_len = 1};
    journal_event_seal(&ev[i]);
    w[i] = (journal_write){.kind = JOURNAL_WRITE_EVENTS,
                           .events = &ev[i],
                           .count = 1,
                           .done = count_fired,
                           .data = &f};
  }
  journal_pause_for_test(j, 1);
  for (int i = 0; i < FIRST; i++) assert_int_equal(journal_submit(j, &w[i]), 0);
  journal_pause_for_test(j, 0);
  wait_fired(&f, FIRST);
  /* One of the five comes back: the writer waits for the other four until
   * its bound, then writes it. */
  assert_int_equal(journal_submit(j, &w[FIRST]), 0);
  wait_fired(&f, FIRST + 1);
  uint64_t waits, timeouts;
  journal_cohort_stats(j, &waits, &timeouts);
  assert_int_equal(waits, 1);
  assert_int_equal(timeouts, 1);
  /* Its cohort is now itself: the next write goes without a wait. */
  assert_int_equal(journal_submit(j, &w[FIRST + 1]), 0);
  wait_fired(&f, FIRST + 2);
  journal_cohort_stats(j, &waits, &timeouts);
  assert_int_equal(waits, 1);
  assert_int_equal(timeouts, 1);
  uint64_t batches, writes;
  journal_writer_stats(j, &batches, &writes);
  assert_int_equal(batches, 3);
  assert_int_equal(writes, FIRST + 2);
  journal_close(j);
  pthread_mutex_destroy(&f.mu);
  pthread_cond_destroy(&f.cv);
}

/* Off: the writer takes whatever is queued at once. */
static void test_cohort_wait_off(void **state) {
  (void)state;
  journal_t *j = open_memory(-1);
  run_chains(j, ACTORS, ROUNDS);
  uint64_t waits, timeouts, batches, writes;
  journal_cohort_stats(j, &waits, &timeouts);
  journal_writer_stats(j, &batches, &writes);
  assert_int_equal(waits, 0);
  assert_int_equal(writes, ACTORS * ROUNDS);
  journal_close(j);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_chains_commit_as_one_cohort),
      cmocka_unit_test(test_lone_actor_never_waits),
      cmocka_unit_test(test_missing_cohort_waits_once),
      cmocka_unit_test(test_cohort_wait_off),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
