/* actor_map.h: a scheduler's live actors by aid or by name. */
#ifndef LORE_ACTOR_MAP_H
#define LORE_ACTOR_MAP_H

#include <stddef.h>
#include <stdint.h>

struct actor;

/* Open addressing over the actors themselves: a slot is one pointer, and
 * the key (aid or name) is read from the actor it points to, so a map costs
 * 8 bytes per slot (10-15 per actor at a load of 8/15 to 4/5: it grows by
 * half) where a chained map cost a 32-byte entry and a bucket per actor.
 * Linear probing; removal shifts the probe run back, so there are no
 * tombstones. Not thread-safe: each scheduler owns its maps. */
typedef struct actor_map {
  struct actor **slots;
  size_t cap; /* 0, or 16 grown by half at a time */
  size_t count;
  int by_name; /* keyed by the actors' names (else by their aids) */
} actor_map;

void actor_map_init(actor_map *m, int by_name);
void actor_map_free(actor_map *m);
/* Adds a (its key must not be in the map yet): 0, or -1 when out of memory
 * (nothing changed). */
int actor_map_put(actor_map *m, struct actor *a);
struct actor *actor_map_get_aid(const actor_map *m, uint64_t aid);
struct actor *actor_map_get_name(const actor_map *m, const char *name);
/* Removes a if it is the actor the map holds under its key. */
void actor_map_remove(actor_map *m, const struct actor *a);
/* Calls fn for each actor (the map must not change during the walk). */
void actor_map_each(const actor_map *m, void (*fn)(void *actor, void *ud), void *ud);

#endif
