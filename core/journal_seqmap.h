/* journal_seqmap.h: the writer's map of id -> highest seq, with an undo log per batch. */
#ifndef LORE_JOURNAL_SEQMAP_H
#define LORE_JOURNAL_SEQMAP_H

#include <stddef.h>
#include <stdint.h>

/*
 * The writer thread refuses gaps and duplicates by comparing a write's first
 * seq with this map instead of reading (or upserting) a row per write. An
 * entry is loaded from the database the first time an id is written; a change
 * made in a batch is logged so that a batch whose transaction fails puts the
 * map back as it was. Chained hash table that grows by doubling; ids are
 * copied into the entries. Used by one thread.
 *
 * The map is a cache of what the database has committed, so forgetting an
 * entry between batches never weakens the check: the next write of that id
 * loads its highest seq again. seqmap_trim keeps at most `limit` entries,
 * dropping the least recently used, so a long-lived process that writes for
 * ever more ids (entities that come and go) holds a bounded map.
 */
#define SEQMAP_DEFAULT_LIMIT ((size_t)1 << 16)

typedef struct seqmap_entry {
  struct seqmap_entry *next;          /* bucket chain */
  struct seqmap_entry *older, *newer; /* use order */
  uint64_t hash;
  int64_t highest;
  char id[];
} seqmap_entry;

typedef struct seqmap_undo {
  seqmap_entry *entry;
  int64_t highest; /* the value before the batch changed it */
} seqmap_undo;

typedef struct seqmap {
  seqmap_entry **buckets;
  size_t nbuckets, count;
  seqmap_entry *oldest, *newest;
  size_t limit;        /* seqmap_trim's bound (seqmap_init: SEQMAP_DEFAULT_LIMIT) */
  size_t shared_count; /* count, for other threads (atomic) */
  seqmap_undo *undo;
  size_t undo_len, undo_cap;
  int in_batch; /* between seqmap_begin and seqmap_commit/rollback */
} seqmap;

void seqmap_init(seqmap *m);
void seqmap_free(seqmap *m);
uint64_t seqmap_hash(const char *id);
/* The entry of id, or NULL; a found entry becomes the most recently used. */
seqmap_entry *seqmap_find(seqmap *m, const char *id, uint64_t hash);
/* Adds an entry for an id not in the map. NULL when out of memory. */
seqmap_entry *seqmap_add(seqmap *m, const char *id, uint64_t hash, int64_t highest);
/* Makes room in the undo log for `n` changes, so seqmap_set cannot fail in a
 * batch of n writes. Returns 0 or -1 (out of memory). */
int seqmap_begin(seqmap *m, size_t n);
/* Changes an entry's highest seq, logging the old value (within seqmap_begin's n). */
void seqmap_set(seqmap *m, seqmap_entry *e, int64_t highest);
/* The batch committed: forgets the undo log. */
void seqmap_commit(seqmap *m);
/* The batch failed: restores every logged value, newest first. */
void seqmap_rollback(seqmap *m);
/* Drops every entry (they are loaded again when needed). Not inside a batch. */
void seqmap_clear(seqmap *m);
/* Drops the least recently used entries beyond m->limit. Not inside a batch
 * (the batch's undo log and its callers hold entries): between batches only. */
void seqmap_trim(seqmap *m);
/* How many entries the map holds, readable from any thread. */
size_t seqmap_shared_count(const seqmap *m);

#endif
