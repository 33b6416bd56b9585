/* msg.h: the unit every queue carries: one message, one allocation. */
#ifndef LORE_MSG_H
#define LORE_MSG_H

#include <stddef.h>
#include <stdint.h>

/* What a message is for. User messages wait in the mailbox (and may be held
 * or stashed); every other kind is a system message and goes first. */
enum {
  MSG_USER = 0, /* a command: MessagePack payload */
  MSG_STOP,     /* safe stop: queued behind the user messages already there */
  MSG_REPLY,    /* an answer to an ask: to the asking actor, or to its scheduler (aid 0) */
  MSG_SYSTEM,   /* runtime-internal, for the actor (e.g. a persist completion) */
  MSG_TIMER,    /* a scheduled message firing: treated as a user message */
  MSG_SPAWN,    /* a spawn request for the target scheduler */
  MSG_SHUTDOWN, /* the scheduler stops every actor, then its loop (ival 1: by force) */
};

/* Subtypes of a MSG_SYSTEM addressed to the host scheduler itself (target.aid 0). */
enum {
  MSG_HOST_NONE_ALIVE = 1,     /* the last actor ended */
  MSG_HOST_WORKER_STOPPED = 2, /* worker `ival` ended its loop (its thread is about to end) */
};

typedef struct lore_addr {
  uint32_t sched;
  uint64_t aid; /* 0: the scheduler itself (replies) */
} lore_addr;

typedef struct lore_msg {
  struct lore_msg *next;
  uint32_t kind;
  uint32_t sub;                /* kind-specific subtype (system messages) */
  lore_addr target;            /* target.aid 0 and name != NULL: routed by persistence id */
  lore_addr sender;            /* sender.aid 0 and sender.sched 0: none */
  uint64_t corr;               /* ask correlation id, 0 for a tell */
  char *name;                  /* target persistence id (points into data), or NULL */
  void *ptr;                   /* kind-specific pointer payload (system messages) */
  void (*free_ptr)(void *ptr); /* if set, msg_free releases ptr with it */
  int64_t ival;                /* kind-specific integer payload */
  size_t len;                  /* payload bytes in data */
  char data[];                 /* payload, then the NUL-terminated name if any */
} lore_msg;

/* Allocates a message with room for `len` payload bytes (copied from `payload`
 * if not NULL) and an optional name. Returns NULL when out of memory. */
lore_msg *msg_new(uint32_t kind, const void *payload, size_t len, const char *name,
                  size_t name_len);
void msg_free(lore_msg *m);

#endif
