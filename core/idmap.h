/* idmap.h: hash maps from actor ids (u64) and from names (strings) to pointers. */
#ifndef LORE_IDMAP_H
#define LORE_IDMAP_H

#include <stddef.h>
#include <stdint.h>

/* Chained hash maps that grow by doubling. Keys are not copied for the string
 * map: the caller keeps each key alive while it is in the map (an actor's own
 * name). Not thread-safe: each scheduler owns its maps. */
typedef struct idmap_entry {
  struct idmap_entry *next;
  uint64_t key;
  const char *skey; /* string maps only */
  void *value;
} idmap_entry;

typedef struct idmap {
  idmap_entry **buckets;
  size_t nbuckets, count;
} idmap;

void idmap_init(idmap *m);
void idmap_free(idmap *m);
/* Returns 0, or -1 when out of memory (nothing changed). Replaces an existing key. */
int idmap_put(idmap *m, uint64_t key, void *value);
void *idmap_get(const idmap *m, uint64_t key);
void *idmap_remove(idmap *m, uint64_t key);
int idmap_put_str(idmap *m, const char *key, void *value);
void *idmap_get_str(const idmap *m, const char *key);
void *idmap_remove_str(idmap *m, const char *key);
/* Calls fn for each value (the map must not change during the walk). */
void idmap_each(const idmap *m, void (*fn)(void *value, void *ud), void *ud);
uint64_t idmap_hash_str(const char *s);

#endif
