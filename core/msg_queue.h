/* msg_queue.h: an intrusive FIFO of messages (mailboxes, stashes). */
#ifndef LORE_MSG_QUEUE_H
#define LORE_MSG_QUEUE_H

#include <stddef.h>

#include "msg.h"

typedef struct msg_queue {
  lore_msg *head, *tail;
  size_t count;
} msg_queue;

static inline void msg_queue_init(msg_queue *q) {
  q->head = q->tail = NULL;
  q->count = 0;
}

static inline int msg_queue_empty(const msg_queue *q) { return q->head == NULL; }

static inline void msg_queue_push(msg_queue *q, lore_msg *m) {
  m->next = NULL;
  if (q->tail)
    q->tail->next = m;
  else
    q->head = m;
  q->tail = m;
  q->count++;
}

static inline lore_msg *msg_queue_pop(msg_queue *q) {
  lore_msg *m = q->head;
  if (!m) return NULL;
  q->head = m->next;
  if (!q->head) q->tail = NULL;
  q->count--;
  m->next = NULL;
  return m;
}

/* Moves every message of `front` before the messages of `q`, keeping the
 * order of both (unstash). `front` is left empty. */
static inline void msg_queue_prepend(msg_queue *q, msg_queue *front) {
  if (!front->head) return;
  front->tail->next = q->head;
  if (!q->tail) q->tail = front->tail;
  q->head = front->head;
  q->count += front->count;
  msg_queue_init(front);
}

/* Moves every message of `back` after the messages of `q`. */
static inline void msg_queue_append(msg_queue *q, msg_queue *back) {
  if (!back->head) return;
  if (q->tail)
    q->tail->next = back->head;
  else
    q->head = back->head;
  q->tail = back->tail;
  q->count += back->count;
  msg_queue_init(back);
}

#endif
