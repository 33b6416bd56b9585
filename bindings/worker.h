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

/* Opens the `lore` module inside a worker's state: refs only (behaviours act
 * through ctx). */
int worker_open_lore(lua_State *L);

#endif
