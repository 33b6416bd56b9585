/* worker_state.c: a worker scheduler's Lua state: allocator, budget, sandbox, runtime. */
#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "binding.h"
#include "log.h"

/* Counts every byte the state holds, so one scheduler's runaway table fails
 * that handler ("not enough memory") instead of the process. */
static void *counting_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  binding_state *bs = ud;
  size_t old = ptr ? osize : 0;
  if (nsize == 0) {
    bs->mem_used -= old;
    free(ptr);
    return NULL;
  }
  if (bs->mem_limit && nsize > old && bs->mem_used + (nsize - old) > bs->mem_limit) return NULL;
  void *p = realloc(ptr, nsize);
  if (!p) return NULL;
  bs->mem_used = bs->mem_used - old + nsize;
  return p;
}


/* A count hook stops a handler that runs too long: the error fails that
 * actor only, and the scheduler goes on with the others. Any active hook makes
 * Lua 5.4 trace every instruction (about a quarter of message throughput), so
 * the hook is not installed up front: the watchdog (watchdog.c) installs it
 * on a state whose handler call has been running for a few milliseconds, and
 * binding_pcall removes it when that call ends. The budget therefore counts
 * from the moment the watchdog noticed the call. */
void budget_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  binding_state *bs = *(binding_state **)lua_getextraspace(L);
  if (bs->budget_left < 0) { /* not inside a handler: a late install */
    __atomic_store_n(&bs->hooked, 0, __ATOMIC_RELEASE);
    lua_sethook(L, NULL, 0, 0);
    return;
  }
  bs->budget_left -= HOOK_EVERY;
  if (bs->budget_left < 0) {
    bs->budget_left = 0; /* a hook firing again while unwinding must raise again */
    /* Level 0 is the function that was running: the runaway handler's line. */
    luaL_where(L, 0);
    lua_pushfstring(L, "instruction budget exceeded (a handler ran more than %I instructions)",
                    (lua_Integer)bs->lrt->cfg.max_instructions);
    lua_concat(L, 2);
    lua_error(L);
  }
}

int binding_pcall(binding_state *bs, int nargs, int nresults) {
  int64_t saved = bs->budget_left;
  int64_t limit = bs->lrt ? bs->lrt->cfg.max_instructions : 0;
  /* Nested calls (a handler spawning a child) share the outer budget. */
  if (saved < 0) {
    bs->budget_left = limit > 0 ? limit : INT64_MAX;
    /* Only this thread writes these: plain stores, no locked instructions
     * on the per-message path (the watchdog only reads them). */
    __atomic_store_n(&bs->call_gen, bs->call_gen + 1, __ATOMIC_RELEASE);
    __atomic_store_n(&bs->in_call, 1, __ATOMIC_RELEASE);
  }
  int status = lua_pcall(bs->L, nargs, nresults, 0);
  if (saved < 0) {
    bs->budget_left = -1;
    __atomic_store_n(&bs->in_call, 0, __ATOMIC_RELEASE);
    /* A hook the watchdog installs just after this check removes itself
     * (budget_hook outside a call). */
    if (__atomic_load_n(&bs->hooked, __ATOMIC_ACQUIRE)) {
      __atomic_store_n(&bs->hooked, 0, __ATOMIC_RELEASE);
      lua_sethook(bs->L, NULL, 0, 0);
    }
  }
  return status;
}

binding_state *binding_state_get(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, BINDING_STATE_KEY);
  binding_state *bs = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return bs;
}

int luaopen_lore_core(lua_State *L); /* actor_lua.c */

extern const struct lore_embedded_lua {
  const char *name;
  const char *src;
  size_t len;
} lore_embedded_lua[];

static int open_runtime(lua_State *L) {
  binding_state *bs = lua_touserdata(L, 1);
  luaL_openlibs(L);
  luaL_requiref(L, "lore", lore_open_module, 0); /* refs and their methods */
  lua_pop(L, 1);
  /* lore.* modules come from the library itself, never from a search path. */
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "preload");
  for (const struct lore_embedded_lua *e = lore_embedded_lua; e->name; e++) {
    if (binding_load_embedded(L, e->name)) return lua_error(L);
    lua_setfield(L, -2, e->name);
  }
  lua_pop(L, 2);
  if (binding_load_embedded(L, "lore.runtime")) return lua_error(L);
  luaopen_lore_core(L);
  lua_pushlightuserdata(L, bs);
  lua_call(L, 2, 1); /* runtime.lua gets (core, config) and returns its entry points */
  static const char *names[] = {"dispatch", "system", "spawn", "failed", "stopped", "overflow"};
  int *refs[] = {&bs->ref_dispatch, &bs->ref_system, &bs->ref_spawn,
                 &bs->ref_failed,   &bs->ref_stopped, &bs->ref_overflow};
  lua_pushliteral(L, "_recv");
  bs->ref_key_recv = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushliteral(L, "_st");
  bs->ref_key_st = luaL_ref(L, LUA_REGISTRYINDEX);
  for (int i = 0; i < 6; i++) {
    lua_getfield(L, -1, names[i]);
    if (!lua_isfunction(L, -1)) return luaL_error(L, "lore.runtime lacks %s", names[i]);
    *refs[i] = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  return 0;
}

int worker_state_open(sched_t *s) {
  lore_runtime *lrt = s->rt->data;
  binding_state *bs = calloc(1, sizeof *bs);
  if (!bs) return UV_ENOMEM;
  bs->sched = s;
  bs->lrt = lrt;
  bs->budget_left = -1;
  bs->mem_limit = lrt->cfg.memory_limit > 0 ? (size_t)lrt->cfg.memory_limit : 0;
  idmap_init(&bs->timers);
  msgpack_sbuffer_init(&bs->buf);
  lua_State *L = lua_newstate(counting_alloc, bs);
  if (!L) goto fail;
  bs->L = L;
  *(binding_state **)lua_getextraspace(L) = bs;
  lua_pushlightuserdata(L, bs);
  lua_setfield(L, LUA_REGISTRYINDEX, BINDING_STATE_KEY);
  lua_pushcfunction(L, open_runtime);
  lua_pushlightuserdata(L, bs);
  if (lua_pcall(L, 1, 0, 0)) {
    log_error(&lrt->log, "worker %u: cannot start the Lua runtime: %s", s->index, lua_tostring(L, -1));
    lua_close(L);
    goto fail;
  }
  s->data = bs;
  return 0;
fail:
  msgpack_sbuffer_destroy(&bs->buf);
  idmap_free(&bs->timers);
  free(bs);
  return UV_ENOMEM;
}

void worker_state_close(sched_t *s) {
  binding_state *bs = s->data;
  if (!bs) return;
  watchdog_forget(s->rt->data, s); /* after this the watchdog never touches bs */
  lua_close(bs->L);
  msgpack_sbuffer_destroy(&bs->buf);
  idmap_free(&bs->timers);
  free(bs);
  s->data = NULL;
}


int binding_load_embedded(lua_State *L, const char *name) {
  for (const struct lore_embedded_lua *e = lore_embedded_lua; e->name; e++) {
    if (strcmp(e->name, name) == 0) {
      char chunk[128];
      snprintf(chunk, sizeof chunk, "=[lore] %s", name + 5);
      return luaL_loadbuffer(L, e->src, e->len, chunk) != LUA_OK;
    }
  }
  lua_pushfstring(L, "embedded module %s not found", name);
  return 1;
}

void lore_config_init(lore_config *c) {
  memset(c, 0, sizeof *c);
  c->synchronous_full = 1;
  c->max_instructions = 100000000;
  c->memory_limit = 0;
  c->max_concurrent_recoveries = 50;
  c->recovery_timeout = 30.0;
  c->log_level = log_default()->level;
}

void lore_config_free(lore_config *c) {
  free(c->journal);
  free(c->snapshots);
  for (int i = 0; i < c->nscripts; i++) free(c->scripts[i]);
  memset(c, 0, sizeof *c);
}
