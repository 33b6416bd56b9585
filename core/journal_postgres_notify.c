/* journal_postgres_notify.c: LISTEN for other processes' commits while this journal has live
 * readers, to wake them. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "journal_postgres_internal.h"

/*
 * Every batch that stores events sends pg_notify(channel, "INSTANCE:MAX")
 * in its transaction; PostgreSQL delivers it at commit to every session
 * listening on the channel (one per schema). A thread of this journal holds
 * such a session and passes MAX to the journal's subscribers, skipping its
 * own journal's notifications (the writer told them already).
 *
 * The session exists only while the journal has subscribers: PostgreSQL
 * wakes every listening session at every commit on the channel, this
 * process's own commits included, and a journal nobody reads live would pay
 * two wake-ups (the server's listening backend and this thread) per commit
 * for nothing. The first subscriber waits until the LISTEN is in place, so
 * every commit after journal_subscribe returns is heard. When the session
 * broke while subscribers wanted it, the new one wakes them once with the
 * current max offset: notifications sent meanwhile were lost.
 */

#define RECONNECT_MS 1000
#define FIRST_LISTEN_WAIT_S 10

struct pg_listener {
  pg_state *s;
  pthread_t thread;
  int wake[2]; /* a byte written here: look at `stop` and the subscriber count again */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int stop;
  int subscribers;   /* the journal's live readers */
  int listening;     /* the LISTEN is in place (the thread may still be catching up) */
  uint64_t attempts; /* connection attempts finished, successful or not */
};

static void deliver(pg_state *s, int64_t max_offset) {
  pthread_mutex_lock(&s->notify_mu);
  if (s->notify_fn) s->notify_fn(s->notify_ud, max_offset);
  pthread_mutex_unlock(&s->notify_mu);
}

static void ring(pg_listener *l) {
  char b = 1;
  while (write(l->wake[1], &b, 1) < 0 && errno == EINTR) {
  }
}

static void drain(pg_listener *l) {
  char buf[64];
  while (read(l->wake[0], buf, sizeof buf) > 0) {
  }
}

/* Connects and LISTENs; *max gets the max offset committed so far. */
static PGconn *listen_conn(pg_state *s, int64_t *max) {
  PGconn *c = NULL;
  if (pg_connect(&s->target, s->log, "listener", &c) < 0) return NULL;
  char *q = PQescapeIdentifier(c, s->channel, strlen(s->channel));
  char sql[128];
  int rc = JOURNAL_ENOMEM;
  if (q) {
    snprintf(sql, sizeof sql, "LISTEN %s", q);
    PQfreemem(q);
    rc = pg_exec(c, s->log, sql);
  }
  int err = 0;
  PGresult *r =
      rc == 0 ? pg_run(c, s->log, "SELECT value FROM lore_journal_info WHERE key = 'last_offset'",
                       0, 0, NULL, NULL, NULL, &err)
              : NULL;
  if (!r) {
    PQfinish(c);
    return NULL;
  }
  *max = PQntuples(r) == 1 ? pg_get_int(r, 0, 0) : 0;
  PQclear(r);
  return c;
}

/* Waits for the socket (fd >= 0) or the doorbell; returns 1 if the doorbell rang. */
static int wait_for(pg_listener *l, int fd, int timeout_ms) {
  struct pollfd p[2] = {{.fd = l->wake[0], .events = POLLIN}, {.fd = fd, .events = POLLIN}};
  int rc = poll(p, fd >= 0 ? 2 : 1, timeout_ms);
  if (rc > 0 && (p[0].revents & POLLIN)) {
    drain(l);
    return 1;
  }
  return 0;
}

static void finish_attempt(pg_listener *l, int listening) {
  pthread_mutex_lock(&l->mu);
  l->listening = listening;
  l->attempts++;
  pthread_cond_broadcast(&l->cv);
  pthread_mutex_unlock(&l->mu);
}

static void *listen_main(void *arg) {
  pg_listener *l = arg;
  pg_state *s = l->s;
  PGconn *c = NULL;
  int lost = 0; /* the session broke (or could not be made) while subscribers wanted it */
  char own[20];
  snprintf(own, sizeof own, "%016llx", (unsigned long long)s->instance);
  for (;;) {
    /* Decided under mu, so that a subscriber who saw `listening` set can
     * count on the session staying until it unsubscribes. */
    pthread_mutex_lock(&l->mu);
    int stop = l->stop, wanted = l->subscribers > 0;
    if (stop || !wanted) l->listening = 0;
    pthread_mutex_unlock(&l->mu);
    if (stop) break;
    if (!wanted) {
      if (c) PQfinish(c);
      c = NULL;
      lost = 0;
      wait_for(l, -1, -1);
      continue;
    }
    if (!c) {
      int64_t max = 0;
      c = listen_conn(s, &max);
      finish_attempt(l, c != NULL);
      if (!c) {
        lost = 1;
        wait_for(l, -1, RECONNECT_MS);
        continue;
      }
      /* Whatever was committed while the session was gone. (A first
       * subscriber is told nothing: it reads after subscribing anyway.) */
      if (lost && max > 0) deliver(s, max);
      lost = 0;
    }
    if (wait_for(l, PQsocket(c), -1)) continue;
    if (!PQconsumeInput(c)) {
      log_warn(s->log, "postgres: listener: %s", PQerrorMessage(c));
      PQfinish(c);
      c = NULL;
      lost = 1;
      continue;
    }
    int64_t max = 0;
    PGnotify *n;
    while ((n = PQnotifies(c))) {
      const char *colon = n->extra ? strchr(n->extra, ':') : NULL;
      if (colon && !(colon - n->extra == 16 && memcmp(n->extra, own, 16) == 0)) {
        int64_t v = strtoll(colon + 1, NULL, 10);
        if (v > max) max = v;
      }
      PQfreemem(n);
    }
    if (max > 0) deliver(s, max);
  }
  if (c) PQfinish(c);
  return NULL;
}

void pg_notify_stop(pg_state *s) {
  pthread_mutex_lock(&s->notify_mu);
  pg_listener *l = s->listener;
  s->listener = NULL;
  pthread_mutex_unlock(&s->notify_mu);
  if (!l) return;
  pthread_mutex_lock(&l->mu);
  l->stop = 1;
  pthread_mutex_unlock(&l->mu);
  ring(l);
  pthread_join(l->thread, NULL);
  close(l->wake[0]);
  close(l->wake[1]);
  pthread_mutex_destroy(&l->mu);
  pthread_cond_destroy(&l->cv);
  free(l);
}

void pg_set_notify(void *state, void (*fn)(void *ud, int64_t max_offset), void *ud) {
  pg_state *s = state;
  if (!fn) {
    pg_notify_stop(s); /* joined: fn is never called again */
    pthread_mutex_lock(&s->notify_mu);
    s->notify_fn = NULL;
    s->notify_ud = NULL;
    pthread_mutex_unlock(&s->notify_mu);
    return;
  }
  pthread_mutex_lock(&s->notify_mu);
  s->notify_fn = fn;
  s->notify_ud = ud;
  int running = s->listener != NULL;
  pthread_mutex_unlock(&s->notify_mu);
  if (running) return;
  pg_listener *l = calloc(1, sizeof *l);
  if (!l) {
    log_error(s->log, "postgres: out of memory: other processes' writes will not wake readers");
    return;
  }
  l->s = s;
  pthread_mutex_init(&l->mu, NULL);
  pthread_cond_init(&l->cv, NULL);
  if (pipe2(l->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
    log_error(s->log, "postgres: listener: %s", strerror(errno));
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    free(l);
    return;
  }
  /* Idle (no connection) until the journal's first subscriber. */
  if (pthread_create(&l->thread, NULL, listen_main, l) != 0) {
    log_error(s->log, "postgres: listener thread: cannot start");
    close(l->wake[0]);
    close(l->wake[1]);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    free(l);
    return;
  }
  pthread_setname_np(l->thread, "lore-pg-listen");
  pthread_mutex_lock(&s->notify_mu);
  s->listener = l;
  pthread_mutex_unlock(&s->notify_mu);
}

void pg_subscribers_changed(void *state, int delta) {
  pg_state *s = state;
  /* The listener lives from set_notify to close; subscribers come and go
   * in between (the journal's contract), so it is not freed under us. */
  pthread_mutex_lock(&s->notify_mu);
  pg_listener *l = s->listener;
  pthread_mutex_unlock(&s->notify_mu);
  if (!l) return;
  pthread_mutex_lock(&l->mu);
  l->subscribers += delta;
  if (l->subscribers < 0) l->subscribers = 0;
  int start = delta > 0 && !l->listening;
  uint64_t seen = l->attempts;
  pthread_mutex_unlock(&l->mu);
  ring(l);
  /* A subscriber made on the listener's own thread (from a notification)
   * cannot wait for it; one connection attempt is waited for, bounded: a
   * database that does not answer fails reads and writes anyway. */
  if (!start || pthread_equal(pthread_self(), l->thread)) return;
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += FIRST_LISTEN_WAIT_S;
  pthread_mutex_lock(&l->mu);
  while (!l->listening && l->attempts == seen && !l->stop)
    if (pthread_cond_timedwait(&l->cv, &l->mu, &until) != 0) break;
  pthread_mutex_unlock(&l->mu);
}
