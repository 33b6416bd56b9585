/* journal_memory.c: the in-process journal backend ("memory:" and shared "memory:NAME"). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "journal.h"
#include "journal_uri.h"
#include "log.h"

/* Events handed to a replay callback per lock hold: the store stays writable
 * while a slow callback runs. */
#define REPLAY_PAGE 1024

/* One stored event and its strings and payload, in one allocation. Refcounted
 * because a replay keeps using an event after unlocking the store, while the
 * writer may delete it meanwhile. */
typedef struct mem_event {
  journal_event ev;
  size_t size; /* of the allocation, for stats */
  int gone;    /* deleted: dropped from the log at the end of the delete (store mu) */
  int refs;    /* atomic: 1 while stored, +1 per replay holding it */
} mem_event;

typedef struct mem_stream {
  char *id;           /* stable while the store lives: streams are never removed */
  int64_t highest;    /* survives deletes */
  int64_t deleted_to; /* events 1..deleted_to were deleted */
  mem_event **events; /* ascending seq */
  size_t len, cap;
  struct mem_stream *next; /* hash chain */
} mem_stream;

/* A projection's stored offset. */
typedef struct mem_offset {
  char *name;
  int64_t offset;
  struct mem_offset *next;
} mem_offset;

typedef struct mem_store {
  pthread_mutex_t mu; /* guards everything below but the registry fields */
  mem_stream **buckets;
  size_t nbuckets, nstreams;
  mem_event **log; /* every stored event, ascending offset (= commit order) */
  size_t log_len, log_cap;
  int64_t last_offset; /* the highest offset ever given, deleted or not */
  int64_t bytes;
  mem_offset *offsets;
  char *name;             /* NULL: private to one journal */
  int opens;              /* journals using a named store (registry_mu) */
  struct mem_store *next; /* registry link */
} mem_store;

/* One open of a store. */
typedef struct mem_handle {
  mem_store *store;
  int read_only;
} mem_handle;

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
  size_t lm = strlen(manifest) + 1, lt = strlen(tags) + 1;
  size_t size = sizeof(mem_event) + lm + lt + src->payload_len;
  mem_event *e = malloc(size);
  if (!e) return NULL;
  char *p = (char *)(e + 1);
  e->ev = *src;
  e->ev.id = stream_id;
  e->ev.manifest = memcpy(p, manifest, lm);
  e->ev.tags = memcpy(p + lm, tags, lt);
  e->ev.payload = p + lm + lt;
  if (src->payload_len) memcpy(p + lm + lt, src->payload, src->payload_len);
  e->size = size;
  e->gone = 0;
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

/* Makes room for `more` pointers in an array; returns 0 or JOURNAL_ENOMEM
 * (nothing changed). */
static int reserve(mem_event ***arr, size_t *cap, size_t len, size_t more) {
  if (len + more <= *cap) return 0;
  size_t c = *cap ? *cap : 8;
  while (c < len + more) c *= 2;
  mem_event **grown = realloc(*arr, c * sizeof *grown);
  if (!grown) return JOURNAL_ENOMEM;
  *arr = grown;
  *cap = c;
  return 0;
}

static int write_events(mem_store *s, journal_write *w) {
  if (w->count == 0) return 0;
  const char *id = w->events[0].id;
  mem_stream *st = stream_find(s, id);
  /* A seq at or below the highest ever written (even if since deleted) means
   * a second writer for the id; one above highest + 1 would leave a hole
   * (a write issued after one that failed). Both are refused. */
  if (w->events[0].seq != (st ? st->highest : 0) + 1) return JOURNAL_ECONFLICT;

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
  if (reserve(&st->events, &st->cap, st->len, w->count) < 0 ||
      reserve(&s->log, &s->log_cap, s->log_len, w->count) < 0)
    goto fail;
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
  for (size_t i = 0; i < w->count; i++) {
    mem_event *e = st->events[st->len + i];
    e->ev.offset = w->events[i].offset = ++s->last_offset;
    s->log[s->log_len++] = e;
    s->bytes += (int64_t)e->size;
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

/* Deletes up to `seq` (clamped to the highest) and records how far. An
 * unknown id records nothing. */
static void delete_events(mem_store *s, const char *id, int64_t seq) {
  mem_stream *st = stream_find(s, id);
  if (!st) return;
  int64_t to = seq < st->highest ? seq : st->highest;
  if (to <= st->deleted_to) return;
  st->deleted_to = to;
  size_t n = 0;
  while (n < st->len && st->events[n]->ev.seq <= to) st->events[n++]->gone = 1;
  if (n == 0) return;
  size_t kept = 0;
  for (size_t i = 0; i < s->log_len; i++) {
    mem_event *e = s->log[i];
    if (e->gone) {
      s->bytes -= (int64_t)e->size;
      event_release(e);
    } else {
      s->log[kept++] = e;
    }
  }
  s->log_len = kept;
  memmove(st->events, st->events + n, (st->len - n) * sizeof *st->events);
  st->len -= n;
}

static int mem_write_batch(void *state, journal_write **writes, size_t n) {
  mem_store *s = ((mem_handle *)state)->store;
  pthread_mutex_lock(&s->mu);
  for (size_t i = 0; i < n; i++) {
    journal_write *w = writes[i];
    w->status = journal_write_validate(w);
    if (w->status < 0) continue;
    if (w->kind == JOURNAL_WRITE_DELETE)
      delete_events(s, w->id, w->seq);
    else if (w->kind == JOURNAL_WRITE_EVENTS)
      w->status = write_events(s, w);
    /* Leases: one process owns a memory store, so they are always granted. */
  }
  pthread_mutex_unlock(&s->mu);
  return 0;
}

/* First index whose seq >= from (events ascend by seq). */
static size_t seq_lower_bound(const mem_stream *st, int64_t from) {
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

/* First index of the log whose offset > after. */
static size_t offset_upper_bound(const mem_store *s, int64_t after) {
  size_t lo = 0, hi = s->log_len;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (s->log[mid]->ev.offset <= after)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* Hands a page of held events to cb, checking each CRC, and releases them.
 * Returns JOURNAL_ECORRUPT, 1 if cb asked to stop, else 0. */
static int deliver(mem_event **page, size_t n, journal_replay_cb cb, void *ud) {
  int rc = 0;
  for (size_t i = 0; i < n; i++) {
    const journal_event *ev = &page[i]->ev;
    if (!rc && crc32c(0, ev->payload, ev->payload_len) != ev->crc32c) {
      log_error(NULL, "journal: event %s #%lld fails its CRC", ev->id, (long long)ev->seq);
      rc = JOURNAL_ECORRUPT;
    }
    if (!rc && cb(ev, ud)) rc = 1;
    event_release(page[i]);
  }
  return rc;
}

static int mem_replay(void *state, const char *id, int64_t from, int64_t to, int64_t max,
                      journal_replay_cb cb, void *ud) {
  mem_store *s = ((mem_handle *)state)->store;
  mem_event *page[REPLAY_PAGE];
  int64_t left = max < 0 ? INT64_MAX : max;
  while (left > 0 && from <= to) {
    size_t n = 0;
    pthread_mutex_lock(&s->mu);
    mem_stream *st = stream_find(s, id);
    if (st) {
      for (size_t i = seq_lower_bound(st, from);
           i < st->len && n < REPLAY_PAGE && (int64_t)n < left; i++) {
        mem_event *e = st->events[i];
        if (e->ev.seq > to) break;
        __atomic_add_fetch(&e->refs, 1, __ATOMIC_RELAXED);
        page[n++] = e;
      }
    }
    pthread_mutex_unlock(&s->mu);
    if (n == 0) break;
    int64_t last = page[n - 1]->ev.seq;
    int rc = deliver(page, n, cb, ud);
    if (rc) return rc < 0 ? rc : 0;
    left -= (int64_t)n;
    if (last == INT64_MAX || n < REPLAY_PAGE) break; /* the stream, range or max ended */
    from = last + 1;
  }
  return 0;
}

/* Whether `tags` ('\n'-joined) holds `tag` as a whole entry. */
static int has_tag(const char *tags, const char *tag, size_t len) {
  for (const char *p = tags; *p;) {
    const char *end = strchr(p, '\n');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    if (n == len && memcmp(p, tag, len) == 0) return 1;
    if (!end) break;
    p = end + 1;
  }
  return 0;
}

/* Events with offset > after (and `tag`, if not NULL), in offset order. */
static int replay_log(mem_store *s, const char *tag, int64_t after, int64_t max,
                      journal_replay_cb cb, void *ud) {
  mem_event *page[REPLAY_PAGE];
  size_t tag_len = tag ? strlen(tag) : 0;
  int64_t left = max < 0 ? INT64_MAX : max;
  while (left > 0) {
    size_t n = 0;
    int more = 0;
    pthread_mutex_lock(&s->mu);
    for (size_t i = offset_upper_bound(s, after); i < s->log_len; i++) {
      if (n == REPLAY_PAGE || (int64_t)n == left) {
        more = 1;
        break;
      }
      mem_event *e = s->log[i];
      after = e->ev.offset;
      if (tag && !has_tag(e->ev.tags, tag, tag_len)) continue;
      __atomic_add_fetch(&e->refs, 1, __ATOMIC_RELAXED);
      page[n++] = e;
    }
    pthread_mutex_unlock(&s->mu);
    int rc = deliver(page, n, cb, ud);
    if (rc) return rc < 0 ? rc : 0;
    left -= (int64_t)n;
    if (!more) break;
  }
  return 0;
}

static int mem_replay_tag(void *state, const char *tag, int64_t after, int64_t max,
                          journal_replay_cb cb, void *ud) {
  return replay_log(((mem_handle *)state)->store, tag, after, max, cb, ud);
}

static int mem_replay_all(void *state, int64_t after, int64_t max, journal_replay_cb cb, void *ud) {
  return replay_log(((mem_handle *)state)->store, NULL, after, max, cb, ud);
}

static int mem_bounds(void *state, const char *id, journal_bounds *out) {
  mem_store *s = ((mem_handle *)state)->store;
  pthread_mutex_lock(&s->mu);
  mem_stream *st = stream_find(s, id);
  out->highest = st ? st->highest : 0;
  out->deleted_to = st ? st->deleted_to : 0;
  pthread_mutex_unlock(&s->mu);
  return 0;
}

static int mem_max_offset(void *state, int64_t *out) {
  mem_store *s = ((mem_handle *)state)->store;
  pthread_mutex_lock(&s->mu);
  *out = s->last_offset;
  pthread_mutex_unlock(&s->mu);
  return 0;
}

static int mem_stats(void *state, journal_stats_t *out) {
  mem_store *s = ((mem_handle *)state)->store;
  pthread_mutex_lock(&s->mu);
  *out = (journal_stats_t){.ids = (int64_t)s->nstreams,
                           .events = (int64_t)s->log_len,
                           .bytes = s->bytes,
                           .max_offset = s->last_offset};
  for (size_t i = 0; i < s->log_len; i++) {
    int64_t ts = s->log[i]->ev.timestamp_ms;
    if (i == 0 || ts < out->oldest_ms) out->oldest_ms = ts;
    if (i == 0 || ts > out->newest_ms) out->newest_ms = ts;
  }
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
  mem_store *s = ((mem_handle *)state)->store;
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
  /* Ids stay valid unlocked: a stream lives as long as its store. strcmp
   * orders bytes as unsigned chars, like the sqlite backend. */
  qsort(all, n, sizeof *all, cmp_entry);
  for (size_t i = 0; i < n; i++) cb(all[i].id, all[i].highest, ud);
  free(all);
  return 0;
}

/* Pages of the listing: the ids after `after`, at most max of them. */
static int mem_list_ids_after(void *state, const char *after, int64_t max,
                              void (*cb)(const char *id, int64_t highest, void *ud), void *ud) {
  mem_store *s = ((mem_handle *)state)->store;
  pthread_mutex_lock(&s->mu);
  size_t n = 0;
  id_entry *all = malloc((s->nstreams ? s->nstreams : 1) * sizeof *all);
  if (!all) {
    pthread_mutex_unlock(&s->mu);
    return JOURNAL_ENOMEM;
  }
  for (size_t i = 0; i < s->nbuckets; i++)
    for (mem_stream *st = s->buckets[i]; st; st = st->next)
      if (strcmp(st->id, after) > 0) all[n++] = (id_entry){st->id, st->highest};
  pthread_mutex_unlock(&s->mu);
  qsort(all, n, sizeof *all, cmp_entry);
  for (size_t i = 0; i < n && (int64_t)i < max; i++) cb(all[i].id, all[i].highest, ud);
  free(all);
  return 0;
}

/* ---- projection sessions: offsets only (no SQL) ---- */

/* Offsets set in the session's transaction reach the store at commit. */
typedef struct mem_session {
  mem_store *store;
  mem_offset *pending;
} mem_session;

static mem_offset *offset_find(mem_offset *list, const char *name) {
  for (; list; list = list->next)
    if (strcmp(list->name, name) == 0) return list;
  return NULL;
}

static void offsets_free(mem_offset *list) {
  while (list) {
    mem_offset *next = list->next;
    free(list->name);
    free(list);
    list = next;
  }
}

static int mem_session_open(void *state, void **session) {
  mem_handle *h = state;
  if (h->read_only) return JOURNAL_EREADONLY;
  mem_session *ms = calloc(1, sizeof *ms);
  if (!ms) return JOURNAL_ENOMEM;
  ms->store = h->store;
  *session = ms;
  return 0;
}

static int mem_session_begin(void *session) {
  mem_session *ms = session;
  offsets_free(ms->pending);
  ms->pending = NULL;
  return 0;
}

static int mem_session_exec(void *session, const char *sql, const journal_value *params, size_t n,
                            journal_row_cb cb, void *ud) {
  (void)session, (void)sql, (void)params, (void)n, (void)cb, (void)ud;
  return JOURNAL_ENOTSUP;
}

static const char *mem_session_errmsg(void *session) {
  (void)session;
  return "the memory journal runs no SQL";
}

static int mem_session_get_offset(void *session, const char *name, int64_t *offset) {
  mem_session *ms = session;
  mem_offset *o = offset_find(ms->pending, name);
  if (o) {
    *offset = o->offset;
    return 0;
  }
  pthread_mutex_lock(&ms->store->mu);
  o = offset_find(ms->store->offsets, name);
  *offset = o ? o->offset : 0;
  pthread_mutex_unlock(&ms->store->mu);
  return 0;
}

static int offset_put(mem_offset **list, const char *name, int64_t offset) {
  mem_offset *o = offset_find(*list, name);
  if (!o) {
    o = calloc(1, sizeof *o);
    if (!o || !(o->name = strdup(name))) {
      free(o);
      return JOURNAL_ENOMEM;
    }
    o->next = *list;
    *list = o;
  }
  o->offset = offset;
  return 0;
}

static int mem_session_set_offset(void *session, const char *name, int64_t offset) {
  mem_session *ms = session;
  return offset_put(&ms->pending, name, offset);
}

static int mem_session_commit(void *session) {
  mem_session *ms = session;
  int rc = 0;
  pthread_mutex_lock(&ms->store->mu);
  /* Names are added before any value changes, so a failure changes nothing. */
  for (mem_offset *p = ms->pending; p && rc == 0; p = p->next)
    if (!offset_find(ms->store->offsets, p->name)) rc = offset_put(&ms->store->offsets, p->name, 0);
  if (rc == 0) {
    for (mem_offset *p = ms->pending; p; p = p->next)
      offset_find(ms->store->offsets, p->name)->offset = p->offset;
  }
  pthread_mutex_unlock(&ms->store->mu);
  if (rc == 0) mem_session_begin(ms); /* drops the applied values */
  return rc;
}

static int mem_session_rollback(void *session) { return mem_session_begin(session); }

static void mem_session_close(void *session) {
  mem_session *ms = session;
  offsets_free(ms->pending);
  free(ms);
}

/* ---- stores ---- */

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
  free(s->log);
  offsets_free(s->offsets);
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

static int mem_param(const char *name, const char *value, void *ud) {
  int rc = journal_uri_common_param(name, value, ud);
  return rc == 1 ? 0 : rc < 0 ? rc : JOURNAL_EURI;
}

/* Finds (or, unless read-only, creates) the store for `name`; "" is a private
 * store. A read-only open needs an existing store: a private one never is. */
static int open_store(const char *name, int read_only, mem_store **out) {
  if (!name[0]) {
    if (read_only) return JOURNAL_ENOENT;
    return (*out = store_new(NULL)) ? 0 : JOURNAL_ENOMEM;
  }
  pthread_mutex_lock(&registry_mu);
  mem_store *s = registry;
  while (s && strcmp(s->name, name) != 0) s = s->next;
  if (!s && read_only) {
    pthread_mutex_unlock(&registry_mu);
    return JOURNAL_ENOENT;
  }
  if (!s) {
    s = store_new(name);
    if (!s) {
      pthread_mutex_unlock(&registry_mu);
      return JOURNAL_ENOMEM;
    }
    s->next = registry;
    registry = s;
  }
  s->opens++;
  pthread_mutex_unlock(&registry_mu);
  *out = s;
  return 0;
}

/* "" opens a private store; a NAME finds or creates the process-wide store of
 * that name, which outlives its journals so a test can reopen it. */
static int mem_open(const char *path, journal_options *opt, void **state) {
  char *name = NULL;
  int rc = journal_uri_params(path, &name, mem_param, opt);
  if (rc < 0) return rc;
  mem_handle *h = calloc(1, sizeof *h);
  if (!h) {
    free(name);
    return JOURNAL_ENOMEM;
  }
  h->read_only = opt->read_only;
  rc = open_store(name, h->read_only, &h->store);
  free(name);
  if (rc < 0) {
    free(h);
    return rc;
  }
  *state = h;
  return 0;
}

static void mem_close(void *state) {
  mem_handle *h = state;
  mem_store *s = h->store;
  free(h);
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
    .bounds = mem_bounds,
    .list_ids = mem_list_ids,
    .list_ids_after = mem_list_ids_after,
    .replay_tag = mem_replay_tag,
    .replay_all = mem_replay_all,
    .max_offset = mem_max_offset,
    .stats = mem_stats,
    .session_open = mem_session_open,
    .session_begin = mem_session_begin,
    .session_exec = mem_session_exec,
    .session_errmsg = mem_session_errmsg,
    .session_get_offset = mem_session_get_offset,
    .session_set_offset = mem_session_set_offset,
    .session_commit = mem_session_commit,
    .session_rollback = mem_session_rollback,
    .session_close = mem_session_close,
    .close = mem_close,
};
