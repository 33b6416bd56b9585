/* journal_postgres_notify.c: LISTEN for other processes' commits, to wake this process's live
 * readers. */
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
 * own journal's notifications (the writer told them already). The journal's
 * open waits for its first LISTEN, so every commit after journal_open
 * returns is heard. When the connection breaks it connects again and wakes
 * the subscribers once with the current max offset: notifications sent
 * meanwhile were lost.
 */

#define RECONNECT_MS 1000
#define FIRST_LISTEN_WAIT_S 10

struct pg_listener {
  pg_state *s;
  pthread_t thread;
  int wake[2]; /* a byte written here ends the thread */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int first_done; /* the first LISTEN succeeded or failed */
};

static void deliver(pg_state *s, int64_t max_offset) {
  pthread_mutex_lock(&s->notify_mu);
  if (s->notify_fn) s->notify_fn(s->notify_ud, max_offset);
  pthread_mutex_unlock(&s->notify_mu);
}

static PGconn *listen_conn(pg_state *s, int again) {
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
  /* Whatever was committed while nobody listened. */
  int64_t max = PQntuples(r) == 1 ? pg_get_int(r, 0, 0) : 0;
  PQclear(r);
  if (again && max > 0) deliver(s, max);
  return c;
}

/* Waits for the socket (or the wake pipe); returns 1 if asked to stop. */
static int wait_for(pg_listener *l, int fd, int timeout_ms) {
  struct pollfd p[2] = {{.fd = l->wake[0], .events = POLLIN}, {.fd = fd, .events = POLLIN}};
  int rc = poll(p, fd >= 0 ? 2 : 1, timeout_ms);
  return rc > 0 && (p[0].revents & POLLIN);
}

static void *listen_main(void *arg) {
  pg_listener *l = arg;
  pg_state *s = l->s;
  PGconn *c = NULL;
  char own[20];
  snprintf(own, sizeof own, "%016llx", (unsigned long long)s->instance);
  int connects = 0;
  for (;;) {
    if (!c) {
      c = listen_conn(s, connects > 0);
      if (connects++ == 0) {
        pthread_mutex_lock(&l->mu);
        l->first_done = 1;
        pthread_cond_signal(&l->cv);
        pthread_mutex_unlock(&l->mu);
      }
    }
    if (!c) {
      if (wait_for(l, -1, RECONNECT_MS)) break;
      continue;
    }
    if (wait_for(l, PQsocket(c), -1)) break;
    if (!PQconsumeInput(c)) {
      log_warn(s->log, "postgres: listener: %s", PQerrorMessage(c));
      PQfinish(c);
      c = NULL;
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
  pg_listener *l = s->listener;
  if (!l) return;
  s->listener = NULL;
  char b = 1;
  while (write(l->wake[1], &b, 1) < 0 && errno == EINTR) {
  }
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
  pthread_mutex_unlock(&s->notify_mu);
  if (s->listener) return;
  pg_listener *l = calloc(1, sizeof *l);
  if (!l) {
    log_error(s->log, "postgres: out of memory: other processes' writes will not wake readers");
    return;
  }
  l->s = s;
  pthread_mutex_init(&l->mu, NULL);
  pthread_cond_init(&l->cv, NULL);
  if (pipe2(l->wake, O_CLOEXEC) != 0) {
    log_error(s->log, "postgres: listener: %s", strerror(errno));
    free(l);
    return;
  }
  if (pthread_create(&l->thread, NULL, listen_main, l) != 0) {
    log_error(s->log, "postgres: listener thread: cannot start");
    close(l->wake[0]);
    close(l->wake[1]);
    free(l);
    return;
  }
  pthread_setname_np(l->thread, "lore-pg-listen");
  s->listener = l;
  /* Until the first LISTEN is in place, another process's commit could go
   * unheard: wait for it (a bounded time: a database that does not answer
   * fails the writer's own open anyway). */
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += FIRST_LISTEN_WAIT_S;
  pthread_mutex_lock(&l->mu);
  while (!l->first_done)
    if (pthread_cond_timedwait(&l->cv, &l->mu, &until) != 0) break;
  pthread_mutex_unlock(&l->mu);
}
