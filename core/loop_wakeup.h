/* loop_wakeup.h: wakes a libuv loop from any thread, without the receiver ever spinning. */
#ifndef LORE_LOOP_WAKEUP_H
#define LORE_LOOP_WAKEUP_H

#include <uv.h>

/*
 * What uv_async_t does, for the schedulers' inboxes. libuv 1.44's uv_async_send
 * marks the handle busy, writes the loop's eventfd, then marks it done; the
 * woken loop spins (and sched_yield()s) until it sees "done". On a machine
 * whose cores are all busy the woken thread often preempts the sender between
 * its write and its mark, and then yields over and over until the sender runs
 * again: measured on the one-actor persist path, ~6 sched_yield calls per
 * event and up to 2 ms lost at one hand-off. Here the eventfd (a pipe where
 * there is none) is the whole state: the sender writes it, the loop reads it
 * and runs the callback, and nothing waits on the other thread.
 */
typedef struct loop_wakeup loop_wakeup;
typedef void (*loop_wakeup_cb)(loop_wakeup *w);

struct loop_wakeup {
  uv_poll_t poll; /* first: the handle's address is the wake-up's */
  int read_fd;    /* the eventfd, or the read end of the pipe */
  int write_fd;   /* the same eventfd, or the write end */
  int pending;    /* atomic: a wake-up is written or on its way */
  loop_wakeup_cb cb;
  void *data;
};

/* Returns 0 or a negative libuv error code (nothing is left open then). */
int loop_wakeup_init(uv_loop_t *loop, loop_wakeup *w, loop_wakeup_cb cb);
/* Any thread. Wake-ups sent before the callback runs are merged into one. */
void loop_wakeup_send(loop_wakeup *w);
/* On the loop's thread, once no thread sends any more. close_cb gets the handle
 * (its data is w->data) and may be NULL. */
void loop_wakeup_close(loop_wakeup *w, uv_close_cb close_cb);
int loop_wakeup_is_closing(const loop_wakeup *w);

#endif
