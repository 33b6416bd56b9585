/* send.c: sending from Lua: encoding at the send site, tell/stop on refs, replies. */
#include <lauxlib.h>
#include <string.h>

#include "binding.h"
#include "codec.h"
#include "codec_small.h"
#include "entities.h"
#include "host.h"
#include "ids.h"
#include "ref.h"
#include "worker.h"

/* binding_encode without its small-value try (a caller that made it already). */
static const char *encode_general(lua_State *L, binding_state *bs, int idx, const char *root,
                                  size_t *len) {
  char err[CODEC_ERR_MAX];
  bs->buf.size = 0;
  if (codec_encode(L, idx, root, &bs->buf, err, sizeof err)) {
    bs->buf.size = 0;
    luaL_error(L, "%s", err);
  }
  *len = bs->buf.size;
  return bs->buf.data ? bs->buf.data : "";
}

const char *binding_encode(lua_State *L, binding_state *bs, int idx, const char *root,
                           size_t *len) {
  /* Most messages and answers are one number, a short string or a small flat
   * map (codec_small.h). */
  if (bs->buf.alloc < CODEC_SMALL_MAX) { /* the first use: room for one */
    static const char room[CODEC_SMALL_MAX];
    msgpack_sbuffer_write(&bs->buf, room, sizeof room); /* out of memory: no fast path */
  }
  if (bs->buf.alloc >= CODEC_SMALL_MAX &&
      (bs->buf.size = codec_encode_small(L, idx, bs->buf.data)) > 0) {
    *len = bs->buf.size;
    return bs->buf.data;
  }
  return encode_general(L, bs, idx, root, len);
}

void binding_reply(runtime_t *rt, lore_addr to, uint64_t corr, uint32_t sub, const char *data,
                   size_t len) {
  lore_msg *m = msg_new(MSG_REPLY, data, len, NULL, 0);
  if (!m) return; /* out of memory: the asker times out */
  m->sub = sub;
  m->target = to; /* an actor that asked gets it in its sysq; the host by corr */
  m->corr = corr;
  runtime_send(rt, m);
}

void binding_send(binding_state *bs, const void *refp, uint32_t kind, const char *data, size_t len,
                  uint64_t corr) {
  const lore_ref *r = refp;
  lore_msg *m = msg_new(kind, data, len, r->name_len ? r->name : NULL, r->name_len);
  if (!m) {
    luaL_error(bs->L, "out of memory");
    return;
  }
  if (!r->name_len) {
    m->target.sched = r->sched;
    m->target.aid = r->aid;
  }
  if (kind == MSG_USER) m->ival = entities_tag(bs->lrt, ref_manager(r)); /* wakes an entity */
  if (bs->cur_actor) {
    m->sender.sched = bs->sched->index;
    m->sender.aid = bs->cur_actor->aid;
  }
  m->corr = corr;
  actor_t *self = bs->cur_actor;
  if (self && !r->name_len && r->aid == self->aid && r->sched == bs->sched->index) {
    actor_enqueue(self, m); /* a tell to itself: no routing (nor lookup) needed */
    return;
  }
  runtime_send(bs->sched->rt, m);
}

static binding_state *sending_state(lua_State *L) {
  binding_state *bs = lua_touserdata(L, lua_upvalueindex(1));
  if (!bs || !bs->lrt) luaL_error(L, "the runtime is not running (call this inside lore.run)");
  return bs;
}

/* A host-side send that failed (the runtime is shutting down, say). */
static void host_sent(lua_State *L, int rc) {
  if (rc) luaL_error(L, "%s", lore_strerror(rc));
}

/* ref:tell(msg): fire and forget; the message is copied (encoded) now. */
static int ref_tell(lua_State *L) {
  binding_state *bs = lua_touserdata(L, lua_upvalueindex(1));
  /* Most tells go to the ref told last (a peer, the actor itself): that ref is kept
   * alive by upvalue 2, so no other object can have its address, and the same
   * address is that ref (whatever value carries it) without the metatable check. */
  lore_ref *r = lua_touserdata(L, 1);
  if (!r || !bs || r != bs->tell_last) {
    r = ref_check(L, 1);
    lua_copy(L, 1, lua_upvalueindex(2));
    if (bs) bs->tell_last = r;
  }
  char small[CODEC_SMALL_MAX];
  size_t len = codec_encode_small(L, 2, small); /* 0 for no value at all */
  if (!len) luaL_checkany(L, 2);
  if (!bs || !bs->lrt) sending_state(L); /* raises */
  const char *data = len ? small : encode_general(L, bs, 2, "message", &len);
  if (bs->is_host)
    host_sent(L, host_tell_encoded(bs->lrt, r, data, len));
  else
    binding_send(bs, r, MSG_USER, data, len, 0);
  return 0;
}

/* ref:stop(): a safe stop, queued behind what the actor already has. */
static int ref_stop(lua_State *L) {
  lore_ref *r = ref_check(L, 1);
  binding_state *bs = sending_state(L);
  if (bs->is_host)
    host_sent(L, host_stop(bs->lrt, r));
  else
    binding_send(bs, r, MSG_STOP, NULL, 0, 0);
  return 0;
}

/* ref:id() -> the persistence id, or nil for an address ref */
static int ref_id(lua_State *L) {
  lore_ref *r = ref_check(L, 1);
  if (!r->name_len) return 0;
  lua_pushlstring(L, r->name, r->name_len);
  return 1;
}

static int ref_ask(lua_State *L) {
  binding_state *bs = sending_state(L);
  if (!bs->is_host)
    return luaL_error(L,
                      "ref:ask is for the application script; an actor replies to "
                      "ctx.sender with tell instead");
  return host_ask(L);
}

/* The methods carry their state's binding_state as an upvalue: one lookup
 * less per send, and the same code serves the host and the workers. */
void ref_methods_register(lua_State *L, binding_state *bs) {
  ref_init(L);
  luaL_getmetatable(L, REF_METATABLE);
  lua_getfield(L, -1, "__index");
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    static const luaL_Reg methods[] = {
        {"tell", NULL}, {"ask", ref_ask}, {"stop", ref_stop}, {"id", ref_id}, {NULL, NULL}};
    luaL_newlibtable(L, methods);
    lua_pushlightuserdata(L, bs);
    luaL_setfuncs(L, methods, 1);
    lua_pushlightuserdata(L, bs);
    lua_pushnil(L); /* the ref told last (a state has one bs and one such closure) */
    if (bs) bs->tell_last = NULL;
    lua_pushcclosure(L, ref_tell, 2);
    lua_setfield(L, -2, "tell");
    lua_setfield(L, -2, "__index");
  } else {
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

/* Senders reuse their userdata: a direct-mapped table of the last refs pushed,
 * by address (a ref is immutable, so sharing one is invisible). Without it an
 * actor answering many askers made a userdata, and garbage, per ctx.sender. */
void binding_push_addr(lua_State *L, int cache, lore_addr a) {
  lua_Integer slot = (lua_Integer)((a.aid ^ ((uint64_t)a.sched << 7)) % BINDING_SENDER_CACHE) + 1;
  if (lua_rawgeti(L, cache, slot) == LUA_TUSERDATA) {
    const lore_ref *r = lua_touserdata(L, -1); /* only refs are stored here */
    if (r->sched == a.sched && r->aid == a.aid && !r->name_len) return;
  }
  lua_pop(L, 1);
  ref_push_addr(L, a.sched, a.aid);
  lua_pushvalue(L, -1);
  lua_rawseti(L, cache, slot);
}

/* lore.ref(id) -> a ref to the actor with that persistence id */
int binding_l_ref(lua_State *L) {
  size_t len;
  const char *id = luaL_checklstring(L, 1, &len);
  const char *why = binding_id_problem(L, 1);
  if (why) luaL_argerror(L, 1, lua_pushfstring(L, "a persistence id %s", why));
  ref_push_name(L, id, len);
  return 1;
}

const char *binding_id_problem(lua_State *L, int idx) {
  size_t len;
  const char *s = luaL_checklstring(L, idx, &len);
  return id_problem(s, len);
}

int worker_open_lore(lua_State *L) {
  binding_state *bs = binding_state_get(L);
  ref_methods_register(L, bs);
  lua_newtable(L);
  lua_pushcfunction(L, binding_l_ref);
  lua_setfield(L, -2, "ref");
  return 1;
}
