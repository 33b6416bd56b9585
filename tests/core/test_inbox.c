/* test_inbox.c: the MPSC inbox: FIFO, many producers, batched wake-ups, closing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <uv.h>

#include "inbox.h"

static lore_msg *mk(int64_t v) {
  lore_msg *m = msg_new(MSG_USER, NULL, 0, NULL, 0);
  assert_non_null(m);
  m->ival = v;
  return m;
}

static void free_all(msg_queue *q) {
  lore_msg *m;
  while ((m = msg_queue_pop(q))) msg_free(m);
}

/* --- single thread --- */

static int wakeups;
static void count_cb(loop_wakeup *w) {
  (void)w;
  wakeups++;
}

static void test_single_thread_fifo(void **state) {
  (void)state;
  uv_loop_t loop;
  loop_wakeup wake;
  inbox in;
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(loop_wakeup_init(&loop, &wake, count_cb), 0);
  assert_int_equal(inbox_init(&in, &wake), 0);
  wakeups = 0;

  msg_queue out;
  msg_queue_init(&out);
  inbox_drain(&in, &out); /* empty drain */
  assert_true(msg_queue_empty(&out));

  /* The first push wakes the loop; pushes onto a non-empty inbox do not. */
  assert_int_equal(inbox_push(&in, mk(0)), 0);
  uv_run(&loop, UV_RUN_NOWAIT);
  assert_int_equal(wakeups, 1);
  for (int i = 1; i < 100; i++) assert_int_equal(inbox_push(&in, mk(i)), 0);
  uv_run(&loop, UV_RUN_NOWAIT);
  assert_int_equal(wakeups, 1);

  /* Drain appends to what `out` already has. */
  msg_queue_push(&out, mk(-1));
  inbox_drain(&in, &out);
  assert_int_equal(out.count, 101);
  for (int i = -1; i < 100; i++) {
    lore_msg *m = msg_queue_pop(&out);
    assert_non_null(m);
    assert_int_equal(m->ival, i);
    msg_free(m);
  }
  assert_true(msg_queue_empty(&in.q));

  /* Empty again: the next push wakes again. push_all is one batch, one wake-up. */
  msg_queue batch;
  msg_queue_init(&batch);
  assert_int_equal(inbox_push_all(&in, &batch), 0); /* empty batch: no wake-up */
  uv_run(&loop, UV_RUN_NOWAIT);
  assert_int_equal(wakeups, 1);
  for (int i = 0; i < 10; i++) msg_queue_push(&batch, mk(i));
  assert_int_equal(inbox_push_all(&in, &batch), 0);
  assert_true(msg_queue_empty(&batch));
  assert_int_equal(inbox_push(&in, mk(10)), 0);
  uv_run(&loop, UV_RUN_NOWAIT);
  assert_int_equal(wakeups, 2);
  inbox_drain(&in, &out);
  assert_int_equal(out.count, 11);
  for (int i = 0; i <= 10; i++) {
    lore_msg *m = msg_queue_pop(&out);
    assert_int_equal(m->ival, i);
    msg_free(m);
  }

  inbox_close(&in, &out);
  inbox_destroy(&in);
  loop_wakeup_close(&wake, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_closed_refuses(void **state) {
  (void)state;
  uv_loop_t loop;
  loop_wakeup wake;
  inbox in;
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(loop_wakeup_init(&loop, &wake, count_cb), 0);
  assert_int_equal(inbox_init(&in, &wake), 0);
  for (int i = 0; i < 5; i++) assert_int_equal(inbox_push(&in, mk(i)), 0);

  /* Closing hands back what was queued, in order. */
  msg_queue left;
  msg_queue_init(&left);
  inbox_close(&in, &left);
  assert_int_equal(left.count, 5);
  for (int i = 0; i < 5; i++) {
    lore_msg *m = msg_queue_pop(&left);
    assert_int_equal(m->ival, i);
    msg_free(m);
  }

  /* A refused message is not taken: the caller still owns it. */
  lore_msg *m = mk(99);
  assert_int_equal(inbox_push(&in, m), UV_ECANCELED);
  assert_null(m->next);
  msg_free(m);
  msg_queue batch;
  msg_queue_init(&batch);
  msg_queue_push(&batch, mk(1));
  msg_queue_push(&batch, mk(2));
  assert_int_equal(inbox_push_all(&in, &batch), UV_ECANCELED);
  assert_int_equal(batch.count, 2);
  free_all(&batch);

  msg_queue out;
  msg_queue_init(&out);
  inbox_drain(&in, &out);
  assert_true(msg_queue_empty(&out));
  inbox_close(&in, &out); /* closing twice is harmless */
  assert_true(msg_queue_empty(&out));

  inbox_destroy(&in);
  loop_wakeup_close(&wake, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
}

/* --- many producers, one loop thread consuming --- */

#define NPROD 4
#define PER_PROD 100000
#define BATCH 64

typedef struct consumer {
  uv_loop_t loop;
  loop_wakeup wake;
  inbox in;
  uint64_t next[NPROD];
  uint64_t got, wakeups, drains_nonempty;
  int order_errors;
} consumer;

static void consume_cb(loop_wakeup *w) {
  consumer *c = w->data;
  c->wakeups++;
  msg_queue q;
  msg_queue_init(&q);
  inbox_drain(&c->in, &q);
  if (!msg_queue_empty(&q)) c->drains_nonempty++;
  lore_msg *m;
  while ((m = msg_queue_pop(&q))) {
    uint64_t p = (uint64_t)m->ival >> 32, seq = (uint64_t)m->ival & 0xffffffffu;
    if (p >= NPROD || seq != c->next[p])
      c->order_errors++;
    else
      c->next[p]++;
    c->got++;
    msg_free(m);
  }
  if (c->got == (uint64_t)NPROD * PER_PROD) loop_wakeup_close(&c->wake, NULL);
}

static void consumer_main(void *arg) {
  consumer *c = arg;
  uv_run(&c->loop, UV_RUN_DEFAULT);
}

typedef struct producer {
  consumer *c;
  uint64_t id;
  int use_batches;
  int errors;
} producer;

static void producer_main(void *arg) {
  producer *p = arg;
  msg_queue batch;
  msg_queue_init(&batch);
  for (uint64_t seq = 0; seq < PER_PROD; seq++) {
    lore_msg *m = msg_new(MSG_USER, NULL, 0, NULL, 0);
    if (!m) {
      p->errors++;
      return;
    }
    m->ival = (int64_t)(p->id << 32 | seq);
    if (!p->use_batches) {
      if (inbox_push(&p->c->in, m)) p->errors++;
      continue;
    }
    msg_queue_push(&batch, m);
    if (batch.count == BATCH || seq == PER_PROD - 1) {
      if (inbox_push_all(&p->c->in, &batch)) p->errors++;
    }
  }
}

static void test_many_producers(void **state) {
  (void)state;
  consumer c = {0};
  assert_int_equal(uv_loop_init(&c.loop), 0);
  assert_int_equal(loop_wakeup_init(&c.loop, &c.wake, consume_cb), 0);
  c.wake.data = &c;
  assert_int_equal(inbox_init(&c.in, &c.wake), 0);
  uv_thread_t ct, pt[NPROD];
  producer p[NPROD];
  assert_int_equal(uv_thread_create(&ct, consumer_main, &c), 0);
  for (int i = 0; i < NPROD; i++) {
    p[i] = (producer){.c = &c, .id = (uint64_t)i, .use_batches = i >= 2};
    assert_int_equal(uv_thread_create(&pt[i], producer_main, &p[i]), 0);
  }
  for (int i = 0; i < NPROD; i++) uv_thread_join(&pt[i]);
  uv_thread_join(&ct);

  for (int i = 0; i < NPROD; i++) assert_int_equal(p[i].errors, 0);
  assert_int_equal(c.order_errors, 0);
  assert_int_equal(c.got, (uint64_t)NPROD * PER_PROD);
  for (int i = 0; i < NPROD; i++) assert_int_equal(c.next[i], PER_PROD);
  /* Batched wake-ups: far fewer callbacks than messages, and each wake-up found work
   * except possibly a few racing with a drain. */
  assert_true(c.wakeups < c.got);
  assert_true(c.wakeups >= 1);
  print_message("      %llu messages, %llu wake-ups\n", (unsigned long long)c.got,
                (unsigned long long)c.wakeups);

  msg_queue left;
  msg_queue_init(&left);
  inbox_close(&c.in, &left);
  assert_true(msg_queue_empty(&left));
  inbox_destroy(&c.in);
  assert_int_equal(uv_loop_close(&c.loop), 0);
}

/* Producers racing a close: every push either lands (and comes back from close or a
 * drain) or is refused, never lost, and no wake-up is sent to a closed inbox's handle. */
typedef struct racer {
  inbox *in;
  int accepted, refused;
} racer;

static void racer_main(void *arg) {
  racer *r = arg;
  for (int i = 0; i < 20000; i++) {
    lore_msg *m = msg_new(MSG_USER, NULL, 0, NULL, 0);
    if (inbox_push(r->in, m) == 0) {
      r->accepted++;
    } else {
      r->refused++;
      msg_free(m);
    }
  }
}

static void test_close_race(void **state) {
  (void)state;
  uv_loop_t loop;
  loop_wakeup wake;
  inbox in;
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(loop_wakeup_init(&loop, &wake, count_cb), 0);
  assert_int_equal(inbox_init(&in, &wake), 0);
  racer r[2] = {{&in, 0, 0}, {&in, 0, 0}};
  uv_thread_t t[2];
  for (int i = 0; i < 2; i++) assert_int_equal(uv_thread_create(&t[i], racer_main, &r[i]), 0);
  size_t collected = 0;
  msg_queue q;
  msg_queue_init(&q);
  for (int i = 0; i < 50; i++) {
    inbox_drain(&in, &q);
    collected += q.count;
    free_all(&q);
    uv_sleep(0);
  }
  inbox_close(&in, &q);
  collected += q.count;
  free_all(&q);
  /* After close returns, the handle may be closed at once. */
  loop_wakeup_close(&wake, NULL);
  for (int i = 0; i < 2; i++) uv_thread_join(&t[i]);
  inbox_drain(&in, &q);
  assert_true(msg_queue_empty(&q));
  assert_int_equal(collected, (size_t)(r[0].accepted + r[1].accepted));
  assert_int_equal(r[0].accepted + r[0].refused, 20000);
  assert_int_equal(r[1].accepted + r[1].refused, 20000);
  inbox_destroy(&in);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
}

/* Sends before the callback runs are one wake-up; a send after it is another. */
static void test_wakeup_merges(void **state) {
  (void)state;
  uv_loop_t loop;
  loop_wakeup wake;
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(loop_wakeup_init(&loop, &wake, count_cb), 0);
  wakeups = 0;
  uv_run(&loop, UV_RUN_NOWAIT);
  assert_int_equal(wakeups, 0);
  for (int i = 0; i < 3; i++) loop_wakeup_send(&wake);
  uv_run(&loop, UV_RUN_NOWAIT);
  assert_int_equal(wakeups, 1);
  uv_run(&loop, UV_RUN_NOWAIT);
  assert_int_equal(wakeups, 1);
  loop_wakeup_send(&wake);
  uv_run(&loop, UV_RUN_NOWAIT);
  assert_int_equal(wakeups, 2);
  loop_wakeup_close(&wake, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_single_thread_fifo), cmocka_unit_test(test_wakeup_merges),
      cmocka_unit_test(test_closed_refuses),     cmocka_unit_test(test_many_producers),
      cmocka_unit_test(test_close_race),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
