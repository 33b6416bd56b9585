/* host.h: the host side of a runtime: what runs on the host loop (asks, spawns, endpoints). */
#ifndef LORE_HOST_H
#define LORE_HOST_H

#include "runtime_object.h"

/*
 * How an ask is answered: lore_msg.sub of a MSG_REPLY. Every answer carries
 * the ask's corr; the host finds the asker by it (host.c) and a worker finds
 * an actor's pending ask the same way.
 */
enum {
  REPLY_VALUE = 0,  /* data: the MessagePack reply */
  REPLY_ERROR = 1,  /* data: the error text (the actor raised) */
  REPLY_DEAD = 2,   /* data: why no actor took it */
  REPLY_CODE = 3,   /* ival: a Lore error code; data: its detail (spawns) */
  REPLY_RAISED = 4, /* data: the MessagePack array {text, value}: a handler raised a
                       value that is not a string (the asker gets it intact) */
};

/* Requests from the host to a worker scheduler itself (a MSG_SYSTEM with
 * target.aid 0), answered by a MSG_REPLY with the request's corr. */
enum {
  WORKER_RELOAD_PREPARE = 1, /* data: a module name; loads what uses it, staged */
  WORKER_RELOAD_COMMIT = 2,  /* switches every staged behaviour */
  WORKER_RELOAD_ABORT = 3,   /* drops what was staged */
  WORKER_ADAPTER_BIND = 4,   /* data: an adapter from lore.adapter (adapters_lua.c) */
  WORKER_ADAPT_PAGE = 5,     /* data: a query page for from_journal; answer: the events */
};

/* The runtime hooks' host half (runtime_object.c dispatches by scheduler). */
int host_sched_message(sched_t *s, lore_msg *m);
void host_dead_letter(sched_t *s, lore_msg *m);
/* At shutdown: every pending ask is answered with LORE_ESHUTDOWN and every
 * endpoint closed. */
void host_drop_pending(lore_runtime *lrt);
void host_init(lore_runtime *lrt);
void host_free(lore_runtime *lrt);

/* A spawn whose outcome arrives later: cb(ud, status, detail, len) on the
 * host loop (status 0, or LORE_ENOBEHAVIOUR, LORE_ESCRIPT, LORE_ELIVE,
 * LORE_ESHUTDOWN with the worker's message). `payload` is the MessagePack
 * array {behaviour, opts}; `id` is opts.id or NULL; the actor's ref is made
 * by the caller (by id, or from *aid_out). */
int host_spawn_async(lore_runtime *lrt, const void *payload, size_t len, const char *id,
                     lore_reply_cb cb, void *ud, uint32_t *sched_out, uint64_t *aid_out);
/* Called by the worker that handled spawn message m: tells its spawner. */
void host_spawn_answer(runtime_t *rt, lore_msg *m, int status, const char *detail);
/* What lore.stats() shows. */
typedef struct host_stats {
  long long alive, dead_letters, workers, journal_batches, journal_writes;
  long long recoveries, recoveries_peak; /* recovery permits in use now, and at most */
  long long lua_memory;                  /* bytes in the workers' Lua heaps */
  int breaker_state;                     /* the journal's circuit breaker: BREAKER_* */
  long long breaker_trips;               /* how many times it opened */
  /* the writer's group-commit waits, and those that ended at their bound */
  long long cohort_waits, cohort_timeouts;
  /* the workers' waits that polled for their one journal write, and those that saw it come */
  long long io_spins, io_spin_hits;
} host_stats;
void host_get_stats(lore_runtime *lrt, host_stats *out);
/* Actors alive (spawned or being spawned, not yet stopped) on the workers. */
long long host_alive(lore_runtime *lrt);

/* lore_tell for bytes Lore's own encoder wrote (binding_encode,
 * codec_encode_small): one value within the nesting limit by construction,
 * as on a worker's send, so the check lore_tell makes on an embedder's
 * bytes (codec_check, about 260 instructions a message) is skipped. */
int host_tell_encoded(lore_runtime *rt, const lore_ref *to, const void *msg, size_t len);

/* lore_ask, except that an error value a handler raised (not a string)
 * reaches cb as status HOST_ERAISED with the MessagePack array {text, value}:
 * what the Lua module needs to raise it intact. */
#define HOST_ERAISED (-5290)
int host_ask_raised(lore_runtime *rt, const lore_ref *to, const void *msg, size_t len,
                    double timeout_s, lore_reply_cb cb, void *ud);
/* (its msg, like host_tell_encoded's, comes from Lore's own encoder: not checked) */

/* Sends worker `sched` the request `sub` (WORKER_*) with data; cb(ud, status,
 * reply, len) runs on the host loop with the worker's answer. */
int host_ask_worker(lore_runtime *lrt, uint32_t sched, uint32_t sub, const void *data, size_t len,
                    lore_reply_cb cb, void *ud);
/* A safe stop (queued behind what the actor already has). */
int host_stop(lore_runtime *lrt, const lore_ref *ref);
/* A one-shot timer on the host loop: cb(ud) after `seconds`, or never if
 * the runtime shuts down first (then drop(ud) runs). */
int host_after(lore_runtime *lrt, double seconds, void (*cb)(void *ud), void *ud,
               void (*drop)(void *ud));

#endif
