/* runtime.c: the set of schedulers, their threads, and message routing. */
#include <stdlib.h>
#include <string.h>

#include "idmap.h"
#include "log.h"
#include "scheduler_internal.h"

int runtime_create(const runtime_config *cfg, const runtime_hooks *hooks, void *data,
                   runtime_t **out) {
  runtime_t *rt = calloc(1, sizeof *rt);
  if (!rt) return UV_ENOMEM;
  int r = UV_ENOMEM;
  int workers = cfg && cfg->workers > 0 ? cfg->workers : (int)uv_available_parallelism();
  if (workers < 1) workers = 1;
  if (workers > 1024) workers = 1024;
  rt->workers = workers;
  rt->hooks = hooks;
  rt->log = cfg ? cfg->log : NULL;
  rt->io_spin_us = cfg && cfg->io_spin_us > 0 ? cfg->io_spin_us : 0;
  rt->data = data;
  rt->next_aid = 1;
  rt->next_corr = 1;
  rt->scheds = calloc((size_t)workers + 1, sizeof *rt->scheds);
  if (!rt->scheds) goto fail;
  for (int i = 0; i <= workers; i++) {
    sched_t *s = malloc(sizeof *s);
    if (!s) goto fail;
    if ((r = sched_init(s, rt, (uint32_t)i, i == 0 && cfg ? cfg->host_loop : NULL))) {
      free(s);
      goto fail;
    }
    rt->scheds[i] = s;
  }
  *out = rt;
  return 0;
fail:
  runtime_free(rt);
  return r;
}

static void worker_main(void *arg) {
  sched_t *s = arg;
  sched_set_current(s);
  uv_run(s->loop, UV_RUN_DEFAULT);
  /* The flush handle is closed: hand on what the last callbacks sent. */
  sched_flush(s);
  if (s->rt->hooks->sched_stop) s->rt->hooks->sched_stop(s);
  sched_flush(s);
  sched_set_current(NULL);
  /* Last: the host may free everything once it has heard from every worker. */
  lore_msg *m = msg_new(MSG_SYSTEM, NULL, 0, NULL, 0);
  if (m) {
    m->sub = MSG_HOST_WORKER_STOPPED;
    m->ival = s->index;
    if (inbox_push(&s->rt->scheds[0]->in, m)) msg_free(m);
  }
}

typedef struct start_ctx {
  sched_t *s;
  uv_sem_t ready;
  int status;
} start_ctx;

/* The binding's sched_start runs on the worker thread (a Lua state belongs to
 * the thread that uses it), and runtime_start waits for its verdict. */
static void worker_entry(void *arg) {
  start_ctx *c = arg;
  sched_t *s = c->s;
  sched_set_current(s);
  c->status = s->rt->hooks->sched_start ? s->rt->hooks->sched_start(s) : 0;
  int ok = c->status == 0;
  uv_sem_post(&c->ready); /* c is gone after this */
  if (ok) worker_main(s);
}

int runtime_start(runtime_t *rt) {
  int started = 0, status = 0;
  if (rt->host_started || rt->started) return UV_EALREADY;
  sched_t *prev = sched_current();
  sched_set_current(rt->scheds[0]);
  if (rt->hooks->sched_start && (status = rt->hooks->sched_start(rt->scheds[0]))) {
    sched_set_current(prev);
    return status;
  }
  rt->host_started = 1;
  for (int i = 1; i <= rt->workers; i++) {
    start_ctx c = {.s = rt->scheds[i]};
    uv_sem_init(&c.ready, 0);
    int r = uv_thread_create(&rt->scheds[i]->thread, worker_entry, &c);
    if (r == 0) {
      uv_sem_wait(&c.ready);
      if (c.status) uv_thread_join(&rt->scheds[i]->thread);
      r = c.status;
    }
    uv_sem_destroy(&c.ready);
    if (r) {
      status = r;
      break;
    }
    started++;
  }
  rt->started = started;
  if (status) {
    runtime_shutdown(rt);
    runtime_join(rt); /* and the host's sched_stop */
    sched_set_current(prev);
    return status;
  }
  return 0;
}

void runtime_shutdown(runtime_t *rt) {
  /* Sent earlier from this thread: still in its outbox until the loop's prepare phase,
   * it must not arrive after the shutdown. */
  sched_t *cur = sched_current();
  if (cur && cur->rt == rt && !cur->loop_closed) sched_flush(cur);
  for (int i = 1; i <= rt->started; i++) {
    lore_msg *m = msg_new(MSG_SHUTDOWN, NULL, 0, NULL, 0);
    if (!m) continue; /* out of memory: that worker stops when the process does */
    if (inbox_push(&rt->scheds[i]->in, m)) msg_free(m);
  }
}

void runtime_force_stop(runtime_t *rt) {
  for (int i = 1; i <= rt->started; i++) {
    lore_msg *m = msg_new(MSG_SHUTDOWN, NULL, 0, NULL, 0);
    if (!m) continue;
    m->ival = 1;
    if (inbox_push(&rt->scheds[i]->in, m)) msg_free(m);
  }
}

void runtime_abandon(runtime_t *rt, uint32_t index) {
  if (index >= 1 && index <= (uint32_t)rt->workers) rt->scheds[index]->abandoned = 1;
}

void runtime_join(runtime_t *rt) {
  for (int i = 1; i <= rt->started; i++)
    if (!rt->scheds[i]->abandoned) uv_thread_join(&rt->scheds[i]->thread);
  rt->started = 0;
  if (rt->host_started) {
    rt->host_started = 0;
    if (rt->hooks->sched_stop) rt->hooks->sched_stop(rt->scheds[0]);
  }
}

void runtime_close_host(runtime_t *rt, void (*done)(sched_t *host)) {
  sched_t *h = rt->scheds[0];
  h->handles_closed = done;
  sched_end(h);
}

void runtime_free(runtime_t *rt) {
  if (!rt) return;
  /* Before anything is freed: sched_current() may point into this runtime. */
  sched_t *cur = sched_current();
  if (cur && cur->rt == rt) sched_set_current(NULL);
  int abandoned = 0;
  for (int i = 1; rt->scheds && i <= rt->workers; i++)
    if (rt->scheds[i] && rt->scheds[i]->abandoned) abandoned = 1;
  if (abandoned) {
    /* A stuck worker thread still uses its scheduler, and any other it
     * sends to: nothing is freed (the process is about to end anyway). */
    return;
  }
  if (rt->scheds) {
    /* Every loop ends (close callbacks may still send) before any scheduler is freed. */
    for (int i = 0; i <= rt->workers; i++)
      if (rt->scheds[i]) sched_end(rt->scheds[i]);
    for (int i = 0; i <= rt->workers; i++) {
      if (!rt->scheds[i]) continue;
      sched_destroy(rt->scheds[i]);
      free(rt->scheds[i]);
    }
    free(rt->scheds);
  }
  free(rt);
}

uv_loop_t *runtime_host_loop(runtime_t *rt) { return rt->scheds[0]->loop; }

void runtime_reserve(runtime_t *rt) { __atomic_add_fetch(&rt->alive, 1, __ATOMIC_SEQ_CST); }

void runtime_unreserve(runtime_t *rt) {
  if (__atomic_sub_fetch(&rt->alive, 1, __ATOMIC_SEQ_CST) != 0) return;
  /* The host may be waiting for the last actor to end the application. */
  lore_msg *m = msg_new(MSG_SYSTEM, NULL, 0, NULL, 0);
  if (!m) return;
  m->sub = MSG_HOST_NONE_ALIVE;
  m->target.sched = 0;
  runtime_send(rt, m);
}

int64_t runtime_alive(runtime_t *rt) { return __atomic_load_n(&rt->alive, __ATOMIC_SEQ_CST); }
sched_t *runtime_host(runtime_t *rt) { return rt->scheds[0]; }

uint64_t runtime_new_aid(runtime_t *rt) {
  return __atomic_fetch_add(&rt->next_aid, 1, __ATOMIC_RELAXED);
}

uint64_t runtime_new_corr(runtime_t *rt) {
  return __atomic_fetch_add(&rt->next_corr, 1, __ATOMIC_RELAXED);
}

uint32_t runtime_sched_for_name(runtime_t *rt, const char *name) {
  return 1 + (uint32_t)(idmap_hash_str(name) % (uint64_t)rt->workers);
}

uint32_t runtime_sched_next(runtime_t *rt) {
  static uint32_t rr; /* placement hint only: a race just picks another worker */
  uint32_t n = __atomic_fetch_add(&rr, 1, __ATOMIC_RELAXED);
  return 1 + n % (uint32_t)rt->workers;
}

/* On a scheduler's thread the dead_letter hook runs (it may answer an ask); elsewhere
 * the message is only counted. */
static void undeliverable(runtime_t *rt, sched_t *cur, lore_msg *m) {
  if (cur && cur->rt == rt) {
    sched_dead_letter(cur, m);
    return;
  }
  __atomic_add_fetch(&rt->dead_letters, 1, __ATOMIC_RELAXED);
  msg_free(m);
}

void runtime_send(runtime_t *rt, lore_msg *m) {
  if (!m->target.aid && m->name) m->target.sched = runtime_sched_for_name(rt, m->name);
  uint32_t t = m->target.sched;
  sched_t *cur = sched_current();
  if (t > (uint32_t)rt->workers) {
    undeliverable(rt, cur, m);
    return;
  }
  if (cur && cur->rt == rt) {
    if (cur->index == t && !cur->closed) {
      sched_deliver_local(cur, m);
      return;
    }
    /* Batched: flushed before this loop blocks, one wake-up per target. */
    msg_queue_push(&cur->outbox[t], m);
    return;
  }
  if (inbox_push(&rt->scheds[t]->in, m)) undeliverable(rt, cur, m);
}

void runtime_send_all(runtime_t *rt, msg_queue *q) {
  sched_t *cur = sched_current();
  while (!msg_queue_empty(q)) {
    lore_msg *first = q->head;
    uint32_t t = first->target.sched;
    if (!first->target.aid || t > (uint32_t)rt->workers || (cur && cur->rt == rt)) {
      runtime_send(rt, msg_queue_pop(q)); /* by name, undeliverable, or from a scheduler */
      continue;
    }
    /* One pass takes every message for t, in order, and keeps the rest in order. */
    msg_queue same, rest;
    msg_queue_init(&same);
    msg_queue_init(&rest);
    lore_msg *m;
    while ((m = msg_queue_pop(q)))
      msg_queue_push(m->target.aid && m->target.sched == t ? &same : &rest, m);
    *q = rest;
    if (inbox_push_all(&rt->scheds[t]->in, &same) != 0)
      while ((m = msg_queue_pop(&same))) undeliverable(rt, cur, m);
  }
}
