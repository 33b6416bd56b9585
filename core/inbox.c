/* inbox.c: the MPSC inbox of a scheduler. */
#include "inbox.h"

#include <sched.h>

int inbox_init(inbox *in, loop_wakeup *wake) {
  msg_queue_init(&in->q);
  in->wake = wake;
  in->closed = 0;
  in->senders = 0;
  return uv_mutex_init(&in->lock);
}

/* Counted under the lock (so inbox_close sees it), sent and uncounted after it. */
static void send_wakeup(inbox *in) {
  loop_wakeup_send(in->wake);
  __atomic_sub_fetch(&in->senders, 1, __ATOMIC_RELEASE);
}

int inbox_push(inbox *in, lore_msg *m) {
  uv_mutex_lock(&in->lock);
  if (in->closed) {
    uv_mutex_unlock(&in->lock);
    return UV_ECANCELED;
  }
  int was_empty = msg_queue_empty(&in->q);
  msg_queue_push(&in->q, m);
  if (was_empty) __atomic_add_fetch(&in->senders, 1, __ATOMIC_RELAXED);
  uv_mutex_unlock(&in->lock);
  if (was_empty) send_wakeup(in);
  return 0;
}

int inbox_push_all(inbox *in, msg_queue *q) {
  if (msg_queue_empty(q)) return 0;
  uv_mutex_lock(&in->lock);
  if (in->closed) {
    uv_mutex_unlock(&in->lock);
    return UV_ECANCELED;
  }
  int was_empty = msg_queue_empty(&in->q);
  msg_queue_append(&in->q, q);
  if (was_empty) __atomic_add_fetch(&in->senders, 1, __ATOMIC_RELAXED);
  uv_mutex_unlock(&in->lock);
  if (was_empty) send_wakeup(in);
  return 0;
}

void inbox_drain(inbox *in, msg_queue *out) {
  uv_mutex_lock(&in->lock);
  msg_queue_append(out, &in->q);
  uv_mutex_unlock(&in->lock);
}

void inbox_close(inbox *in, msg_queue *out) {
  uv_mutex_lock(&in->lock);
  in->closed = 1;
  msg_queue_append(out, &in->q);
  uv_mutex_unlock(&in->lock);
  /* Pushes after the unlock are refused; a wake-up counted before it is one
   * write() away. Once it is done nobody touches the wake-up any more, so the
   * consumer may close it. Only at shutdown, so a yield loop is fine here. */
  while (__atomic_load_n(&in->senders, __ATOMIC_ACQUIRE) > 0) sched_yield();
}

void inbox_destroy(inbox *in) { uv_mutex_destroy(&in->lock); }
