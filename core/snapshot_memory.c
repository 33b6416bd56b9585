/* snapshot_memory.c: in-process snapshot backend ("memory:" private, "memory:NAME" shared). */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "snapshot_store.h"

typedef struct mem_snap {
  int64_t seq, ts;
  void *data;
  size_t len;
} mem_snap;

/* One persistence id: its snapshots ascending by seq, so "youngest first" walks backwards. */
typedef struct mem_id {
  struct mem_id *next;
  uint64_t hash;
  char *id;
  mem_snap *snaps;
  size_t n, cap;
} mem_id;

typedef struct mem_store {
  pthread_mutex_t lock;
  mem_id **buckets;
  size_t nbuckets, nids;
  char *name;             /* NULL for a private store */
  struct mem_store *next; /* registry link, named stores only */
} mem_store;

/* What open hands out: a named store outlives its handles, a private one dies with it. */
typedef struct mem_handle {
  mem_store *store;
  int owned;
} mem_handle;

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static mem_store *registry;

static uint64_t fnv1a(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

static int matches(const mem_snap *sn, const snapshot_criteria *c) {
  return sn->seq >= c->min_seq && sn->seq <= c->max_seq && sn->ts >= c->min_ts &&
         sn->ts <= c->max_ts;
}

static mem_store *store_new(const char *name) {
  mem_store *m = calloc(1, sizeof *m);
  if (!m) return NULL;
  m->nbuckets = 16;
  m->buckets = calloc(m->nbuckets, sizeof *m->buckets);
  if (name) m->name = strdup(name);
  if (!m->buckets || (name && !m->name) || pthread_mutex_init(&m->lock, NULL) != 0) {
    free(m->buckets);
    free(m->name);
    free(m);
    return NULL;
  }
  return m;
}

static void id_free(mem_id *e) {
  for (size_t i = 0; i < e->n; i++) free(e->snaps[i].data);
  free(e->snaps);
  free(e->id);
  free(e);
}

static void store_free(mem_store *m) {
  for (size_t b = 0; b < m->nbuckets; b++) {
    mem_id *e = m->buckets[b];
    while (e) {
      mem_id *next = e->next;
      id_free(e);
      e = next;
    }
  }
  free(m->buckets);
  free(m->name);
  pthread_mutex_destroy(&m->lock);
  free(m);
}

/* Named stores live until the process exits; free them then so leak checkers stay quiet. */
__attribute__((destructor)) static void registry_free(void) {
  pthread_mutex_lock(&registry_lock);
  mem_store *m = registry;
  registry = NULL;
  pthread_mutex_unlock(&registry_lock);
  while (m) {
    mem_store *next = m->next;
    store_free(m);
    m = next;
  }
}

/* Caller holds m->lock. Returns the id's entry, or NULL if absent. */
static mem_id *id_find(mem_store *m, const char *id, uint64_t h, mem_id ***link_out) {
  mem_id **link = &m->buckets[h & (m->nbuckets - 1)];
  for (; *link; link = &(*link)->next) {
    if ((*link)->hash == h && strcmp((*link)->id, id) == 0) {
      if (link_out) *link_out = link;
      return *link;
    }
  }
  return NULL;
}

/* Caller holds m->lock. Doubling keeps chains short; a failed grow is harmless (just slower). */
static void maybe_grow(mem_store *m) {
  if (m->nids < m->nbuckets || m->nbuckets > SIZE_MAX / 2 / sizeof *m->buckets) return;
  size_t nb = m->nbuckets * 2;
  mem_id **nbk = calloc(nb, sizeof *nbk);
  if (!nbk) return;
  for (size_t b = 0; b < m->nbuckets; b++) {
    mem_id *e = m->buckets[b];
    while (e) {
      mem_id *next = e->next;
      e->next = nbk[e->hash & (nb - 1)];
      nbk[e->hash & (nb - 1)] = e;
      e = next;
    }
  }
  free(m->buckets);
  m->buckets = nbk;
  m->nbuckets = nb;
}

static int mem_open(const char *path, const log_sink *log, void **state) {
  (void)log;
  mem_handle *h = calloc(1, sizeof *h);
  if (!h) return SNAPSHOT_ENOMEM;
  if (*path == '\0') {
    h->store = store_new(NULL);
    h->owned = 1;
    if (!h->store) {
      free(h);
      return SNAPSHOT_ENOMEM;
    }
    *state = h;
    return 0;
  }
  pthread_mutex_lock(&registry_lock);
  mem_store *m = registry;
  while (m && strcmp(m->name, path) != 0) m = m->next;
  if (!m) {
    m = store_new(path);
    if (m) {
      m->next = registry;
      registry = m;
    }
  }
  pthread_mutex_unlock(&registry_lock);
  if (!m) {
    free(h);
    return SNAPSHOT_ENOMEM;
  }
  h->store = m;
  *state = h;
  return 0;
}

static void mem_close(void *state) {
  mem_handle *h = state;
  if (h->owned) store_free(h->store);
  free(h);
}

/* Copies len bytes into a fresh buffer; malloc(0) may return NULL, so always ask for >= 1. */
static void *dup_bytes(const void *data, size_t len) {
  void *p = malloc(len ? len : 1);
  if (p && len) memcpy(p, data, len);
  return p;
}

static int mem_save(void *state, const char *id, const snapshot_meta *meta, const void *data,
                    size_t len) {
  mem_store *m = ((mem_handle *)state)->store;
  /* Copy outside the lock: a 10 MB memcpy should not stall other ids. */
  void *copy = dup_bytes(data, len);
  if (!copy) return SNAPSHOT_ENOMEM;
  uint64_t h = fnv1a(id);
  int rc = 0;
  pthread_mutex_lock(&m->lock);
  mem_id *e = id_find(m, id, h, NULL);
  if (!e) {
    e = calloc(1, sizeof *e);
    if (!e || !(e->id = strdup(id))) {
      free(e);
      rc = SNAPSHOT_ENOMEM;
      goto out;
    }
    e->hash = h;
    e->next = m->buckets[h & (m->nbuckets - 1)];
    m->buckets[h & (m->nbuckets - 1)] = e;
    m->nids++;
    maybe_grow(m);
  }
  /* Binary search for the first snapshot with seq >= meta->seq. */
  size_t lo = 0, hi = e->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (e->snaps[mid].seq < meta->seq)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo < e->n && e->snaps[lo].seq == meta->seq) {
    free(e->snaps[lo].data);
  } else {
    if (e->n == e->cap) {
      size_t ncap = e->cap ? e->cap * 2 : 4;
      mem_snap *ns = ncap <= SIZE_MAX / sizeof *ns ? realloc(e->snaps, ncap * sizeof *ns) : NULL;
      if (!ns) {
        rc = SNAPSHOT_ENOMEM; /* e may be left empty: harmless, a later save fills it */
        goto out;
      }
      e->snaps = ns;
      e->cap = ncap;
    }
    memmove(&e->snaps[lo + 1], &e->snaps[lo], (e->n - lo) * sizeof *e->snaps);
    e->n++;
  }
  e->snaps[lo] = (mem_snap){.seq = meta->seq, .ts = meta->timestamp_ms, .data = copy, .len = len};
  copy = NULL;
out:
  pthread_mutex_unlock(&m->lock);
  free(copy);
  return rc;
}

static int mem_load(void *state, const char *id, const snapshot_criteria *crit, int skip,
                    snapshot_meta *meta, void **data, size_t *len) {
  mem_store *m = ((mem_handle *)state)->store;
  int rc = SNAPSHOT_ENOTFOUND;
  pthread_mutex_lock(&m->lock);
  mem_id *e = id_find(m, id, fnv1a(id), NULL);
  for (size_t i = e ? e->n : 0; i-- > 0;) {
    const mem_snap *sn = &e->snaps[i];
    if (!matches(sn, crit) || skip-- > 0) continue;
    /* Copy under the lock: a concurrent save at this seq frees the old buffer. */
    void *copy = dup_bytes(sn->data, sn->len);
    if (!copy) {
      rc = SNAPSHOT_ENOMEM;
      break;
    }
    meta->seq = sn->seq;
    meta->timestamp_ms = sn->ts;
    *data = copy;
    *len = sn->len;
    rc = 0;
    break;
  }
  pthread_mutex_unlock(&m->lock);
  return rc;
}

static int mem_delete(void *state, const char *id, const snapshot_criteria *crit) {
  mem_store *m = ((mem_handle *)state)->store;
  pthread_mutex_lock(&m->lock);
  mem_id **link = NULL;
  mem_id *e = id_find(m, id, fnv1a(id), &link);
  if (e) {
    size_t keep = 0;
    for (size_t i = 0; i < e->n; i++) {
      if (matches(&e->snaps[i], crit))
        free(e->snaps[i].data);
      else
        e->snaps[keep++] = e->snaps[i];
    }
    e->n = keep;
    if (keep == 0) { /* forget ids without snapshots so deleted actors cost nothing */
      *link = e->next;
      m->nids--;
      id_free(e);
    }
  }
  pthread_mutex_unlock(&m->lock);
  return 0;
}

static int mem_list(void *state, const char *id, const snapshot_criteria *crit, snapshot_meta *out,
                    size_t cap, size_t *n) {
  mem_store *m = ((mem_handle *)state)->store;
  size_t k = 0;
  pthread_mutex_lock(&m->lock);
  mem_id *e = id_find(m, id, fnv1a(id), NULL);
  for (size_t i = e ? e->n : 0; i-- > 0 && k < cap;) {
    if (!matches(&e->snaps[i], crit)) continue;
    out[k].seq = e->snaps[i].seq;
    out[k].timestamp_ms = e->snaps[i].ts;
    k++;
  }
  pthread_mutex_unlock(&m->lock);
  *n = k;
  return 0;
}

const snapshot_backend snapshot_memory_backend = {
    .scheme = "memory",
    .open = mem_open,
    .save = mem_save,
    .load = mem_load,
    .delete_matching = mem_delete,
    .list = mem_list,
    .close = mem_close,
};
