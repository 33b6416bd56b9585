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

/* A hash to a slot by the high bits of hash * cap (Lemire's fast range):
 * the capacity need not be a power of two, so the map grows by half instead
 * of doubling and sits between 8/15 and 4/5 full, not between 3/8 and 3/4
 * (~12 bytes per actor instead of ~16, and never 21). Both hashes are mixed,
 * so their high bits are as good as their low ones. */
static size_t slot_of(const actor_map *m, uint64_t h) {
  return (size_t)(((unsigned __int128)h * m->cap) >> 64);
}

static size_t next_slot(const actor_map *m, size_t i) { return ++i == m->cap ? 0 : i; }

/* How far slot `to` is past slot `from` along the probe order. */
static size_t probe_distance(const actor_map *m, size_t from, size_t to) {
  return to >= from ? to - from : to + m->cap - from;
}

static size_t home(const actor_map *m, const actor_t *a) {
  return slot_of(m, m->by_name ? idmap_hash_str(a->name_buf) : mix(a->aid));
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
  while (m->slots[i]) i = next_slot(m, i);
  m->slots[i] = a;
}

static int grow(actor_map *m) {
  size_t cap = m->cap ? m->cap + m->cap / 2 : 16;
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
  if ((m->count + 1) * 5 > m->cap * 4 && grow(m)) return -1;
  place(m, a);
  m->count++;
  return 0;
}

actor_t *actor_map_get_aid(const actor_map *m, uint64_t aid) {
  if (!m->count) return NULL;
  for (size_t i = slot_of(m, mix(aid));; i = next_slot(m, i)) {
    actor_t *a = m->slots[i];
    if (!a || a->aid == aid) return a;
  }
}

actor_t *actor_map_get_name(const actor_map *m, const char *name) {
  if (!m->count) return NULL;
  for (size_t i = slot_of(m, idmap_hash_str(name));; i = next_slot(m, i)) {
    actor_t *a = m->slots[i];
    if (!a || strcmp(a->name_buf, name) == 0) return a;
  }
}

void actor_map_remove(actor_map *m, const actor_t *a) {
  if (!m->count) return;
  size_t i = home(m, a);
  while (m->slots[i] && m->slots[i] != a) i = next_slot(m, i);
  if (!m->slots[i]) return;
  m->slots[i] = NULL;
  m->count--;
  /* Every actor after the hole, up to the run's end, whose home is not
   * between the hole and its slot, moves into the hole. */
  for (size_t j = next_slot(m, i); m->slots[j]; j = next_slot(m, j)) {
    size_t h = home(m, m->slots[j]);
    if (probe_distance(m, h, j) >= probe_distance(m, i, j)) {
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
