/* scheduler.c: a scheduler's loop, its ready queue, and the actors it runs. */
#include "scheduler.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "scheduler_internal.h"

static __thread sched_t *current_sched;

sched_t *sched_current(void) { return current_sched; }

/* Everything an actor owns is touched only by its scheduler's thread (as
 * skynet's CHECKCALLING and Lua's api_check): checked in debug builds. */
#define ACTOR_OWNED(a) assert(current_sched == (a)->sched)

void sched_set_current(sched_t *s) { current_sched = s; }

sched_t *sched_enter(sched_t *s) {
  sched_t *prev = current_sched;
  current_sched = s;
  return prev;
}

void sched_leave(sched_t *previous) { current_sched = previous; }

void sched_run(sched_t *s);

struct sched_timer {
  uv_timer_t h;
  sched_t *s;
  struct sched_timer *next, *prev; /* s->timers, until closed */
  void (*fn)(void *ud);
  void (*free_ud)(void *ud);
  void *ud;
  int fired;
};

static void sched_idle_cb(uv_idle_t *h) { sched_run(h->data); }

/* A stopping actor gets only system messages (an I/O completion it waits for), or a turn
 * that finalizes it once nothing is in flight. */
static int actor_deliverable(const actor_t *a) {
  if (a->dead) return 0;
  if (a->sys_tail) return 1;
  if (a->stopping) return !a->pending_io;
  return !a->held && !msg_queue_empty(&a->mailbox);
}

static void make_ready(actor_t *a) {
  if (a->ready || a->running || !actor_deliverable(a)) return;
  sched_t *s = a->sched;
  a->ready = 1;
  a->next_ready = NULL;
  if (s->ready_tail)
    s->ready_tail->next_ready = a;
  else
    s->ready_head = a;
  s->ready_tail = a;
  if (!s->running && !s->closed) uv_idle_start(&s->idle, sched_idle_cb);
}

void sched_dead_letter(sched_t *s, lore_msg *m) {
  __atomic_add_fetch(&s->rt->dead_letters, 1, __ATOMIC_RELAXED);
  log_debug(s->rt->log, "dead letter: kind %u to %u:%llu%s%s", m->kind, m->target.sched,
            (unsigned long long)m->target.aid, m->name ? " id " : "", m->name ? m->name : "");
  if (s->rt->hooks->dead_letter) s->rt->hooks->dead_letter(s, m);
  msg_free(m);
}

static lore_msg *sys_pop(actor_t *a) {
  if (!a->sys_tail) return NULL;
  lore_msg *m = a->sys_tail->next; /* the head */
  if (m == a->sys_tail)
    a->sys_tail = NULL;
  else
    a->sys_tail->next = m->next;
  m->next = NULL;
  return m;
}

static void drain_sys(actor_t *a) {
  lore_msg *m;
  while ((m = sys_pop(a))) sched_dead_letter(a->sched, m);
}

/* A message addressed by name with no live actor to take it: offered to the
 * binding first (an entity wakes up on it), else a dead letter. */
static void name_missing(sched_t *s, lore_msg *m) {
  if (m->name && !m->target.aid && s->rt->hooks->route_missing &&
      s->rt->hooks->route_missing(s, m) == ACTOR_KEPT)
    return;
  sched_dead_letter(s, m);
}

/* Commands left in a finalized actor's queues: those sent by name may find
 * the actor's next incarnation (in their order); the rest are dead letters. */
static void drain_left(sched_t *s, msg_queue *q) {
  lore_msg *m;
  while ((m = msg_queue_pop(q))) {
    if (m->kind == MSG_USER || m->kind == MSG_TIMER)
      name_missing(s, m);
    else
      sched_dead_letter(s, m);
  }
}

static int maybe_finalize(actor_t *a);

void actor_enqueue(actor_t *a, lore_msg *m) {
  ACTOR_OWNED(a);
  if (a->dead) {
    sched_dead_letter(a->sched, m);
    return;
  }
  if (m->kind == MSG_USER || m->kind == MSG_STOP || m->kind == MSG_TIMER) {
    if (a->held && a->hold_capacity && m->kind != MSG_STOP &&
        a->mailbox.count >= a->hold_capacity && a->ops->overflow) {
      a->ops->overflow(a, m);
      return;
    }
    msg_queue_push(&a->mailbox, m);
    if (m->kind == MSG_STOP && a->held && a->ops->stop_while_held) a->ops->stop_while_held(a);
  } else {
    if (a->sys_tail) {
      m->next = a->sys_tail->next;
      a->sys_tail->next = m;
    } else {
      m->next = m;
    }
    a->sys_tail = m;
  }
  make_ready(a);
}

void actor_requeue(actor_t *a, lore_msg *m) {
  ACTOR_OWNED(a);
  msg_queue_push(&a->mailbox, m);
  make_ready(a);
}

/* An actor without a name is sizeof(actor_t) bytes: its name_buf[0] must be
 * inside them (the struct's padding), where calloc leaves a 0. */
_Static_assert(offsetof(actor_t, name_buf) < sizeof(actor_t), "name_buf[0] is in the padding");

int actor_create(sched_t *s, uint64_t aid, const char *name, const actor_ops *ops, void *data,
                 actor_t **out) {
  assert(current_sched == s);
  if (s->shutting_down) return UV_ECANCELED;
  if (actor_map_get_aid(&s->by_aid, aid)) return UV_EEXIST;
  if (name && actor_map_get_name(&s->by_name, name)) return UV_EEXIST;
  size_t name_size = name ? strlen(name) + 1 : 0;
  size_t size = offsetof(actor_t, name_buf) + name_size;
  actor_t *a = calloc(1, size > sizeof *a ? size : sizeof *a);
  if (!a) return UV_ENOMEM;
  if (name) memcpy(a->name_buf, name, name_size);
  a->aid = aid;
  a->sched = s;
  a->ops = ops;
  a->data = data;
  msg_queue_init(&a->mailbox);
  if (actor_map_put(&s->by_aid, a)) goto fail_aid;
  if (a->name_buf[0] && actor_map_put(&s->by_name, a)) goto fail_map;
  s->actors++;
  if (s->index) runtime_reserve(s->rt);
  *out = a;
  return 0;
fail_map:
  actor_map_remove(&s->by_aid, a);
fail_aid:
  free(a);
  return UV_ENOMEM;
}

actor_t *sched_find(sched_t *s, uint64_t aid) { return actor_map_get_aid(&s->by_aid, aid); }

actor_t *sched_find_name(sched_t *s, const char *name) {
  return actor_map_get_name(&s->by_name, name);
}

void actor_hold(actor_t *a) {
  ACTOR_OWNED(a);
  a->held++;
}

void actor_set_hold_capacity(actor_t *a, size_t n) {
  a->hold_capacity = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
}

void actor_release(actor_t *a) {
  ACTOR_OWNED(a);
  if (a->held) a->held--;
  make_ready(a);
}

int actor_stash(actor_t *a, lore_msg *m) {
  ACTOR_OWNED(a);
  if (!a->stash) {
    if (!(a->stash = malloc(sizeof *a->stash))) return UV_ENOMEM;
    msg_queue_init(a->stash);
  }
  msg_queue_push(a->stash, m);
  return 0;
}

void actor_unstash_all(actor_t *a) {
  ACTOR_OWNED(a);
  if (a->stash) msg_queue_prepend(&a->mailbox, a->stash);
  make_ready(a);
}

void actor_io_begin(actor_t *a) {
  ACTOR_OWNED(a);
  a->pending_io++;
  a->sched->io_pending++;
}

void actor_io_end(actor_t *a) {
  ACTOR_OWNED(a);
  if (a->pending_io) {
    a->pending_io--;
    a->sched->io_pending--;
  }
  maybe_finalize(a);
}

void actor_stop(actor_t *a) {
  ACTOR_OWNED(a);
  a->stopping = 1;
  maybe_finalize(a);
}

void sched_notify_idle(sched_t *s);

/* Returns 1 if the actor was finalized (it may be freed: do not touch it again). */
static int maybe_finalize(actor_t *a) {
  if (!a->stopping || a->dead || a->running || a->pending_io) return 0;
  sched_t *s = a->sched;
  a->dead = 1;
  actor_map_remove(&s->by_aid, a);
  if (a->name_buf[0]) actor_map_remove(&s->by_name, a);
  if (a->ops->stopped) a->ops->stopped(a);
  drain_sys(a);
  if (a->stash) {
    drain_left(s, a->stash);
    free(a->stash);
    a->stash = NULL;
  }
  drain_left(s, &a->mailbox);
  s->actors--;
  if (!a->ready) free(a); /* else freed when the ready queue reaches it */
  if (s->index) runtime_unreserve(s->rt);
  sched_notify_idle(s);
  return 1;
}

/* One actor's turn: system messages first, then commands unless held. A MSG_STOP at
 * the mailbox's front is shown to receive (the binding's on-stop), then stops the actor
 * whatever receive did. A stopping actor still gets its system messages while I/O is in
 * flight, so the completion that ends the I/O can arrive; its commands wait (they become
 * dead letters when it is finalized). */
static void run_actor(actor_t *a, int *budget) {
  sched_t *s = a->sched;
  int outer = s->turn_taken; /* a turn run from inside a handler keeps the outer count */
  s->turn_taken = 0;
  a->running = 1;
  while (s->turn_taken < ACTOR_TURN_BUDGET) {
    if (a->stopping && !a->pending_io) break;
    lore_msg *m = sys_pop(a);
    if (!m && !a->held && !a->stopping) m = msg_queue_pop(&a->mailbox);
    if (!m) break;
    s->turn_taken++;
    int stop = m->kind == MSG_STOP;
    if (a->ops->receive(a, m) == ACTOR_CONSUMED) msg_free(m);
    if (stop) a->stopping = 1;
  }
  a->running = 0;
  int n = s->turn_taken;
  s->turn_taken = outer;
  *budget -= n ? n : 1;
  if (a->stopping && maybe_finalize(a)) return;
  make_ready(a);
}

lore_msg *sched_turn_next_command(actor_t *a) {
  sched_t *s = a->sched;
  if (!a->running || s->turn_taken >= ACTOR_TURN_BUDGET || a->sys_tail || a->held || a->stopping ||
      a->dead)
    return NULL;
  lore_msg *m = a->mailbox.head;
  if (!m || (m->kind != MSG_USER && m->kind != MSG_TIMER)) return NULL;
  s->turn_taken++;
  return msg_queue_pop(&a->mailbox);
}

/* Runs inside actor_map_each: must not change the map, so it never finalizes. */
static void stop_each(void *value, void *ud) {
  (void)ud;
  actor_t *a = value;
  if (a->ops->shutdown) a->ops->shutdown(a);
  lore_msg *m = msg_new(MSG_STOP, NULL, 0, NULL, 0);
  if (m) {
    actor_enqueue(a, m);
  } else { /* out of memory: stop without waiting for the mailbox */
    a->stopping = 1;
    make_ready(a);
  }
}

/* Safe stop of every actor (each after what is already queued for it), then
 * the loop ends once the last one is gone. */
static void sched_begin_shutdown(sched_t *s) {
  if (s->shutting_down) return;
  s->shutting_down = 1;
  actor_map_each(&s->by_aid, stop_each, NULL);
  sched_notify_idle(s);
}

static void collect_actor(void *value, void *ud) {
  actor_t ***p = ud;
  *(*p)++ = value;
}

/* Stops every actor now, whatever it still holds (a stop by force at the end
 * of a shutdown that took too long). I/O in flight still completes first. */
static void sched_force_stop(sched_t *s) {
  sched_begin_shutdown(s);
  size_t n = s->by_aid.count;
  if (!n) return;
  actor_t **list = malloc(n * sizeof *list), **p = list;
  if (!list) return;
  actor_map_each(&s->by_aid, collect_actor, &p); /* the map changes below: a copy first */
  for (size_t i = 0; i < n; i++) {
    actor_t *a = list[i];
    if (a->dead) continue;
    log_warn(s->rt->log, "scheduler %u: actor %llu%s%s did not stop in time: stopped by force",
             s->index, (unsigned long long)a->aid, a->name_buf[0] ? " " : "", a->name_buf);
    a->held = 0;
    actor_stop(a);
  }
  free(list);
  sched_notify_idle(s);
}

/* Routes a message that arrived through the inbox. */
static void route(sched_t *s, lore_msg *m) {
  if (m->kind == MSG_SHUTDOWN) {
    int force = m->ival == 1;
    msg_free(m);
    if (force)
      sched_force_stop(s);
    else
      sched_begin_shutdown(s);
    return;
  }
  actor_t *a = NULL;
  if (m->target.aid)
    a = actor_map_get_aid(&s->by_aid, m->target.aid);
  else if (m->name)
    a = actor_map_get_name(&s->by_name, m->name);
  else {
    if (!s->rt->hooks->sched_message)
      sched_dead_letter(s, m);
    else if (s->rt->hooks->sched_message(s, m) == ACTOR_CONSUMED)
      msg_free(m);
    return;
  }
  if (a)
    actor_enqueue(a, m);
  else if (m->name && !m->target.aid)
    name_missing(s, m);
  else
    sched_dead_letter(s, m);
}

void sched_deliver_local(sched_t *s, lore_msg *m) { route(s, m); }

static void drain_inbox(sched_t *s) {
  msg_queue q;
  msg_queue_init(&q);
  inbox_drain(&s->in, &q);
  lore_msg *m;
  while ((m = msg_queue_pop(&q))) route(s, m);
}

void sched_run(sched_t *s) {
  if (s->running) return;
  s->running = 1;
  sched_t *prev = sched_enter(s); /* workers: already current; the host: while it runs */
  drain_inbox(s);
  int budget = SCHED_RUN_BUDGET;
  while (budget > 0 && s->ready_head) {
    actor_t *a = s->ready_head;
    s->ready_head = a->next_ready;
    if (!s->ready_head) s->ready_tail = NULL;
    a->ready = 0;
    if (a->dead) {
      free(a);
      continue;
    }
    run_actor(a, &budget);
  }
  s->running = 0;
  sched_leave(prev);
  if (s->closed) return;
  /* No polling while journal I/O is in flight: on a machine whose cores are
   * all busy, a polling worker holds the core that the journal's writer (or
   * the next completion's thread) needs, and delayed every wake-up by the
   * polling time; sleeping in epoll costs ~10 us a wake-up. */
  if (s->ready_head)
    uv_idle_start(&s->idle, sched_idle_cb);
  else
    uv_idle_stop(&s->idle);
}

static void close_own_handles(sched_t *s);

/* Once a shutting-down scheduler has no actor left, it refuses new messages
 * and closes its handles, which ends its loop. */
void sched_notify_idle(sched_t *s) {
  if (!s->shutting_down || s->actors || s->closed || s->index == 0) return;
  sched_flush(s); /* what the last turns sent: the flush handle is about to close */
  s->closed = 1;
  msg_queue left;
  msg_queue_init(&left);
  inbox_close(&s->in, &left);
  lore_msg *m;
  while ((m = msg_queue_pop(&left))) {
    if (m->kind == MSG_SHUTDOWN) {
      msg_free(m);
      continue;
    }
    sched_dead_letter(s, m);
  }
  close_own_handles(s);
}

static void wake_cb(loop_wakeup *w) { sched_run(w->data); }

void sched_flush(sched_t *s) {
  runtime_t *rt = s->rt;
  for (int i = 0; i <= rt->workers; i++) {
    if (msg_queue_empty(&s->outbox[i])) continue;
    msg_queue q = s->outbox[i];
    msg_queue_init(&s->outbox[i]);
    if (inbox_push_all(&rt->scheds[i]->in, &q) != 0) {
      lore_msg *m;
      while ((m = msg_queue_pop(&q))) sched_dead_letter(s, m);
    }
  }
}

/* A polling loop's pause: lets the other hardware thread of the core run. */
static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

/* The most waits skipped in a row after spins that saw nothing come. */
#define SPIN_BACKOFF_MAX 64

/*
 * A worker about to sleep with exactly one I/O in flight, a journal write
 * (a persist waiting for its commit), and nothing to run polls its wake-up mark
 * for up to io_spin_us first. A lone actor's write path is four hand-offs
 * between threads (host -> worker -> writer -> worker -> host); on a VM each
 * wake-up of a thread whose CPU went idle took ~50-100 us, a polled mark is
 * seen at once. Only with one I/O in flight: with more, the next completion
 * is usually already on its way, and a worker polling beside the writer
 * took the CPU the writer needed (persist chains of 10 actors ran at half
 * speed when every wait polled). A spin that sees nothing come makes the
 * next waits skip it, 1, 2, 4, ... up to SPIN_BACKOFF_MAX, so a store whose
 * commits outlast the spin (a slow disk) costs little CPU; one that does
 * see its completion resets that. The host scheduler never spins (its loop
 * may be the embedder's).
 */
static void sched_wait_spin(sched_t *s) {
  if (!s->rt->io_spin_us || !s->index || s->io_pending != 1 || s->ready_head || s->closed ||
      __atomic_load_n(&s->inbox_io, __ATOMIC_RELAXED) != 1)
    return;
  if (s->spin_skips) {
    s->spin_skips--;
    return;
  }
  __atomic_add_fetch(&s->spins, 1, __ATOMIC_RELAXED);
  uint64_t deadline = uv_hrtime() + (uint64_t)s->rt->io_spin_us * 1000;
  for (;;) {
    /* Reading the clock costs more than a look at the mark: look 32 times per reading. */
    for (int i = 0; i < 32; i++) {
      if (__atomic_load_n(&s->wake.pending, __ATOMIC_ACQUIRE)) {
        __atomic_add_fetch(&s->spin_hits, 1, __ATOMIC_RELAXED);
        s->spin_backoff = 0;
        return; /* the loop's poll finds the wake-up readable and returns at once */
      }
      cpu_relax();
    }
    if (uv_hrtime() >= deadline) break;
  }
  s->spin_skips = s->spin_backoff ? s->spin_backoff : 1;
  s->spin_backoff = s->spin_skips * 2 > SPIN_BACKOFF_MAX ? SPIN_BACKOFF_MAX : s->spin_skips * 2;
}

static void flush_cb(uv_prepare_t *h) {
  sched_t *s = h->data;
  sched_flush(s);
  if (s->rt->hooks->sched_prepare) s->rt->hooks->sched_prepare(s);
  sched_wait_spin(s);
}

int sched_init(sched_t *s, runtime_t *rt, uint32_t index, uv_loop_t *loop) {
  int r;
  memset(s, 0, sizeof *s);
  s->rt = rt;
  s->index = index;
  actor_map_init(&s->by_aid, 0);
  actor_map_init(&s->by_name, 1);
  s->outbox = calloc((size_t)rt->workers + 1, sizeof *s->outbox);
  if (!s->outbox) return UV_ENOMEM;
  if (loop) {
    s->loop = loop;
  } else {
    if ((r = uv_loop_init(&s->own_loop))) goto fail_loop;
    s->loop = &s->own_loop;
  }
  if ((r = loop_wakeup_init(s->loop, &s->wake, wake_cb))) goto fail_async;
  s->wake.data = s;
  if ((r = inbox_init(&s->in, &s->wake))) goto fail_inbox;
  uv_idle_init(s->loop, &s->idle);
  s->idle.data = s;
  uv_prepare_init(s->loop, &s->flush);
  s->flush.data = s;
  uv_prepare_start(&s->flush, flush_cb);
  uv_unref((uv_handle_t *)&s->flush);
  s->handles_open = 3; /* wake, idle, flush */
  return 0;
fail_inbox:
  loop_wakeup_close(&s->wake, NULL);
  if (s->loop == &s->own_loop) uv_run(s->loop, UV_RUN_NOWAIT);
fail_async:
  if (s->loop == &s->own_loop) uv_loop_close(s->loop);
fail_loop:
  free(s->outbox);
  return r;
}

/* Once the last of the scheduler's handles (timers included) is closed,
 * whoever asked is told. */
static void maybe_all_closed(sched_t *s) {
  if (s->handles_open == 0 && !s->timers && s->handles_closed) {
    void (*cb)(sched_t *) = s->handles_closed;
    s->handles_closed = NULL;
    cb(s);
  }
}

static void own_handle_closed(uv_handle_t *h) {
  sched_t *s = h->data;
  s->handles_open--;
  maybe_all_closed(s);
}

static void timer_closed(uv_handle_t *h);

/* Closes what the scheduler opened on its loop, and nothing else: on an
 * embedder's loop the embedder's handles are none of ours. */
static void close_own_handles(sched_t *s) {
  if (!loop_wakeup_is_closing(&s->wake)) loop_wakeup_close(&s->wake, own_handle_closed);
  uv_handle_t *own[] = {(uv_handle_t *)&s->idle, (uv_handle_t *)&s->flush};
  for (size_t i = 0; i < sizeof own / sizeof own[0]; i++)
    if (!uv_is_closing(own[i])) uv_close(own[i], own_handle_closed);
  for (sched_timer *t = s->timers; t; t = t->next)
    if (!uv_is_closing((uv_handle_t *)&t->h)) uv_close((uv_handle_t *)&t->h, timer_closed);
}

/* Closes the inbox and every handle and runs the loop until they are closed (close
 * callbacks such as a pending timer's free_ud run here). Idempotent. */
void sched_end(sched_t *s) {
  if (!s->closed) {
    s->closed = 1;
    msg_queue left;
    msg_queue_init(&left);
    inbox_close(&s->in, &left);
    lore_msg *m;
    while ((m = msg_queue_pop(&left))) msg_free(m);
    close_own_handles(s);
  }
  if (s->loop_closed) return;
  if (s->loop != &s->own_loop) { /* the embedder's: it runs the close callbacks */
    s->loop_closed = 1;
    return;
  }
  uv_run(s->loop, UV_RUN_DEFAULT);
  if (uv_loop_close(s->loop) != 0)
    log_warn(s->rt->log, "scheduler %u: loop still had handles", s->index);
  s->loop_closed = 1;
}

static void free_queue(msg_queue *q) {
  lore_msg *m;
  while ((m = msg_queue_pop(q))) msg_free(m);
}

/* An actor still live when its scheduler is freed (never stopped): its memory only; the
 * binding's hooks are not called this late. */
static void free_live_actor(void *value, void *ud) {
  (void)ud;
  actor_t *a = value;
  lore_msg *m;
  while ((m = sys_pop(a))) msg_free(m);
  free_queue(&a->mailbox);
  if (a->stash) {
    free_queue(a->stash);
    free(a->stash);
  }
  free(a);
}

/* Frees what is left once the loop has ended (its handles closed). */
void sched_destroy(sched_t *s) {
  sched_end(s);
  for (int i = 0; i <= s->rt->workers; i++) free_queue(&s->outbox[i]);
  free(s->outbox);
  /* An actor finalized while queued as ready is freed when the queue reaches it, but the
   * loop may have ended first. Live actors are in by_aid and freed below. */
  actor_t *a = s->ready_head;
  while (a) {
    actor_t *next = a->next_ready;
    if (a->dead) {
      free(a);
    }
    a = next;
  }
  s->ready_head = s->ready_tail = NULL;
  if (s->by_aid.count)
    log_warn(s->rt->log, "scheduler %u: %zu actors were never stopped", s->index, s->by_aid.count);
  actor_map_each(&s->by_aid, free_live_actor, NULL);
  inbox_destroy(&s->in);
  actor_map_free(&s->by_aid);
  actor_map_free(&s->by_name);
}

/* --- timers --- */

static void timer_closed(uv_handle_t *h) {
  sched_timer *t = h->data;
  sched_t *s = t->s;
  if (t->prev)
    t->prev->next = t->next;
  else
    s->timers = t->next;
  if (t->next) t->next->prev = t->prev;
  if (!t->fired && t->free_ud) t->free_ud(t->ud);
  free(t);
  maybe_all_closed(s);
}

static void timer_fire(uv_timer_t *h) {
  sched_timer *t = h->data;
  t->fired = 1;
  uv_close((uv_handle_t *)h, timer_closed);
  t->fn(t->ud);
}

sched_timer *sched_timer_start(sched_t *s, uint64_t ms, void (*fn)(void *ud), void *ud,
                               void (*free_ud)(void *ud)) {
  if (s->closed) return NULL;
  sched_timer *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  /* The loop's clock is cached per iteration: after a long turn it is behind, and the
   * timer would fire early. */
  uv_update_time(s->loop);
  uv_timer_init(s->loop, &t->h);
  t->h.data = t;
  t->s = s;
  t->next = s->timers;
  if (s->timers) s->timers->prev = t;
  s->timers = t;
  t->fn = fn;
  t->ud = ud;
  t->free_ud = free_ud;
  uv_timer_start(&t->h, timer_fire, ms, 0);
  return t;
}

void sched_timer_cancel(sched_timer *t) {
  if (t->fired || uv_is_closing((uv_handle_t *)&t->h)) return;
  uv_close((uv_handle_t *)&t->h, timer_closed);
}
