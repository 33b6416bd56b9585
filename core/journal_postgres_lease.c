/* journal_postgres_lease.c: leases on ids across processes: advisory locks on the writer's
 * connection, and the fencing of writes whose lease was lost. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "journal_postgres_internal.h"

/*
 * A lease is a session-level advisory lock, keyed by a hash of the schema
 * and the id, taken on the connection the writer writes through. While that
 * connection lives, no other session can take the lock; when the process
 * dies (kill -9) or the connection breaks, PostgreSQL drops the lock with the
 * session, and another process may take over.
 *
 * Fencing: the writer remembers on which connection (generation) each lease
 * was taken. A write for an id leased on an earlier connection is refused
 * with JOURNAL_EFENCED before anything is sent: its lease went with that
 * connection and someone else may hold it now. A write cannot outlive its
 * lease on the same connection either: the connection that would carry it is
 * the one whose end releases the lock, so once the lock is gone nothing of
 * that session can still commit.
 *
 * The same id may be leased twice in a row by this process (an actor stops
 * and is spawned again before the stop's UNLEASE is written): leases count.
 */

#define WAIT_RETRY_MS 100

static void mark_stale(pg_state *s, const char *id) {
  seqmap_entry *e = seqmap_find(&s->highest, id, seqmap_hash(id));
  if (e) e->highest = -1; /* another process may have written it: read it again */
}

/* 1 if the lock was taken, 0 if another session holds it, or a negative code. */
static int try_lock(pg_state *s, int64_t key) {
  char k[8];
  uint64_t u = (uint64_t)key;
  for (int i = 7; i >= 0; i--) {
    k[i] = (char)(u & 0xff);
    u >>= 8;
  }
  const char *v[] = {k};
  int len[] = {8}, fmt[] = {1}, err = 0;
  PGresult *r = pg_run(s->wconn, s->log, "w_try_lock", 1, 1, v, len, fmt, &err);
  if (!r) return err;
  int got = PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] == 1;
  PQclear(r);
  return got;
}

static void unlock(pg_state *s, int64_t key) {
  char k[8];
  uint64_t u = (uint64_t)key;
  for (int i = 7; i >= 0; i--) {
    k[i] = (char)(u & 0xff);
    u >>= 8;
  }
  const char *v[] = {k};
  int len[] = {8}, fmt[] = {1}, err = 0;
  PGresult *r = pg_run(s->wconn, s->log, "w_unlock", 1, 1, v, len, fmt, &err);
  PQclear(r);
}

/* Records a lease taken now; 0 or JOURNAL_ENOMEM (the lock is given back). */
static int granted(pg_state *s, const char *id, int64_t key) {
  pg_lease *l = idmap_get_str(&s->leases, id);
  if (!l) {
    l = calloc(1, sizeof *l);
    if (l && !(l->id = strdup(id))) {
      free(l);
      l = NULL;
    }
    if (l && idmap_put_str(&s->leases, l->id, l) != 0) {
      free(l->id);
      free(l);
      l = NULL;
    }
    if (!l) {
      unlock(s, key);
      return JOURNAL_ENOMEM;
    }
  }
  l->key = key;
  l->count = 1;
  l->generation = s->generation;
  mark_stale(s, id);
  return 0;
}

static void *lease_main(void *arg);

/* The journal's writer reads a batch's writes again after write_batch (to
 * fire their callbacks), while the lease thread may complete and hand back a
 * waiting LEASE at any time: so the waiting write leaves the batch, and its
 * slot points to s->parked instead, which has no callback and is never freed. */
static int add_waiter(pg_state *s, journal_write **slot) {
  journal_write *w = *slot;
  pg_lease_waiter *lw = calloc(1, sizeof *lw);
  if (!lw) return JOURNAL_ENOMEM;
  if (!s->lease_thread_started) {
    if (pthread_create(&s->lease_thread, NULL, lease_main, s) != 0) {
      free(lw);
      return JOURNAL_EIO;
    }
    pthread_setname_np(s->lease_thread, "lore-pg-lease");
    s->lease_thread_started = 1;
  }
  lw->w = w;
  s->parked = (journal_write){.kind = JOURNAL_WRITE_LEASE, .status = 1};
  *slot = &s->parked;
  pg_lease_waiter **pp = &s->waiters;
  while (*pp) pp = &(*pp)->next;
  *pp = lw;
  pthread_cond_signal(&s->lease_cv);
  return 0;
}

void pg_leases_take(pg_state *s, journal_write **writes, size_t n) {
  for (size_t i = 0; i < n; i++) {
    journal_write *w = writes[i];
    if (w->kind != JOURNAL_WRITE_LEASE || w->status != 0) continue;
    pg_lease *l = idmap_get_str(&s->leases, w->id);
    if (l && l->generation == s->generation) {
      l->count++;
      continue;
    }
    int64_t key = pg_lock_key(s->target.schema, w->id);
    int got = try_lock(s, key);
    if (got < 0)
      w->status = got;
    else if (got)
      w->status = granted(s, w->id, key);
    else if (w->seq != 1)
      w->status = JOURNAL_ELOCKED;
    else if ((got = add_waiter(s, &writes[i])) < 0)
      w->status = got; /* still in the batch: the journal fires its callback */
  }
}

void pg_leases_give(pg_state *s, journal_write **writes, size_t n) {
  for (size_t i = 0; i < n; i++) {
    journal_write *w = writes[i];
    if (w->kind != JOURNAL_WRITE_UNLEASE || w->status != 0) continue;
    pg_lease *l = idmap_get_str(&s->leases, w->id);
    if (!l || --l->count > 0) continue;
    if (l->generation == s->generation && s->wconn) unlock(s, l->key);
    idmap_remove_str(&s->leases, w->id);
    mark_stale(s, w->id);
    free(l->id);
    free(l);
  }
}

int pg_lease_check(pg_state *s, const char *id) {
  pg_lease *l = idmap_get_str(&s->leases, id);
  return l && l->generation != s->generation ? JOURNAL_EFENCED : 0;
}

/* Retries the waiting LEASEs every WAIT_RETRY_MS between batches (the
 * writer's connection is shared under wmu), and fires those granted. */
static void *lease_main(void *arg) {
  pg_state *s = arg;
  pthread_mutex_lock(&s->wmu);
  while (!s->lease_stop) {
    if (!s->waiters) {
      pthread_cond_wait(&s->lease_cv, &s->wmu);
      continue;
    }
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += WAIT_RETRY_MS * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
      until.tv_sec++;
      until.tv_nsec -= 1000000000L;
    }
    int rc = pthread_cond_timedwait(&s->lease_cv, &s->wmu, &until);
    if (s->lease_stop) break;
    if (rc != ETIMEDOUT || pg_writer_connection(s) != 0) continue;
    pg_lease_waiter *done = NULL, **tail = &done;
    for (pg_lease_waiter **pp = &s->waiters; *pp;) {
      pg_lease_waiter *lw = *pp;
      int64_t key = pg_lock_key(s->target.schema, lw->w->id);
      int got = try_lock(s, key);
      if (got == 0) {
        pp = &lw->next;
        continue;
      }
      lw->w->status = got < 0 ? got : granted(s, lw->w->id, key);
      *pp = lw->next;
      lw->next = NULL;
      *tail = lw;
      tail = &lw->next;
    }
    pthread_mutex_unlock(&s->wmu);
    while (done) {
      pg_lease_waiter *lw = done;
      done = lw->next;
      if (lw->w->done) lw->w->done(lw->w, lw->w->status);
      free(lw);
    }
    pthread_mutex_lock(&s->wmu);
  }
  pthread_mutex_unlock(&s->wmu);
  return NULL;
}

static void free_lease(void *value, void *ud) {
  (void)ud;
  pg_lease *l = value;
  free(l->id);
  free(l);
}

void pg_leases_close(pg_state *s) {
  pthread_mutex_lock(&s->wmu);
  s->lease_stop = 1;
  pthread_cond_broadcast(&s->lease_cv);
  pthread_mutex_unlock(&s->wmu);
  if (s->lease_thread_started) pthread_join(s->lease_thread, NULL);
  s->lease_thread_started = 0;
  while (s->waiters) {
    pg_lease_waiter *lw = s->waiters;
    s->waiters = lw->next;
    lw->w->status = JOURNAL_ECLOSED;
    if (lw->w->done) lw->w->done(lw->w, JOURNAL_ECLOSED);
    free(lw);
  }
  idmap_each(&s->leases, free_lease, NULL);
}
