/* journal.c: journal URIs, the group-commit writer thread and the calls every backend shares. */
#include "journal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "journal_breaker.h"
#include "journal_postgres.h"
#include "log.h"

/* The writer's first array of batch slots; it grows to the largest batch seen. */
#define INITIAL_BATCH_SLOTS 256

/* The default bound on the wait for a cohort (see wait_for_cohort): this share
 * of the last commit's duration, and never more than COHORT_WAIT_CAP_NS. */
#define COHORT_WAIT_SHARE 2 /* 1/2 */
#define COHORT_WAIT_CAP_NS (20 * 1000 * 1000)
/* At most this many waits skipped after waits that ended at their bound. */
#define COHORT_BACKOFF_MAX 64

struct journal_sub {
  void (*fn)(void *ud, int64_t max_offset);
  void *ud;
  int dead; /* unsubscribed by its own callback: freed after the walk */
  struct journal_sub *next;
};

struct journal_session {
  const journal_backend *backend;
  void *state;
};

struct journal {
  const journal_backend *backend;
  void *state;
  const log_sink *log;
  int read_only; /* no writer thread */
  pthread_t thread;
  pthread_mutex_t mu; /* guards everything below up to the writer's own fields */
  pthread_cond_t wake;
  journal_write *head, *tail;
  int closing;
  int paused;
  uint64_t batches, writes;
  /* The cohort rule (see wait_for_cohort): writes ever submitted, and the
   * count the writer is waiting for (0: not waiting), so that the submit that
   * reaches it wakes the writer. */
  uint64_t arrivals, awaited;
  uint64_t cohort_waits, cohort_timeouts;
  journal_breaker breaker; /* admit under mu (submit), record on the writer */
  /* Subscribers. Recursive, so that a callback may (un)subscribe: whoever
   * holds it is either the notifying thread or no notification is running. */
  pthread_mutex_t sub_mu;
  journal_sub *subs;
  int notifying;
  void (*batch_done)(void *ud); /* journal_set_batch_done: set before writes, read under mu */
  void *batch_done_ud;
  /* Owned by the writer thread alone. */
  journal_write **batch;
  size_t batch_cap;
  int64_t cohort_wait_us; /* journal_options.cohort_wait_us */
  uint64_t cohort;        /* writes of the batch whose callbacks fired last */
  uint64_t released_at;   /* arrivals when those callbacks began */
  uint64_t released_ns;   /* and the time */
  uint64_t commit_ns;     /* how long that batch's write_batch took */
  int cohort_skips;       /* batches to take without waiting (after waits that timed out) */
  int cohort_backoff;     /* how many the next timed-out wait makes skip */
};

const char *journal_strerror(int code) {
  switch (code) {
    case JOURNAL_OK:
      return "ok";
    case JOURNAL_EIO:
      return "journal storage failed";
    case JOURNAL_EREJECTED:
      return "write rejected before storage";
    case JOURNAL_ECORRUPT:
      return "stored event is corrupt";
    case JOURNAL_ECLOSED:
      return "journal is closed";
    case JOURNAL_EURI:
      return "unknown journal scheme or bad URI";
    case JOURNAL_ENOMEM:
      return "out of memory";
    case JOURNAL_ECONFLICT:
      return "sequence number already written or out of order (a second writer?)";
    case JOURNAL_ENOTDB:
      return "not a database of this journal backend";
    case JOURNAL_ENOTLORE:
      return "database without Lore's journal tables (or of an older Lore)";
    case JOURNAL_EREADONLY:
      return "journal is read-only";
    case JOURNAL_EISDIR:
      return "journal path is a directory";
    case JOURNAL_ELOCKED:
      return "journal is held by another writer";
    case JOURNAL_EFENCED:
      return "write refused: the lease on the id was lost";
    case JOURNAL_ENOTSUP:
      return "not supported by this journal backend or database version";
    case JOURNAL_ENOENT:
      return "journal does not exist";
    case JOURNAL_ESQL:
      return "projection SQL failed";
    case JOURNAL_EBREAKER:
      return "journal circuit breaker open: writes fail fast after repeated journal failures";
    default: {
      /* uv_strerror leaks a malloc'd string for codes it does not know; the _r
       * form writes into our buffer instead. Thread-local so callers may race. */
      static _Thread_local char buf[96];
      return uv_strerror_r(code, buf, sizeof buf);
    }
  }
}

void journal_event_seal(journal_event *ev) { ev->crc32c = crc32c(0, ev->payload, ev->payload_len); }

/* Tags are joined by '\n'; none may be empty (so neither may the list start
 * or end with '\n', nor hold two in a row). "" means no tags. */
static int tags_valid(const char *tags) {
  if (!tags || !tags[0]) return 1;
  if (tags[0] == '\n') return 0;
  for (const char *p = tags; *p; p++)
    if (*p == '\n' && (p[1] == '\n' || p[1] == '\0')) return 0;
  return 1;
}

int journal_write_validate(const journal_write *w) {
  switch (w->kind) {
    case JOURNAL_WRITE_DELETE:
    case JOURNAL_WRITE_LEASE:
    case JOURNAL_WRITE_UNLEASE:
      return w->id && w->id[0] ? 0 : JOURNAL_EREJECTED;
    case JOURNAL_WRITE_EVENTS:
      break;
    default:
      return JOURNAL_EREJECTED;
  }
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
    if (!tags_valid(ev->tags)) return JOURNAL_EREJECTED;
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
    j->head = w->next;
    w->next = NULL;
    j->batch[taken++] = w;
  }
  if (!j->head) j->tail = NULL;
  return taken;
}

static void notify_subscribers(journal_t *j, int64_t max_offset) {
  pthread_mutex_lock(&j->sub_mu);
  if (!j->subs) {
    pthread_mutex_unlock(&j->sub_mu);
    return;
  }
  j->notifying = 1;
  for (journal_sub *s = j->subs; s; s = s->next)
    if (!s->dead) s->fn(s->ud, max_offset);
  j->notifying = 0;
  for (journal_sub **link = &j->subs; *link;) {
    journal_sub *s = *link;
    if (s->dead) {
      *link = s->next;
      free(s);
    } else {
      link = &s->next;
    }
  }
  pthread_mutex_unlock(&j->sub_mu);
}

static void notify_from_backend(void *ud, int64_t max_offset) {
  notify_subscribers(ud, max_offset);
}

/* The largest offset the batch stored; 0 if it stored no event. */
static int64_t batch_max_offset(journal_write **batch, size_t n) {
  int64_t max = 0;
  for (size_t i = 0; i < n; i++) {
    journal_write *w = batch[i];
    if (w->kind != JOURNAL_WRITE_EVENTS || w->status != 0 || w->count == 0) continue;
    int64_t off = w->events[w->count - 1].offset;
    if (off > max) max = off;
  }
  return max;
}

/* Tells the circuit breaker how a commit went, and the log when it trips or closes. */
static void note_commit(journal_t *j, int rc) {
  int changed = journal_breaker_record(&j->breaker, rc < 0, uv_hrtime());
  if (changed == BREAKER_OPEN)
    log_warn(j->log,
             "journal: %d commits failed in a row (%s): circuit breaker open, writes fail "
             "fast for %.3g s",
             j->breaker.failures, journal_strerror(rc), (double)j->breaker.reset_ns / 1e9);
  else if (changed == BREAKER_CLOSED)
    log_warn(j->log, "journal: a commit succeeded: circuit breaker closed");
}

static uint64_t monotonic_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * Group commit's cohort rule. With N actors each keeping one write in flight,
 * a writer that takes whatever is queued as soon as it can settles into two
 * cohorts that alternate: the writes that arrive while batch A commits form
 * batch B, the actors A answered send theirs while B commits, and so on. Each
 * commit then carries about N/2 writes and each write waits for two commits.
 * So, with writes queued, the writer first waits until as many writes have
 * arrived since the last batch's callbacks began as that batch held (its
 * actors' next writes), which merges the two cohorts into one batch. The
 * wait is bounded by a share of the last commit's duration (it only pays
 * while it is short beside the commit it saves). A wait that ends at its
 * bound (the actors had nothing more to write, or take longer to answer than
 * the commit takes: thousands of them on busy workers, where the writer
 * idling while the workers work costs more than the merge saves) makes the
 * next waits be skipped, 1, 2, 4, ... up to COHORT_BACKOFF_MAX of them while
 * the bound keeps being hit; a cohort that arrives in time resets that. A
 * lone actor never waits: its one write is the whole cohort.
 * Called with mu held; returns with it held.
 */
static void wait_for_cohort(journal_t *j) {
  uint64_t target = j->released_at + j->cohort;
  if (j->cohort_wait_us < 0 || j->closing) return;
  if (j->arrivals >= target) {
    j->cohort_backoff = 0;
    return;
  }
  if (j->cohort_skips > 0) {
    j->cohort_skips--;
    return;
  }
  uint64_t bound = (uint64_t)j->cohort_wait_us * 1000;
  if (j->cohort_wait_us == 0) {
    bound = j->commit_ns / COHORT_WAIT_SHARE;
    if (bound > COHORT_WAIT_CAP_NS) bound = COHORT_WAIT_CAP_NS;
  }
  uint64_t deadline = j->released_ns + bound;
  struct timespec until = {.tv_sec = (time_t)(deadline / 1000000000u),
                           .tv_nsec = (long)(deadline % 1000000000u)};
  j->cohort_waits++;
  j->awaited = target;
  int timed_out = 0;
  while (!j->closing && !j->paused && j->arrivals < target) {
    if (pthread_cond_timedwait(&j->wake, &j->mu, &until) != 0) {
      timed_out = j->arrivals < target;
      break;
    }
  }
  j->awaited = 0;
  if (timed_out) {
    j->cohort_timeouts++;
    j->cohort_skips = j->cohort_backoff ? j->cohort_backoff : 1;
    j->cohort_backoff = j->cohort_skips * 2;
    if (j->cohort_backoff > COHORT_BACKOFF_MAX) j->cohort_backoff = COHORT_BACKOFF_MAX;
  } else {
    j->cohort_backoff = 0;
  }
}

static void *writer_main(void *arg) {
  journal_t *j = arg;
  pthread_mutex_lock(&j->mu);
  for (;;) {
    while (!j->closing && (!j->head || j->paused)) pthread_cond_wait(&j->wake, &j->mu);
    if (!j->head) break; /* closing and drained */
    wait_for_cohort(j);
    if (j->paused && !j->closing) continue;
    size_t n = take_batch(j);
    void (*batch_done)(void *) = j->batch_done;
    void *batch_done_ud = j->batch_done_ud;
    pthread_mutex_unlock(&j->mu);

    uint64_t started = monotonic_ns();
    int rc = j->backend->write_batch(j->state, j->batch, n);
    uint64_t ended = monotonic_ns();
    if (rc < 0)
      log_debug(j->log, "journal: batch of %zu writes failed: %s", n, journal_strerror(rc));
    note_commit(j, rc);
    int64_t stored_to = rc < 0 ? 0 : batch_max_offset(j->batch, n);

    /* Counted before the callbacks fire, so whoever waits for a callback sees
     * its batch in journal_writer_stats. */
    pthread_mutex_lock(&j->mu);
    j->batches++;
    j->writes += n;
    j->cohort = n;
    j->released_at = j->arrivals;
    pthread_mutex_unlock(&j->mu);
    j->commit_ns = ended - started;
    j->released_ns = ended;

    /* Before the writes' callbacks: whoever learns that a write is stored
     * can count on the subscribers having been told. */
    if (stored_to > 0) notify_subscribers(j, stored_to);

    /* Unlocked: a callback may submit its actor's next write at once. Each
     * write is touched for the last time by its own callback (it may be freed
     * or resubmitted there). */
    for (size_t i = 0; i < n; i++) {
      journal_write *w = j->batch[i];
      if (rc < 0 && w->status == 0) w->status = rc;
      if (w->done) w->done(w, w->status);
    }
    if (batch_done) batch_done(batch_done_ud);
    pthread_mutex_lock(&j->mu);
  }
  pthread_mutex_unlock(&j->mu);
  return NULL;
}

/* Splits "scheme:rest" and finds the backend for the scheme. */
static const journal_backend *backend_for(const char *uri, const char **rest) {
  static const journal_backend *const backends[] = {
      &journal_memory_backend, &journal_sqlite_backend, &journal_postgres_backend};
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
  /* The backend writes the URI's parameters into this copy. */
  journal_options options = {.synchronous_full = 1};
  if (opt) options = *opt;

  journal_t *j = calloc(1, sizeof *j);
  if (!j) return JOURNAL_ENOMEM;
  int rc = JOURNAL_ENOMEM, err;
  j->backend = backend;
  j->log = options.log;
  journal_breaker_init(&j->breaker, options.breaker_max_failures,
                       options.breaker_reset_ms > 0 ? (uint64_t)options.breaker_reset_ms : 0);
  j->cohort_wait_us = options.cohort_wait_us;
  j->batch_cap = INITIAL_BATCH_SLOTS;
  j->batch = malloc(j->batch_cap * sizeof *j->batch);
  if (!j->batch) goto fail_batch;
  if (pthread_mutex_init(&j->mu, NULL) != 0) goto fail_mutex;
  /* Monotonic: the cohort wait's deadline must not move with the wall clock. */
  pthread_condattr_t cattr;
  if (pthread_condattr_init(&cattr) != 0) goto fail_cond;
  pthread_condattr_setclock(&cattr, CLOCK_MONOTONIC);
  err = pthread_cond_init(&j->wake, &cattr);
  pthread_condattr_destroy(&cattr);
  if (err != 0) goto fail_cond;
  pthread_mutexattr_t attr;
  if (pthread_mutexattr_init(&attr) != 0) goto fail_sub_mu;
  pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
  err = pthread_mutex_init(&j->sub_mu, &attr);
  pthread_mutexattr_destroy(&attr);
  if (err != 0) goto fail_sub_mu;
  rc = backend->open(path, &options, &j->state);
  if (rc < 0) goto fail_backend;
  j->read_only = options.read_only;
  if (!j->read_only) {
    err = pthread_create(&j->thread, NULL, writer_main, j);
    if (err != 0) {
      rc = uv_translate_sys_error(err);
      goto fail_thread;
    }
    pthread_setname_np(j->thread, "lore-journal");
  }
  if (backend->set_notify) backend->set_notify(j->state, notify_from_backend, j);
  *out = j;
  return 0;

fail_thread:
  backend->close(j->state);
fail_backend:
  pthread_mutex_destroy(&j->sub_mu);
fail_sub_mu:
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
  if (j->read_only) return JOURNAL_EREADONLY;
  w->next = NULL;
  w->status = 0;
  pthread_mutex_lock(&j->mu);
  if (j->closing) {
    pthread_mutex_unlock(&j->mu);
    return JOURNAL_ECLOSED;
  }
  /* After the closing check: a write admitted as the breaker's trial is
   * always queued, so its commit always decides. */
  int admitted = journal_breaker_state(&j->breaker) == BREAKER_CLOSED
                     ? 0
                     : journal_breaker_admit(&j->breaker, uv_hrtime());
  if (admitted) {
    pthread_mutex_unlock(&j->mu);
    return admitted;
  }
  /* The writer sleeps on an empty queue, or waiting for a cohort (then the
   * write that completes it wakes it, once): only those writes wake it. Signalled after the unlock:
   * a writer woken while the lock is still held blocks on it at once, and its second wake-up was a
   * visible part of a lone actor's persist. The writer checks the queue under the lock before it
   * sleeps, so no wake-up is lost. */
  int wake = j->head == NULL;
  if (j->tail)
    j->tail->next = w;
  else
    j->head = w;
  j->tail = w;
  if (++j->arrivals == j->awaited) {
    j->awaited = 0;
    wake = 1;
  }
  pthread_mutex_unlock(&j->mu);
  if (wake) pthread_cond_signal(&j->wake);
  return 0;
}

int journal_replay(journal_t *j, const char *id, int64_t from, int64_t to, int64_t max,
                   journal_replay_cb cb, void *ud) {
  if (!id || !cb) return JOURNAL_EREJECTED;
  return j->backend->replay(j->state, id, from, to, max, cb, ud);
}

int journal_replay_lean(journal_t *j, const char *id, int64_t from, int64_t to, int64_t max,
                        journal_replay_cb cb, void *ud) {
  if (!id || !cb) return JOURNAL_EREJECTED;
  if (!j->backend->replay_lean) return j->backend->replay(j->state, id, from, to, max, cb, ud);
  return j->backend->replay_lean(j->state, id, from, to, max, cb, ud);
}

int journal_read_hold(journal_t *j) {
  return j->backend->read_hold ? j->backend->read_hold(j->state) : 0;
}

void journal_read_release(journal_t *j) {
  if (j->backend->read_release) j->backend->read_release(j->state);
}

int journal_no_deletions(journal_t *j, int *none) {
  if (!none) return JOURNAL_EREJECTED;
  *none = 0;
  return j->backend->no_deletions ? j->backend->no_deletions(j->state, none) : 0;
}

void journal_warm_readers(journal_t *j, int n) {
  if (j->backend->warm_readers && n > 0) j->backend->warm_readers(j->state, n);
}

int journal_bounds_of(journal_t *j, const char *id, journal_bounds *out) {
  if (!id || !out) return JOURNAL_EREJECTED;
  if (!j->backend->bounds) return JOURNAL_ENOTSUP;
  return j->backend->bounds(j->state, id, out);
}

int journal_list_ids(journal_t *j, void (*cb)(const char *id, int64_t highest, void *ud),
                     void *ud) {
  if (!cb) return JOURNAL_EREJECTED;
  return j->backend->list_ids(j->state, cb, ud);
}

/* The fallback for a backend without list_ids_after: the whole listing,
 * keeping the first `max` ids after `after`. */
typedef struct ids_after {
  const char *after;
  int64_t left;
  void (*cb)(const char *id, int64_t highest, void *ud);
  void *ud;
} ids_after;

static void keep_id_after(const char *id, int64_t highest, void *ud) {
  ids_after *f = ud;
  if (f->left == 0 || strcmp(id, f->after) <= 0) return;
  if (f->left > 0) f->left--;
  f->cb(id, highest, f->ud);
}

int journal_list_ids_after(journal_t *j, const char *after, int64_t max,
                           void (*cb)(const char *id, int64_t highest, void *ud), void *ud) {
  if (!cb) return JOURNAL_EREJECTED;
  if (!after) after = "";
  if (max == 0) return 0;
  if (j->backend->list_ids_after)
    return j->backend->list_ids_after(j->state, after, max < 0 ? INT64_MAX : max, cb, ud);
  ids_after f = {after, max < 0 ? -1 : max, cb, ud};
  return j->backend->list_ids(j->state, keep_id_after, &f);
}

int journal_replay_tag(journal_t *j, const char *tag, int64_t after, int64_t max,
                       journal_replay_cb cb, void *ud) {
  if (!tag || !tag[0] || strchr(tag, '\n') || !cb) return JOURNAL_EREJECTED;
  if (!j->backend->replay_tag) return JOURNAL_ENOTSUP;
  return j->backend->replay_tag(j->state, tag, after, max, cb, ud);
}

int journal_replay_all(journal_t *j, int64_t after, int64_t max, journal_replay_cb cb, void *ud) {
  if (!cb) return JOURNAL_EREJECTED;
  if (!j->backend->replay_all) return JOURNAL_ENOTSUP;
  return j->backend->replay_all(j->state, after, max, cb, ud);
}

int journal_max_offset(journal_t *j, int64_t *out) {
  if (!out) return JOURNAL_EREJECTED;
  if (!j->backend->max_offset) return JOURNAL_ENOTSUP;
  return j->backend->max_offset(j->state, out);
}

int journal_stats_of(journal_t *j, journal_stats_t *out) {
  if (!out) return JOURNAL_EREJECTED;
  if (!j->backend->stats) return JOURNAL_ENOTSUP;
  return j->backend->stats(j->state, out);
}

journal_sub *journal_subscribe(journal_t *j, void (*fn)(void *ud, int64_t max_offset), void *ud) {
  if (!fn) return NULL;
  journal_sub *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->fn = fn;
  s->ud = ud;
  pthread_mutex_lock(&j->sub_mu);
  s->next = j->subs;
  j->subs = s;
  pthread_mutex_unlock(&j->sub_mu);
  if (j->backend->subscribers_changed) j->backend->subscribers_changed(j->state, 1);
  return s;
}

/* Holding sub_mu, no other thread is inside a notification: it either ran
 * before (and fn is done) or waits for us (and will not see sub). Only the
 * notifying thread itself can get here mid-walk, and then sub is only marked. */
void journal_unsubscribe(journal_t *j, journal_sub *sub) {
  if (!sub) return;
  pthread_mutex_lock(&j->sub_mu);
  if (j->notifying) {
    sub->dead = 1;
  } else {
    for (journal_sub **link = &j->subs; *link; link = &(*link)->next) {
      if (*link == sub) {
        *link = sub->next;
        free(sub);
        break;
      }
    }
  }
  pthread_mutex_unlock(&j->sub_mu);
  if (j->backend->subscribers_changed) j->backend->subscribers_changed(j->state, -1);
}

int journal_session_open(journal_t *j, journal_session **out) {
  if (!out) return JOURNAL_EREJECTED;
  if (!j->backend->session_open) return JOURNAL_ENOTSUP;
  journal_session *s = calloc(1, sizeof *s);
  if (!s) return JOURNAL_ENOMEM;
  s->backend = j->backend;
  int rc = j->backend->session_open(j->state, &s->state);
  if (rc < 0) {
    free(s);
    return rc;
  }
  *out = s;
  return 0;
}

int journal_session_begin(journal_session *s) { return s->backend->session_begin(s->state); }

int journal_session_exec(journal_session *s, const char *sql, const journal_value *params, size_t n,
                         journal_row_cb cb, void *ud) {
  if (!sql || (n > 0 && !params)) return JOURNAL_EREJECTED;
  return s->backend->session_exec(s->state, sql, params, n, cb, ud);
}

const char *journal_session_errmsg(journal_session *s) {
  const char *m = s->backend->session_errmsg(s->state);
  return m ? m : "";
}

int journal_session_get_offset(journal_session *s, const char *name, int64_t *offset) {
  if (!name || !offset) return JOURNAL_EREJECTED;
  return s->backend->session_get_offset(s->state, name, offset);
}

int journal_session_set_offset(journal_session *s, const char *name, int64_t offset) {
  if (!name) return JOURNAL_EREJECTED;
  return s->backend->session_set_offset(s->state, name, offset);
}

int journal_session_commit(journal_session *s) { return s->backend->session_commit(s->state); }

int journal_session_rollback(journal_session *s) { return s->backend->session_rollback(s->state); }

void journal_session_close(journal_session *s) {
  if (!s) return;
  s->backend->session_close(s->state);
  free(s);
}

size_t journal_writer_ids(journal_t *j) {
  return j && j->backend->writer_ids ? j->backend->writer_ids(j->state) : 0;
}

void journal_writer_stats(journal_t *j, uint64_t *batches, uint64_t *writes) {
  pthread_mutex_lock(&j->mu);
  if (batches) *batches = j->batches;
  if (writes) *writes = j->writes;
  pthread_mutex_unlock(&j->mu);
}

void journal_set_batch_done(journal_t *j, void (*fn)(void *ud), void *ud) {
  pthread_mutex_lock(&j->mu);
  j->batch_done = fn;
  j->batch_done_ud = ud;
  pthread_mutex_unlock(&j->mu);
}

void journal_cohort_stats(journal_t *j, uint64_t *waits, uint64_t *timeouts) {
  pthread_mutex_lock(&j->mu);
  if (waits) *waits = j->cohort_waits;
  if (timeouts) *timeouts = j->cohort_timeouts;
  pthread_mutex_unlock(&j->mu);
}

const char *journal_scheme(const journal_t *j) { return j->backend->scheme; }

void journal_breaker_stats(journal_t *j, int *state, uint64_t *trips) {
  if (state) *state = journal_breaker_state(&j->breaker);
  if (trips) *trips = __atomic_load_n(&j->breaker.trips, __ATOMIC_RELAXED);
}

void journal_pause_for_test(journal_t *j, int paused) {
  pthread_mutex_lock(&j->mu);
  j->paused = paused;
  pthread_cond_signal(&j->wake);
  pthread_mutex_unlock(&j->mu);
}

/* Must not be called from a write's callback: it joins the writer thread that
 * runs the callbacks. Nor while another thread may still be in journal_submit,
 * which signals the writer after releasing the lock (the runtime closes the
 * journal once its workers have stopped). */
void journal_close(journal_t *j) {
  if (!j) return;
  pthread_mutex_lock(&j->mu);
  j->closing = 1;
  pthread_cond_signal(&j->wake);
  pthread_mutex_unlock(&j->mu);
  if (!j->read_only) pthread_join(j->thread, NULL);
  if (j->backend->set_notify) j->backend->set_notify(j->state, NULL, NULL);
  j->backend->close(j->state);
  while (j->subs) {
    journal_sub *s = j->subs;
    j->subs = s->next;
    free(s);
  }
  pthread_mutex_destroy(&j->sub_mu);
  pthread_cond_destroy(&j->wake);
  pthread_mutex_destroy(&j->mu);
  free(j->batch);
  free(j);
}
