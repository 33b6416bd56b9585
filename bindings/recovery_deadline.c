/* recovery_deadline.c: the recovery timeout of every recovering actor of a
 * worker, as one entry of the worker's deadline list under a single timer. A
 * libuv timer per recovery (made, heaped, closed and freed for each of
 * thousands of actors waking at once) cost more than the rest of the
 * recovery's bookkeeping. Every entry has the same duration (the runtime's
 * recovery_timeout), so arming appends: the list stays in deadline order. */
#include <lauxlib.h>
#include <stdlib.h>

#include "lua_actor.h"
#include "worker.h"

typedef struct deadline {
  struct deadline *prev, *next;
  uint64_t aid;
  lua_Integer token;
  uint64_t due_ms;
} deadline;

struct recovery_deadlines {
  deadline *head, *tail;
  idmap by_aid;              /* aid -> its entry: one per recovering actor */
  struct sched_timer *timer; /* pending: fires at or before head->due_ms */
  uint64_t timer_due_ms;
};

static uint64_t now_ms(void) { return uv_hrtime() / 1000000; }

static void unlink_entry(struct recovery_deadlines *d, deadline *e) {
  if (e->prev)
    e->prev->next = e->next;
  else
    d->head = e->next;
  if (e->next)
    e->next->prev = e->prev;
  else
    d->tail = e->prev;
}

/* In deadline order, searched from the end (where an entry almost always goes). */
static void insert_entry(struct recovery_deadlines *d, deadline *e) {
  deadline *after = d->tail;
  while (after && after->due_ms > e->due_ms) after = after->prev;
  e->prev = after;
  e->next = after ? after->next : d->head;
  if (e->next)
    e->next->prev = e;
  else
    d->tail = e;
  if (after)
    after->next = e;
  else
    d->head = e;
}

static void deadlines_fire(void *ud);

/* A timer for the head, unless one pending fires no later. */
static void ensure_timer(binding_state *bs) {
  struct recovery_deadlines *d = bs->deadlines;
  if (!d->head) return;
  if (d->timer && d->timer_due_ms <= d->head->due_ms) return;
  if (d->timer) sched_timer_cancel(d->timer);
  uint64_t now = now_ms(), due = d->head->due_ms;
  d->timer = sched_timer_start(bs->sched, due > now ? due - now : 0, deadlines_fire, bs, NULL);
  d->timer_due_ms = due;
}

/* Every entry due: its actor gets SYS_RECOVERY_TIMEOUT with the recovery's
 * token (persistent.lua checks progress and re-arms); an actor that has
 * stopped or is stopping gets nothing, as with any runtime timer. */
static void deadlines_fire(void *ud) {
  binding_state *bs = ud;
  struct recovery_deadlines *d = bs->deadlines;
  d->timer = NULL;
  uint64_t now = now_ms();
  while (d->head && d->head->due_ms <= now) {
    deadline *e = d->head;
    unlink_entry(d, e);
    idmap_remove(&d->by_aid, e->aid);
    actor_t *a = sched_find(bs->sched, e->aid);
    if (a && !a->dead && !a->stopping) {
      lore_msg *m = msg_new(MSG_SYSTEM, NULL, 0, NULL, 0);
      if (m) {
        m->sub = SYS_RECOVERY_TIMEOUT;
        m->ival = e->token;
        m->target.sched = m->sender.sched = bs->sched->index;
        m->target.aid = m->sender.aid = a->aid;
        actor_enqueue(a, m);
      }
    }
    free(e);
  }
  ensure_timer(bs);
}

/* Actor a's recovery must progress within `secs`; replaces the deadline it
 * had. 0, or -1 when out of memory. */
int recovery_deadline_arm(binding_state *bs, actor_t *a, lua_Number secs, lua_Integer token) {
  struct recovery_deadlines *d = bs->deadlines;
  if (!d) {
    if (!(d = calloc(1, sizeof *d))) return -1;
    idmap_init(&d->by_aid);
    bs->deadlines = d;
  }
  deadline *e = idmap_get(&d->by_aid, a->aid);
  if (e) {
    unlink_entry(d, e);
  } else {
    if (!(e = malloc(sizeof *e))) return -1;
    if (idmap_put(&d->by_aid, a->aid, e)) {
      free(e);
      return -1;
    }
    e->aid = a->aid;
  }
  e->token = token;
  e->due_ms = now_ms() + (uint64_t)(secs * 1000.0 + 0.5);
  insert_entry(d, e);
  ensure_timer(bs);
  if (!d->timer) { /* the scheduler is closing: no timeout will come, as for any timer */
    unlink_entry(d, e);
    idmap_remove(&d->by_aid, e->aid);
    free(e);
  }
  return 0;
}

/* That actor's recovery ended: its deadline goes (if it has one). */
void recovery_deadline_drop(binding_state *bs, uint64_t aid) {
  struct recovery_deadlines *d = bs->deadlines;
  deadline *e = d ? idmap_remove(&d->by_aid, aid) : NULL;
  if (e) {
    unlink_entry(d, e);
    free(e);
  }
}

/* core.recovery_deadline(seconds, token): the current actor's recovery must
 * progress within `seconds`; replaces the deadline it had. */
static int core_recovery_deadline(lua_State *L) {
  binding_state *bs = worker_bs(L);
  actor_t *a = binding_current_actor(L);
  lua_Number secs = worker_check_delay(L, 1);
  lua_Integer token = luaL_checkinteger(L, 2);
  if (recovery_deadline_arm(bs, a, secs, token)) return luaL_error(L, "out of memory");
  return 0;
}

/* core.recovery_deadline_cancel(aid): that actor's recovery ended. */
static int core_recovery_deadline_cancel(lua_State *L) {
  recovery_deadline_drop(worker_bs(L), (uint64_t)luaL_checkinteger(L, 1));
  return 0;
}

static void free_entry(void *value, void *ud) {
  (void)ud;
  free(value);
}

void recovery_deadlines_close(binding_state *bs) {
  struct recovery_deadlines *d = bs->deadlines;
  if (!d) return;
  idmap_each(&d->by_aid, free_entry, NULL);
  idmap_free(&d->by_aid);
  free(d);
  bs->deadlines = NULL;
}

void luaopen_lore_core_recovery_deadline(lua_State *L) {
  static const luaL_Reg fns[] = {{"recovery_deadline", core_recovery_deadline},
                                 {"recovery_deadline_cancel", core_recovery_deadline_cancel},
                                 {NULL, NULL}};
  luaL_setfuncs(L, fns, 0);
}
