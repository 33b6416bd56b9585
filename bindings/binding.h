/* binding.h: what the Lua bindings share: the runtime config and a state per scheduler. */
#ifndef LORE_BINDING_H
#define LORE_BINDING_H

#include <lua.h>
#include <msgpack.h>
#include <stdint.h>

#include "idmap.h"
#include "journal.h"
#include "scheduler.h"
#include "snapshot_store.h"

/*
 * Each scheduler owns one lua_State (the host's is the application's own
 * state; a worker's is made on its thread by worker_state_open). All actors of
 * a worker share its state: an actor is a Lua table (its ctx) and a C actor_t.
 * A state's `binding_state` is found from Lua through the registry key
 * BINDING_STATE_KEY and from C through sched->data.
 */

#define BINDING_STATE_KEY "lore.binding_state"
#define LORE_MAX_SCRIPT_DIRS 16

typedef struct lore_config {
  int workers;
  char *journal;   /* URI, NULL: "memory:" */
  char *snapshots; /* URI, NULL: same as journal when sqlite, else "memory:" */
  char *scripts[LORE_MAX_SCRIPT_DIRS];
  int nscripts;
  int64_t max_instructions; /* per handler call; 0: unlimited */
  int64_t memory_limit;     /* bytes per worker state; 0: unlimited */
  int synchronous_full;
  int max_concurrent_recoveries;
  double recovery_timeout;
  double shutdown_timeout; /* seconds before stuck actors are stopped by force */
  int log_level;
} lore_config;

void lore_config_init(lore_config *c);
void lore_config_free(lore_config *c);

/* An actor waiting for a recovery permit. */
typedef struct permit_waiter {
  lore_addr addr;
  struct permit_waiter *next;
} permit_waiter;

/* A native module behaviour scripts may require (lore_preload). */
typedef struct native_module {
  char *name;
  lua_CFunction open;
} native_module;

/* The binding's part of a runtime (runtime_t.data). */
typedef struct lore_runtime {
  runtime_t *rt;
  lore_config cfg;
  journal_t *journal;
  snapshot_store_t *snapshots;
  struct watchdog *watchdog;
  log_sink log;
  /* Recovery permits: max_concurrent_recoveries for the whole process; the
   * actors waiting for one, first come first served. */
  uv_mutex_t permit_lock;
  int permits_used;
  permit_waiter *permit_head, *permit_tail;
  native_module *preloads;
  int npreloads;
} lore_runtime;

/* Why `s` cannot be a persistence id (NULL if it can): empty, blank, a NUL
 * byte, or too long. Checks the string at idx (raises if it is not one). */
const char *binding_id_problem(lua_State *L, int idx);
/* The message of any Lore error code (journal, snapshot store, libuv). */
const char *binding_strerror(int code);

#define HOOK_EVERY 1000
void budget_hook(lua_State *L, lua_Debug *ar);
struct binding_state;
void budget_charge(lua_State *L, struct binding_state *bs, size_t units);

/* watchdog.c: one thread per runtime that arms the instruction budget of
 * handler calls that run long. */
int watchdog_start(lore_runtime *lrt);
void watchdog_forget(lore_runtime *lrt, sched_t *s);
void watchdog_stop(lore_runtime *lrt);

typedef struct binding_state {
  lua_State *L;
  sched_t *sched;
  lore_runtime *lrt;
  int is_host;
  /* What ctx:reply and ctx.sender refer to: the message being handled. */
  lore_addr cur_sender;
  uint64_t cur_corr;
  actor_t *cur_actor;
  lore_msg *cur_msg; /* the command being handled (for ctx:stash) */
  /* Registry refs to the Lua runtime's entry points (workers) or the host's
   * reply handler (host). */
  int ref_dispatch, ref_system, ref_spawn, ref_failed, ref_stopped, ref_overflow;
  /* The ctx fields a plain actor's message goes through, as interned keys. */
  int ref_key_recv, ref_key_st;
  int ref_reply;
  msgpack_sbuffer buf; /* reused for encoding */
  idmap timers;        /* timer id -> sched_timer */
  uint64_t next_timer;
  /* Instruction budget of the handler call in progress (-1: none). */
  int64_t budget_left;
  /* Seen by the watchdog thread (atomics): which call runs, and whether the
   * budget hook has been installed for it. */
  uint64_t call_gen;
  int in_call, hooked;
  int blown;     /* the running handler spent its budget: it cannot be caught */
#define ANSWERED_RING 64
  uint64_t answered[ANSWERED_RING]; /* the last asks answered here (core.was_answered) */
  unsigned answered_next;
  int interrupt; /* atomic: the runtime shuts down; every hook raises */
  size_t mem_used, mem_limit;
} binding_state;

binding_state *binding_state_get(lua_State *L);

/* In a worker's state: its binding_state (kept in the state's extra space). */
static inline binding_state *worker_bs(lua_State *L) {
  return *(binding_state **)lua_getextraspace(L);
}
/* The actor whose aid is argument idx, on this worker; raises if it is gone. */
actor_t *binding_check_actor(lua_State *L, int idx);
/* Wall clock in milliseconds since the epoch (event and snapshot timestamps). */
int64_t binding_now_ms(void);

/* Creates / destroys a worker's Lua state (runtime hooks). */
int worker_state_open(sched_t *s);
void worker_state_close(sched_t *s);

/* Encodes the value at idx into bs->buf; raises a Lua error naming the path on
 * failure (for send sites). Returns a pointer/length valid until the next use. */
const char *binding_encode(lua_State *L, binding_state *bs, int idx, const char *root, size_t *len);

/* Registers the `lore.ref` methods (tell, ask, stop, id) in a state. */
void ref_methods_register(lua_State *L, binding_state *bs);

/* Pushes the ref for an address (cached per state for repeated senders). */
void binding_push_addr(lua_State *L, lore_addr a);

/* Sends `len` encoded bytes to a ref, as the current actor. */
void binding_send(binding_state *bs, const void *ref, uint32_t kind, const char *data, size_t len,
                  uint64_t corr);

/* The hooks every scheduler uses (host and workers dispatch by is_host). */
extern const runtime_hooks lore_runtime_hooks;

/* Host side (lore_module.c). */
int host_sched_message(sched_t *s, lore_msg *m);
/* Worker side (actor_lua.c). */
int worker_sched_message(sched_t *s, lore_msg *m);
void worker_dead_letter(sched_t *s, lore_msg *m);
/* Answers an ask: sends a MSG_REPLY (sub 0: value, sub 1: error text). */
void binding_reply(runtime_t *rt, lore_addr to, uint64_t corr, int is_error, const char *data,
                   size_t len);

/* Runs fn(...) under the instruction budget with a traceback-free message
 * handler that keeps file:line; returns lua_pcall's status. */
int binding_pcall(binding_state *bs, int nargs, int nresults);

/* The embedded Lua sources (generated from lua/lore/ *.lua). */
int binding_load_embedded(lua_State *L, const char *name);

/* Opens the `lore` module (host: full; worker: refs only). */
int lore_open_module(lua_State *L);

#endif
