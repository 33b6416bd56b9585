/* actor_lua.c: actors whose behaviour is Lua: the actor_ops and the `core` table runtime.lua uses.
 */
#include <lauxlib.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "codec.h"
#include "codec_fast.h"
#include "host.h"
#include "log.h"
#include "lua_actor.h"
#include "ref.h"
#include "reload.h"
#include "worker.h"

/* The runtime record's slots read by C for a plain actor's command
 * (runtime.lua: BEH, ST, CTX), and a behaviour version's (RECEIVE, NEWER). */
enum { REC_BEH = 1, REC_ST = 2, REC_CTX = 3 };
enum { BEH_RECEIVE = 1, BEH_NEWER = 2 };

/* The error on top of the stack failed the actor: runtime.lua's `failed`
 * logs it, answers an ask in progress, and restarts the actor. */
static void actor_failed(binding_state *bs, actor_t *a) {
  lua_State *L = bs->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, bs->ref_failed);
  lua_rawgeti(L, LUA_REGISTRYINDEX, actor_rec_ref(a));
  lua_rotate(L, -3, -1); /* failed, rec, err */
  if (binding_pcall(bs, 2, 0) != LUA_OK) {
    log_error(&bs->lrt->log, "actor %llu: failure handler raised: %s", (unsigned long long)a->aid,
              lua_tostring(L, -1));
    lua_pop(L, 1);
    actor_stop(a);
  }
}

/* Calls a runtime.lua entry point with the actor's record and what the
 * caller pushed after it; a Lua error there is the actor's failure. */
static void call_entry(binding_state *bs, actor_t *a, int nargs) {
  if (binding_pcall(bs, nargs + 1, 0) != LUA_OK) actor_failed(bs, a);
}

static void undecodable(binding_state *bs, actor_t *a, lore_msg *m, const char *err) {
  log_warn(&bs->lrt->log, "actor %llu: dropped a message that does not decode: %s",
           (unsigned long long)a->aid, err);
  if (m->corr) binding_reply(a->sched->rt, m->sender, m->corr, REPLY_ERROR, err, strlen(err));
}

/* Decoding happens outside any handler's protected call: a message too big
 * for the worker's memory_limit would raise a memory error with nothing to
 * catch it, and Lua would abort the process. It runs under its own lua_pcall
 * (no budget: it is not script code). */
static int decode_step(lua_State *L) {
  binding_state *bs = lua_touserdata(L, 1);
  const lore_msg *m = lua_touserdata(L, 2);
  char *err = lua_touserdata(L, 3);
  lua_settop(L, 0);
  if (codec_decode_cached(L, &bs->strings, m->data, m->len, err, CODEC_ERR_MAX)) return 0;
  return 1;
}

/* Pushes m's decoded value and returns 0; or pushes nothing and returns -1
 * with the reason in err (CODEC_ERR_MAX bytes): malformed, or no memory. */
static int decode_message(binding_state *bs, const lore_msg *m, char *err) {
  lua_State *L = bs->L;
  /* A number, boolean or nil allocates nothing: no memory check needed. */
  if (codec_decode_scalar(L, m->data, m->len) == 0) return 0;
  int top = lua_gettop(L);
  err[0] = '\0';
  /* A decoded value takes well under 128 bytes of Lua heap per encoded byte
   * (the worst is a list of empty tables: 1 byte encoded, a 56-byte table
   * plus its 16-byte slot in the heap, before the allocator rounds up). With
   * that much room under memory_limit the decode cannot run out of memory,
   * and skips the protected call (most messages: a pcall each costs about
   * 40% of a tell). */
  if (bs->mem_limit && bs->mem_used < bs->mem_limit &&
      (bs->mem_limit - bs->mem_used) / 128 > m->len + 1024 && lua_checkstack(L, 4)) {
    if (codec_decode_cached(L, &bs->strings, m->data, m->len, err, CODEC_ERR_MAX) == 0) return 0;
    lua_settop(L, top);
    return -1;
  }
  if (!lua_checkstack(L, 4)) {
    snprintf(err, CODEC_ERR_MAX, "Lua stack overflow decoding");
    return -1;
  }
  lua_pushcfunction(L, decode_step);
  lua_pushlightuserdata(L, bs);
  lua_pushlightuserdata(L, (void *)m);
  lua_pushlightuserdata(L, err);
  int st = lua_pcall(L, 3, LUA_MULTRET, 0);
  if (st != LUA_OK || lua_gettop(L) != top + 1) {
    if (st == LUA_ERRMEM || (st != LUA_OK && !err[0]))
      snprintf(err, CODEC_ERR_MAX,
               "not enough memory to decode the message (%zu bytes; "
               "memory_limit)",
               m->len);
    lua_settop(L, top);
    return -1;
  }
  return 0;
}

/* The stack of plain_turn: the record, its behaviour version and that
 * version's receive, read once a turn. Only a hot reload changes the
 * version (turn_receive moves to the newer one), and a reload runs between
 * turns (worker_reload is a scheduler message, never inside a handler). */
enum { TURN_REC = 1, TURN_VERSION = 2, TURN_RECEIVE = 3 };

static void turn_receive(binding_state *bs) {
  lua_State *L = bs->L;
  lua_rawgeti(L, TURN_REC, REC_BEH);
  if (lua_rawgeti(L, TURN_VERSION, BEH_NEWER) != LUA_TNIL) {
    /* a hot reload replaced the behaviour: move to it first (runtime.lua) */
    lua_settop(L, TURN_REC);
    lua_rawgeti(L, LUA_REGISTRYINDEX, bs->ref_upgrade);
    lua_pushvalue(L, TURN_REC);
    binding_pcall(bs, 1, 0);
    lua_settop(L, TURN_REC);
    lua_rawgeti(L, TURN_REC, REC_BEH);
    /* the command's handler call gets a budget of its own, as before the turn */
    bs->blown = 0;
    budget_restart(bs);
  } else {
    lua_pop(L, 1);
  }
  lua_rawgeti(L, TURN_VERSION, BEH_RECEIVE);
}

/* A plain actor's command: state = receive(state, msg, ctx) or the same
 * state, without a Lua dispatch frame (this is the per-message hot path).
 * Runs inside plain_turn's protected call: a raise of the handler ends it. */
static void plain_receive(binding_state *bs, actor_t *a, lore_msg *m) {
  lua_State *L = bs->L;
  char err[CODEC_ERR_MAX];
  lua_pushvalue(L, TURN_RECEIVE);
  lua_rawgeti(L, TURN_REC, REC_ST);
  /* 5 of plain_turn's LUA_MINSTACK (20) slots are in use: the decode takes a 6th */
  if (codec_decode_scalar_in_room(L, m->data, m->len) && decode_message(bs, m, err)) {
    lua_settop(L, TURN_RECEIVE);
    undecodable(bs, a, m, err);
    return;
  }
  lua_rawgeti(L, TURN_REC, REC_CTX);
  lua_call(L, 3, 1);
  if (lua_type(L, -1) == LUA_TTABLE) lua_rawseti(L, TURN_REC, REC_ST); /* its next state */
  lua_settop(L, TURN_RECEIVE);
}

/* Sets what the core functions see of the message being handled. */
static void set_current(binding_state *bs, lore_msg *m) {
  bs->cur_sender = m->sender;
  bs->cur_corr = m->kind == MSG_USER ? m->corr : 0; /* system messages answer no ask */
  bs->cur_msg = m;
}

/* Whether m stays with the binding (stashed during its call, see core_stash). */
static int kept_after(const lore_msg *m) { return m->sub == UINT32_MAX; }

/*
 * A plain actor's commands, as many of its turn as come in a row, under one
 * protected call: a protected call costs about 150 instructions, a tenth of
 * a self tell. Each command is still a handler call of its own: the budget
 * and the watchdog's call generation restart for each (budget_restart), and
 * a raise ends this call with the failing command current, which fails that
 * command alone (plain_commands). The first command is the one the
 * scheduler handed to actor_receive; it owns that one, so its fate (kept or
 * consumed) is read by plain_commands; later ones are freed here.
 */
static int plain_turn(lua_State *L) {
  binding_state *bs = lua_touserdata(L, 1);
  actor_t *a = bs->cur_actor;
  lore_msg *m = bs->cur_msg; /* the command actor_receive was given */
  lua_settop(L, 0);
  lua_rawgeti(L, LUA_REGISTRYINDEX, actor_rec_ref(a));
  turn_receive(bs);
  plain_receive(bs, a, m);
  /* A stashed first command goes back to the scheduler's loop as it is (it
   * could come back and be freed in this turn: its fate must be read now). */
  if (kept_after(m)) return 0;
  while ((m = sched_turn_next_command(a))) {
    set_current(bs, m);
    /* (inline the test that is false for any message not tagged for an entity) */
    if (!(m->kind == MSG_USER && m->ival > 0 && entities_refuse_holder(a, m))) {
      if (!actor_is_bare(a)) entities_touch(a);
      bs->blown = 0;
      budget_restart(bs);
      plain_receive(bs, a, m);
    }
    if (!kept_after(m)) msg_free(m);
  }
  return 0;
}

/* Runs plain_turn from m (the current command); returns m's fate for the
 * scheduler: m is touched by no later command of the turn (plain_turn). */
static int plain_commands(binding_state *bs, actor_t *a, lore_msg *m) {
  lua_State *L = bs->L;
  lua_pushcfunction(L, plain_turn);
  lua_pushlightuserdata(L, bs);
  if (binding_pcall(bs, 1, 0) != LUA_OK) {
    /* the current command raised: it alone failed */
    lore_msg *failed = bs->cur_msg;
    actor_failed(bs, a);
    if (failed != m && !kept_after(failed)) msg_free(failed);
  }
  return kept_after(m) ? ACTOR_KEPT : ACTOR_CONSUMED;
}

static int actor_receive(actor_t *a, lore_msg *m) {
  binding_state *bs = a->sched->data;
  lua_State *L = bs->L;
  bs->cur_actor = a;
  bs->cur_sender = m->sender;
  bs->cur_corr = m->kind == MSG_USER ? m->corr : 0; /* system messages answer no ask */
  bs->cur_msg = m;
  int kept = ACTOR_CONSUMED;
  char err[CODEC_ERR_MAX];
  switch (m->kind) {
    case MSG_USER:
    case MSG_TIMER: {
      if (entities_refuse_holder(a, m)) break;
      if (!actor_is_bare(a)) entities_touch(a);
      if (actor_is_plain(a)) {
        kept = plain_commands(bs, a, m);
        bs->cur_actor = NULL;
        bs->cur_msg = NULL;
        return kept;
      }
      lua_rawgeti(L, LUA_REGISTRYINDEX, bs->ref_dispatch);
      lua_rawgeti(L, LUA_REGISTRYINDEX, actor_rec_ref(a));
      if (decode_message(bs, m, err)) {
        lua_pop(L, 2);
        undecodable(bs, a, m, err);
        break;
      }
      call_entry(bs, a, 1);
      break;
    }
    case MSG_STOP:
      lua_rawgeti(L, LUA_REGISTRYINDEX, bs->ref_system);
      lua_rawgeti(L, LUA_REGISTRYINDEX, actor_rec_ref(a));
      lua_pushliteral(L, "stop");
      call_entry(bs, a, 1);
      break;
    case MSG_REPLY: /* an answer to one of this actor's asks (ctx:ask) */
      lua_rawgeti(L, LUA_REGISTRYINDEX, bs->ref_system);
      lua_rawgeti(L, LUA_REGISTRYINDEX, actor_rec_ref(a));
      lua_pushliteral(L, "reply");
      lua_pushinteger(L, 0);
      lua_pushinteger(L, (lua_Integer)m->corr);
      lua_pushlightuserdata(L, m);
      call_entry(bs, a, 4);
      break;
    case MSG_SYSTEM:
      if (m->sub == SYS_PERSISTED || m->sub == SYS_DELETED) persist_completion(a, m);
      if (m->sub == SYS_PERSISTED) { /* the hot one: its own entry, its figures as arguments */
        int64_t first, ts;
        persist_written(m, &first, &ts);
        lua_rawgeti(L, LUA_REGISTRYINDEX, bs->ref_persisted);
        lua_rawgeti(L, LUA_REGISTRYINDEX, actor_rec_ref(a));
        lua_pushinteger(L, (lua_Integer)m->corr);
        lua_pushinteger(L, (lua_Integer)m->ival);
        lua_pushinteger(L, (lua_Integer)first);
        lua_pushinteger(L, (lua_Integer)ts);
        call_entry(bs, a, 4);
        break;
      }
      lua_rawgeti(L, LUA_REGISTRYINDEX, bs->ref_system);
      lua_rawgeti(L, LUA_REGISTRYINDEX, actor_rec_ref(a));
      lua_pushinteger(L, (lua_Integer)m->sub);
      lua_pushinteger(L, (lua_Integer)m->ival);
      lua_pushinteger(L, (lua_Integer)m->corr);
      lua_pushlightuserdata(L, m);
      call_entry(bs, a, 4);
      break;
    default:
      break;
  }
  if (m->sub == UINT32_MAX) /* stashed during the call (see core_stash) */
    kept = ACTOR_KEPT;
  else if (m->kind == MSG_SYSTEM && m->sub == SYS_PAGE && !m->free_ptr && recovery_keep_page(bs, m))
    kept = ACTOR_KEPT; /* the next replay page is read into it */
  bs->cur_actor = NULL;
  bs->cur_msg = NULL;
  return kept;
}

static const char overflow_text[] = "stash overflow: the actor's stash is full";

/* Tells the sender of `m` (an actor) that its message overflowed. */
static void tell_overflow(binding_state *bs, actor_t *a, lore_msg *m) {
  if (!m->sender.aid) return;
  msgpack_sbuffer *b = &bs->buf;
  b->size = 0;
  msgpack_packer pk;
  msgpack_packer_init(&pk, b, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, 3);
  msgpack_pack_str_with_body(&pk, "type", 4);
  msgpack_pack_str_with_body(&pk, "stash_overflow", 14);
  msgpack_pack_str_with_body(&pk, "error", 5);
  msgpack_pack_str_with_body(&pk, overflow_text, sizeof overflow_text - 1);
  msgpack_pack_str_with_body(&pk, "id", 2);
  const char *id = a->name_buf;
  msgpack_pack_str_with_body(&pk, id, strlen(id));
  lore_msg *t = msg_new(MSG_USER, b->data, b->size, NULL, 0);
  b->size = 0;
  if (!t) return;
  t->target = m->sender;
  t->sender.sched = a->sched->index;
  t->sender.aid = a->aid;
  runtime_send(a->sched->rt, t);
}

static void actor_overflow(actor_t *a, lore_msg *m) {
  binding_state *bs = a->sched->data;
  lua_State *L = bs->L;
  /* The overflow happens inside another actor's send: what that actor is
   * answering must survive this call. */
  actor_t *saved = bs->cur_actor;
  lore_addr saved_sender = bs->cur_sender;
  uint64_t saved_corr = bs->cur_corr;
  lore_msg *saved_msg = bs->cur_msg;
  bs->cur_corr = 0; /* a failure here answers no ask */
  bs->cur_actor = a;
  lua_rawgeti(L, LUA_REGISTRYINDEX, bs->ref_overflow);
  lua_rawgeti(L, LUA_REGISTRYINDEX, actor_rec_ref(a));
  int strategy = LUA_OK == binding_pcall(bs, 1, 1) ? (int)lua_tointeger(L, -1) : 0;
  lua_pop(L, 1);
  bs->cur_actor = saved;
  bs->cur_sender = saved_sender;
  bs->cur_corr = saved_corr;
  bs->cur_msg = saved_msg;
  /* 0: fail (the actor restarts; the message waits like the others),
   * 1: drop to dead letters, 2: answer the sender with an error. */
  if (strategy == 2) {
    if (m->corr)
      binding_reply(a->sched->rt, m->sender, m->corr, REPLY_ERROR, overflow_text,
                    sizeof overflow_text - 1);
    else
      tell_overflow(bs, a, m);
    msg_free(m);
  } else if (strategy == 1) {
    if (m->corr) { /* an asker learns why, not "no actor is running" */
      static const char e[] = "stash overflow: the message went to dead letters";
      binding_reply(a->sched->rt, m->sender, m->corr, REPLY_ERROR, e, sizeof e - 1);
      m->corr = 0;
    }
    sched_dead_letter(a->sched, m);
  } else {
    actor_requeue(a, m);
  }
}

static void actor_stopped(actor_t *a) {
  binding_state *bs = a->sched->data;
  lua_State *L = bs->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, bs->ref_stopped);
  lua_rawgeti(L, LUA_REGISTRYINDEX, actor_rec_ref(a));
  if (binding_pcall(bs, 1, 0) != LUA_OK) {
    log_warn(&bs->lrt->log, "actor %llu: on stop: %s", (unsigned long long)a->aid,
             lua_tostring(L, -1));
    lua_pop(L, 1);
  }
  luaL_unref(L, LUA_REGISTRYINDEX, actor_rec_ref(a));
  lua_actor *la = actor_lua(a);
  if (la) {
    entities_stopped(a);
    if (la->persistent) {
      recovery_permit_forget(bs->lrt, a);
      if (la->has_permit) recovery_permit_release(bs->lrt);
    }
    free(la->extra);
    free(la);
    a->data = NULL;
  }
}

void binding_system(actor_t *a, uint32_t sub) {
  lore_msg *m = msg_new(MSG_SYSTEM, NULL, 0, NULL, 0);
  if (!m) return; /* out of memory: the timeouts and the shutdown's force-stop remain */
  m->sub = sub;
  m->target.sched = a->sched->index;
  m->target.aid = a->aid;
  actor_enqueue(a, m);
}

static void actor_stop_while_held(actor_t *a) { binding_system(a, SYS_STOP_PENDING); }
static void actor_shutdown(actor_t *a) { binding_system(a, SYS_SHUTDOWN); }

static const actor_ops lua_actor_ops = {actor_receive, actor_overflow, actor_stopped,
                                        actor_stop_while_held, actor_shutdown};

void binding_io_end(actor_t *a) {
  actor_io_end(a);
  lua_actor *la = actor_persistent(a);
  if (la && la->want_io_idle && !a->pending_io && !a->dead) {
    la->want_io_idle = 0;
    binding_system(a, SYS_IO_IDLE);
  }
}

/* --- the `core` table --- */

#define bs_of worker_bs

actor_t *binding_current_actor(lua_State *L) {
  actor_t *a = worker_bs(L)->cur_actor;
  if (!a) luaL_error(L, "no actor's turn is running (a runtime call outside a handler)");
  return a;
}

actor_t *binding_current_persistent(lua_State *L, lua_actor **la) {
  actor_t *a = binding_current_actor(L);
  if (!(*la = actor_persistent(a))) luaL_error(L, "this actor is not persistent");
  return a;
}

int64_t binding_now_ms(void) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* core.actor_create(aid, id|nil, rec, plain, entity) -> true | nil, err, why.
 * On success the new actor is the current one (its spawn goes on with its
 * recovery); the caller restores the previous one with core.set_actor. A
 * persistent actor or an entity gets a lua_actor; a plain actor needs none. */
static int core_actor_create(lua_State *L) {
  binding_state *bs = bs_of(L);
  lua_Integer aid = luaL_checkinteger(L, 1);
  const char *name = luaL_optstring(L, 2, NULL);
  luaL_checktype(L, 3, LUA_TTABLE);
  int plain = lua_toboolean(L, 4), entity = lua_toboolean(L, 5);
  lua_actor *la = NULL;
  if ((!plain || entity) && !(la = calloc(1, sizeof *la))) return luaL_error(L, "out of memory");
  if (la) la->persistent = !plain;
  lua_pushvalue(L, 3);
  int ref = luaL_ref(L, LUA_REGISTRYINDEX);
  void *data;
  if (la) {
    la->ref = ref;
    data = la;
  } else {
    data = (void *)(((intptr_t)ref << 1) | 1);
  }
  actor_t *a;
  int r = actor_create(bs->sched, (uint64_t)aid, name, &lua_actor_ops, data, &a);
  if (r) {
    luaL_unref(L, LUA_REGISTRYINDEX, ref);
    free(la);
    lua_pushnil(L);
    if (r == UV_EEXIST)
      lua_pushfstring(L, "persistence id '%s' is already live (single writer)", name);
    else if (r == UV_ECANCELED)
      lua_pushliteral(L, "the runtime is shutting down");
    else
      lua_pushstring(L, uv_strerror(r));
    lua_pushstring(L, r == UV_EEXIST ? "live" : r == UV_ECANCELED ? "shutdown" : "script");
    return 3;
  }
  bs->cur_actor = a;
  lua_pushboolean(L, 1);
  return 1;
}

/* core.set_actor(aid): makes the actor `aid` of this worker (0: none) the
 * current one again, after a spawn inside another actor's turn. */
static int core_set_actor(lua_State *L) {
  binding_state *bs = bs_of(L);
  lua_Integer aid = luaL_checkinteger(L, 1);
  bs->cur_actor = aid ? sched_find(bs->sched, (uint64_t)aid) : NULL;
  return 0;
}

/* core.current_rec() -> the runtime record of the actor whose turn this is,
 * or nil (ctx's public fields and the ownership check read it) */
static int core_current_rec(lua_State *L) {
  actor_t *a = bs_of(L)->cur_actor;
  if (!a) return 0;
  lua_rawgeti(L, LUA_REGISTRYINDEX, actor_rec_ref(a));
  return 1;
}

/* core.current_aid() -> the aid whose turn this is, or 0 */
static int core_current_aid(lua_State *L) {
  binding_state *bs = bs_of(L);
  lua_pushinteger(L, bs->cur_actor ? (lua_Integer)bs->cur_actor->aid : 0);
  return 1;
}

/* core.entity_ref(manager, id) -> the ref of an entity (valid across passivation) */
static int core_entity_ref(lua_State *L) {
  size_t mlen, len;
  const char *manager = luaL_checklstring(L, 1, &mlen);
  const char *id = luaL_checklstring(L, 2, &len);
  ref_push_entity(L, manager, mlen, id, len);
  return 1;
}

/* core.addr_ref(aid [, sched]) -> the ref for aid on sched (default: this scheduler) */
static int core_addr_ref(lua_State *L) {
  binding_state *bs = bs_of(L);
  uint32_t sched = (uint32_t)luaL_optinteger(L, 2, bs->sched->index);
  ref_push_addr(L, sched, (uint64_t)luaL_checkinteger(L, 1));
  return 1;
}

/* Remembers the last asks answered on this worker: an ask whose command
 * failed to persist is answered with the error unless the actor answered it
 * itself (in a hook or a defer). */
static void answered(binding_state *bs, uint64_t corr) {
  bs->answered[bs->answered_next++ % ANSWERED_RING] = corr;
}

/* core.reply(value) answers the message being handled (no-op for a tell). */
static int core_reply(lua_State *L) {
  binding_state *bs = bs_of(L);
  if (!bs->cur_corr) return 0;
  size_t len;
  const char *data = binding_encode(L, bs, 1, "reply", &len);
  binding_reply(bs->sched->rt, bs->cur_sender, bs->cur_corr, REPLY_VALUE, data, len);
  answered(bs, bs->cur_corr);
  return 0;
}

/* core.was_answered(corr) -> whether this worker answered that ask lately */
static int core_was_answered(lua_State *L) {
  binding_state *bs = bs_of(L);
  uint64_t corr = (uint64_t)luaL_checkinteger(L, 1);
  int found = 0;
  for (int i = 0; i < ANSWERED_RING && !found; i++) found = bs->answered[i] == corr;
  lua_pushboolean(L, found);
  return 1;
}

static lua_Integer start_timer(lua_State *L, lua_Number secs, lore_msg *m);

/* Sends the error `err` (any Lua value) to an asker: a string as its text; any
 * other value as {text, value}, so a Lua asker gets it intact (a table stays
 * a table) and a C one its text. */
static void reply_error_value(lua_State *L, binding_state *bs, int idx, lore_addr to,
                              uint64_t corr) {
  idx = lua_absindex(L, idx);
  size_t len;
  if (lua_type(L, idx) == LUA_TSTRING) {
    const char *text = lua_tolstring(L, idx, &len);
    binding_reply(bs->sched->rt, to, corr, REPLY_ERROR, text, len);
    return;
  }
  const char *text = luaL_tolstring(L, idx, &len); /* honours __tostring */
  lua_createtable(L, 2, 0);
  lua_pushvalue(L, -2);
  lua_rawseti(L, -2, 1);
  lua_pushvalue(L, idx);
  lua_rawseti(L, -2, 2);
  char err[CODEC_ERR_MAX];
  bs->buf.size = 0;
  if (codec_encode(L, -1, "error", &bs->buf, err, sizeof err) == 0)
    binding_reply(bs->sched->rt, to, corr, REPLY_RAISED, bs->buf.data, bs->buf.size);
  else /* a value that cannot travel (a function): its text does */
    binding_reply(bs->sched->rt, to, corr, REPLY_ERROR, text, len);
  bs->buf.size = 0;
  lua_pop(L, 2);
}

/* core.reply_error(err): an ask in progress fails with err (any value). */
static int core_reply_error(lua_State *L) {
  binding_state *bs = bs_of(L);
  luaL_checkany(L, 1);
  if (!bs->cur_corr) return 0;
  reply_error_value(L, bs, 1, bs->cur_sender, bs->cur_corr);
  answered(bs, bs->cur_corr);
  bs->cur_corr = 0; /* answered */
  return 0;
}

/* core.reply_error_taken(): the current ask is answered elsewhere (a
 * reply_later handle): nothing in this turn answers it any more. */
static int core_reply_error_taken(lua_State *L) {
  bs_of(L)->cur_corr = 0;
  return 0;
}

/* core.reply_to(sched, aid, corr, ok, value): answers an ask later (a
 * ctx:reply_later handle): with the value, or (ok false) with it as error. */
static int core_reply_to(lua_State *L) {
  binding_state *bs = bs_of(L);
  lore_addr to = {(uint32_t)luaL_checkinteger(L, 1), (uint64_t)luaL_checkinteger(L, 2)};
  uint64_t corr = (uint64_t)luaL_checkinteger(L, 3);
  int ok = lua_toboolean(L, 4);
  luaL_checkany(L, 5);
  if (!corr) return 0;
  if (ok) {
    size_t len;
    const char *data = binding_encode(L, bs, 5, "reply", &len);
    binding_reply(bs->sched->rt, to, corr, REPLY_VALUE, data, len);
  } else {
    reply_error_value(L, bs, 5, to, corr);
  }
  answered(bs, corr);
  return 0;
}

/* core.ask(ref, msg, timeout) -> corr, timer id: sends msg to ref as an ask
 * of the current actor; the answer (a MSG_REPLY with corr) or, after
 * timeout seconds, SYS_ASK_TIMEOUT (ival: corr) comes to it as a system
 * message. */
static int core_ask(lua_State *L) {
  binding_state *bs = bs_of(L);
  binding_current_actor(L);
  lore_ref *r = ref_check(L, 1);
  luaL_checkany(L, 2);
  lua_Number secs = worker_check_delay(L, 3);
  uint64_t corr = runtime_new_corr(bs->sched->rt);
  size_t len;
  const char *data = binding_encode(L, bs, 2, "message", &len);
  lore_msg *t = msg_new(MSG_SYSTEM, NULL, 0, NULL, 0);
  if (!t) return luaL_error(L, "out of memory");
  t->sub = SYS_ASK_TIMEOUT;
  t->ival = (int64_t)corr;
  lua_Integer timer = start_timer(L, secs, t);
  binding_send(bs, r, MSG_USER, data, len, corr);
  lua_pushinteger(L, (lua_Integer)corr);
  lua_pushinteger(L, timer);
  return 2;
}

/* core.notify(ref, sub [, value [, ival]]): a system message of subtype sub
 * (SYS_WATCH and the like) to ref, from the current actor (if any), carrying
 * value (encoded) and the integer ival: it goes before the target's commands
 * and reaches it even while its mailbox is held. */
static int core_notify(lua_State *L) {
  binding_state *bs = bs_of(L);
  lore_ref *r = ref_check(L, 1);
  lua_Integer sub = luaL_checkinteger(L, 2);
  size_t len = 0;
  const char *data = lua_isnoneornil(L, 3) ? NULL : binding_encode(L, bs, 3, "notice", &len);
  lore_msg *m = msg_new(MSG_SYSTEM, data, len, r->name_len ? r->name : NULL, r->name_len);
  if (!m) return luaL_error(L, "out of memory");
  m->sub = (uint32_t)sub;
  m->ival = luaL_optinteger(L, 4, 0);
  if (!r->name_len) {
    m->target.sched = r->sched;
    m->target.aid = r->aid;
  }
  if (bs->cur_actor) {
    m->sender.sched = bs->sched->index;
    m->sender.aid = bs->cur_actor->aid;
  }
  runtime_send(bs->sched->rt, m);
  return 0;
}

/* core.msg_value(mptr) -> the value a system message carries, or nil */
static int core_msg_value(lua_State *L) {
  lore_msg *m = lua_touserdata(L, 1);
  luaL_argcheck(L, m != NULL, 1, "not a message");
  char err[CODEC_ERR_MAX];
  if (!m->len || codec_decode(L, m->data, m->len, err, sizeof err)) return 0;
  return 1;
}

/* core.reply_value(mptr) -> true, value | false, err: what a MSG_REPLY says */
static int core_reply_value(lua_State *L) {
  lore_msg *m = lua_touserdata(L, 1);
  luaL_argcheck(L, m && m->kind == MSG_REPLY, 1, "not a reply");
  char err[CODEC_ERR_MAX];
  if (m->sub == REPLY_VALUE) {
    lua_pushboolean(L, 1);
    if (m->len == 0)
      lua_pushnil(L);
    else if (codec_decode(L, m->data, m->len, err, sizeof err)) {
      lua_pop(L, 1);
      lua_pushboolean(L, 0);
      lua_pushstring(L, err);
    }
    return 2;
  }
  lua_pushboolean(L, 0);
  if (m->sub == REPLY_RAISED && codec_decode(L, m->data, m->len, err, sizeof err) == 0) {
    lua_rawgeti(L, -1, 2);
    lua_remove(L, -2);
  } else {
    lua_pushlstring(L, m->data, m->len);
  }
  return 2;
}

/* core.current() -> sender_sched, sender_aid, corr: saved with a persist so
 * its callback replies to the command that issued it. */
static int core_current(lua_State *L) {
  binding_state *bs = bs_of(L);
  lua_pushinteger(L, bs->cur_sender.sched);
  lua_pushinteger(L, (lua_Integer)bs->cur_sender.aid);
  lua_pushinteger(L, (lua_Integer)bs->cur_corr);
  return 3;
}

static int core_set_current(lua_State *L) {
  binding_state *bs = bs_of(L);
  bs->cur_sender.sched = (uint32_t)luaL_checkinteger(L, 1);
  bs->cur_sender.aid = (uint64_t)luaL_checkinteger(L, 2);
  bs->cur_corr = (uint64_t)luaL_checkinteger(L, 3);
  return 0;
}

/* core.sender() -> the current message's sender ref, or nil */
static int core_sender(lua_State *L) {
  binding_state *bs = bs_of(L);
  if (!bs->cur_sender.aid) return 0;
  binding_push_addr(L, lua_upvalueindex(1), bs->cur_sender);
  return 1;
}

/* core.stop(aid): only the current actor may stop itself. */
static int core_stop(lua_State *L) {
  actor_t *a = binding_current_actor(L);
  if ((uint64_t)luaL_checkinteger(L, 1) != a->aid)
    return luaL_error(L, "an actor can only stop itself here");
  actor_stop(a);
  return 0;
}

/* core.stash(): keep the message being handled in the user stash. */
static int core_stash(lua_State *L) {
  binding_state *bs = bs_of(L);
  actor_t *a = binding_current_actor(L);
  lore_msg *m = bs->cur_msg;
  if (!m || (m->kind != MSG_USER && m->kind != MSG_TIMER))
    return luaL_error(L, "ctx:stash(): there is no command being received to stash");
  if (m->sub == UINT32_MAX) return 0; /* already stashed */
  if (actor_stash(a, m)) return luaL_error(L, "out of memory");
  m->sub = UINT32_MAX; /* actor_receive sees it and keeps m */
  return 0;
}

static int core_unstash_all(lua_State *L) {
  actor_t *a = binding_current_actor(L);
  /* Stashed messages come back as plain user messages. */
  for (lore_msg *m = a->stash ? a->stash->head : NULL; m; m = m->next) m->sub = 0;
  actor_unstash_all(a);
  return 0;
}

static int core_hold(lua_State *L) {
  actor_hold(binding_current_actor(L));
  return 0;
}

static int core_release(lua_State *L) {
  actor_release(binding_current_actor(L));
  return 0;
}

static int core_set_capacity(lua_State *L) {
  actor_t *a = binding_current_actor(L);
  lua_Integer n = luaL_checkinteger(L, 1);
  actor_set_hold_capacity(a, n > 0 ? (size_t)n : 0);
  return 0;
}

typedef struct timer_ud {
  binding_state *bs;
  uint64_t id;
  lore_msg *m;
} timer_ud;

/* Like an actor's own timers (internal_lua.c), a runtime timer (an ask's
 * timeout, a restart, a recovery's deadline) of an actor that has stopped
 * or is stopping has nobody to tell: it ends silently, not as a dead letter. */
static void timer_fire(void *p) {
  timer_ud *t = p;
  idmap_remove(&t->bs->timers, t->id);
  actor_t *a = sched_find(t->bs->sched, t->m->target.aid);
  if (a && !a->dead && !a->stopping)
    actor_enqueue(a, t->m);
  else
    msg_free(t->m);
  free(t);
}

static void timer_drop(void *p) {
  timer_ud *t = p;
  idmap_remove(&t->bs->timers, t->id);
  msg_free(t->m);
  free(t);
}

/* Starts a timer that sends m to the current actor after `secs`. */
static lua_Integer start_timer(lua_State *L, lua_Number secs, lore_msg *m) {
  binding_state *bs = bs_of(L);
  actor_t *a = bs->cur_actor;
  timer_ud *t = malloc(sizeof *t);
  if (!t) {
    msg_free(m);
    return luaL_error(L, "out of memory");
  }
  m->target.sched = m->sender.sched = bs->sched->index;
  m->target.aid = m->sender.aid = a->aid;
  t->bs = bs;
  t->id = ++bs->next_timer;
  t->m = m;
  uint64_t id = t->id;
  int rc = worker_timer_arm(bs, id, (uint64_t)(secs * 1000.0 + 0.5), timer_fire, timer_drop, t);
  if (rc)
    return luaL_error(L, rc == -1 ? "cannot start a timer (scheduler closing)" : "out of memory");
  return (lua_Integer)id;
}

/* core.schedule_system(seconds, sub [, ival]): a runtime-internal timer (a
 * payload-less system message of that subtype to the current actor). */
static int core_schedule_system(lua_State *L) {
  binding_current_actor(L);
  lua_Number secs = worker_check_delay(L, 1);
  lua_Integer sub = luaL_checkinteger(L, 2);
  lua_Integer ival = luaL_optinteger(L, 3, 0);
  lore_msg *m = msg_new(MSG_SYSTEM, NULL, 0, NULL, 0);
  if (!m) return luaL_error(L, "out of memory");
  m->sub = (uint32_t)sub;
  m->ival = ival;
  lua_pushinteger(L, start_timer(L, secs, m));
  return 1;
}

static int core_cancel(lua_State *L) {
  binding_state *bs = bs_of(L);
  sched_timer *h = idmap_get(&bs->timers, (uint64_t)luaL_checkinteger(L, 1));
  if (h) sched_timer_cancel(h);
  lua_pushboolean(L, h != NULL);
  return 1;
}

static int core_log(lua_State *L) {
  int level = (int)luaL_checkinteger(L, 1);
  const char *text = luaL_checkstring(L, 2);
  log_line(&bs_of(L)->lrt->log, level, "%s", text);
  return 0;
}

static int core_worker(lua_State *L) {
  binding_state *bs = bs_of(L);
  lua_pushinteger(L, bs->sched->index);
  lua_pushinteger(L, bs->sched->rt->workers);
  return 2;
}

/* core.spawn_remote(sched, aid, spec): spawn on another worker (a child
 * whose id lives there); spec is runtime.lua's {behaviour, opts, manager,
 * family}; errors are logged there. */
static int core_spawn_remote(lua_State *L) {
  binding_state *bs = bs_of(L);
  uint32_t target = (uint32_t)luaL_checkinteger(L, 1);
  lua_Integer aid = luaL_checkinteger(L, 2);
  luaL_checktype(L, 3, LUA_TTABLE);
  size_t len;
  const char *data = binding_encode(L, bs, 3, "spawn options", &len);
  lore_msg *m = msg_new(MSG_SPAWN, data, len, NULL, 0);
  if (!m) return luaL_error(L, "out of memory");
  m->target.sched = target;
  m->ival = aid;
  runtime_reserve(bs->sched->rt); /* alive from now: see runtime_reserve */
  runtime_send(bs->sched->rt, m);
  return 0;
}

/* A MSG_SPAWN whose sub is this carries a child spawned with opts = { id = ID }
 * and its parent's M.supervision absent (most children): the behaviour's name,
 * the id and the parent's ref as bytes (core_spawn_remote_id), not a MessagePack
 * spec. Encoding and decoding that spec cost more than the spawn's message. */
#define SPAWN_BY_ID 1

typedef struct spawn_by_id_hdr {
  uint32_t behaviour_len, id_len, parent_len;
} spawn_by_id_hdr;

/* core.spawn_remote_id(sched, aid, behaviour, id, parent): core.spawn_remote
 * with the spec { behaviour, { id = id }, false, parent, false }. */
static int core_spawn_remote_id(lua_State *L) {
  binding_state *bs = bs_of(L);
  uint32_t target = (uint32_t)luaL_checkinteger(L, 1);
  lua_Integer aid = luaL_checkinteger(L, 2);
  luaL_checktype(L, 3, LUA_TSTRING);
  luaL_checktype(L, 4, LUA_TSTRING);
  size_t blen, ilen;
  const char *behaviour = lua_tolstring(L, 3, &blen), *id = lua_tolstring(L, 4, &ilen);
  char parent[REF_SERIALIZED_MAX];
  size_t plen = ref_serialize(ref_check(L, 5), parent, sizeof parent);
  if (!plen || blen > UINT32_MAX || ilen > UINT32_MAX)
    return luaL_error(L, "ctx:spawn: the child's names are too long");
  spawn_by_id_hdr h = {(uint32_t)blen, (uint32_t)ilen, (uint32_t)plen};
  lore_msg *m = msg_new(MSG_SPAWN, NULL, sizeof h + blen + ilen + plen, NULL, 0);
  if (!m) return luaL_error(L, "out of memory");
  char *p = m->data;
  memcpy(p, &h, sizeof h);
  memcpy(p += sizeof h, behaviour, blen);
  memcpy(p += blen, id, ilen);
  memcpy(p + ilen, parent, plen);
  m->sub = SPAWN_BY_ID;
  m->target.sched = target;
  m->ival = aid;
  runtime_reserve(bs->sched->rt); /* alive from now: see runtime_reserve */
  runtime_send(bs->sched->rt, m);
  return 0;
}

/* Pushes the arguments R.spawn takes for a SPAWN_BY_ID message: the
 * behaviour's name, opts = { id = ID }, the parent's ref as its bytes and
 * the child's own ref,
 * flat (no spec table to make and take apart; R.spawn makes one ref for a
 * run of children of the same parent); 0, or -1 (nothing pushed, err set)
 * when its bytes are malformed. */
static int push_spawn_by_id(lua_State *L, const lore_msg *m, char *err) {
  spawn_by_id_hdr h;
  if (m->len < sizeof h) goto malformed;
  memcpy(&h, m->data, sizeof h);
  if ((uint64_t)h.behaviour_len + h.id_len + h.parent_len != m->len - sizeof h) goto malformed;
  const char *p = m->data + sizeof h;
  lua_pushlstring(L, p, h.behaviour_len);
  lua_createtable(L, 0, 1);
  lua_pushlstring(L, p + h.behaviour_len, h.id_len);
  lua_setfield(L, -2, "id");
  const char *parent = p + h.behaviour_len + h.id_len;
  if (!ref_serialized_valid(parent, h.parent_len)) {
    lua_pop(L, 2);
    goto malformed;
  }
  lua_pushlstring(L, parent, h.parent_len);
  /* the child's self, by its id (checked by the parent's core.spawn_slot) */
  ref_push_name(L, p + h.behaviour_len, h.id_len);
  return 0;
malformed:
  snprintf(err, CODEC_ERR_MAX, "a malformed spawn request");
  return -1;
}

static int core_sched_for(lua_State *L) {
  binding_state *bs = bs_of(L);
  size_t len;
  const char *id = luaL_checklstring(L, 1, &len);
  lua_pushinteger(L, runtime_sched_for_name(bs->sched->rt, id));
  return 1;
}

static int core_new_aid(lua_State *L) {
  binding_state *bs = bs_of(L);
  lua_pushinteger(L, (lua_Integer)runtime_new_aid(bs->sched->rt));
  return 1;
}

/* core.spawn_slot(id|nil) -> aid, here, target[, ref] | nil, why: a new
 * actor id for a child of the current actor, whether the child lives on this
 * worker (an id's worker is fixed by its hash; a child without one stays
 * here), that worker, and for an id the child's ref by it (what lore.ref(id)
 * gives, made here: the id is checked once); nil and why when id is not a
 * valid id. One call where ctx:spawn made five. */
static int core_spawn_slot(lua_State *L) {
  binding_state *bs = bs_of(L);
  uint32_t here = bs->sched->index, target = here;
  if (!lua_isnoneornil(L, 1)) {
    const char *why = binding_id_problem(L, 1);
    if (why) {
      lua_pushnil(L);
      lua_pushstring(L, why);
      return 2;
    }
    target = runtime_sched_for_name(bs->sched->rt, lua_tostring(L, 1));
  }
  lua_pushinteger(L, (lua_Integer)runtime_new_aid(bs->sched->rt));
  lua_pushboolean(L, target == here);
  lua_pushinteger(L, target);
  if (lua_isnoneornil(L, 1)) return 3;
  size_t len;
  const char *id = lua_tolstring(L, 1, &len);
  ref_push_name(L, id, len);
  return 4;
}

/* core.ref_of_bytes(bytes) -> the ref whose serialized form bytes is (a
 * spawn by id's parent: push_spawn_by_id checked them) */
static int core_ref_of_bytes(lua_State *L) {
  size_t len;
  const char *bytes = luaL_checklstring(L, 1, &len);
  if (ref_push_serialized(L, bytes, len)) return luaL_error(L, "not a serialized ref");
  return 1;
}

/* core.script_dirs() -> { dir, ... } from lore.configure's `scripts` */
static int core_script_dirs(lua_State *L) {
  binding_state *bs = bs_of(L);
  lore_settings *c = &bs->lrt->cfg;
  lua_createtable(L, c->nscripts, 0);
  for (int i = 0; i < c->nscripts; i++) {
    lua_pushstring(L, c->scripts[i]);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

/* core.check_id(id) -> true | nil, why */
static int core_check_id(lua_State *L) {
  const char *why = binding_id_problem(L, 1);
  if (why) {
    lua_pushnil(L);
    lua_pushstring(L, why);
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* core.now_mono() -> seconds of a monotonic clock (back-off, restart windows) */
static int core_now_mono(lua_State *L) {
  lua_pushnumber(L, (lua_Number)uv_hrtime() / 1e9);
  return 1;
}

static int core_now_ms(lua_State *L) {
  lua_pushinteger(L, binding_now_ms());
  return 1;
}

static int core_shutting_down(lua_State *L) {
  lua_pushboolean(L, bs_of(L)->sched->shutting_down);
  return 1;
}

/* core.nparams(f) -> how many fixed parameters the Lua function f takes
 * (a vararg function counts as many); C functions count as many. */
static int core_nparams(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_Debug ar;
  lua_pushvalue(L, 1);
  lua_getinfo(L, ">u", &ar);
  lua_pushinteger(L, ar.isvararg || lua_iscfunction(L, 1) ? 255 : ar.nparams);
  return 1;
}

/* core.native(name) -> the open function of a native module the host
 * preloaded for behaviour scripts, or nil */
static int core_native(lua_State *L) {
  binding_state *bs = bs_of(L);
  const char *name = luaL_checkstring(L, 1);
  for (int i = 0; i < bs->lrt->npreloads; i++) {
    if (strcmp(bs->lrt->preloads[i].name, name) == 0) {
      lua_pushcfunction(L, bs->lrt->preloads[i].open);
      return 1;
    }
  }
  return 0;
}

static void set_int(lua_State *L, const char *k, lua_Integer v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, k);
}

int luaopen_lore_core(lua_State *L) {
  static const luaL_Reg fns[] = {{"actor_create", core_actor_create},
                                 {"set_actor", core_set_actor},
                                 {"current_aid", core_current_aid},
                                 {"current_rec", core_current_rec},
                                 {"addr_ref", core_addr_ref},
                                 {"entity_ref", core_entity_ref},
                                 {"reply", core_reply},
                                 {"current", core_current},
                                 {"reply_error", core_reply_error},
                                 {"reply_to", core_reply_to},
                                 {"reply_error_taken", core_reply_error_taken},
                                 {"ask", core_ask},
                                 {"reply_value", core_reply_value},
                                 {"notify", core_notify},
                                 {"msg_value", core_msg_value},
                                 {"was_answered", core_was_answered},
                                 {"set_current", core_set_current},
                                 {"stop", core_stop},
                                 {"stash", core_stash},
                                 {"unstash_all", core_unstash_all},
                                 {"hold", core_hold},
                                 {"release", core_release},
                                 {"set_capacity", core_set_capacity},
                                 {"schedule_system", core_schedule_system},
                                 {"cancel", core_cancel},
                                 {"log", core_log},
                                 {"worker", core_worker},
                                 {"spawn_remote", core_spawn_remote},
                                 {"spawn_remote_id", core_spawn_remote_id},
                                 {"sched_for", core_sched_for},
                                 {"new_aid", core_new_aid},
                                 {"spawn_slot", core_spawn_slot},
                                 {"ref_of_bytes", core_ref_of_bytes},
                                 {"script_dirs", core_script_dirs},
                                 {"check_id", core_check_id},
                                 {"now_mono", core_now_mono},
                                 {"now_ms", core_now_ms},
                                 {"shutting_down", core_shutting_down},
                                 {"nparams", core_nparams},
                                 {"native", core_native},
                                 {NULL, NULL}};
  luaL_newlib(L, fns);
  lua_createtable(L, BINDING_SENDER_CACHE, 0); /* binding_push_addr's refs */
  lua_pushcclosure(L, core_sender, 1);
  lua_setfield(L, -2, "sender");
  binding_push_type(L);
  lua_setfield(L, -2, "type");
  binding_push_budget_calls(L);
  reload_push_core_calls(L);
  luaopen_lore_core_persist(L);
  luaopen_lore_core_snapshot(L);
  luaopen_lore_core_recovery(L);
  luaopen_lore_core_recovery_deadline(L);
  luaopen_lore_core_adapters(L);
  lua_createtable(L, 0, 16);
  set_int(L, "RESTART", SYS_RESTART);
  set_int(L, "SHUTDOWN", SYS_SHUTDOWN);
  set_int(L, "STOP_PENDING", SYS_STOP_PENDING);
  set_int(L, "PERSISTED", SYS_PERSISTED);
  set_int(L, "DELETED", SYS_DELETED);
  set_int(L, "PAGE", SYS_PAGE);
  set_int(L, "RECOVERY_TIMEOUT", SYS_RECOVERY_TIMEOUT);
  set_int(L, "RESTART_RECOVERY", SYS_RESTART_RECOVERY);
  set_int(L, "SNAP_SAVED", SYS_SNAP_SAVED);
  set_int(L, "SNAP_LOADED", SYS_SNAP_LOADED);
  set_int(L, "SNAP_DELETED", SYS_SNAP_DELETED);
  set_int(L, "RECOVERY_PERMIT", SYS_RECOVERY_PERMIT);
  set_int(L, "IO_IDLE", SYS_IO_IDLE);
  set_int(L, "ASK_TIMEOUT", SYS_ASK_TIMEOUT);
  set_int(L, "WATCH", SYS_WATCH);
  set_int(L, "UNWATCH", SYS_UNWATCH);
  set_int(L, "TERMINATED", SYS_TERMINATED);
  set_int(L, "CHILD_FAILED", SYS_CHILD_FAILED);
  set_int(L, "CHILD_STOPPED", SYS_CHILD_STOPPED);
  lua_setfield(L, -2, "SYS");
  luaopen_lore_core_internal(L); /* adds its calls and its SYS subtypes */
  lua_createtable(L, 0, 4);
  set_int(L, "JOURNAL_EREJECTED", JOURNAL_EREJECTED);
  set_int(L, "SNAPSHOT_ENOTFOUND", SNAPSHOT_ENOTFOUND);
  lua_setfield(L, -2, "E");
  return 1;
}

/* --- scheduler-level messages on a worker --- */

/* The Lore code of a failed spawn, from runtime.lua's reason. */
static int spawn_code(const char *why) {
  if (!why) return LORE_ESCRIPT;
  if (strcmp(why, "nobehaviour") == 0) return LORE_ENOBEHAVIOUR;
  if (strcmp(why, "live") == 0) return LORE_ELIVE;
  if (strcmp(why, "shutdown") == 0) return LORE_ESHUTDOWN;
  return LORE_ESCRIPT;
}

/* A hot reload's phase on this worker (runtime.lua's R.reload), between
 * actors' turns: answered with the number switched, or the load error. */
static void worker_reload(sched_t *s, lore_msg *m) {
  binding_state *bs = s->data;
  lua_State *L = bs->L;
  static const char *const phases[] = {"", "prepare", "commit", "abort"};
  int top = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, bs->ref_reload);
  lua_pushstring(L, phases[m->sub]);
  lua_pushlstring(L, m->data, m->len);
  int ok = binding_pcall(bs, 2, 2) == LUA_OK && lua_toboolean(L, -2);
  size_t len = 0;
  const char *err = ok ? NULL : lua_tolstring(L, -1, &len);
  if (!ok && !err) err = "the reload failed", len = strlen(err);
  binding_reply(s->rt, m->sender, m->corr, ok ? REPLY_VALUE : REPLY_ERROR, ok ? NULL : err,
                ok ? 0 : len);
  lua_settop(L, top);
}

/* MSG_SPAWN: payload {behaviour, opts} (or SPAWN_BY_ID's bytes), ival = aid; the outcome goes back
 * to whoever asked (host_spawn_answer: a waiting lore_spawn, or a reply). MSG_SYSTEM: a request of
 * the host's (host.h, WORKER_*). */
int worker_sched_message(sched_t *s, lore_msg *m) {
  binding_state *bs = s->data;
  lua_State *L = bs->L;
  if (m->kind == MSG_SYSTEM && m->sub >= WORKER_RELOAD_PREPARE && m->sub <= WORKER_RELOAD_ABORT) {
    worker_reload(s, m);
    return ACTOR_CONSUMED;
  }
  if (m->kind == MSG_SYSTEM && (m->sub == WORKER_ADAPTER_BIND || m->sub == WORKER_ADAPT_PAGE))
    return adapters_worker_message(s, m);
  if (m->kind != MSG_SPAWN) return ACTOR_CONSUMED;
  char err[CODEC_ERR_MAX];
  int ok = 0, code = LORE_ESCRIPT;
  bs->cur_actor = NULL;
  bs->cur_sender = m->sender;
  bs->cur_corr = 0;
  int top = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, bs->ref_spawn);
  lua_pushinteger(L, (lua_Integer)m->ival);
  /* (a spec of a few small values: no memory_limit check, as decode_message
   * makes for a big one) */
  int by_id = m->sub == SPAWN_BY_ID;
  if (by_id ? push_spawn_by_id(L, m, err) : decode_message(bs, m, err)) {
    lua_settop(L, top);
    lua_pushstring(L, err);
  } else if (binding_pcall(bs, by_id ? 5 : 2, 3) == LUA_OK) {
    ok = lua_toboolean(L, -3);
    if (!ok) code = spawn_code(lua_tostring(L, -1));
    lua_pop(L, 1);
    lua_remove(L, -2); /* the message (or nil) stays */
  }
  bs->cur_actor = NULL;
  /* The spawner reserved this actor; actor_create took the reservation over
   * (counting it once more), or the spawn failed: one reservation goes. */
  runtime_unreserve(s->rt);
  const char *text = lua_tostring(L, -1);
  if (!ok) log_debug(&bs->lrt->log, "spawn failed: %s", text ? text : "?");
  if (!ok && !m->corr && !m->ptr) log_warn(&bs->lrt->log, "spawn failed: %s", text ? text : "?");
  host_spawn_answer(s->rt, m, ok ? 0 : code, ok ? NULL : text);
  lua_settop(L, top);
  return ACTOR_CONSUMED;
}

/* A watch of an actor that is not running: the watcher learns at once that
 * it has ended ({ref =, reason = "stopped"}, ref as the watch named it). */
static void watch_missed(sched_t *s, lore_msg *m) {
  if (!m->sender.aid) return;
  char bytes[REF_SERIALIZED_MAX];
  size_t n;
  if (m->name) {
    size_t len = strlen(m->name);
    if (len + 1 > sizeof bytes) return;
    bytes[0] = 2;
    memcpy(bytes + 1, m->name, len);
    n = len + 1;
  } else {
    lore_ref r = {.sched = m->target.sched, .aid = m->target.aid};
    if (!(n = ref_serialize(&r, bytes, sizeof bytes))) return;
  }
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  msgpack_packer pk;
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, 2);
  msgpack_pack_str_with_body(&pk, "ref", 3);
  msgpack_pack_ext(&pk, n, REF_EXT_TYPE);
  msgpack_pack_ext_body(&pk, bytes, n);
  msgpack_pack_str_with_body(&pk, "reason", 6);
  msgpack_pack_str_with_body(&pk, "stopped", 7);
  lore_msg *t = msg_new(MSG_SYSTEM, sb.data, sb.size, NULL, 0);
  msgpack_sbuffer_destroy(&sb);
  if (!t) return;
  t->sub = SYS_TERMINATED;
  t->target = m->sender;
  runtime_send(s->rt, t);
}

void worker_dead_letter(sched_t *s, lore_msg *m) {
  /* (an entity that could not wake up lands here too: its asker learns it) */
  if (m->kind == MSG_SYSTEM && m->sub == SYS_WATCH) watch_missed(s, m);
  if (m->corr && m->kind == MSG_USER) {
    static const char e[] = "dead letter: no actor is running at that ref";
    binding_reply(s->rt, m->sender, m->corr, REPLY_DEAD, e, sizeof e - 1);
  }
  /* A recovery permit must never be lost with its actor. */
  if (m->kind == MSG_SYSTEM && m->sub == SYS_RECOVERY_PERMIT) {
    binding_state *bs = s->data;
    recovery_permit_release(bs->lrt);
  }
}
