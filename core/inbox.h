/* inbox.h: a scheduler's MPSC inbox: any thread pushes, the scheduler drains. */
#ifndef LORE_INBOX_H
#define LORE_INBOX_H

#include <uv.h>

#include "loop_wakeup.h"
#include "msg_queue.h"

/* Producers lock only to link a message; the consumer takes the whole queue
 * in one lock. The wake-up (loop_wakeup_send) is sent only when the queue goes
 * from empty to non-empty, so a burst of messages shares one wake-up. It is
 * sent after the unlock: the woken consumer drains at once, and found the lock
 * still held by a producer in its write() (a futex sleep and a second wake-up
 * per hand-off). `senders` counts wake-ups on their way, which inbox_close
 * waits out. */
typedef struct inbox {
  uv_mutex_t lock;
  msg_queue q;
  loop_wakeup *wake;
  int closed;
  int senders; /* atomic */
} inbox;

int inbox_init(inbox *in, loop_wakeup *wake);
/* Returns 0, or UV_ECANCELED if the inbox is closed (the message is NOT taken). */
int inbox_push(inbox *in, lore_msg *m);
/* Pushes a whole queue at once (one lock, at most one wake-up). */
int inbox_push_all(inbox *in, msg_queue *q);
/* Moves everything queued into `out` (appended). */
void inbox_drain(inbox *in, msg_queue *out);
/* Refuses further pushes; returns what was still queued into `out`. After it
 * returns no producer touches the wake handle any more. */
void inbox_close(inbox *in, msg_queue *out);
void inbox_destroy(inbox *in);

#endif
