/* inbox.c: the MPSC inbox of a scheduler. */
#include "inbox.h"

int inbox_init(inbox *in, uv_async_t *wake) {
  msg_queue_init(&in->q);
  in->wake = wake;
  in->closed = 0;
  return uv_mutex_init(&in->lock);
}

int inbox_push(inbox *in, lore_msg *m) {
  uv_mutex_lock(&in->lock);
  if (in->closed) {
    uv_mutex_unlock(&in->lock);
    return UV_ECANCELED;
  }
  int was_empty = msg_queue_empty(&in->q);
  msg_queue_push(&in->q, m);
  /* Under the lock: once inbox_close returns, no producer touches the handle, so the
   * consumer may close and free it. */
  if (was_empty) uv_async_send(in->wake);
  uv_mutex_unlock(&in->lock);
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
  if (was_empty) uv_async_send(in->wake);
  uv_mutex_unlock(&in->lock);
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
}

void inbox_destroy(inbox *in) { uv_mutex_destroy(&in->lock); }
