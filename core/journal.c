/* journal.c: journal URIs, the group-commit writer thread and the calls every backend shares. */
#include "journal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "log.h"

/* The writer's first array of batch slots; it grows to the largest batch seen. */
#define INITIAL_BATCH_SLOTS 256

struct journal {
  const journal_backend *backend;
  void *state;
  const log_sink *log;
  pthread_t thread;
  pthread_mutex_t mu; /* guards everything below */
  pthread_cond_t wake;
  journal_write *head, *tail;
  int closing;
  int paused;
  uint64_t batches, writes;
  /* Owned by the writer thread alone. */
  journal_write **batch;
  size_t batch_cap;
};

const char *journal_strerror(int code) {
  switch (code) {
  case JOURNAL_OK: return "ok";
  case JOURNAL_EIO: return "journal storage failed";
  case JOURNAL_EREJECTED: return "write rejected before storage";
  case JOURNAL_ECORRUPT: return "stored event is corrupt";
  case JOURNAL_ECLOSED: return "journal is closed";
  case JOURNAL_EURI: return "unknown journal scheme or bad URI";
  case JOURNAL_ENOMEM: return "out of memory";
  case JOURNAL_ECONFLICT: return "sequence number already written (a second writer?)";
  default: {
    /* uv_strerror leaks a malloc'd string for codes it does not know; the _r
     * form writes into our buffer instead. Thread-local so callers may race. */
    static _Thread_local char buf[96];
    return uv_strerror_r(code, buf, sizeof buf);
  }
  }
}

void journal_event_seal(journal_event *ev) { ev->crc32c = crc32c(0, ev->payload, ev->payload_len); }

int journal_write_validate(const journal_write *w) {
  if (w->kind == JOURNAL_WRITE_DELETE)
    return w->delete_id && w->delete_id[0] ? 0 : JOURNAL_EREJECTED;
  if (w->kind != JOURNAL_WRITE_EVENTS) return JOURNAL_EREJECTED;
  if (w->count == 0) return 0;
  if (!w->events) return JOURNAL_EREJECTED;
  const char *id = w->events[0].id;
  if (!id || !id[0]) return JOURNAL_EREJECTED;
  for (size_t i = 0; i < w->count; i++) {
    const journal_event *ev = &w->events[i];
    if (ev->seq <= 0) return JOURNAL_EREJECTED;
    if (i > 0 && (ev->seq != w->events[i - 1].seq + 1 || !ev->id || strcmp(ev->id, id) != 0))
      return JOURNAL_EREJECTED;
    if (!ev->payload && ev->payload_len > 0) return JOURNAL_EREJECTED;
    if (ev->payload_len > JOURNAL_MAX_PAYLOAD) return JOURNAL_EREJECTED;
    /* Checked here rather than trusted: a payload damaged (or never sealed)
     * between the actor and the writer must not be stored as if it were good. */
    if (crc32c(0, ev->payload, ev->payload_len) != ev->crc32c) return JOURNAL_EREJECTED;
  }
  return 0;
}

/* Takes up to batch_cap writes off the queue (mu held). Growing the array is
 * tried first; if that fails, the rest stays queued for the next round. */
static size_t take_batch(journal_t *j) {
  size_t n = 0;
  for (journal_write *w = j->head; w; w = w->next) n++;
  if (n > j->batch_cap) {
    size_t cap = j->batch_cap;
    while (cap < n) cap *= 2;
    journal_write **grown = realloc(j->batch, cap * sizeof *grown);
    if (grown) {
      j->batch = grown;
      j->batch_cap = cap;
    }
  }
  size_t taken = 0;
  while (j->head && taken < j->batch_cap) {
    journal_write *w = j->head;
    __atomic_store_n(&j->head, w->next, __ATOMIC_RELEASE); /* spin_for_work reads it unlocked */
    w->next = NULL;
    j->batch[taken++] = w;
  }
  if (!j->head) j->tail = NULL;
  return taken;
}

/* A lone actor persisting one event at a time submits its next write a few
 * tens of microseconds after its completion was posted. Sleeping on the
 * condition variable in between costs a futex wake-up per event (~40 us on a
 * small VM); watching the queue for a short while first catches that write
 * at once. Under load the queue is never empty here, so this never spins. */
#define WRITER_SPIN_NS 150000

static void spin_for_work(journal_t *j) {
  struct timespec t0, t;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (;;) {
    for (int i = 0; i < 64; i++) {
      if (__atomic_load_n(&j->head, __ATOMIC_ACQUIRE)) return;
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    }
    clock_gettime(CLOCK_MONOTONIC, &t);
    if ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) > WRITER_SPIN_NS) return;
  }
}

static void *writer_main(void *arg) {
  journal_t *j = arg;
  pthread_mutex_lock(&j->mu);
  for (;;) {
    while (!j->closing && (!j->head || j->paused)) pthread_cond_wait(&j->wake, &j->mu);
    if (!j->head) break; /* closing and drained */
    size_t n = take_batch(j);
    pthread_mutex_unlock(&j->mu);

    int rc = j->backend->write_batch(j->state, j->batch, n);
    if (rc < 0) log_debug(j->log, "journal: batch of %zu writes failed: %s", n, journal_strerror(rc));

    /* Counted before the callbacks fire, so whoever waits for a callback sees
     * its batch in journal_stats. */
    pthread_mutex_lock(&j->mu);
    j->batches++;
    j->writes += n;
    pthread_mutex_unlock(&j->mu);

    /* Unlocked: a callback may submit its actor's next write at once. Each
     * write is touched for the last time by its own callback (it may be freed
     * or resubmitted there). */
    for (size_t i = 0; i < n; i++) {
      journal_write *w = j->batch[i];
      if (rc < 0 && w->status == 0) w->status = rc;
      if (w->done) w->done(w, w->status);
    }
    spin_for_work(j);
    pthread_mutex_lock(&j->mu);
  }
  pthread_mutex_unlock(&j->mu);
  return NULL;
}

/* Splits "scheme:rest" and finds the backend for the scheme. */
static const journal_backend *backend_for(const char *uri, const char **rest) {
  static const journal_backend *const backends[] = {&journal_memory_backend,
                                                    &journal_sqlite_backend};
  const char *colon = strchr(uri, ':');
  if (!colon) return NULL;
  size_t len = (size_t)(colon - uri);
  for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++) {
    if (strlen(backends[i]->scheme) == len && memcmp(backends[i]->scheme, uri, len) == 0) {
      *rest = colon + 1;
      return backends[i];
    }
  }
  return NULL;
}

int journal_open(const char *uri, const journal_options *opt, journal_t **out) {
  if (!uri || !out) return JOURNAL_EURI;
  const char *path = NULL;
  const journal_backend *backend = backend_for(uri, &path);
  if (!backend) return JOURNAL_EURI;
  journal_options defaults = {.synchronous_full = 1};
  if (!opt) opt = &defaults;

  journal_t *j = calloc(1, sizeof *j);
  if (!j) return JOURNAL_ENOMEM;
  int rc = JOURNAL_ENOMEM;
  j->backend = backend;
  j->log = opt->log;
  j->batch_cap = INITIAL_BATCH_SLOTS;
  j->batch = malloc(j->batch_cap * sizeof *j->batch);
  if (!j->batch) goto fail_batch;
  if (pthread_mutex_init(&j->mu, NULL) != 0) goto fail_mutex;
  if (pthread_cond_init(&j->wake, NULL) != 0) goto fail_cond;
  rc = backend->open(path, opt, &j->state);
  if (rc < 0) goto fail_backend;
  int err = pthread_create(&j->thread, NULL, writer_main, j);
  if (err != 0) {
    rc = uv_translate_sys_error(err);
    goto fail_thread;
  }
  pthread_setname_np(j->thread, "lore-journal");
  *out = j;
  return 0;

fail_thread:
  backend->close(j->state);
fail_backend:
  pthread_cond_destroy(&j->wake);
fail_cond:
  pthread_mutex_destroy(&j->mu);
fail_mutex:
  free(j->batch);
fail_batch:
  free(j);
  return rc;
}

int journal_submit(journal_t *j, journal_write *w) {
  if (!w) return JOURNAL_EREJECTED;
  w->next = NULL;
  w->status = 0;
  pthread_mutex_lock(&j->mu);
  if (j->closing) {
    pthread_mutex_unlock(&j->mu);
    return JOURNAL_ECLOSED;
  }
  /* The writer only sleeps on an empty queue, so only the first write into
   * an empty queue needs to wake it. */
  int was_empty = j->head == NULL;
  if (j->tail)
    j->tail->next = w;
  else
    __atomic_store_n(&j->head, w, __ATOMIC_RELEASE);
  j->tail = w;
  if (was_empty) pthread_cond_signal(&j->wake);
  pthread_mutex_unlock(&j->mu);
  return 0;
}

int journal_replay(journal_t *j, const char *id, int64_t from, int64_t to, int64_t max,
                   journal_replay_cb cb, void *ud) {
  if (!id || !cb) return JOURNAL_EREJECTED;
  return j->backend->replay(j->state, id, from, to, max, cb, ud);
}

int journal_highest_seq(journal_t *j, const char *id, int64_t *out) {
  if (!id || !out) return JOURNAL_EREJECTED;
  return j->backend->highest_seq(j->state, id, out);
}

int journal_list_ids(journal_t *j, void (*cb)(const char *id, int64_t highest, void *ud),
                     void *ud) {
  if (!cb) return JOURNAL_EREJECTED;
  return j->backend->list_ids(j->state, cb, ud);
}

void journal_stats(journal_t *j, uint64_t *batches, uint64_t *writes) {
  pthread_mutex_lock(&j->mu);
  if (batches) *batches = j->batches;
  if (writes) *writes = j->writes;
  pthread_mutex_unlock(&j->mu);
}

void journal_pause_for_test(journal_t *j, int paused) {
  pthread_mutex_lock(&j->mu);
  j->paused = paused;
  pthread_cond_signal(&j->wake);
  pthread_mutex_unlock(&j->mu);
}

/* Must not be called from a write's callback: it joins the writer thread that
 * runs the callbacks. */
void journal_close(journal_t *j) {
  if (!j) return;
  pthread_mutex_lock(&j->mu);
  j->closing = 1;
  pthread_cond_signal(&j->wake);
  pthread_mutex_unlock(&j->mu);
  pthread_join(j->thread, NULL);
  j->backend->close(j->state);
  pthread_cond_destroy(&j->wake);
  pthread_mutex_destroy(&j->mu);
  free(j->batch);
  free(j);
}
