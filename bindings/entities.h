/* entities.h: entity managers: actors woken by their first message, routed by id, passivated when
 * idle. */
#ifndef LORE_ENTITIES_H
#define LORE_ENTITIES_H

#include <stdint.h>

#include "runtime_object.h"

/*
 * An entity is an actor named by (manager, id): a player, a room, a cart. A
 * message to it is routed by the id's hash to one worker (so the single
 * writer check stays local); if no actor holds the id there, the manager's
 * behaviour is spawned with {id = id} (and recovers, if persistent) and the
 * message waits in its mailbox. An entity idle for passivate_after is
 * stopped safely (its memory returned); a message that arrives meanwhile
 * wakes the next incarnation, in order: none is lost (the core hands
 * whatever the stopped actor still held to route_missing).
 *
 * The registry is append-only: managers are added by the host thread and
 * read by any worker (count published with release/acquire).
 */

#define LORE_MAX_MANAGERS 256

typedef struct entity_manager {
  char *name;
  char *behaviour;
  uint64_t passivate_after_ms;
  /* Figures (atomics, any worker): live now; passivated, woken and messages
   * held while waking, since the start. */
  int64_t live, passivated, woken, held;
} entity_manager;

/* Registers (or finds again) a manager; host thread. Returns its index, or
 * a negative code: UV_EEXIST (the name is taken by another behaviour),
 * UV_ENOSPC (too many managers), UV_EINVAL, UV_ENOMEM. */
int entities_register(lore_runtime *lrt, const char *name, const char *behaviour,
                      double passivate_after);
/* The manager a ref names, as the message tag to use (index + 1), or 0. */
int64_t entities_tag(lore_runtime *lrt, const char *manager);
entity_manager *entities_manager(lore_runtime *lrt, int index);
int entities_count(lore_runtime *lrt);
void entities_free(lore_runtime *lrt);

#endif
