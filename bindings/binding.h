/* binding.h: what every Lua state of a runtime shares (the host's and the workers'). */
#ifndef LORE_BINDING_H
#define LORE_BINDING_H

#include <lua.h>

#include <msgpack.h>
#include <stdint.h>
#include "codec.h"

#include "runtime_object.h"

/*
 * Each scheduler that runs Lua has a binding_state: a worker's own lua_State
 * (made on its thread by worker_state_open; all actors of the worker share
 * it: an actor is a Lua record and a C actor_t), and the host application's
 * state when Lore is used as the Lua module `lore`. A state's binding_state
 * is found from Lua through the registry key BINDING_STATE_KEY (and, in a
 * worker's state, its extra space), and from C through sched->data.
 */

#define BINDING_STATE_KEY "lore.binding_state"
#define HOOK_EVERY 1000
#define ANSWERED_RING 64

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
  /* Registry refs to the Lua runtime's entry points (workers). */
  int ref_dispatch, ref_system, ref_spawn, ref_failed, ref_stopped, ref_overflow, ref_upgrade,
      ref_reload, ref_persisted;
  msgpack_sbuffer buf;   /* reused for encoding */
  const void *tell_last; /* the ref ref:tell last checked, held by its upvalue 2 (send.c) */
  idmap timers;          /* timer id -> sched_timer */
  uint64_t next_timer;
  /* Instruction budget of the handler call in progress (-1: none). */
  int64_t budget_left;
  /* Seen by the watchdog thread (atomics): which call runs, and whether the
   * budget hook has been installed for it. */
  uint64_t call_gen;
  int in_call, hooked;
  int blown;                        /* the running handler spent its budget: it cannot be caught */
  int interrupt;                    /* atomic: the runtime shuts down; every hook raises */
  uint64_t answered[ANSWERED_RING]; /* the last asks answered here (core.was_answered) */
  unsigned answered_next;
  size_t mem_used, mem_limit;
  struct pending_event *pending; /* persist_lua.c's scratch: events being encoded */
  size_t pending_cap;
  size_t *mem_published;   /* lore_runtime.lua_memory[worker]: mem_used for lore.stats() */
  codec_strings strings;   /* the decoder's string cache (codec.h) */
  uint64_t writer_seed;    /* writer ids (persist_lua.c) */
  uv_mutex_t recover_lock; /* guards recover_open (recovery_lua.c) */
  struct recover_batch *recover_open; /* recoveries not yet taken by a pool thread */
  struct mi_heap_s *heap;             /* the Lua state's mimalloc heap (LORE_MIMALLOC), or unused */
  struct worker_entities *entities;   /* this worker's entities (entities.c), or NULL */
  /* Recovery batches made during this loop iteration's turns, queued to the
   * pool at its end (recovery_flush): worker-thread only. */
  struct recover_batch *recover_unqueued;
  /* recovery_lua.c: a long replay's last applied page, kept for the next
   * read (with its capacity), or NULL. */
  struct lore_msg *spare_page;
  size_t spare_cap;
  struct sched_timer *idle_gc;          /* the next collector step of an idle worker (idle_gc.c) */
  struct recovery_deadlines *deadlines; /* recovery_deadline.c: made at first use */
  int idle_gc_base_kb;                  /* the heap when the last idle cycle ended */
  int idle_gc_seen_kb;                  /* the heap when the next step was armed */
  /* recovery_gc.c: recoveries wait for permits (the shorter pause is on),
   * and when that was last looked at (the loop's clock, ms) */
  int gc_wave;
  uint64_t gc_wave_checked;
} binding_state;

binding_state *binding_state_get(lua_State *L);

/* In a worker's state: its binding_state (kept in the state's extra space). */
static inline binding_state *worker_bs(lua_State *L) {
  return *(binding_state **)lua_getextraspace(L);
}

/* Wall clock in milliseconds since the epoch (event and snapshot timestamps). */
int64_t binding_now_ms(void);

/* Why the string at idx cannot be a persistence id (NULL if it can); raises
 * if it is not a string. */
const char *binding_id_problem(lua_State *L, int idx);

/* Encodes the value at idx into bs->buf; raises a Lua error naming the path on
 * failure (for send sites). Returns a pointer/length valid until the next use. */
const char *binding_encode(lua_State *L, binding_state *bs, int idx, const char *root, size_t *len);

/* Pushes the `type` function behaviours get (fast_type.c). */
void binding_push_type(lua_State *L);

/* Registers the `lore.ref` methods (tell, ask, stop, id) in a state. */
void ref_methods_register(lua_State *L, binding_state *bs);

/* Pushes the ref for an address, reusing one from `cache` (the stack index of
 * a table of BINDING_SENDER_CACHE slots that only this function fills). */
#define BINDING_SENDER_CACHE 64
void binding_push_addr(lua_State *L, int cache, lore_addr a);

/* Sends `len` encoded bytes to a ref, as the current actor (from a worker). */
void binding_send(binding_state *bs, const void *ref, uint32_t kind, const char *data, size_t len,
                  uint64_t corr);

/* Answers an ask: a MSG_REPLY with sub REPLY_* (host.h). */
void binding_reply(runtime_t *rt, lore_addr to, uint64_t corr, uint32_t sub, const char *data,
                   size_t len);

/* Runs the function below its nargs arguments under the instruction budget;
 * returns lua_pcall's status. */
int binding_pcall(binding_state *bs, int nargs, int nresults);
/* The count hook of the budget (budget.c) and the charge of work done in C. */
void budget_hook(lua_State *L, lua_Debug *ar);
void budget_charge(lua_State *L, binding_state *bs, size_t units);
/* Inside a handler call, a new one begins (each event a recovery page
 * applies is a call of its own): a fresh budget, timed by the watchdog from
 * now, and the count hook off again if the watchdog had put it on. */
void budget_restart(binding_state *bs);

/* The application's ref:ask (lore_module.c): only the host may block on an
 * ask; lore.ref for host and workers alike (send.c). */
int host_ask(lua_State *L);
int binding_l_ref(lua_State *L);

/* The embedded Lua sources (generated from lua/lore/ *.lua). */
int binding_load_embedded(lua_State *L, const char *name);

#endif
