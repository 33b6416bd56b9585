/* query_state.c: a runtime's query jobs on libuv's thread pool, its live readers, and their
 * shutdown. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "query.h"

struct query_state {
  lore_runtime *lrt;
  /* Any thread, under mu: jobs inside their work function, and whether the
   * runtime closes (no job touches the journal after that). */
  uv_mutex_t mu;
  uv_cond_t quiet;
  int running;
  int closing;
  /* Written by the journal's writer thread, read on the host loop. */
  int64_t latest;
  /* Host thread only. */
  int pending; /* jobs queued whose `done` has not run */
  int shut;    /* query_shutdown ran */
  journal_sub *sub;
  uv_async_t wake;
  int wake_on;
  query_waiter *waiters;
  query_closer *closers;
  int app_adapters;
  uint32_t next_worker;
  int close_left; /* the async handle and the jobs still due, after shutdown */
  void (*closed)(lore_runtime *lrt);
};

query_state *query_state_of(lore_runtime *lrt) {
  if (lrt->queries) return lrt->queries;
  query_state *qs = calloc(1, sizeof *qs);
  if (!qs) return NULL;
  qs->lrt = lrt;
  if (uv_mutex_init(&qs->mu)) {
    free(qs);
    return NULL;
  }
  if (uv_cond_init(&qs->quiet)) {
    uv_mutex_destroy(&qs->mu);
    free(qs);
    return NULL;
  }
  lrt->queries = qs;
  return qs;
}

lore_runtime *query_runtime(query_state *qs) { return qs->lrt; }

int query_closing(query_state *qs) { return qs->shut || qs->lrt->phase != RT_RUNNING; }

/* --- jobs --- */

static void one_less_to_close(query_state *qs) {
  if (--qs->close_left == 0 && qs->closed) qs->closed(qs->lrt);
}

static void job_work(uv_work_t *w) {
  qjob *j = w->data;
  query_state *qs = j->qs;
  uv_mutex_lock(&qs->mu);
  int closing = qs->closing;
  if (!closing) qs->running++;
  uv_mutex_unlock(&qs->mu);
  if (closing) {
    j->status = JOURNAL_ECLOSED;
    return;
  }
  j->run(j);
  uv_mutex_lock(&qs->mu);
  if (--qs->running == 0) uv_cond_broadcast(&qs->quiet);
  uv_mutex_unlock(&qs->mu);
}

static void job_after(uv_work_t *w, int status) {
  qjob *j = w->data;
  query_state *qs = j->qs;
  qs->pending--;
  j->done(j, status == UV_ECANCELED ? JOURNAL_ECLOSED : j->status);
  if (qs->shut) one_less_to_close(qs);
}

int qjob_start(query_state *qs, qjob *j) {
  if (query_closing(qs)) return LORE_ESHUTDOWN;
  j->qs = qs;
  j->status = 0;
  j->work.data = j;
  int rc = uv_queue_work(qs->lrt->loop, &j->work, job_work, job_after);
  if (rc) return rc;
  qs->pending++;
  return 0;
}

/* --- live readers --- */

/* On the journal's writer thread: the highest offset committed so far. */
static void on_commit(void *ud, int64_t max_offset) {
  query_state *qs = ud;
  int64_t seen = __atomic_load_n(&qs->latest, __ATOMIC_ACQUIRE);
  while (max_offset > seen && !__atomic_compare_exchange_n(&qs->latest, &seen, max_offset, 0,
                                                           __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
  }
  uv_async_send(&qs->wake);
}

static void on_wake(uv_async_t *a) {
  query_state *qs = a->data;
  int64_t latest = query_latest(qs);
  /* A waiter's wake may add waiters (or remove others): walk a detached list. */
  query_waiter *list = qs->waiters;
  qs->waiters = NULL;
  for (query_waiter *w = list; w; w = w->next) w->listed = 0;
  while (list) {
    query_waiter *w = list;
    list = w->next;
    w->next = NULL;
    w->wake(w, latest);
  }
}

int64_t query_latest(query_state *qs) { return __atomic_load_n(&qs->latest, __ATOMIC_ACQUIRE); }

int query_subscribe(query_state *qs) {
  if (qs->sub) return 0;
  if (query_closing(qs)) return LORE_ESHUTDOWN;
  if (!qs->wake_on) {
    int rc = uv_async_init(qs->lrt->loop, &qs->wake, on_wake);
    if (rc) return rc;
    qs->wake.data = qs;
    uv_unref((uv_handle_t *)&qs->wake); /* a reader waiting never keeps a host loop alive */
    qs->wake_on = 1;
  }
  qs->sub = journal_subscribe(qs->lrt->journal, on_commit, qs);
  return qs->sub ? 1 : UV_ENOMEM;
}

void query_wait_add(query_state *qs, query_waiter *w) {
  if (w->listed) return;
  w->listed = 1;
  w->next = qs->waiters;
  qs->waiters = w;
}

void query_wait_remove(query_state *qs, query_waiter *w) {
  if (!w->listed) return;
  for (query_waiter **link = &qs->waiters; *link; link = &(*link)->next) {
    if (*link == w) {
      *link = w->next;
      break;
    }
  }
  w->listed = 0;
  w->next = NULL;
}

void query_closer_add(query_state *qs, query_closer *c) {
  if (c->listed) return;
  c->listed = 1;
  c->prev = NULL;
  c->next = qs->closers;
  if (qs->closers) qs->closers->prev = c;
  qs->closers = c;
}

void query_closer_remove(query_state *qs, query_closer *c) {
  if (!c->listed) return;
  if (c->prev)
    c->prev->next = c->next;
  else
    qs->closers = c->next;
  if (c->next) c->next->prev = c->prev;
  c->listed = 0;
  c->prev = c->next = NULL;
}

/* --- adapters on the way out --- */

void query_set_app_adapters(query_state *qs) { qs->app_adapters = 1; }

static int has_adapters_dir(const lore_settings *cfg) {
  for (int i = 0; i < cfg->nscripts; i++) {
    char path[4096];
    snprintf(path, sizeof path, "%s/adapters", cfg->scripts[i]);
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return 1;
  }
  return 0;
}

int query_adapting(query_state *qs) { return qs->app_adapters || has_adapters_dir(&qs->lrt->cfg); }

uint32_t query_next_worker(query_state *qs) {
  int workers = qs->lrt->rt->workers;
  return (uint32_t)(qs->next_worker++ % (uint32_t)workers) + 1;
}

/* --- shutdown --- */

static void wake_closed(uv_handle_t *h) { one_less_to_close(h->data); }

int query_shutdown(lore_runtime *lrt, void (*closed)(lore_runtime *lrt)) {
  query_state *qs = lrt->queries;
  if (!qs || qs->shut) return 0;
  qs->shut = 1;
  if (qs->sub) journal_unsubscribe(lrt->journal, qs->sub); /* on_commit never runs again */
  qs->sub = NULL;
  /* Jobs still queued never start; those inside the journal finish first. */
  uv_mutex_lock(&qs->mu);
  qs->closing = 1;
  while (qs->running > 0) uv_cond_wait(&qs->quiet, &qs->mu);
  uv_mutex_unlock(&qs->mu);
  while (qs->closers) {
    query_closer *c = qs->closers;
    query_closer_remove(qs, c);
    c->close(c);
  }
  qs->waiters = NULL; /* readers at the end: they end with the run */
  qs->closed = closed;
  qs->close_left = qs->pending + qs->wake_on;
  if (qs->wake_on) uv_close((uv_handle_t *)&qs->wake, wake_closed);
  qs->wake_on = 0;
  return qs->close_left > 0;
}

void query_free(lore_runtime *lrt) {
  query_state *qs = lrt->queries;
  if (!qs) return;
  uv_cond_destroy(&qs->quiet);
  uv_mutex_destroy(&qs->mu);
  free(qs);
  lrt->queries = NULL;
}
