/* journal_seqmap.c: the writer's map of id -> highest seq, with an undo log per batch. */
#include "journal_seqmap.h"

#include <stdlib.h>
#include <string.h>

static void publish_count(seqmap *m) {
  __atomic_store_n(&m->shared_count, m->count, __ATOMIC_RELAXED);
}

size_t seqmap_shared_count(const seqmap *m) {
  return __atomic_load_n(&m->shared_count, __ATOMIC_RELAXED);
}

void seqmap_init(seqmap *m) {
  memset(m, 0, sizeof *m);
  m->limit = SEQMAP_DEFAULT_LIMIT;
}

void seqmap_clear(seqmap *m) {
  for (size_t i = 0; i < m->nbuckets; i++) {
    for (seqmap_entry *e = m->buckets[i], *next; e; e = next) {
      next = e->next;
      free(e);
    }
  }
  free(m->buckets);
  m->buckets = NULL;
  m->nbuckets = m->count = 0;
  m->oldest = m->newest = NULL;
  m->undo_len = 0;
  m->in_batch = 0;
  publish_count(m);
}

void seqmap_free(seqmap *m) {
  seqmap_clear(m);
  free(m->undo);
  m->undo = NULL;
  m->undo_cap = 0;
}

uint64_t seqmap_hash(const char *id) {
  uint64_t h = 1469598103934665603u; /* FNV-1a */
  for (; *id; id++) h = (h ^ (unsigned char)*id) * 1099511628211u;
  return h;
}

static void unlink_use(seqmap *m, seqmap_entry *e) {
  if (e->older)
    e->older->newer = e->newer;
  else
    m->oldest = e->newer;
  if (e->newer)
    e->newer->older = e->older;
  else
    m->newest = e->older;
  e->older = e->newer = NULL;
}

static void link_newest(seqmap *m, seqmap_entry *e) {
  e->older = m->newest;
  e->newer = NULL;
  if (m->newest)
    m->newest->newer = e;
  else
    m->oldest = e;
  m->newest = e;
}

seqmap_entry *seqmap_find(seqmap *m, const char *id, uint64_t hash) {
  if (!m->nbuckets) return NULL;
  for (seqmap_entry *e = m->buckets[hash & (m->nbuckets - 1)]; e; e = e->next) {
    if (e->hash == hash && strcmp(e->id, id) == 0) {
      if (m->newest != e) {
        unlink_use(m, e);
        link_newest(m, e);
      }
      return e;
    }
  }
  return NULL;
}

/* Doubles the table when it is full; on failure keeps the old one (chains just
 * get longer). */
static void grow(seqmap *m) {
  if (m->count < m->nbuckets) return;
  size_t n = m->nbuckets ? m->nbuckets * 2 : 256;
  seqmap_entry **b = calloc(n, sizeof *b);
  if (!b) return;
  for (size_t i = 0; i < m->nbuckets; i++) {
    for (seqmap_entry *e = m->buckets[i], *next; e; e = next) {
      next = e->next;
      e->next = b[e->hash & (n - 1)];
      b[e->hash & (n - 1)] = e;
    }
  }
  free(m->buckets);
  m->buckets = b;
  m->nbuckets = n;
}

seqmap_entry *seqmap_add(seqmap *m, const char *id, uint64_t hash, int64_t highest) {
  grow(m);
  if (!m->nbuckets) return NULL;
  size_t len = strlen(id) + 1;
  seqmap_entry *e = malloc(sizeof *e + len);
  if (!e) return NULL;
  e->hash = hash;
  e->highest = highest;
  memcpy(e->id, id, len);
  seqmap_entry **slot = &m->buckets[hash & (m->nbuckets - 1)];
  e->next = *slot;
  *slot = e;
  link_newest(m, e);
  m->count++;
  publish_count(m);
  return e;
}

static void evict(seqmap *m, seqmap_entry *e) {
  seqmap_entry **p = &m->buckets[e->hash & (m->nbuckets - 1)];
  while (*p != e) p = &(*p)->next;
  *p = e->next;
  unlink_use(m, e);
  free(e);
  m->count--;
}

void seqmap_trim(seqmap *m) {
  if (m->in_batch) return; /* the batch's writes and undo log hold entries */
  while (m->count > m->limit && m->oldest) evict(m, m->oldest);
  publish_count(m);
}

int seqmap_begin(seqmap *m, size_t n) {
  m->undo_len = 0;
  m->in_batch = 1;
  if (n <= m->undo_cap) return 0;
  seqmap_undo *u = realloc(m->undo, n * sizeof *u);
  if (!u) return -1;
  m->undo = u;
  m->undo_cap = n;
  return 0;
}

void seqmap_set(seqmap *m, seqmap_entry *e, int64_t highest) {
  if (m->undo_len < m->undo_cap) m->undo[m->undo_len++] = (seqmap_undo){e, e->highest};
  e->highest = highest;
}

void seqmap_commit(seqmap *m) {
  m->undo_len = 0;
  m->in_batch = 0;
}

void seqmap_rollback(seqmap *m) {
  while (m->undo_len > 0) {
    seqmap_undo *u = &m->undo[--m->undo_len];
    u->entry->highest = u->highest;
  }
  m->in_batch = 0;
}
