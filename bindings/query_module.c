/* query_module.c: lore.query, lore.adapter, lore.projection in the application's Lua state. */
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "binding.h"
#include "codec.h"
#include "host.h"
#include "log.h"
#include "query.h"
#include "query_module.h"

#define QMOD_MT "lore.query_module"

qmod *qmod_of(lua_State *L) { return lua_touserdata(L, lua_upvalueindex(1)); }

void qmod_call(qmod *m, lore_runtime *lrt, int nargs) {
  lua_State *T = m->T;
  if (lua_pcall(T, nargs, 0, 0) != LUA_OK) {
    const char *err = lua_tostring(T, -1);
    if (lrt)
      log_error(&lrt->log, "query callback: %s", err ? err : "(an error that is not a string)");
    lua_pop(T, 1);
  }
}

int qmod_ref_fn(qmod *m, lua_State *L, int idx) {
  lua_pushvalue(L, idx);
  lua_xmove(L, m->T, 1);
  return luaL_ref(m->T, LUA_REGISTRYINDEX);
}

/* --- waiting in the application's coroutine --- */

/* qcore.token() -> a token for one wait (raises outside the application's
 * coroutine) */
static int l_token(lua_State *L) {
  qmod *m = qmod_of(L);
  app_runtime(L, m->h);
  lua_pushinteger(L, (lua_Integer)app_token(L, m->h));
  return 1;
}

/* qcore.wait(token) -> what qcore.wake(token, ...) passed */
static int l_wait(lua_State *L) {
  qmod *m = qmod_of(L);
  uint64_t token = (uint64_t)luaL_checkinteger(L, 1);
  lua_settop(L, 0);
  return app_suspend(L, m->h, token);
}

/* qcore.wake(token, ...) -> whether the application still waited for it */
static int l_wake(lua_State *L) {
  qmod *m = qmod_of(L);
  uint64_t token = (uint64_t)luaL_checkinteger(L, 1);
  int n = lua_gettop(L) - 1;
  lua_pushboolean(L, app_wake(m->h, token, L, n));
  return 1;
}

/* qcore.log(level, text): a line through the runtime's log */
static int l_log(lua_State *L) {
  qmod *m = qmod_of(L);
  int level = (int)luaL_checkinteger(L, 1);
  const char *text = luaL_checkstring(L, 2);
  lore_runtime *lrt = app_runtime(L, m->h);
  log_line(&lrt->log, level, "%s", text);
  return 0;
}

/* --- timers: qcore.after(seconds, fn) --- */

typedef struct after_job {
  qmod *m;
  lore_runtime *lrt;
  int fn_ref;
} after_job;

static void after_fired(void *ud) {
  after_job *a = ud;
  lua_State *T = a->m->T;
  query_state *qs = a->lrt->queries;
  lua_rawgeti(T, LUA_REGISTRYINDEX, a->fn_ref);
  luaL_unref(T, LUA_REGISTRYINDEX, a->fn_ref);
  if (qs && query_closing(qs))
    lua_pop(T, 1);
  else
    qmod_call(a->m, a->lrt, 0);
  free(a);
}

static void after_dropped(void *ud) {
  after_job *a = ud;
  luaL_unref(a->m->T, LUA_REGISTRYINDEX, a->fn_ref);
  free(a);
}

/* qcore.after(seconds, fn): fn() on the host loop after `seconds` (never if
 * the runtime stops first) */
static int l_after(lua_State *L) {
  qmod *m = qmod_of(L);
  double secs = luaL_checknumber(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  luaL_argcheck(L, secs >= 0 && secs < 1e9, 1, "seconds out of range");
  lore_runtime *lrt = app_runtime(L, m->h);
  after_job *a = calloc(1, sizeof *a);
  if (!a) return luaL_error(L, "out of memory");
  a->m = m;
  a->lrt = lrt;
  a->fn_ref = qmod_ref_fn(m, L, 2);
  int rc = host_after(lrt, secs, after_fired, a, after_dropped);
  if (rc) {
    after_dropped(a);
    return luaL_error(L, "%s", lore_strerror(rc));
  }
  return 0;
}

/* --- lore.adapter: the binding goes to every worker --- */

typedef struct bind_job {
  qmod *m;
  lore_runtime *lrt;
  int fn_ref;
  int waiting;
  char *error;
} bind_job;

static void bind_answered(void *ud, int status, const void *reply, size_t len) {
  bind_job *b = ud;
  if (status && !b->error) {
    b->error = len ? strndup(reply, len) : strdup(lore_strerror(status));
  }
  if (--b->waiting > 0) return;
  lua_State *T = b->m->T;
  query_state *qs = b->lrt->queries;
  if (qs && !query_closing(qs)) {
    lua_rawgeti(T, LUA_REGISTRYINDEX, b->fn_ref);
    if (b->error) {
      lua_pushnil(T);
      lua_pushstring(T, b->error);
    } else {
      lua_pushboolean(T, 1);
    }
    luaL_unref(T, LUA_REGISTRYINDEX, b->fn_ref);
    qmod_call(b->m, b->lrt, b->error ? 2 : 1);
  } else {
    luaL_unref(T, LUA_REGISTRYINDEX, b->fn_ref);
  }
  free(b->error);
  free(b);
}

/* qcore.bind_adapter(bytes, fn): every worker binds the adapter (a
 * MessagePack map, adapters.lua's bind_app); fn(true) once all have, or
 * fn(nil, err) with the first worker's error. */
static int l_bind_adapter(lua_State *L) {
  qmod *m = qmod_of(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lore_runtime *lrt = app_runtime(L, m->h);
  query_state *qs = query_state_of(lrt);
  if (!qs) return luaL_error(L, "out of memory");
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  char err[CODEC_ERR_MAX];
  if (codec_encode(L, 1, "adapter", &sb, err, sizeof err)) {
    msgpack_sbuffer_destroy(&sb);
    return luaL_error(L, "%s", err);
  }
  const char *bytes = sb.data;
  size_t len = sb.size;
  bind_job *b = calloc(1, sizeof *b);
  if (!b) {
    msgpack_sbuffer_destroy(&sb);
    return luaL_error(L, "out of memory");
  }
  b->m = m;
  b->lrt = lrt;
  int workers = lrt->rt->workers;
  b->waiting = workers + 1; /* one more: the answers wait until every ask is sent */
  b->fn_ref = qmod_ref_fn(m, L, 2);
  query_set_app_adapters(qs);
  for (int i = 1; i <= workers; i++) {
    int rc = host_ask_worker(lrt, (uint32_t)i, WORKER_ADAPTER_BIND, bytes, len, bind_answered, b);
    if (rc) bind_answered(b, rc, NULL, 0);
  }
  msgpack_sbuffer_destroy(&sb);
  if (--b->waiting > 0) return 0; /* fn runs when the last worker answers */
  /* every ask failed at once (the runtime stops): fn is never called */
  luaL_unref(m->T, LUA_REGISTRYINDEX, b->fn_ref);
  lua_pushstring(L, b->error ? b->error : "lore.adapter: no worker to bind it on");
  free(b->error);
  free(b);
  return lua_error(L);
}

/* --- opening the module --- */

static void run_embedded(lua_State *L, const char *name, int qcore, int lore) {
  if (binding_load_embedded(L, name)) lua_error(L);
  lua_pushvalue(L, qcore);
  lua_pushvalue(L, lore);
  lua_call(L, 2, 0);
}

void query_module_open(lua_State *L) {
  int lore = lua_gettop(L);
  query_cursor_register(L);
  projection_register(L);
  qmod *m = lua_newuserdatauv(L, sizeof *m, 1);
  memset(m, 0, sizeof *m);
  m->h = app_host(L);
  /* Callbacks run on a thread of their own, kept alive by the context. */
  m->T = lua_newthread(L);
  lua_setiuservalue(L, -2, 1);
  luaL_newmetatable(L, QMOD_MT);
  lua_setmetatable(L, -2);
  lua_newtable(L); /* qcore */
  int qcore = lua_gettop(L);
  static const luaL_Reg fns[] = {{"token", l_token},
                                 {"wait", l_wait},
                                 {"wake", l_wake},
                                 {"log", l_log},
                                 {"bind_adapter", l_bind_adapter},
                                 {"after", l_after},
                                 {NULL, NULL}};
  lua_pushvalue(L, -2);
  luaL_setfuncs(L, fns, 1);
  query_cursor_push_calls(L);
  projection_push_calls(L);
  run_embedded(L, "lore.query", qcore, lore);
  run_embedded(L, "lore.projection", qcore, lore);
  lua_settop(L, lore);
}
