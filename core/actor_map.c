/* actor_map.c: open-addressing maps of a scheduler's actors. */
#include "actor_map.h"

#include <stdlib.h>
#include <string.h>

#include "idmap.h"
#include "scheduler.h"

static uint64_t mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  return x;
}

static size_t home(const actor_map *m, const actor_t *a) {
  return (size_t)(m->by_name ? idmap_hash_str(a->name) : mix(a->aid)) & (m->cap - 1);
}

void actor_map_init(actor_map *m, int by_name) {
  m->slots = NULL;
  m->cap = m->count = 0;
  m->by_name = by_name;
}

void actor_map_free(actor_map *m) {
  free(m->slots);
  actor_map_init(m, m->by_name);
}

static void place(actor_map *m, actor_t *a) {
  size_t i = home(m, a);
  while (m->slots[i]) i = (i + 1) & (m->cap - 1);
  m->slots[i] = a;
}

static int grow(actor_map *m) {
  size_t cap = m->cap ? m->cap * 2 : 16;
  actor_t **old = m->slots;
  size_t old_cap = m->cap;
  if (!(m->slots = calloc(cap, sizeof *m->slots))) {
    m->slots = old;
    return -1;
  }
  m->cap = cap;
  for (size_t i = 0; i < old_cap; i++)
    if (old[i]) place(m, old[i]);
  free(old);
  return 0;
}

int actor_map_put(actor_map *m, actor_t *a) {
  if ((m->count + 1) * 4 > m->cap * 3 && grow(m)) return -1;
  place(m, a);
  m->count++;
  return 0;
}

actor_t *actor_map_get_aid(const actor_map *m, uint64_t aid) {
  if (!m->count) return NULL;
  for (size_t i = mix(aid) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
    actor_t *a = m->slots[i];
    if (!a || a->aid == aid) return a;
  }
}

actor_t *actor_map_get_name(const actor_map *m, const char *name) {
  if (!m->count) return NULL;
  for (size_t i = idmap_hash_str(name) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
    actor_t *a = m->slots[i];
    if (!a || strcmp(a->name, name) == 0) return a;
  }
}

void actor_map_remove(actor_map *m, const actor_t *a) {
  if (!m->count) return;
  size_t mask = m->cap - 1, i = home(m, a);
  while (m->slots[i] && m->slots[i] != a) i = (i + 1) & mask;
  if (!m->slots[i]) return;
  m->slots[i] = NULL;
  m->count--;
  /* Every actor after the hole, up to the run's end, whose home is not
   * between the hole and its slot, moves into the hole. */
  for (size_t j = (i + 1) & mask; m->slots[j]; j = (j + 1) & mask) {
    size_t h = home(m, m->slots[j]);
    if (((j - h) & mask) >= ((j - i) & mask)) {
      m->slots[i] = m->slots[j];
      m->slots[j] = NULL;
      i = j;
    }
  }
}

void actor_map_each(const actor_map *m, void (*fn)(void *actor, void *ud), void *ud) {
  for (size_t i = 0; i < m->cap; i++)
    if (m->slots[i]) fn(m->slots[i], ud);
}
