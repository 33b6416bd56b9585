/* test_scheduler.c: schedulers and actors end to end: ordering, holds, stash, stop, timers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "scheduler.h"

/* What a test actor does with a message, by its `sub`. */
enum {
  CMD_NONE = 0,
  CMD_HOLD,         /* actor_hold, hold_capacity = ival */
  CMD_RELEASE,      /* actor_release */
  CMD_STOP,         /* actor_stop from inside receive */
  CMD_STASH,        /* stashed while the actor's `stashing` flag is set */
  CMD_UNSTASH,      /* clears `stashing`, actor_unstash_all */
  CMD_IO_BEGIN,     /* actor_io_begin */
  CMD_IO_END,       /* actor_io_end */
  CMD_FORWARD,      /* sends a user message with the same ival to `peer` */
  CMD_TIMER,        /* starts a timer of ival ms */
  CMD_TIMER_CANCEL, /* starts a long timer and cancels it at once */
  CMD_TIMER_LEAVE,  /* starts a long timer and leaves it pending */
  CMD_BUSY_TIMER,   /* busy for 30 ms, then starts a timer of ival ms */
};

typedef struct entry {
  uint32_t kind, sub;
  int64_t ival;
  uint64_t sender;
  int64_t aux; /* CMD_NONE: how many messages `watch` had received then */
} entry;

typedef struct tact tact;
struct tact {
  uint32_t sched;
  uint64_t aid;
  lore_addr peer;
  tact *watch;
  int stashing;
  int stop_on_stop; /* calls actor_stop itself on MSG_STOP (as the Lua binding does) */
  entry *log;
  size_t cap;
  size_t n;       /* atomic: entries written */
  int stopped;    /* atomic: stopped hook calls */
  int overflowed; /* atomic */
  int64_t *overflow_vals;
  int wrong_thread; /* atomic: hooks run off the actor's scheduler */
  int timer_fired;  /* atomic */
  int timer_freed;  /* atomic */
  int timer_early;  /* atomic: fired before its delay */
  sched_t *home;    /* set on the actor's thread at creation */
};

typedef struct ctx {
  runtime_t *rt;
  uv_mutex_t lock;
  int sched_start, sched_stop, host_system, workers_stopped, wrong_thread, fail_start_index;
  int dead_letter_hooks;
  int64_t dead_vals[256];
  uint32_t dead_kinds[256];
} ctx;

static size_t aload(size_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static int iload(int *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static void iinc(int *p) { __atomic_add_fetch(p, 1, __ATOMIC_ACQ_REL); }

/* --- the test actor --- */

static void record(tact *t, const lore_msg *m, int64_t aux) {
  size_t n = t->n;
  if (n < t->cap) t->log[n] = (entry){m->kind, m->sub, m->ival, m->sender.aid, aux};
  __atomic_store_n(&t->n, n + 1, __ATOMIC_RELEASE);
}

typedef struct timer_ud {
  tact *t;
  sched_t *s;
  uint64_t start, ms;
} timer_ud;

static void timer_fn(void *ud) {
  timer_ud *u = ud;
  if (sched_current() != u->s) iinc(&u->t->wrong_thread);
  /* Loop time has millisecond resolution: allow 2 ms of rounding. */
  if ((int64_t)(uv_hrtime() - u->start) + 2000000 < (int64_t)u->ms * 1000000)
    iinc(&u->t->timer_early);
  iinc(&u->t->timer_fired);
  free(u);
}

static void timer_free(void *ud) {
  timer_ud *u = ud;
  iinc(&u->t->timer_freed);
  free(u);
}

static sched_timer *start_timer(actor_t *a, tact *t, uint64_t ms) {
  timer_ud *u = malloc(sizeof *u);
  *u = (timer_ud){t, a->sched, uv_hrtime(), ms};
  sched_timer *tm = sched_timer_start(a->sched, ms, timer_fn, u, timer_free);
  if (!tm) free(u);
  return tm;
}

static int t_receive(actor_t *a, lore_msg *m) {
  tact *t = a->data;
  if (sched_current() != a->sched || t->home != a->sched) iinc(&t->wrong_thread);
  record(t, m, t->watch ? (int64_t)t->watch->n : 0);
  if (m->kind == MSG_STOP && t->stop_on_stop) actor_stop(a);
  switch (m->sub) {
    case CMD_HOLD:
      a->hold_capacity = (uint32_t)m->ival;
      actor_hold(a);
      break;
    case CMD_RELEASE:
      actor_release(a);
      break;
    case CMD_STOP:
      actor_stop(a);
      break;
    case CMD_STASH:
      if (t->stashing) {
        actor_stash(a, m);
        return ACTOR_KEPT;
      }
      break;
    case CMD_UNSTASH:
      t->stashing = 0;
      actor_unstash_all(a);
      break;
    case CMD_IO_BEGIN:
      actor_io_begin(a);
      break;
    case CMD_IO_END:
      actor_io_end(a);
      break;
    case CMD_FORWARD: {
      lore_msg *f = msg_new(MSG_USER, NULL, 0, NULL, 0);
      f->ival = m->ival;
      f->target = t->peer;
      f->sender = (lore_addr){a->sched->index, a->aid};
      runtime_send(a->sched->rt, f);
      break;
    }
    case CMD_TIMER:
      if (!start_timer(a, t, (uint64_t)m->ival)) iinc(&t->wrong_thread);
      break;
    case CMD_TIMER_CANCEL: {
      sched_timer *tm = start_timer(a, t, 60000);
      if (tm) sched_timer_cancel(tm);
      break;
    }
    case CMD_TIMER_LEAVE:
      start_timer(a, t, 60000);
      break;
    case CMD_BUSY_TIMER: {
      uint64_t until = uv_hrtime() + 30 * 1000000ull;
      while (uv_hrtime() < until) {
      }
      if (!start_timer(a, t, (uint64_t)m->ival)) iinc(&t->wrong_thread);
      break;
    }
  }
  return ACTOR_CONSUMED;
}

static void t_overflow(actor_t *a, lore_msg *m) {
  tact *t = a->data;
  if (sched_current() != a->sched) iinc(&t->wrong_thread);
  int n = iload(&t->overflowed);
  if (n < 64) t->overflow_vals[n] = m->ival;
  iinc(&t->overflowed);
  msg_free(m);
}

static void t_stopped(actor_t *a) {
  tact *t = a->data;
  if (sched_current() != a->sched) iinc(&t->wrong_thread);
  iinc(&t->stopped);
}

static const actor_ops test_ops = {
    .receive = t_receive, .overflow = t_overflow, .stopped = t_stopped};

static tact *tact_new(size_t cap) {
  tact *t = calloc(1, sizeof *t);
  t->cap = cap;
  t->log = calloc(cap, sizeof *t->log);
  t->overflow_vals = calloc(64, sizeof *t->overflow_vals);
  return t;
}

static void tact_free(tact *t) {
  free(t->log);
  free(t->overflow_vals);
  free(t);
}

/* --- runtime hooks --- */

typedef struct spawn_req {
  uint64_t aid;
  const char *name;
  tact *t;
  int result;
  int done; /* atomic */
} spawn_req;

static int h_sched_start(sched_t *s) {
  ctx *c = s->rt->data;
  if (sched_current() != s) iinc(&c->wrong_thread);
  iinc(&c->sched_start);
  return c->fail_start_index && (int)s->index == c->fail_start_index ? UV_EINVAL : 0;
}

static void h_sched_stop(sched_t *s) {
  ctx *c = s->rt->data;
  if (sched_current() != s) iinc(&c->wrong_thread);
  /* Every actor of this scheduler is gone by now. */
  if (s->actors) iinc(&c->wrong_thread);
  iinc(&c->sched_stop);
}

static int h_sched_message(sched_t *s, lore_msg *m) {
  ctx *c = s->rt->data;
  if (sched_current() != s) iinc(&c->wrong_thread);
  if (m->kind == MSG_SPAWN) {
    spawn_req *r = m->ptr;
    actor_t *a = NULL;
    r->t->home = s;
    r->result = actor_create(s, r->aid, r->name, &test_ops, r->t, &a);
    if (r->result == 0 && (a->aid != r->aid || a->sched != s || a->data != r->t))
      r->result = -12345;
    __atomic_store_n(&r->done, 1, __ATOMIC_RELEASE);
  } else if (m->kind == MSG_SYSTEM && s->index == 0 && m->sub == MSG_HOST_NONE_ALIVE) {
    iinc(&c->host_system);
  } else if (m->kind == MSG_SYSTEM && s->index == 0 && m->sub == MSG_HOST_WORKER_STOPPED) {
    iinc(&c->workers_stopped);
  }
  return ACTOR_CONSUMED;
}

static void h_dead_letter(sched_t *s, lore_msg *m) {
  ctx *c = s->rt->data;
  if (sched_current() != s) iinc(&c->wrong_thread);
  uv_mutex_lock(&c->lock);
  int n = c->dead_letter_hooks;
  if (n < 256) {
    c->dead_vals[n] = m->ival;
    c->dead_kinds[n] = m->kind;
  }
  __atomic_store_n(&c->dead_letter_hooks, n + 1, __ATOMIC_RELEASE);
  uv_mutex_unlock(&c->lock);
}

static const runtime_hooks hooks = {.sched_start = h_sched_start,
                                    .sched_stop = h_sched_stop,
                                    .sched_message = h_sched_message,
                                    .dead_letter = h_dead_letter};

/* --- driving the host loop --- */

typedef int (*pred_fn)(void *ud);

/* Runs the host loop until pred holds or `ms` pass; returns whether it held. */
static int run_until(ctx *c, pred_fn pred, void *ud, uint64_t ms) {
  uint64_t deadline = uv_hrtime() + ms * 1000000;
  for (;;) {
    uv_run(runtime_host_loop(c->rt), UV_RUN_NOWAIT);
    if (pred(ud)) return 1;
    if (uv_hrtime() > deadline) return 0;
    uv_sleep(1);
  }
}

typedef struct count_wait {
  size_t *p;
  size_t want;
} count_wait;

static int count_reached(void *ud) {
  count_wait *w = ud;
  return aload(w->p) >= w->want;
}

static int int_reached(void *ud) {
  count_wait *w = ud;
  return (size_t)iload((int *)w->p) >= w->want;
}

static void wait_log(ctx *c, tact *t, size_t n) {
  count_wait w = {&t->n, n};
  assert_true(run_until(c, count_reached, &w, 5000));
}

static void wait_int(ctx *c, int *p, int n) {
  count_wait w = {(size_t *)p, (size_t)n};
  assert_true(run_until(c, int_reached, &w, 5000));
}

/* Runs the host loop for a while, for "nothing more happens" checks. */
static void settle(ctx *c, uint64_t ms) {
  uint64_t end = uv_hrtime() + ms * 1000000;
  while (uv_hrtime() < end) {
    uv_run(runtime_host_loop(c->rt), UV_RUN_NOWAIT);
    uv_sleep(1);
  }
}

/* Creates an actor on worker `w` through a MSG_SPAWN handled on that worker. */
static int spawn(ctx *c, tact *t, uint32_t w, const char *name) {
  spawn_req r = {runtime_new_aid(c->rt), name, t, 0, 0};
  lore_msg *m = msg_new(MSG_SPAWN, NULL, 0, NULL, 0);
  m->target.sched = w;
  m->ptr = &r;
  runtime_send(c->rt, m);
  wait_int(c, &r.done, 1);
  if (r.result == 0) {
    t->sched = w;
    t->aid = r.aid;
  }
  return r.result;
}

static lore_msg *mk_to(tact *t, uint32_t kind, uint32_t sub, int64_t ival) {
  lore_msg *m = msg_new(kind, NULL, 0, NULL, 0);
  assert_non_null(m);
  m->sub = sub;
  m->ival = ival;
  m->target = (lore_addr){t->sched, t->aid};
  return m;
}

static void send_to(ctx *c, tact *t, uint32_t kind, uint32_t sub, int64_t ival) {
  runtime_send(c->rt, mk_to(t, kind, sub, ival));
}

static void expect_vals(tact *t, size_t from, const int64_t *vals, size_t n) {
  assert_true(aload(&t->n) >= from + n);
  for (size_t i = 0; i < n; i++) assert_int_equal(t->log[from + i].ival, vals[i]);
}

static uint64_t dead_letters(ctx *c) {
  return __atomic_load_n(&c->rt->dead_letters, __ATOMIC_ACQUIRE);
}

/* --- fixture --- */

static int setup(void **state) {
  ctx *c = calloc(1, sizeof *c);
  uv_mutex_init(&c->lock);
  runtime_config cfg = {.workers = 2};
  if (runtime_create(&cfg, &hooks, c, &c->rt)) return -1;
  if (runtime_start(c->rt)) return -1;
  if (iload(&c->sched_start) != 3) return -1; /* host + 2 workers */
  *state = c;
  return 0;
}

/* Shuts down, checks that the workers ended cleanly, frees. */
static void finish(ctx *c) {
  runtime_shutdown(c->rt);
  runtime_join(c->rt);
  assert_int_equal(__atomic_load_n(&c->rt->alive, __ATOMIC_ACQUIRE), 0);
  assert_int_equal(iload(&c->sched_stop), 3);
  assert_int_equal(iload(&c->wrong_thread), 0);
  for (int i = 1; i <= c->rt->workers; i++) assert_int_equal(c->rt->scheds[i]->actors, 0);
  runtime_free(c->rt);
  c->rt = NULL;
}

static int teardown(void **state) {
  ctx *c = *state;
  if (c->rt) finish(c);
  uv_mutex_destroy(&c->lock);
  free(c);
  return 0;
}

/* --- tests --- */

static void test_tell_order(void **state) {
  ctx *c = *state;
  enum { N = 10000 };
  tact *t = tact_new(N);
  assert_int_equal(spawn(c, t, 1, NULL), 0);
  for (int i = 0; i < N; i++) send_to(c, t, MSG_USER, CMD_NONE, i);
  wait_log(c, t, N);
  for (int i = 0; i < N; i++) {
    assert_int_equal(t->log[i].kind, MSG_USER);
    assert_int_equal(t->log[i].ival, i);
  }
  settle(c, 5);
  assert_int_equal(aload(&t->n), N);
  finish(c);
  assert_int_equal(iload(&t->stopped), 1);
  assert_int_equal(iload(&t->wrong_thread), 0);
  tact_free(t);
}

/* A (worker 1) and C (worker 2) both forward to B (worker 2); the test thread sends to B
 * too. Each sender's order is kept at B. */
static void test_cross_scheduler(void **state) {
  ctx *c = *state;
  enum { N = 10000 };
  tact *a = tact_new(N), *b = tact_new(3 * N), *cc = tact_new(N);
  assert_int_equal(spawn(c, b, 2, NULL), 0);
  assert_int_equal(spawn(c, a, 1, NULL), 0);
  assert_int_equal(spawn(c, cc, 2, NULL), 0);
  a->peer = cc->peer = (lore_addr){b->sched, b->aid};
  for (int i = 0; i < N; i++) {
    send_to(c, a, MSG_USER, CMD_FORWARD, i);
    send_to(c, cc, MSG_USER, CMD_FORWARD, i);
    send_to(c, b, MSG_USER, CMD_NONE, i);
  }
  wait_log(c, b, 3 * N);
  int64_t next_a = 0, next_c = 0, next_host = 0;
  for (size_t i = 0; i < 3 * N; i++) {
    entry *e = &b->log[i];
    if (e->sender == a->aid)
      assert_int_equal(e->ival, next_a++);
    else if (e->sender == cc->aid)
      assert_int_equal(e->ival, next_c++);
    else {
      assert_int_equal(e->sender, 0);
      assert_int_equal(e->ival, next_host++);
    }
  }
  assert_int_equal(next_a, N);
  assert_int_equal(next_c, N);
  assert_int_equal(next_host, N);
  assert_int_equal(dead_letters(c), 0);
  finish(c);
  assert_int_equal(iload(&a->stopped) + iload(&b->stopped) + iload(&cc->stopped), 3);
  tact_free(a);
  tact_free(b);
  tact_free(cc);
}

/* runtime_send_all from a thread that is no scheduler: each actor gets its
 * messages in the queue's order, and a message for no worker is a dead letter. */
static void test_send_all(void **state) {
  ctx *c = *state;
  enum { N = 1000 };
  tact *a = tact_new(N), *b = tact_new(N);
  assert_int_equal(spawn(c, a, 1, NULL), 0);
  assert_int_equal(spawn(c, b, 2, NULL), 0);
  msg_queue q;
  msg_queue_init(&q);
  for (int i = 0; i < N; i++) {
    msg_queue_push(&q, mk_to(i % 3 ? a : b, MSG_USER, CMD_NONE, i));
    if (i == N / 2) {
      lore_msg *lost = mk_to(a, MSG_USER, CMD_NONE, -1);
      lost->target.sched = (uint32_t)c->rt->workers + 1;
      msg_queue_push(&q, lost);
    }
  }
  runtime_send_all(c->rt, &q);
  assert_true(msg_queue_empty(&q));
  size_t want_a = 0, want_b = 0;
  for (int i = 0; i < N; i++) {
    if (i % 3)
      want_a++;
    else
      want_b++;
  }
  wait_log(c, a, want_a);
  wait_log(c, b, want_b);
  int64_t next_a = 0, next_b = 0;
  for (size_t i = 0; i < want_a; i++) {
    while (!(next_a % 3)) next_a++;
    assert_int_equal(a->log[i].ival, next_a++);
  }
  for (size_t i = 0; i < want_b; i++, next_b += 3) assert_int_equal(b->log[i].ival, next_b);
  assert_int_equal(dead_letters(c), 1);
  finish(c);
  tact_free(a);
  tact_free(b);
}

/* User messages already queued wait while a later system message goes first. */
static void test_system_first(void **state) {
  ctx *c = *state;
  tact *t = tact_new(64);
  assert_int_equal(spawn(c, t, 1, NULL), 0);
  for (int i = 0; i < 5; i++) send_to(c, t, MSG_USER, CMD_NONE, i);
  send_to(c, t, MSG_SYSTEM, CMD_NONE, 100);
  send_to(c, t, MSG_SYSTEM, CMD_NONE, 101);
  wait_log(c, t, 7);
  const int64_t want[] = {100, 101, 0, 1, 2, 3, 4};
  expect_vals(t, 0, want, 7);
  assert_int_equal(t->log[0].kind, MSG_SYSTEM);
  assert_int_equal(t->log[2].kind, MSG_USER);
  finish(c);
  tact_free(t);
}

static void test_hold_release(void **state) {
  ctx *c = *state;
  tact *t = tact_new(64);
  assert_int_equal(spawn(c, t, 2, NULL), 0);
  send_to(c, t, MSG_SYSTEM, CMD_HOLD, 0);
  wait_log(c, t, 1);
  for (int i = 0; i < 5; i++) send_to(c, t, MSG_USER, CMD_NONE, i);
  send_to(c, t, MSG_TIMER, CMD_NONE, 5); /* a timer message is a command too */
  /* Held: system messages still flow, commands wait. */
  send_to(c, t, MSG_SYSTEM, CMD_NONE, 100);
  wait_log(c, t, 2);
  settle(c, 20);
  assert_int_equal(aload(&t->n), 2);
  assert_int_equal(t->log[1].ival, 100);
  /* Two holds need two releases. */
  send_to(c, t, MSG_SYSTEM, CMD_HOLD, 0);
  send_to(c, t, MSG_SYSTEM, CMD_RELEASE, 200);
  wait_log(c, t, 4);
  settle(c, 20);
  assert_int_equal(aload(&t->n), 4);
  send_to(c, t, MSG_SYSTEM, CMD_RELEASE, 201);
  send_to(c, t, MSG_USER, CMD_NONE, 6);
  wait_log(c, t, 12);
  const int64_t want[] = {201, 0, 1, 2, 3, 4, 5, 6};
  expect_vals(t, 4, want, 8);
  assert_int_equal(t->log[10].kind, MSG_TIMER);
  finish(c);
  assert_int_equal(iload(&t->stopped), 1);
  tact_free(t);
}

static void test_hold_capacity_overflow(void **state) {
  ctx *c = *state;
  tact *t = tact_new(64);
  assert_int_equal(spawn(c, t, 1, NULL), 0);
  send_to(c, t, MSG_SYSTEM, CMD_HOLD, 3); /* hold_capacity 3 */
  wait_log(c, t, 1);
  for (int i = 0; i < 10; i++) send_to(c, t, MSG_USER, CMD_NONE, i);
  wait_int(c, &t->overflowed, 7);
  settle(c, 10);
  assert_int_equal(iload(&t->overflowed), 7);
  for (int i = 0; i < 7; i++) assert_int_equal(t->overflow_vals[i], 3 + i);
  assert_int_equal(aload(&t->n), 1);
  send_to(c, t, MSG_SYSTEM, CMD_RELEASE, 100);
  wait_log(c, t, 5);
  const int64_t want[] = {100, 0, 1, 2};
  expect_vals(t, 1, want, 4);
  /* Released: no capacity limit applies. */
  for (int i = 10; i < 30; i++) send_to(c, t, MSG_USER, CMD_NONE, i);
  wait_log(c, t, 25);
  assert_int_equal(iload(&t->overflowed), 7);
  finish(c);
  tact_free(t);
}

/* Stashed messages come back, in order, before the ones that were already behind them. */
static void test_stash_unstash(void **state) {
  ctx *c = *state;
  tact *t = tact_new(64);
  t->stashing = 1;
  assert_int_equal(spawn(c, t, 1, NULL), 0);
  send_to(c, t, MSG_USER, CMD_STASH, 1);
  send_to(c, t, MSG_USER, CMD_NONE, 2);
  send_to(c, t, MSG_USER, CMD_STASH, 3);
  send_to(c, t, MSG_USER, CMD_STASH, 4);
  send_to(c, t, MSG_USER, CMD_UNSTASH, 5);
  send_to(c, t, MSG_USER, CMD_NONE, 6);
  send_to(c, t, MSG_USER, CMD_NONE, 7);
  wait_log(c, t, 10);
  const int64_t want[] = {1, 2, 3, 4, 5, 1, 3, 4, 6, 7};
  expect_vals(t, 0, want, 10);
  settle(c, 10);
  assert_int_equal(aload(&t->n), 10);
  /* Unstash with an empty stash changes nothing; stash survives a hold. */
  send_to(c, t, MSG_USER, CMD_UNSTASH, 8);
  send_to(c, t, MSG_USER, CMD_NONE, 9);
  wait_log(c, t, 12);
  const int64_t want2[] = {8, 9};
  expect_vals(t, 10, want2, 2);
  finish(c);
  tact_free(t);
}

/* A stash left at stop becomes dead letters, like the mailbox. */
static void test_stash_left_at_stop(void **state) {
  ctx *c = *state;
  tact *t = tact_new(64);
  t->stashing = 1;
  assert_int_equal(spawn(c, t, 1, NULL), 0);
  send_to(c, t, MSG_USER, CMD_STASH, 1);
  send_to(c, t, MSG_USER, CMD_STASH, 2);
  send_to(c, t, MSG_STOP, CMD_NONE, 0);
  wait_int(c, &t->stopped, 1);
  wait_int(c, &c->dead_letter_hooks, 2);
  assert_int_equal(aload(&t->n), 3); /* 1, 2, then the stop */
  assert_int_equal(t->log[2].kind, MSG_STOP);
  assert_int_equal(dead_letters(c), 2);
  assert_int_equal(c->dead_vals[0], 1);
  assert_int_equal(c->dead_vals[1], 2);
  finish(c);
  tact_free(t);
}

static void test_msg_stop(void **state) {
  ctx *c = *state;
  tact *t = tact_new(64);
  assert_int_equal(spawn(c, t, 2, NULL), 0);
  for (int i = 0; i < 5; i++) send_to(c, t, MSG_USER, CMD_NONE, i);
  send_to(c, t, MSG_STOP, CMD_NONE, -1);
  for (int i = 5; i < 8; i++) send_to(c, t, MSG_USER, CMD_NONE, i);
  wait_int(c, &t->stopped, 1);
  /* The five before the stop were handled, then receive saw the stop (and did nothing:
   * the core stops the actor anyway); the three after it are dead letters. */
  wait_int(c, &c->dead_letter_hooks, 3);
  assert_int_equal(aload(&t->n), 6);
  const int64_t want[] = {0, 1, 2, 3, 4, -1};
  expect_vals(t, 0, want, 6);
  assert_int_equal(t->log[5].kind, MSG_STOP);
  assert_int_equal(dead_letters(c), 3);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(c->dead_vals[i], 5 + i);
    assert_int_equal(c->dead_kinds[i], MSG_USER);
  }
  /* The last actor gone: the host hears of it. */
  wait_int(c, &c->host_system, 1);
  assert_int_equal(__atomic_load_n(&c->rt->alive, __ATOMIC_ACQUIRE), 0);
  /* Later messages to it are dead letters too. */
  send_to(c, t, MSG_USER, CMD_NONE, 9);
  wait_int(c, &c->dead_letter_hooks, 4);
  assert_int_equal(c->dead_vals[3], 9);
  assert_int_equal(dead_letters(c), 4);
  finish(c);
  assert_int_equal(iload(&t->stopped), 1);
  tact_free(t);
}

static void test_stop_inside_receive(void **state) {
  ctx *c = *state;
  tact *t = tact_new(64);
  assert_int_equal(spawn(c, t, 1, "stopper"), 0);
  send_to(c, t, MSG_USER, CMD_NONE, 1);
  send_to(c, t, MSG_USER, CMD_STOP, 2);
  send_to(c, t, MSG_USER, CMD_NONE, 3);
  send_to(c, t, MSG_SYSTEM, CMD_NONE, 4);
  wait_int(c, &t->stopped, 1);
  /* 4 (system) went first, then 1 and the stopping message 2; 3 is a dead letter. */
  wait_int(c, &c->dead_letter_hooks, 1);
  const int64_t want[] = {4, 1, 2};
  expect_vals(t, 0, want, 3);
  assert_int_equal(aload(&t->n), 3);
  assert_int_equal(c->dead_vals[0], 3);
  /* Its name is free again. */
  tact *t2 = tact_new(8);
  assert_int_equal(spawn(c, t2, 1, "stopper"), 0);
  finish(c);
  assert_int_equal(iload(&t->stopped), 1);
  assert_int_equal(iload(&t2->stopped), 1);
  tact_free(t);
  tact_free(t2);
}

/* A stopping actor with I/O in flight is finalized only once the I/O ends; the
 * completion arrives as a system message, which must still be delivered. */
static void test_io_defers_stop(void **state) {
  ctx *c = *state;
  tact *t = tact_new(64);
  assert_int_equal(spawn(c, t, 1, NULL), 0);
  send_to(c, t, MSG_SYSTEM, CMD_IO_BEGIN, 0);
  send_to(c, t, MSG_SYSTEM, CMD_IO_BEGIN, 1);
  send_to(c, t, MSG_USER, CMD_STOP, 2);
  wait_log(c, t, 3);
  send_to(c, t, MSG_USER, CMD_NONE, 3); /* not delivered: the actor is stopping */
  settle(c, 20);
  assert_int_equal(iload(&t->stopped), 0);
  assert_int_equal(aload(&t->n), 3);
  assert_int_equal(__atomic_load_n(&c->rt->alive, __ATOMIC_ACQUIRE), 1);
  send_to(c, t, MSG_SYSTEM, CMD_IO_END, 4);
  wait_log(c, t, 4);
  settle(c, 20);
  assert_int_equal(iload(&t->stopped), 0);
  send_to(c, t, MSG_SYSTEM, CMD_IO_END, 5);
  wait_int(c, &t->stopped, 1);
  const int64_t want[] = {0, 1, 2, 4, 5};
  expect_vals(t, 0, want, 5);
  assert_int_equal(aload(&t->n), 5);
  wait_int(c, &c->dead_letter_hooks, 1);
  assert_int_equal(c->dead_vals[0], 3);
  finish(c);
  assert_int_equal(iload(&t->stopped), 1);
  tact_free(t);
}

static void test_unknown_target(void **state) {
  ctx *c = *state;
  tact *t = tact_new(8);
  assert_int_equal(spawn(c, t, 1, NULL), 0);
  lore_msg *m = mk_to(t, MSG_USER, CMD_NONE, 77);
  m->target.aid = t->aid + 1000;
  runtime_send(c->rt, m);
  wait_int(c, &c->dead_letter_hooks, 1);
  assert_int_equal(c->dead_vals[0], 77);
  assert_int_equal(dead_letters(c), 1);
  /* By name, no such actor. */
  m = msg_new(MSG_USER, NULL, 0, "nobody", 6);
  m->ival = 78;
  runtime_send(c->rt, m);
  wait_int(c, &c->dead_letter_hooks, 2);
  assert_int_equal(c->dead_vals[1], 78);
  /* A scheduler index out of range. */
  m = mk_to(t, MSG_USER, CMD_NONE, 79);
  m->target.sched = 99;
  runtime_send(c->rt, m);
  settle(c, 5);
  assert_int_equal(dead_letters(c), 3);
  /* Sent from the host's thread: the hook ran there. */
  assert_int_equal(iload(&c->dead_letter_hooks), 3);
  assert_int_equal(c->dead_vals[2], 79);
  assert_int_equal(aload(&t->n), 0);
  finish(c);
  tact_free(t);
}

static void test_names(void **state) {
  ctx *c = *state;
  uint32_t w = runtime_sched_for_name(c->rt, "alpha");
  assert_true(w >= 1 && w <= 2);
  assert_int_equal(runtime_sched_for_name(c->rt, "alpha"), w);
  tact *t = tact_new(8), *dup = tact_new(8), *other = tact_new(8);
  assert_int_equal(spawn(c, t, w, "alpha"), 0);
  assert_int_equal(spawn(c, dup, w, "alpha"), UV_EEXIST);
  /* The same name on the other worker is another scheduler's business (not its home). */
  assert_int_equal(spawn(c, other, 3 - w, "alpha"), 0);
  /* Routed by name to the home worker. */
  lore_msg *m = msg_new(MSG_USER, NULL, 0, "alpha", 5);
  m->ival = 5;
  runtime_send(c->rt, m);
  wait_log(c, t, 1);
  assert_int_equal(t->log[0].ival, 5);
  settle(c, 5);
  assert_int_equal(aload(&other->n), 0);
  finish(c);
  assert_int_equal(iload(&t->stopped), 1);
  assert_int_equal(iload(&other->stopped), 1);
  assert_int_equal(iload(&dup->stopped), 0);
  tact_free(t);
  tact_free(dup);
  tact_free(other);
}

/* A second actor with an aid already live on the scheduler is refused. */
static int h_dup_aid(sched_t *s, lore_msg *m) {
  if (m->kind != MSG_SPAWN) return ACTOR_CONSUMED; /* the host hearing the last actor ended */
  int *res = m->ptr;
  actor_t *a1 = NULL, *a2 = NULL;
  static tact t1;
  res[0] = actor_create(s, 424242, NULL, &test_ops, &t1, &a1);
  res[1] = actor_create(s, 424242, NULL, &test_ops, &t1, &a2);
  res[2] = sched_find(s, 424242) == a1;
  t1.home = s;
  actor_stop(a1); /* not running, no I/O: gone at once */
  res[3] = sched_find(s, 424242) == NULL;
  __atomic_store_n(&res[4], 1, __ATOMIC_RELEASE);
  return ACTOR_CONSUMED;
}

static void test_duplicate_aid(void **state) {
  ctx *c = *state;
  finish(c);
  static const runtime_hooks dup_hooks = {.sched_message = h_dup_aid};
  runtime_config cfg = {.workers = 1};
  assert_int_equal(runtime_create(&cfg, &dup_hooks, c, &c->rt), 0);
  assert_int_equal(runtime_start(c->rt), 0);
  int res[5] = {0};
  lore_msg *m = msg_new(MSG_SPAWN, NULL, 0, NULL, 0);
  m->target.sched = 1;
  m->ptr = res;
  runtime_send(c->rt, m);
  wait_int(c, &res[4], 1);
  assert_int_equal(res[0], 0);
  assert_int_equal(res[1], UV_EEXIST);
  assert_int_equal(res[2], 1);
  assert_int_equal(res[3], 1);
  runtime_shutdown(c->rt);
  runtime_join(c->rt);
  assert_int_equal(c->rt->alive, 0);
  runtime_free(c->rt);
  c->rt = NULL;
}

/* A flooded actor does not delay another actor of its scheduler. */
static void test_fairness(void **state) {
  ctx *c = *state;
  enum { N = 100000 };
  tact *busy = tact_new(N), *quiet = tact_new(8);
  assert_int_equal(spawn(c, busy, 1, NULL), 0);
  assert_int_equal(spawn(c, quiet, 1, NULL), 0);
  quiet->watch = busy;
  for (int i = 0; i < N; i++) send_to(c, busy, MSG_USER, CMD_NONE, i);
  send_to(c, quiet, MSG_USER, CMD_NONE, 0);
  wait_log(c, busy, N);
  wait_log(c, quiet, 1);
  int64_t seen = quiet->log[0].aux;
  print_message("      the quiet actor ran after %lld of the busy one's messages\n",
                (long long)seen);
  assert_true(seen <= 2 * ACTOR_TURN_BUDGET);
  assert_true(seen < N);
  for (int i = 0; i < N; i++) assert_int_equal(busy->log[i].ival, i);
  finish(c);
  tact_free(busy);
  tact_free(quiet);
}

static void test_timers(void **state) {
  ctx *c = *state;
  tact *t = tact_new(16);
  assert_int_equal(spawn(c, t, 2, NULL), 0);
  uint64_t t0 = uv_hrtime();
  send_to(c, t, MSG_USER, CMD_TIMER, 50);
  send_to(c, t, MSG_USER, CMD_TIMER, 0);
  wait_int(c, &t->timer_fired, 1);
  settle(c, 10);
  if (uv_hrtime() - t0 < 45 * 1000000ull)        /* unless this thread was descheduled a while */
    assert_int_equal(iload(&t->timer_fired), 1); /* the 0 ms one */
  wait_int(c, &t->timer_fired, 2);
  assert_true(uv_hrtime() - t0 >= 49 * 1000000ull);
  assert_int_equal(iload(&t->timer_early), 0);
  assert_int_equal(iload(&t->timer_freed), 0);
  /* Cancelled: free_ud instead of fn. */
  send_to(c, t, MSG_USER, CMD_TIMER_CANCEL, 0);
  wait_int(c, &t->timer_freed, 1);
  settle(c, 10);
  assert_int_equal(iload(&t->timer_fired), 2);
  assert_int_equal(iload(&t->timer_freed), 1);
  /* Started at the end of a long turn: counted from then, not from the loop's cached
   * time at the turn's start. */
  send_to(c, t, MSG_USER, CMD_BUSY_TIMER, 20);
  wait_int(c, &t->timer_fired, 3);
  assert_int_equal(iload(&t->timer_early), 0);
  /* Pending when the scheduler closes: free_ud too, and the loop does not wait for it. */
  send_to(c, t, MSG_USER, CMD_TIMER_LEAVE, 0);
  wait_log(c, t, 5);
  uint64_t t1 = uv_hrtime();
  finish(c);
  assert_true(uv_hrtime() - t1 < 5000 * 1000000ull);
  assert_int_equal(iload(&t->timer_fired), 3);
  assert_int_equal(iload(&t->timer_freed), 2);
  assert_int_equal(iload(&t->wrong_thread), 0);
  tact_free(t);
}

/* Host timers: cancel and pending-at-free both release their data. */
static void test_host_timers(void **state) {
  ctx *c = *state;
  tact t = {0};
  sched_t *host = runtime_host(c->rt);
  assert_ptr_equal(sched_current(), host);
  timer_ud *u = malloc(sizeof *u);
  *u = (timer_ud){&t, host, uv_hrtime(), 1};
  assert_non_null(sched_timer_start(host, 1, timer_fn, u, timer_free));
  wait_int(c, &t.timer_fired, 1);
  u = malloc(sizeof *u);
  *u = (timer_ud){&t, host, uv_hrtime(), 60000};
  assert_non_null(sched_timer_start(host, 60000, timer_fn, u, timer_free));
  finish(c); /* runtime_free closes the host loop: the pending timer's data is freed */
  assert_int_equal(t.timer_fired, 1);
  assert_int_equal(t.timer_freed, 1);
  assert_int_equal(t.wrong_thread, 0);
}

/* Shutdown is a safe stop: what was sent before it is handled first. */
static void test_shutdown(void **state) {
  ctx *c = *state;
  enum { A = 6, N = 1000 };
  tact *t[A];
  for (int i = 0; i < A; i++) {
    t[i] = tact_new(N + 1);
    t[i]->stop_on_stop = i % 3 == 0;
    assert_int_equal(spawn(c, t[i], 1 + (uint32_t)i % 2, NULL), 0);
  }
  assert_int_equal(__atomic_load_n(&c->rt->alive, __ATOMIC_ACQUIRE), A);
  for (int j = 0; j < N; j++)
    for (int i = 0; i < A; i++) send_to(c, t[i], MSG_USER, CMD_NONE, j);
  /* No loop run in between: the messages are still in the host's outbox. */
  runtime_shutdown(c->rt);
  runtime_join(c->rt);
  assert_int_equal(__atomic_load_n(&c->rt->alive, __ATOMIC_ACQUIRE), 0);
  assert_int_equal(iload(&c->sched_stop), 3);
  for (int i = 0; i < A; i++) {
    assert_int_equal(iload(&t[i]->stopped), 1);
    assert_int_equal(aload(&t[i]->n), N + 1);
    for (int j = 0; j < N; j++) assert_int_equal(t[i]->log[j].ival, j);
    assert_int_equal(t[i]->log[N].kind, MSG_STOP);
  }
  assert_int_equal(dead_letters(c), 0);
  /* The last worker to lose its last actor told the host. */
  uv_run(runtime_host_loop(c->rt), UV_RUN_NOWAIT);
  assert_int_equal(iload(&c->host_system), 1);
  /* And each worker said it had stopped. */
  assert_int_equal(iload(&c->workers_stopped), 2);
  /* Spawning after shutdown is refused (the worker is gone: a dead letter). */
  lore_msg *m = msg_new(MSG_SPAWN, NULL, 0, NULL, 0);
  m->target.sched = 1;
  m->ival = 55;
  runtime_send(c->rt, m);
  uv_run(runtime_host_loop(c->rt), UV_RUN_NOWAIT);
  assert_int_equal(dead_letters(c), 1);
  /* Refused by the closed inbox at the host's flush: the hook ran on the host. */
  assert_int_equal(iload(&c->dead_letter_hooks), 1);
  assert_int_equal(c->dead_vals[0], 55);
  assert_int_equal(c->dead_kinds[0], MSG_SPAWN);
  runtime_shutdown(c->rt); /* again: harmless */
  runtime_join(c->rt);
  runtime_free(c->rt);
  c->rt = NULL;
  for (int i = 0; i < A; i++) tact_free(t[i]);
}

/* A shutdown with no actor at all. */
static void test_shutdown_idle(void **state) {
  ctx *c = *state;
  finish(c);
  assert_int_equal(iload(&c->host_system), 0); /* no actor ever ended */
}

/* A worker whose sched_start fails: runtime_start fails and leaves nothing running. */
static void test_start_failure(void **state) {
  ctx *c = *state;
  finish(c);
  ctx *c2 = calloc(1, sizeof *c2);
  uv_mutex_init(&c2->lock);
  c2->fail_start_index = 2;
  runtime_config cfg = {.workers = 3};
  assert_int_equal(runtime_create(&cfg, &hooks, c2, &c2->rt), 0);
  assert_int_equal(runtime_start(c2->rt), UV_EINVAL);
  /* host, worker 1, worker 2 (failed); worker 3 never started. */
  assert_int_equal(iload(&c2->sched_start), 3);
  /* host and worker 1 stopped; the failed worker never ran. */
  assert_int_equal(iload(&c2->sched_stop), 2);
  assert_int_equal(iload(&c2->wrong_thread), 0);
  runtime_free(c2->rt);
  assert_null(sched_current());
  uv_mutex_destroy(&c2->lock);
  free(c2);
}

/* A runtime created and freed without ever starting. */
static void test_never_started(void **state) {
  (void)state;
  runtime_t *rt = NULL;
  runtime_config cfg = {.workers = 0};
  ctx c = {0};
  assert_int_equal(runtime_create(&cfg, &hooks, &c, &rt), 0);
  assert_true(rt->workers >= 1);
  assert_int_equal(runtime_new_aid(rt), 1);
  assert_int_equal(runtime_new_aid(rt), 2);
  assert_int_equal(runtime_new_corr(rt), 1);
  for (int i = 0; i < 10; i++) {
    uint32_t w = runtime_sched_next(rt);
    assert_true(w >= 1 && w <= (uint32_t)rt->workers);
  }
  lore_msg *m = msg_new(MSG_USER, NULL, 0, NULL, 0);
  m->target.sched = 1;
  m->target.aid = 5;
  runtime_send(rt, m); /* queued in worker 1's inbox, freed with it */
  /* An actor left live (never stopped) with queued messages: freed with the runtime,
   * its binding's hooks not called. */
  tact *t = tact_new(4);
  actor_t *a = NULL;
  /* (no thread runs worker 1: this one stands in for it) */
  sched_t *prev = sched_enter(rt->scheds[1]);
  assert_int_equal(actor_create(rt->scheds[1], 7, "left", &test_ops, t, &a), 0);
  assert_ptr_equal(sched_find(rt->scheds[1], 7), a);
  assert_ptr_equal(sched_find_name(rt->scheds[1], "left"), a);
  assert_int_equal(rt->alive, 1);
  actor_enqueue(a, mk_to(t, MSG_USER, CMD_NONE, 1));
  actor_enqueue(a, mk_to(t, MSG_SYSTEM, CMD_NONE, 2));
  assert_int_equal(a->mailbox.count, 1);
  assert_non_null(a->sys_tail);
  assert_ptr_equal(a->sys_tail->next, a->sys_tail); /* one system message: its own head */
  sched_leave(prev);
  runtime_free(rt);
  assert_int_equal(c.sched_start, 0);
  assert_int_equal(t->stopped, 0);
  assert_int_equal(t->n, 0);
  tact_free(t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_tell_order, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cross_scheduler, setup, teardown),
      cmocka_unit_test_setup_teardown(test_send_all, setup, teardown),
      cmocka_unit_test_setup_teardown(test_system_first, setup, teardown),
      cmocka_unit_test_setup_teardown(test_hold_release, setup, teardown),
      cmocka_unit_test_setup_teardown(test_hold_capacity_overflow, setup, teardown),
      cmocka_unit_test_setup_teardown(test_stash_unstash, setup, teardown),
      cmocka_unit_test_setup_teardown(test_stash_left_at_stop, setup, teardown),
      cmocka_unit_test_setup_teardown(test_msg_stop, setup, teardown),
      cmocka_unit_test_setup_teardown(test_stop_inside_receive, setup, teardown),
      cmocka_unit_test_setup_teardown(test_io_defers_stop, setup, teardown),
      cmocka_unit_test_setup_teardown(test_unknown_target, setup, teardown),
      cmocka_unit_test_setup_teardown(test_names, setup, teardown),
      cmocka_unit_test_setup_teardown(test_duplicate_aid, setup, teardown),
      cmocka_unit_test_setup_teardown(test_fairness, setup, teardown),
      cmocka_unit_test_setup_teardown(test_timers, setup, teardown),
      cmocka_unit_test_setup_teardown(test_host_timers, setup, teardown),
      cmocka_unit_test_setup_teardown(test_shutdown, setup, teardown),
      cmocka_unit_test_setup_teardown(test_shutdown_idle, setup, teardown),
      cmocka_unit_test_setup_teardown(test_start_failure, setup, teardown),
      cmocka_unit_test(test_never_started),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
