/* test_msg_queue.c: the intrusive message FIFO: push/pop order, prepend, append, counts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "msg_queue.h"

static lore_msg *mk(int64_t v) {
  lore_msg *m = msg_new(MSG_USER, NULL, 0, NULL, 0);
  assert_non_null(m);
  m->ival = v;
  return m;
}

static void push_range(msg_queue *q, int64_t from, int64_t to) {
  for (int64_t v = from; v < to; v++) msg_queue_push(q, mk(v));
}

/* Pops everything and checks it is exactly from..to-1 in order. */
static void expect_range(msg_queue *q, int64_t from, int64_t to) {
  assert_int_equal(q->count, (size_t)(to - from));
  for (int64_t v = from; v < to; v++) {
    lore_msg *m = msg_queue_pop(q);
    assert_non_null(m);
    assert_int_equal(m->ival, v);
    assert_null(m->next);
    msg_free(m);
  }
  assert_true(msg_queue_empty(q));
  assert_null(q->head);
  assert_null(q->tail);
  assert_int_equal(q->count, 0);
}

static void test_empty(void **state) {
  (void)state;
  msg_queue q;
  msg_queue_init(&q);
  assert_true(msg_queue_empty(&q));
  assert_int_equal(q.count, 0);
  assert_null(msg_queue_pop(&q));
  assert_null(msg_queue_pop(&q));
  assert_int_equal(q.count, 0);
}

static void test_fifo(void **state) {
  (void)state;
  msg_queue q;
  msg_queue_init(&q);
  push_range(&q, 0, 1000);
  assert_false(msg_queue_empty(&q));
  assert_int_equal(q.count, 1000);
  expect_range(&q, 0, 1000);
}

/* Interleaved pushes and pops, including draining to empty and reusing the queue. */
static void test_interleaved(void **state) {
  (void)state;
  msg_queue q;
  msg_queue_init(&q);
  int64_t next_in = 0, next_out = 0;
  for (int round = 0; round < 50; round++) {
    for (int i = 0; i < round % 7 + 1; i++) msg_queue_push(&q, mk(next_in++));
    for (int i = 0; i < round % 5 + 1; i++) {
      lore_msg *m = msg_queue_pop(&q);
      if (!m) {
        assert_int_equal(next_out, next_in);
        assert_true(msg_queue_empty(&q));
        break;
      }
      assert_int_equal(m->ival, next_out++);
      msg_free(m);
    }
    assert_int_equal(q.count, (size_t)(next_in - next_out));
  }
  expect_range(&q, next_out, next_in);
  /* A single element: head == tail, and popping it empties both ends. */
  msg_queue_push(&q, mk(7));
  assert_ptr_equal(q.head, q.tail);
  expect_range(&q, 7, 8);
}

/* Unstash: the stash goes back in front of the mailbox, both orders kept. */
static void test_prepend(void **state) {
  (void)state;
  msg_queue mailbox, stash;
  msg_queue_init(&mailbox);
  msg_queue_init(&stash);
  push_range(&stash, 0, 10);
  push_range(&mailbox, 10, 25);
  msg_queue_prepend(&mailbox, &stash);
  assert_true(msg_queue_empty(&stash));
  assert_int_equal(stash.count, 0);
  assert_null(stash.tail);
  /* Pushing after a prepend must land at the very end. */
  msg_queue_push(&mailbox, mk(25));
  expect_range(&mailbox, 0, 26);
}

static void test_prepend_edge_cases(void **state) {
  (void)state;
  msg_queue q, front;
  msg_queue_init(&q);
  msg_queue_init(&front);
  /* Empty front: nothing changes. */
  push_range(&q, 0, 3);
  msg_queue_prepend(&q, &front);
  assert_int_equal(q.count, 3);
  expect_range(&q, 0, 3);
  /* Empty target: q becomes front, and its tail is front's tail. */
  push_range(&front, 0, 4);
  msg_queue_prepend(&q, &front);
  assert_true(msg_queue_empty(&front));
  msg_queue_push(&q, mk(4));
  expect_range(&q, 0, 5);
  /* Both empty. */
  msg_queue_prepend(&q, &front);
  assert_true(msg_queue_empty(&q));
  /* Repeated unstash: each stash goes in front of what is there. */
  push_range(&q, 20, 30);
  push_range(&front, 10, 20);
  msg_queue_prepend(&q, &front);
  push_range(&front, 0, 10);
  msg_queue_prepend(&q, &front);
  expect_range(&q, 0, 30);
}

static void test_append(void **state) {
  (void)state;
  msg_queue q, back;
  msg_queue_init(&q);
  msg_queue_init(&back);
  push_range(&q, 0, 5);
  push_range(&back, 5, 12);
  msg_queue_append(&q, &back);
  assert_true(msg_queue_empty(&back));
  assert_int_equal(back.count, 0);
  assert_int_equal(q.count, 12);
  msg_queue_push(&q, mk(12));
  expect_range(&q, 0, 13);
  /* Into an empty queue. */
  push_range(&back, 0, 3);
  msg_queue_append(&q, &back);
  assert_true(msg_queue_empty(&back));
  expect_range(&q, 0, 3);
  /* An empty back changes nothing. */
  push_range(&q, 0, 2);
  msg_queue_append(&q, &back);
  expect_range(&q, 0, 2);
  msg_queue_append(&q, &back);
  assert_true(msg_queue_empty(&q));
}

static void test_msg_new(void **state) {
  (void)state;
  const char payload[] = {1, 2, 3, 0, 5};
  lore_msg *m = msg_new(MSG_SYSTEM, payload, sizeof payload, "counter-7", 9);
  assert_non_null(m);
  assert_int_equal(m->kind, MSG_SYSTEM);
  assert_int_equal(m->len, sizeof payload);
  assert_memory_equal(m->data, payload, sizeof payload);
  assert_string_equal(m->name, "counter-7");
  assert_ptr_equal(m->name, m->data + sizeof payload);
  assert_null(m->next);
  assert_int_equal(m->target.aid, 0);
  assert_int_equal(m->corr, 0);
  msg_free(m);
  /* A name is cut at name_len; no payload pointer with a length leaves the bytes alone. */
  m = msg_new(MSG_USER, NULL, 4, "abcdef", 3);
  assert_non_null(m);
  assert_int_equal(m->len, 4);
  assert_string_equal(m->name, "abc");
  msg_free(m);
  m = msg_new(MSG_USER, NULL, 0, NULL, 0);
  assert_non_null(m);
  assert_null(m->name);
  assert_int_equal(m->len, 0);
  msg_free(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_empty),
      cmocka_unit_test(test_fifo),
      cmocka_unit_test(test_interleaved),
      cmocka_unit_test(test_prepend),
      cmocka_unit_test(test_prepend_edge_cases),
      cmocka_unit_test(test_append),
      cmocka_unit_test(test_msg_new),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
