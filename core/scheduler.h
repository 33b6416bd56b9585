/* scheduler.h: schedulers, actors and the runtime that owns them. */
#ifndef LORE_SCHEDULER_H
#define LORE_SCHEDULER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "actor_map.h"
#include "idmap.h"
#include "inbox.h"
#include "log.h"
#include "msg.h"
#include "msg_queue.h"

/*
 * The runtime's invariants, in one place:
 *
 * - A runtime has one host scheduler (index 0: the embedding thread's loop,
 *   where the application script runs) and `workers` worker schedulers
 *   (indexes 1..workers), each a thread with its own uv_loop_t. Actors live on
 *   workers, on exactly one for their whole life. A persistent actor lives on
 *   the worker chosen by the hash of its persistence id, so a lookup by id (and
 *   the single-writer check) is local to one scheduler and needs no lock.
 * - Everything an actor owns is touched only by its scheduler's thread. Other
 *   threads reach it only through that scheduler's inbox (MPSC, one lock per
 *   batch, one wake-up per empty->non-empty transition).
 * - Messages sent during a turn to other schedulers are batched in per-target
 *   outboxes and flushed before the loop blocks (uv_prepare): many messages,
 *   one wake-up.
 * - An actor has three queues: `sysq` (system messages: always first),
 *   `mailbox` (commands, in FIFO order) and `stash` (the user stash). While
 *   `held` > 0 (a persist in flight, recovery running, restart back-off) the
 *   mailbox is not delivered: that is the internal stash. Order is kept
 *   because nothing overtakes the mailbox: unstash_all puts the user stash
 *   back at the mailbox's front.
 * - A scheduler runs ready actors round-robin, at most ACTOR_TURN_BUDGET
 *   messages per actor per turn and SCHED_RUN_BUDGET per loop iteration, so
 *   one busy actor never starves the others or the loop's I/O.
 * - An actor is freed only by its scheduler, after its binding's `stopped`
 *   hook, when it is not running and has no I/O in flight (`pending_io`).
 * - The core never raises, never aborts: calls return 0 or a negative code.
 */

#define ACTOR_TURN_BUDGET 64
#define SCHED_RUN_BUDGET 8192

typedef struct actor actor_t;
typedef struct sched sched_t;
typedef struct runtime runtime_t;

typedef struct actor_ops {
  /* Handles one message. Returns ACTOR_CONSUMED (the core frees m) or
   * ACTOR_KEPT (the binding took ownership of m, e.g. it stashed it). A MSG_STOP
   * is shown here too (for the binding's on-stop); the actor stops after it
   * whatever receive does (actor_io_begin can still defer its finalization). */
  int (*receive)(actor_t *a, lore_msg *m);
  /* A command arrived while the actor is held and its mailbox is at
   * `hold_capacity`. The binding takes ownership of m. */
  void (*overflow)(actor_t *a, lore_msg *m);
  /* The actor is gone: release what the binding holds. Called once. */
  void (*stopped)(actor_t *a);
  /* Optional: a MSG_STOP was queued while the mailbox is held (it waits
   * behind the held commands; the binding may decide the stop wins, e.g.
   * for an actor waiting out a failure). Must only queue messages. */
  void (*stop_while_held)(actor_t *a);
  /* Optional: the scheduler begins its shutdown (the actor's safe stop is
   * queued right after this call). Must only queue messages. */
  void (*shutdown)(actor_t *a);
} actor_ops;

enum { ACTOR_CONSUMED = 0, ACTOR_KEPT = 1 };

/* 95 bytes, and the name (a persistence id) right after them in the same
 * allocation: a 96-byte block per actor without a name (its name_buf[0],
 * in the struct's padding, is 0), a 112-byte one with a name of up to 16
 * bytes. The rarely written flags are bits of one byte (only the actor's
 * own scheduler thread touches them), and the name is found by its first
 * byte rather than a pointer (actor_name; names are never empty). */
struct actor {
  uint64_t aid;
  sched_t *sched;
  const actor_ops *ops;
  void *data;        /* the binding's */
  msg_queue mailbox; /* commands */
  /* System messages, a FIFO that needs no count: a circular list, sys_tail's
   * next is its head (one pointer, not two). */
  lore_msg *sys_tail;
  msg_queue *stash; /* the user stash, made at its first use (most actors never stash) */
  actor_t *next_ready;
  uint32_t held;          /* > 0: mailbox not delivered */
  uint32_t pending_io;    /* journal writes or reads in flight */
  uint32_t hold_capacity; /* max mailbox length while held (0: unbounded) */
  uint8_t ready, running; /* written at every turn: whole bytes */
  uint8_t stopping : 1, dead : 1;
  char name_buf[]; /* "" (no name) or the name */
};

/* The actor's persistence id, or NULL. */
static inline const char *actor_name(const actor_t *a) {
  return a->name_buf[0] ? a->name_buf : NULL;
}

typedef struct sched_timer sched_timer;

typedef struct runtime_hooks {
  /* On the scheduler's own thread, before its loop runs (e.g. create its Lua
   * state); sched_current() is already s. For the host: in runtime_start, on the
   * caller's thread. A nonzero return fails runtime_start. */
  int (*sched_start)(sched_t *s);
  /* On the scheduler's own thread, after every actor is gone. For the host: in
   * runtime_join (or a failing runtime_start), once per successful sched_start. */
  void (*sched_stop)(sched_t *s);
  /* A message for the scheduler itself: MSG_REPLY, MSG_SPAWN, or MSG_SYSTEM
   * with target.aid 0. Returns ACTOR_CONSUMED or ACTOR_KEPT. */
  int (*sched_message)(sched_t *s, lore_msg *m);
  /* A message that found no actor, was left when its actor stopped, or could
   * not be handed to a closed scheduler (then called on the sending scheduler).
   * The core frees it afterwards (the hook may answer an ask with an error). */
  void (*dead_letter)(sched_t *s, lore_msg *m);
  /* Optional: a message routed by name (persistence id) found no live actor
   * with that name here, or its actor stopped before handling it. The hook
   * may start the actor and queue m to it (an entity waking up): then it
   * returns ACTOR_KEPT; ACTOR_CONSUMED makes m a dead letter. */
  int (*route_missing)(sched_t *s, lore_msg *m);
  /* Optional: on the scheduler's thread once per loop iteration, after its
   * turns and before it waits for more work (the binding hands out work it
   * gathered during the turns, e.g. one read for many recoveries). */
  void (*sched_prepare)(sched_t *s);
} runtime_hooks;

typedef struct runtime_config {
  int workers;          /* 0: one per core */
  const log_sink *log;  /* NULL: log_default() */
  uv_loop_t *host_loop; /* the host scheduler's loop (the embedder's); NULL: its own */
  int io_spin_us;       /* see sched_wait_spin (scheduler.c); 0: never spin */
} runtime_config;

struct sched {
  runtime_t *rt;
  uint32_t index;
  uv_loop_t *loop; /* own_loop, or the embedder's (host scheduler only) */
  uv_loop_t own_loop;
  loop_wakeup wake;
  uv_idle_t idle;     /* keeps the loop spinning while actors are ready */
  uv_prepare_t flush; /* flushes outboxes before the loop blocks */
  uv_thread_t thread;
  inbox in;
  msg_queue *outbox; /* one per scheduler index */
  actor_t *ready_head, *ready_tail;
  actor_map by_aid, by_name;
  size_t actors;
  uint64_t io_pending; /* sum of the actors' pending_io */
  /* The wait spin (sched_wait_spin): waits to skip after spins that saw no
   * completion and the next such backoff (the scheduler's thread only); the
   * spins and those that saw their completion (atomic: stats reads them). */
  uint32_t spin_skips, spin_backoff;
  uint64_t spins, spin_hits;
  /* Atomic: the I/O of io_pending whose completion will come through the
   * inbox (journal writes, counted by the binding until their completion is
   * on its way). Only that kind is worth a spin: a thread-pool job's
   * completion comes through libuv's own wake-up, which a spin cannot see. */
  uint32_t inbox_io;
  int shutting_down, running, closed;
  int loop_closed;                    /* uv_loop_close done (internal) */
  int handles_open;                   /* the scheduler's own handles not yet closed */
  void (*handles_closed)(sched_t *s); /* called once they all are (sched_close_handles) */
  struct sched_timer *timers;         /* the timers started and not yet closed */
  int abandoned;                      /* a worker thread given up on at shutdown: never freed */
  void *data;                         /* the binding's (its Lua state) */
  int turn_taken;                     /* messages the running actor's turn took so far */
};

struct runtime {
  int workers;
  sched_t **scheds; /* [0] host, [1..workers] workers */
  const runtime_hooks *hooks;
  void *data;
  const log_sink *log;
  uint64_t next_aid;     /* atomic */
  int64_t alive;         /* atomic: worker actors spawned (or reserved) and not yet stopped */
  uint64_t dead_letters; /* atomic */
  uint64_t next_corr;    /* atomic */
  int io_spin_us;        /* runtime_config's */
  int started;           /* worker threads running */
  int host_started;      /* the host's sched_start succeeded, sched_stop not yet run */
};

/* Creates a runtime without starting worker threads. The host scheduler runs on
 * cfg->host_loop (the embedder runs it), or on a loop of its own that the
 * caller runs (runtime_host_loop). */
int runtime_create(const runtime_config *cfg, const runtime_hooks *hooks, void *data,
                   runtime_t **out);
/* Runs the host's sched_start and starts the worker threads; the calling thread
 * becomes the host's (sched_current). On error nothing is left running.
 * UV_EALREADY if already started. */
int runtime_start(runtime_t *rt);
/* Asks every worker to stop its actors safely and end its loop. Any thread. Called
 * on a scheduler's thread, what that scheduler already sent is delivered first.
 * Each worker, once its loop has ended, sends the host scheduler a MSG_SYSTEM
 * MSG_HOST_WORKER_STOPPED (ival: its index). */
void runtime_shutdown(runtime_t *rt);
/* After runtime_shutdown: every worker stops what actors it still has now,
 * without waiting for their mailboxes (I/O in flight still completes). */
void runtime_force_stop(runtime_t *rt);
/* Gives up on worker `index` (stuck in code that never returns to its loop):
 * runtime_join skips it and runtime_free never frees what it uses. */
void runtime_abandon(runtime_t *rt, uint32_t index);
/* Waits for the worker threads to end (after runtime_shutdown; abandoned ones
 * excepted), then runs the host's sched_stop. */
void runtime_join(runtime_t *rt);
/* Closes the host scheduler's handles; `done` runs (on the host loop) once
 * they are closed, after which the runtime holds no handle on that loop. */
void runtime_close_host(runtime_t *rt, void (*done)(sched_t *host));
/* Frees everything (after runtime_join, or if never started). On an
 * embedder's loop, runtime_close_host must have completed first. */
void runtime_free(runtime_t *rt);
uv_loop_t *runtime_host_loop(runtime_t *rt);
sched_t *runtime_host(runtime_t *rt);

uint64_t runtime_new_aid(runtime_t *rt);
/* An actor about to be spawned counts as alive from now (so an application
 * that waits for "no actor alive" does not end between the spawn request and
 * the actor's creation); actor_create takes the reservation over, and
 * runtime_unreserve gives it back when the spawn fails. Any thread. */
void runtime_reserve(runtime_t *rt);
void runtime_unreserve(runtime_t *rt);
int64_t runtime_alive(runtime_t *rt);
uint64_t runtime_new_corr(runtime_t *rt);
/* The worker for a persistence id (stable for a given worker count). */
uint32_t runtime_sched_for_name(runtime_t *rt, const char *name);
/* Round-robin worker for an actor without id. */
uint32_t runtime_sched_next(runtime_t *rt);

/* Sends m to m->target (by address, or by m->name when target.aid is 0 and
 * name is set; a scheduler message when both are unset). From any thread.
 * Takes ownership of m in every case: a message that cannot be delivered is a
 * dead letter. */
void runtime_send(runtime_t *rt, lore_msg *m);
/* runtime_send for each message of q (emptied), from a thread that is not
 * one of rt's schedulers: the messages for one scheduler go to its inbox in
 * one push, with at most one wake-up. */
void runtime_send_all(runtime_t *rt, msg_queue *q);
/* The scheduler running on this thread, or NULL. */
sched_t *sched_current(void);
/* Makes s this thread's current scheduler until sched_leave(previous): the
 * host scheduler is current only while Lore works on the host thread (two
 * runtimes may share that thread). */
sched_t *sched_enter(sched_t *s);
void sched_leave(sched_t *previous);

/* --- actors (only on their scheduler's thread) --- */

/* Creates an actor with a given aid (runtime_new_aid) and optional persistence
 * id. Returns 0, UV_EEXIST if that aid or that id is already live here,
 * UV_ECANCELED if the scheduler is shutting down, UV_ENOMEM. On a worker it
 * counts as alive (taking over a runtime_reserve); the host scheduler's actors
 * (endpoints) do not. */
int actor_create(sched_t *s, uint64_t aid, const char *name, const actor_ops *ops, void *data,
                 actor_t **out);
actor_t *sched_find(sched_t *s, uint64_t aid);
actor_t *sched_find_name(sched_t *s, const char *name);
/* For a binding that handles several commands of a turn in one call (from
 * inside receive): the next command the turn would deliver now, counted in
 * the turn; NULL when a system message comes first, the actor is held or
 * stopping, the turn's budget is spent, or the mailbox has no command first. */
lore_msg *sched_turn_next_command(actor_t *a);
/* Queues a message for a local actor (mailbox or sysq by kind). */
void actor_enqueue(actor_t *a, lore_msg *m);
/* Puts m at the mailbox's tail past the hold capacity (an overflow the
 * binding decided to keep). */
void actor_requeue(actor_t *a, lore_msg *m);
void actor_hold(actor_t *a);
/* While held, at most `n` commands wait in the mailbox (0: unbounded); the
 * ones past that go to ops->overflow. */
void actor_set_hold_capacity(actor_t *a, size_t n);
void actor_release(actor_t *a);
/* Moves m (the message being handled, owned by the binding after ACTOR_KEPT)
 * to the user stash. */
/* Returns 0, or UV_ENOMEM (m stays the caller's). */
int actor_stash(actor_t *a, lore_msg *m);
/* Puts the user stash back in front of the mailbox, in its order. */
void actor_unstash_all(actor_t *a);
/* Stops the actor once it is not running and has no I/O in flight (at once if
 * that is already so: the actor may be freed on return). Until then it gets only
 * system messages. What is left in its queues becomes dead letters. */
void actor_stop(actor_t *a);
void actor_io_begin(actor_t *a);
/* Ends one I/O; a stopping actor with no I/O left is finalized (and may be freed)
 * unless it is running. */
void actor_io_end(actor_t *a);
void sched_dead_letter(sched_t *s, lore_msg *m);

/* --- one-shot timers on a scheduler's loop --- */

/* Calls fn(ud) after `ms` milliseconds on s's thread. If the timer is
 * cancelled (or the scheduler closes first), free_ud(ud) runs instead.
 * Returns NULL when out of memory or the scheduler is closed (ud is then
 * still the caller's). The timer is freed after fn returns: cancel it only
 * before (or within) fn. */
sched_timer *sched_timer_start(sched_t *s, uint64_t ms, void (*fn)(void *ud), void *ud,
                               void (*free_ud)(void *ud));
void sched_timer_cancel(sched_timer *t);

#endif
