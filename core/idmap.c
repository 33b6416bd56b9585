/* idmap.c: chained hash maps for actor lookup. */
#include "idmap.h"

#include <stdlib.h>
#include <string.h>

void idmap_init(idmap *m) {
  m->buckets = NULL;
  m->nbuckets = m->count = 0;
}

void idmap_free(idmap *m) {
  for (size_t i = 0; i < m->nbuckets; i++) {
    idmap_entry *e = m->buckets[i];
    while (e) {
      idmap_entry *n = e->next;
      free(e);
      e = n;
    }
  }
  free(m->buckets);
  idmap_init(m);
}

static uint64_t mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  return x;
}

uint64_t idmap_hash_str(const char *s) {
  uint64_t h = 1469598103934665603ULL; /* FNV-1a */
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
  return mix(h);
}

static int grow(idmap *m) {
  size_t n = m->nbuckets ? m->nbuckets * 2 : 16;
  idmap_entry **b = calloc(n, sizeof *b);
  if (!b) return -1;
  for (size_t i = 0; i < m->nbuckets; i++) {
    idmap_entry *e = m->buckets[i];
    while (e) {
      idmap_entry *next = e->next;
      size_t j = (e->skey ? e->key : mix(e->key)) & (n - 1);
      e->next = b[j];
      b[j] = e;
      e = next;
    }
  }
  free(m->buckets);
  m->buckets = b;
  m->nbuckets = n;
  return 0;
}

/* String entries store their string hash in `key`, so rehashing needs no strlen. */
static idmap_entry **find(const idmap *m, uint64_t h, uint64_t key, const char *skey) {
  if (!m->nbuckets) return NULL;
  idmap_entry **p = &m->buckets[h & (m->nbuckets - 1)];
  for (; *p; p = &(*p)->next) {
    if (skey ? ((*p)->skey && (*p)->key == key && strcmp((*p)->skey, skey) == 0)
             : (!(*p)->skey && (*p)->key == key))
      return p;
  }
  return p;
}

static int put(idmap *m, uint64_t h, uint64_t key, const char *skey, void *value) {
  idmap_entry **p = find(m, h, key, skey);
  if (p && *p) {
    (*p)->value = value;
    return 0;
  }
  if (m->count + 1 > m->nbuckets) {
    if (grow(m)) return -1;
  }
  idmap_entry *e = malloc(sizeof *e);
  if (!e) return -1;
  e->key = key;
  e->skey = skey;
  e->value = value;
  size_t j = h & (m->nbuckets - 1);
  e->next = m->buckets[j];
  m->buckets[j] = e;
  m->count++;
  return 0;
}

static void *get(const idmap *m, uint64_t h, uint64_t key, const char *skey) {
  idmap_entry **p = find(m, h, key, skey);
  return p && *p ? (*p)->value : NULL;
}

static void *removekey(idmap *m, uint64_t h, uint64_t key, const char *skey) {
  idmap_entry **p = find(m, h, key, skey);
  if (!p || !*p) return NULL;
  idmap_entry *e = *p;
  void *v = e->value;
  *p = e->next;
  free(e);
  m->count--;
  return v;
}

int idmap_put(idmap *m, uint64_t key, void *value) { return put(m, mix(key), key, NULL, value); }
void *idmap_get(const idmap *m, uint64_t key) { return get(m, mix(key), key, NULL); }
void *idmap_remove(idmap *m, uint64_t key) { return removekey(m, mix(key), key, NULL); }

int idmap_put_str(idmap *m, const char *key, void *value) {
  uint64_t h = idmap_hash_str(key);
  return put(m, h, h, key, value);
}

void *idmap_get_str(const idmap *m, const char *key) {
  uint64_t h = idmap_hash_str(key);
  return get(m, h, h, key);
}

void *idmap_remove_str(idmap *m, const char *key) {
  uint64_t h = idmap_hash_str(key);
  return removekey(m, h, h, key);
}

void idmap_each(const idmap *m, void (*fn)(void *value, void *ud), void *ud) {
  for (size_t i = 0; i < m->nbuckets; i++)
    for (idmap_entry *e = m->buckets[i]; e; e = e->next) fn(e->value, ud);
}
