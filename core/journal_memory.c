/* journal_memory.c: the in-process journal backend ("memory:" and shared "memory:NAME"). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "journal.h"
#include "log.h"

/* Events handed to a replay callback per lock hold: the store stays writable
 * while a slow callback runs. */
#define REPLAY_PAGE 1024

/* One stored event and its strings and payload, in one allocation. Refcounted
 * because a replay keeps using an event after unlocking the store, while the
 * writer may delete it meanwhile. */
typedef struct mem_event {
  journal_event ev;
  int refs; /* atomic: 1 while in its stream, +1 per replay holding it */
} mem_event;

typedef struct mem_stream {
  char *id;           /* stable while the store lives: streams are never removed */
  int64_t highest;    /* survives deletes */
  mem_event **events; /* ascending seq */
  size_t len, cap;
  struct mem_stream *next; /* hash chain */
} mem_stream;

typedef struct mem_store {
  pthread_mutex_t mu; /* guards the streams and their events */
  mem_stream **buckets;
  size_t nbuckets, nstreams;
  char *name;             /* NULL: private to one journal */
  int opens;              /* journals using a named store (registry_mu) */
  struct mem_store *next; /* registry link */
} mem_store;

static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static mem_store *registry;

static uint64_t hash_id(const char *s) {
  uint64_t h = 1469598103934665603u; /* FNV-1a */
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211u;
  return h;
}

static void event_release(mem_event *e) {
  if (__atomic_sub_fetch(&e->refs, 1, __ATOMIC_ACQ_REL) == 0) free(e);
}

static mem_event *event_copy(const journal_event *src, const char *stream_id) {
  const char *manifest = src->manifest ? src->manifest : "";
  const char *tags = src->tags ? src->tags : "";
  const char *writer = src->writer ? src->writer : "";
  size_t lm = strlen(manifest) + 1, lt = strlen(tags) + 1, lw = strlen(writer) + 1;
  mem_event *e = malloc(sizeof *e + lm + lt + lw + src->payload_len);
  if (!e) return NULL;
  char *p = (char *)(e + 1);
  e->ev = *src;
  e->ev.id = stream_id;
  e->ev.manifest = memcpy(p, manifest, lm);
  e->ev.tags = memcpy(p + lm, tags, lt);
  e->ev.writer = memcpy(p + lm + lt, writer, lw);
  e->ev.payload = p + lm + lt + lw;
  if (src->payload_len) memcpy(p + lm + lt + lw, src->payload, src->payload_len);
  e->refs = 1;
  return e;
}

static mem_stream *stream_find(mem_store *s, const char *id) {
  if (!s->nbuckets) return NULL;
  for (mem_stream *st = s->buckets[hash_id(id) & (s->nbuckets - 1)]; st; st = st->next)
    if (strcmp(st->id, id) == 0) return st;
  return NULL;
}

/* Doubles the table when it is full; on failure keeps the old one (chains just
 * get longer). */
static void store_grow(mem_store *s) {
  if (s->nstreams < s->nbuckets) return;
  size_t n = s->nbuckets ? s->nbuckets * 2 : 64;
  mem_stream **b = calloc(n, sizeof *b);
  if (!b) return;
  for (size_t i = 0; i < s->nbuckets; i++) {
    for (mem_stream *st = s->buckets[i], *next; st; st = next) {
      next = st->next;
      mem_stream **slot = &b[hash_id(st->id) & (n - 1)];
      st->next = *slot;
      *slot = st;
    }
  }
  free(s->buckets);
  s->buckets = b;
  s->nbuckets = n;
}

/* Makes room for `more` events; returns 0 or JOURNAL_ENOMEM (nothing changed). */
static int stream_reserve(mem_stream *st, size_t more) {
  if (st->len + more <= st->cap) return 0;
  size_t cap = st->cap ? st->cap : 8;
  while (cap < st->len + more) cap *= 2;
  mem_event **ev = realloc(st->events, cap * sizeof *ev);
  if (!ev) return JOURNAL_ENOMEM;
  st->events = ev;
  st->cap = cap;
  return 0;
}

static int write_events(mem_store *s, journal_write *w) {
  if (w->count == 0) return 0;
  const char *id = w->events[0].id;
  mem_stream *st = stream_find(s, id);
  /* A seq at or below the highest ever written (even if since deleted) means
   * a second writer for the id; one above highest + 1 would leave a hole
   * (a write issued after one that failed). Both are refused. */
  if (st && w->events[0].seq != st->highest + 1) return JOURNAL_ECONFLICT;

  mem_stream *fresh = NULL;
  if (!st) {
    /* Grown before anything is copied, so linking the new stream in below
     * cannot fail. */
    store_grow(s);
    if (!s->nbuckets) return JOURNAL_ENOMEM;
    fresh = calloc(1, sizeof *fresh);
    if (!fresh || !(fresh->id = strdup(id))) {
      free(fresh);
      return JOURNAL_ENOMEM;
    }
    st = fresh;
  }
  if (stream_reserve(st, w->count) < 0) goto fail;
  size_t copied = 0;
  for (; copied < w->count; copied++) {
    mem_event *e = event_copy(&w->events[copied], st->id);
    if (!e) break;
    st->events[st->len + copied] = e;
  }
  if (copied < w->count) {
    while (copied) free(st->events[st->len + --copied]);
    goto fail;
  }
  st->len += w->count;
  st->highest = w->events[w->count - 1].seq;
  if (fresh) {
    mem_stream **slot = &s->buckets[hash_id(id) & (s->nbuckets - 1)];
    fresh->next = *slot;
    *slot = fresh;
    s->nstreams++;
  }
  return 0;

fail:
  if (fresh) {
    free(fresh->events);
    free(fresh->id);
    free(fresh);
  }
  return JOURNAL_ENOMEM;
}

static void delete_events(mem_store *s, const char *id, int64_t to) {
  mem_stream *st = stream_find(s, id);
  if (!st) return;
  size_t n = 0;
  while (n < st->len && st->events[n]->ev.seq <= to) event_release(st->events[n++]);
  memmove(st->events, st->events + n, (st->len - n) * sizeof *st->events);
  st->len -= n;
}

static int mem_write_batch(void *state, journal_write **writes, size_t n) {
  mem_store *s = state;
  pthread_mutex_lock(&s->mu);
  for (size_t i = 0; i < n; i++) {
    journal_write *w = writes[i];
    w->status = journal_write_validate(w);
    if (w->status < 0) continue;
    if (w->kind == JOURNAL_WRITE_DELETE)
      delete_events(s, w->delete_id, w->delete_to);
    else
      w->status = write_events(s, w);
  }
  pthread_mutex_unlock(&s->mu);
  return 0;
}

/* First index whose seq >= from (events ascend by seq). */
static size_t lower_bound(const mem_stream *st, int64_t from) {
  size_t lo = 0, hi = st->len;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (st->events[mid]->ev.seq < from)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

static int mem_replay(void *state, const char *id, int64_t from, int64_t to, int64_t max,
                      journal_replay_cb cb, void *ud) {
  mem_store *s = state;
  mem_event *page[REPLAY_PAGE];
  int64_t left = max < 0 ? INT64_MAX : max;
  while (left > 0 && from <= to) {
    size_t n = 0;
    pthread_mutex_lock(&s->mu);
    mem_stream *st = stream_find(s, id);
    if (st) {
      for (size_t i = lower_bound(st, from); i < st->len && n < REPLAY_PAGE && (int64_t)n < left;
           i++) {
        mem_event *e = st->events[i];
        if (e->ev.seq > to) break;
        __atomic_add_fetch(&e->refs, 1, __ATOMIC_RELAXED);
        page[n++] = e;
      }
    }
    pthread_mutex_unlock(&s->mu);
    if (n == 0) break;

    int rc = 0, stop = 0;
    for (size_t i = 0; i < n; i++) {
      const journal_event *ev = &page[i]->ev;
      if (!rc && !stop && crc32c(0, ev->payload, ev->payload_len) != ev->crc32c) {
        log_error(NULL, "journal: event %s #%lld fails its CRC", id, (long long)ev->seq);
        rc = JOURNAL_ECORRUPT;
      }
      if (!rc && !stop) stop = cb(ev, ud);
      event_release(page[i]);
    }
    if (rc || stop) return rc;
    left -= (int64_t)n;
    if (page[n - 1]->ev.seq == INT64_MAX) break;
    from = page[n - 1]->ev.seq + 1;
    if (n < REPLAY_PAGE) break; /* the stream or the range ended, or max was reached */
  }
  return 0;
}

static int mem_highest_seq(void *state, const char *id, int64_t *out) {
  mem_store *s = state;
  pthread_mutex_lock(&s->mu);
  mem_stream *st = stream_find(s, id);
  *out = st ? st->highest : 0;
  pthread_mutex_unlock(&s->mu);
  return 0;
}

typedef struct id_entry {
  const char *id;
  int64_t highest;
} id_entry;

static int cmp_entry(const void *a, const void *b) {
  return strcmp(((const id_entry *)a)->id, ((const id_entry *)b)->id);
}

static int mem_list_ids(void *state, void (*cb)(const char *id, int64_t highest, void *ud),
                        void *ud) {
  mem_store *s = state;
  pthread_mutex_lock(&s->mu);
  size_t n = 0;
  id_entry *all = malloc((s->nstreams ? s->nstreams : 1) * sizeof *all);
  if (!all) {
    pthread_mutex_unlock(&s->mu);
    return JOURNAL_ENOMEM;
  }
  for (size_t i = 0; i < s->nbuckets; i++)
    for (mem_stream *st = s->buckets[i]; st; st = st->next)
      all[n++] = (id_entry){st->id, st->highest};
  pthread_mutex_unlock(&s->mu);
  /* Ids stay valid unlocked: a stream lives as long as its store. */
  qsort(all, n, sizeof *all, cmp_entry);
  for (size_t i = 0; i < n; i++) cb(all[i].id, all[i].highest, ud);
  free(all);
  return 0;
}

static void store_free(mem_store *s) {
  for (size_t i = 0; i < s->nbuckets; i++) {
    for (mem_stream *st = s->buckets[i], *next; st; st = next) {
      next = st->next;
      for (size_t k = 0; k < st->len; k++) event_release(st->events[k]);
      free(st->events);
      free(st->id);
      free(st);
    }
  }
  free(s->buckets);
  free(s->name);
  pthread_mutex_destroy(&s->mu);
  free(s);
}

static mem_store *store_new(const char *name) {
  mem_store *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  if (name && !(s->name = strdup(name))) {
    free(s);
    return NULL;
  }
  if (pthread_mutex_init(&s->mu, NULL) != 0) {
    free(s->name);
    free(s);
    return NULL;
  }
  return s;
}

/* "" opens a private store; a NAME finds or creates the process-wide store of
 * that name, which outlives its journals so a test can reopen it. */
static int mem_open(const char *path, const journal_options *opt, void **state) {
  (void)opt;
  if (!path[0]) {
    mem_store *s = store_new(NULL);
    if (!s) return JOURNAL_ENOMEM;
    *state = s;
    return 0;
  }
  pthread_mutex_lock(&registry_mu);
  mem_store *s = registry;
  while (s && strcmp(s->name, path) != 0) s = s->next;
  if (!s) {
    s = store_new(path);
    if (!s) {
      pthread_mutex_unlock(&registry_mu);
      return JOURNAL_ENOMEM;
    }
    s->next = registry;
    registry = s;
  }
  s->opens++;
  pthread_mutex_unlock(&registry_mu);
  *state = s;
  return 0;
}

static void mem_close(void *state) {
  mem_store *s = state;
  if (!s->name) {
    store_free(s);
    return;
  }
  pthread_mutex_lock(&registry_mu);
  s->opens--;
  pthread_mutex_unlock(&registry_mu);
}

/* Frees the named stores at exit (so leak checkers stay quiet). One still open
 * by a journal that was never closed is left alone: its writer may be running. */
__attribute__((destructor)) static void mem_registry_free(void) {
  pthread_mutex_lock(&registry_mu);
  mem_store **link = &registry;
  while (*link) {
    mem_store *s = *link;
    if (s->opens == 0) {
      *link = s->next;
      store_free(s);
    } else {
      link = &s->next;
    }
  }
  pthread_mutex_unlock(&registry_mu);
}

const journal_backend journal_memory_backend = {
    .scheme = "memory",
    .open = mem_open,
    .write_batch = mem_write_batch,
    .replay = mem_replay,
    .highest_seq = mem_highest_seq,
    .list_ids = mem_list_ids,
    .close = mem_close,
};
