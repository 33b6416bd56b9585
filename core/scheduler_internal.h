/* sched_internal.h: what runtime.c needs of sched.c, not for bindings. */
#ifndef LORE_SCHEDULER_INTERNAL_H
#define LORE_SCHEDULER_INTERNAL_H

#include "scheduler.h"

/* loop: the host scheduler's loop when the embedder gives one, else NULL. */
int sched_init(sched_t *s, runtime_t *rt, uint32_t index, uv_loop_t *loop);
/* Closes the inbox and handles and runs the loop to its end (idempotent). */
void sched_end(sched_t *s);
/* sched_end, then frees what the scheduler holds (not s itself). */
void sched_destroy(sched_t *s);
void sched_run(sched_t *s);
void sched_flush(sched_t *s);
void sched_set_current(sched_t *s);
void sched_deliver_local(sched_t *s, lore_msg *m);

#endif
