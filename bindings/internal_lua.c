/* internal_lua.c: the C calls of delivery and timers (lua/lore/delivery.lua, timers.lua). */
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "lua_actor.h"
#include "worker.h"

#define bs_of worker_bs

/*
 * A timer of an actor: after `ms` it hands its message to the actor if the
 * actor is still there (an actor that stopped, or is stopping, gets nothing:
 * a timer of a stopped actor never fires, and never makes a dead letter);
 * a repeating one then starts again with the same id. Its id lives in the
 * worker's timer map (binding_state.timers), so core.cancel stops it like
 * any other timer of the worker.
 */
typedef struct actor_timer {
  binding_state *bs;
  uint64_t id, aid;
  uint64_t every_ms; /* 0: fires once */
  lore_msg *m;       /* fires once: sent itself; repeats: copied at each firing */
} actor_timer;

static void timer_forget(actor_timer *t) {
  idmap_remove(&t->bs->timers, t->id);
  msg_free(t->m);
  free(t);
}

static void timer_drop(void *p) { timer_forget(p); }

static void timer_fire(void *p) {
  actor_timer *t = p;
  binding_state *bs = t->bs;
  actor_t *a = sched_find(bs->sched, t->aid);
  if (!a || a->dead || a->stopping) {
    timer_forget(t);
    return;
  }
  if (!t->every_ms) {
    idmap_remove(&bs->timers, t->id);
    actor_enqueue(a, t->m);
    free(t);
    return;
  }
  lore_msg *copy = msg_new(t->m->kind, t->m->data, t->m->len, NULL, 0);
  if (copy) { /* out of memory: this firing is skipped, the next one comes */
    copy->sub = t->m->sub;
    copy->ival = t->m->ival;
    copy->corr = t->m->corr;
    copy->target = t->m->target;
    copy->sender = t->m->sender;
    actor_enqueue(a, copy);
  }
  worker_timer_arm(bs, t->id, t->every_ms, timer_fire, timer_drop, t); /* failed: t is gone */
}

/* Starts a timer that hands m to the current actor after secs (then every
 * `every` seconds if every > 0); returns its id. Takes m in every case. */
static lua_Integer start(lua_State *L, lua_Number secs, lua_Number every, lore_msg *m) {
  binding_state *bs = bs_of(L);
  actor_t *a = binding_current_actor(L);
  actor_timer *t = malloc(sizeof *t);
  if (!t) {
    msg_free(m);
    return luaL_error(L, "out of memory");
  }
  m->target.sched = m->sender.sched = bs->sched->index;
  m->target.aid = m->sender.aid = a->aid;
  t->bs = bs;
  t->id = ++bs->next_timer;
  t->aid = a->aid;
  t->every_ms = every > 0 ? (uint64_t)(every * 1000.0 + 0.5) : 0;
  if (every > 0 && !t->every_ms) t->every_ms = 1;
  t->m = m;
  if (m->kind == MSG_SYSTEM) m->corr = t->id; /* a firing names the timer armed */
  uint64_t id = t->id;
  int rc = worker_timer_arm(bs, id, (uint64_t)(secs * 1000.0 + 0.5), timer_fire, timer_drop, t);
  if (rc)
    return luaL_error(L, rc == -1 ? "cannot start a timer (scheduler closing)" : "out of memory");
  return (lua_Integer)id;
}

/* core.timer_start(seconds, msg [, every]) -> timer id: msg to the current
 * actor as a command later (a MSG_TIMER, which waits while the mailbox is
 * held, like any command), again every `every` seconds if given. */
static int core_timer_start(lua_State *L) {
  binding_state *bs = bs_of(L);
  binding_current_actor(L);
  lua_Number secs = worker_check_delay(L, 1);
  lua_Number every = lua_isnoneornil(L, 3) ? 0 : worker_check_delay(L, 3);
  luaL_argcheck(L, lua_isnoneornil(L, 3) || every > 0, 3, "a repeating timer needs a period > 0");
  size_t len;
  const char *data = binding_encode(L, bs, 2, "message", &len);
  lore_msg *m = msg_new(MSG_TIMER, data, len, NULL, 0);
  if (!m) return luaL_error(L, "out of memory");
  lua_pushinteger(L, start(L, secs, every, m));
  return 1;
}

/* core.timer_system(seconds, sub, ival) -> timer id: a system message of
 * subtype sub to the current actor later, with ival and, as its corr, the
 * timer's own id (so a firing can be matched to the timer that was armed). */
static int core_timer_system(lua_State *L) {
  binding_current_actor(L);
  lua_Number secs = worker_check_delay(L, 1);
  lua_Integer sub = luaL_checkinteger(L, 2);
  lua_Integer ival = luaL_checkinteger(L, 3);
  lore_msg *m = msg_new(MSG_SYSTEM, NULL, 0, NULL, 0);
  if (!m) return luaL_error(L, "out of memory");
  m->sub = (uint32_t)sub;
  m->ival = ival;
  lua_pushinteger(L, start(L, secs, 0, m));
  return 1;
}

/* core.kick(sub [, ival]): a system message of subtype sub from the current actor to
 * itself, queued now: it comes before the commands waiting in the mailbox, as the
 * actor's next turn. */
static int core_kick(lua_State *L) {
  binding_state *bs = bs_of(L);
  actor_t *a = binding_current_actor(L);
  lua_Integer sub = luaL_checkinteger(L, 1);
  lua_Integer ival = luaL_optinteger(L, 2, 0);
  lore_msg *m = msg_new(MSG_SYSTEM, NULL, 0, NULL, 0);
  if (!m) return luaL_error(L, "out of memory");
  m->sub = (uint32_t)sub;
  m->ival = ival;
  m->target.sched = m->sender.sched = bs->sched->index;
  m->target.aid = m->sender.aid = a->aid;
  actor_enqueue(a, m);
  return 0;
}

/* core.encodable(value) -> true | nil, err: whether value can travel and be
 * stored (checked before it is promised to be delivered). */
static int core_encodable(lua_State *L) {
  binding_state *bs = bs_of(L);
  luaL_checkany(L, 1);
  char err[CODEC_ERR_MAX];
  bs->buf.size = 0;
  int r = codec_encode(L, 1, luaL_optstring(L, 2, "message"), &bs->buf, err, sizeof err);
  bs->buf.size = 0;
  if (r) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* core.keep_awake(): the current actor counts as active now (an entity with
 * deliveries to redeliver is not passivated meanwhile). */
static int core_keep_awake(lua_State *L) {
  entities_touch(binding_current_actor(L));
  return 0;
}

int luaopen_lore_core_internal(lua_State *L) {
  static const luaL_Reg fns[] = {
      {"timer_start", core_timer_start}, {"timer_system", core_timer_system}, {"kick", core_kick},
      {"encodable", core_encodable},     {"keep_awake", core_keep_awake},     {NULL, NULL}};
  luaL_setfuncs(L, fns, 0);
  if (lua_getfield(L, -1, "SYS") == LUA_TTABLE) {
    lua_pushinteger(L, SYS_REDELIVER);
    lua_setfield(L, -2, "REDELIVER");
    lua_pushinteger(L, SYS_TIMER_DUE);
    lua_setfield(L, -2, "TIMER_DUE");
  }
  lua_pop(L, 1);
  return 0;
}
