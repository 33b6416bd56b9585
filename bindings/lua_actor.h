/* lua_actor.h: what the worker-side files share about actors whose behaviour is Lua. */
#ifndef LORE_LUA_ACTOR_H
#define LORE_LUA_ACTOR_H

#include <lua.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "snapshot_store.h"
#include "worker.h"

/*
 * System message subtypes (lore_msg.sub of MSG_SYSTEM) for actors of a
 * worker. C is their one source: runtime.lua and persistent.lua read them
 * from core.SYS.
 */
enum {
  SYS_RESTART = 1,           /* a plain actor's restart back-off ended */
  SYS_SHUTDOWN = 2,          /* the runtime shuts down (sent with the safe stop) */
  SYS_STOP_PENDING = 3,      /* ref:stop() arrived while the mailbox is held */
  SYS_PERSISTED = 16,        /* a journal write completed (ival: status) */
  SYS_DELETED = 17,          /* a delete completed (ival: status) */
  SYS_PAGE = 18,             /* a replay page arrived */
  SYS_RECOVERY_TIMEOUT = 19, /* check that recovery makes progress */
  SYS_RESTART_RECOVERY = 20, /* a persistent actor's restart back-off ended */
  SYS_SNAP_SAVED = 21,
  SYS_SNAP_LOADED = 22,
  SYS_SNAP_DELETED = 23,
  SYS_RECOVERY_PERMIT = 24, /* a recovery permit was handed to this actor */
  SYS_IO_IDLE = 25,         /* every I/O of the actor has completed (when asked for) */
  SYS_ASK_TIMEOUT = 26,     /* one of this actor's asks was not answered in time (ival: corr) */
  /* Between actors (core.notify; data: a MessagePack value, sender: who): */
  SYS_WATCH = 27,         /* the sender watches this actor */
  SYS_UNWATCH = 28,       /* ... no more */
  SYS_TERMINATED = 29,    /* {ref =, reason =}: an actor this one watched has ended */
  SYS_CHILD_FAILED = 30,  /* a child escalates its failure (data: the error text) */
  SYS_CHILD_STOPPED = 31, /* a child has ended (its parent forgets it) */
  /* Delivery and durable timers (internal_lua.c): */
  SYS_REDELIVER = 32, /* time to re-send unconfirmed deliveries */
  SYS_TIMER_DUE = 33, /* a durable timer came due (ival: its id; corr: the timer armed) */
};

/*
 * The C side of a persistent actor (actor_t.data points to it). The
 * persistence id is the actor's own name (actor_t.name); the writer id and
 * every sequence number live here, out of any script's reach: a write is
 * always for this actor's id, at the seq after the last one handed out.
 * A plain actor needs none of this: its data is the registry ref of its
 * record, shifted left, with bit 0 set (no allocation per plain actor).
 */
typedef struct lua_actor {
  int ref; /* registry ref of the runtime's record */
  /* Bumped at every (re)start of recovery; 24 bits (it wraps after 16 M
   * restarts of one actor: a completion that old is long gone), so that it
   * and the flags share one word: one of these per idle persistent actor,
   * 32 bytes (a 32-byte block; with the flags as bytes, 40). */
  uint32_t incarnation : 24;
  uint32_t persistent : 1;   /* has a journal stream (apply); else a plain entity */
  uint32_t passivating : 1;  /* an entity on its way out */
  uint32_t want_io_idle : 1; /* send SYS_IO_IDLE when pending_io reaches 0 */
  uint32_t snap_running : 1;
  uint32_t has_permit : 1; /* holds one of the runtime's recovery permits */
  /* What few actors need (an entity's bookkeeping, snapshot operations
   * queued behind a running one): made at its first use, else NULL. */
  struct lua_actor_extra *extra;
  /* The writer id is derived from the incarnation (persist_lua.c's writer_id). */
  int64_t next_seq;  /* the last seq handed to a write of this incarnation */
  int64_t persisted; /* the highest seq stored and acknowledged (or recovered) */
} lua_actor;
_Static_assert(sizeof(lua_actor) == 32, "a persistent actor's C side is a 32-byte block");

typedef struct lua_actor_extra {
  /* An entity's manager tag (index + 1; 0: not an entity), when its last
   * command arrived (the worker loop's clock, ms), and its place in the
   * worker's idle order of that manager's entities (oldest first). */
  int64_t manager;
  uint64_t last_active;
  struct lua_actor_extra *prev, *next;
  actor_t *actor;
  /* Snapshot operations run one at a time, in the order asked (a delete
   * must not overtake the saves before it): these wait behind the one
   * running (a short list: appended at its end). */
  struct snap_req *snap_next;
} lua_actor_extra;

/* la's extra part, made now if it has none; NULL when out of memory. */
static inline lua_actor_extra *lua_actor_extra_of(lua_actor *la, actor_t *a) {
  if (!la->extra && (la->extra = calloc(1, sizeof *la->extra))) la->extra->actor = a;
  return la->extra;
}

/* The manager tag of an actor's lua_actor (0: not an entity). */
static inline int64_t lua_actor_manager(const struct lua_actor *la) {
  return la && la->extra ? la->extra->manager : 0;
}

/* Every snapshot-store call runs on libuv's thread pool; its outcome comes
 * back to the actor as a system message whose data starts with this header
 * (snapshot_lua.c; recovery_lua.c's first step of a recovery). */
typedef struct snap_result {
  int32_t status;
  uint32_t incarnation; /* of the actor when it asked */
  snapshot_meta meta;   /* save/load: the snapshot's */
  int64_t oldest_kept;  /* save with retention: seq of the oldest kept (0: none) */
} snap_result;

/* Snapshot selection criteria from the table at idx ({max_seq=, min_seq=,
 * max_ts=, min_ts=}; nil: the latest); raises on a non-integer field. */
snapshot_criteria binding_check_criteria(lua_State *L, int idx);

/* A plain actor without entity bookkeeping keeps no lua_actor at all. */
static inline int actor_is_bare(const actor_t *a) { return (int)((intptr_t)a->data & 1); }
static inline lua_actor *actor_lua(const actor_t *a) {
  return actor_is_bare(a) ? NULL : (lua_actor *)a->data;
}
static inline lua_actor *actor_persistent(const actor_t *a) {
  lua_actor *la = actor_lua(a);
  return la && la->persistent ? la : NULL;
}
/* Commands go from C straight to receive (no Lua dispatch frame). */
static inline int actor_is_plain(const actor_t *a) { return !actor_persistent(a); }
static inline int actor_rec_ref(const actor_t *a) {
  return actor_is_bare(a) ? (int)((intptr_t)a->data >> 1) : ((lua_actor *)a->data)->ref;
}

/* Lore's own events in an actor's stream (deliveries, confirmations,
 * durable timers: lua/lore/internal.lua) have manifests that begin with
 * "lore.": replay hands them to the runtime, never to apply, and queries
 * leave them out unless asked. A behaviour's event may not take such a type. */
#define INTERNAL_MANIFEST_PREFIX "lore."
static inline int manifest_is_internal(const char *m, size_t len) {
  return len >= 5 && memcmp(m, INTERNAL_MANIFEST_PREFIX, 5) == 0;
}

/* The actor whose turn this is on this worker; raises if there is none
 * (the runtime calls these only from an actor's turn or its spawn). */
actor_t *binding_current_actor(lua_State *L);
/* binding_current_actor, which must be persistent. */
actor_t *binding_current_persistent(lua_State *L, lua_actor **la);

/* Ends one I/O of `a` (a completion arrived); sends SYS_IO_IDLE when the
 * actor asked for it and nothing is in flight any more. */
void binding_io_end(actor_t *a);

/* Sends a payload-less system message of subtype `sub` to `a` (its own scheduler). */
void binding_system(actor_t *a, uint32_t sub);

/* The `core` table runtime.lua gets: actor_lua.c makes it, and the other
 * worker-side files add their calls to it. */
int luaopen_lore_core(lua_State *L);
int luaopen_lore_core_persist(lua_State *L);  /* persist_lua.c: journal calls */
int luaopen_lore_core_snapshot(lua_State *L); /* snapshot_lua.c: snapshot calls */
int luaopen_lore_core_recovery(lua_State *L); /* recovery_lua.c: replay pages, recoveries */
void luaopen_lore_core_recovery_deadline(lua_State *L); /* recovery_deadline.c: timeouts */
/* recovery_lua.c: starts libuv's thread pool off the first recovery's path
 * (worker_state_open, once the worker's state is up). */
void recovery_warm_up(binding_state *bs);
int luaopen_lore_core_internal(lua_State *L); /* internal_lua.c: delivery and timer calls */
void binding_push_budget_calls(lua_State *L); /* budget.c: budget_blown, cocreate */
/* adapters_lua.c: adapter files and query pages for adapters.lua; the host's
 * WORKER_ADAPTER_BIND and WORKER_ADAPT_PAGE requests. */
void luaopen_lore_core_adapters(lua_State *L);
int adapters_worker_message(sched_t *s, lore_msg *m);

/* A journal completion reached actor a: the C side's bookkeeping, before the
 * Lua side sees it (persist_lua.c). */
void persist_completion(actor_t *a, lore_msg *m);
/* The first seq and timestamp of a completed events write (0, 0 for others). */
void persist_written(lore_msg *m, int64_t *first, int64_t *ts);
/* The journal's batch_done (journal_set_batch_done, set where the runtime opens
 * its journal): hands on the completions of the batch that just committed. */
void persist_completions_flush(void *ud);
/* Entities on a worker (entities.c): wake one up for m (the runtime hook),
 * note a command it got, let go of one that stopped. */
int entities_route_missing(sched_t *s, lore_msg *m);
void entities_touch(actor_t *a);
void entities_stopped(actor_t *a);
/* 1 when m, a command for an entity, reached an actor that is not that
 * manager's entity (its id is held by another): refused (an asker gets the
 * error). 0 for every other message. */
int entities_refuse_holder(actor_t *a, const lore_msg *m);
void entities_worker_close(binding_state *bs);

/* Recovery permits (persist_lua.c): give one back (to the next waiter, if
 * any); forget an actor that stops while waiting. */
void recovery_permit_release(lore_runtime *lrt);
void recovery_permit_forget(lore_runtime *lrt, actor_t *a);

#endif
