/* worker.h: a worker scheduler's side: its Lua state, its messages, the watchdog. */
#ifndef LORE_WORKER_H
#define LORE_WORKER_H

#include "binding.h"

/* The runtime hooks' worker half: the Lua state is made and closed on the
 * worker's own thread. */
int worker_state_open(sched_t *s);
void worker_state_close(sched_t *s);
int worker_sched_message(sched_t *s, lore_msg *m);
void worker_dead_letter(sched_t *s, lore_msg *m);

/* watchdog.c: one thread per runtime that arms the instruction budget of
 * handler calls that run long, and interrupts every worker at a forced
 * shutdown. */
int watchdog_start(lore_runtime *lrt);
void watchdog_forget(lore_runtime *lrt, sched_t *s);
void watchdog_interrupt(lore_runtime *lrt);
void watchdog_stop(lore_runtime *lrt);

/* An actor timer of this worker: calls fire(t) after ms, or drop(t) if it
 * never fires (cancelled, or the worker closes), and files it under id in
 * bs->timers so core.cancel finds it. Returns 0; -1 when the scheduler is
 * closing, -2 when out of memory (t was handed to drop either way). */
int worker_timer_arm(binding_state *bs, uint64_t id, uint64_t ms, void (*fire)(void *),
                     void (*drop)(void *), void *t);
/* The delay at stack index idx: a number of seconds in [0, 1e9), or raises. */
lua_Number worker_check_delay(lua_State *L, int idx);

/* recovery_lua.c: queues the recovery reads this worker's turns gathered
 * (the end of a loop iteration), and frees any left when the worker closes. */
void recovery_flush(binding_state *bs);
void recovery_worker_close(binding_state *bs);
/* recovery_lua.c: after a turn handled page m (still the binding's to
 * free): 1 if it was kept as the worker's spare page buffer (the next
 * replay's read fills it), else 0. recovery_drop_spare frees the spare
 * (the worker went idle, or closes). */
int recovery_keep_page(binding_state *bs, lore_msg *m);
void recovery_drop_spare(binding_state *bs);
/* recovery_deadline.c: frees the recovery deadlines left when the worker closes. */
void recovery_deadlines_close(binding_state *bs);
/* recovery_deadline.c: actor a's recovery must progress within `secs` (0, or
 * -1 when out of memory); and its deadline goes when its recovery ends. */
int recovery_deadline_arm(binding_state *bs, actor_t *a, lua_Number secs, lua_Integer token);
void recovery_deadline_drop(binding_state *bs, uint64_t aid);

/* idle_gc.c: at the end of a loop iteration, starts finishing the collector's
 * cycle in small steps if the worker has nothing to run and its heap grew. */
void idle_gc_check(binding_state *bs);
/* ... and gives back, on the worker's thread, what a sweep it left running holds. */
void idle_gc_close(binding_state *bs);

/* recovery_gc.c: at the end of a loop iteration, a shorter collector pause
 * while recoveries queue for permits (a wave of actors waking), the default
 * otherwise. */
void recovery_gc_check(binding_state *bs);

/* Opens the `lore` module inside a worker's state: refs only (behaviours act
 * through ctx). */
int worker_open_lore(lua_State *L);

#endif
