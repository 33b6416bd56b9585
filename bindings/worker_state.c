/* worker_state.c: a worker scheduler's Lua state: allocator, budget, sandbox, runtime. */
#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#ifdef LORE_MIMALLOC
#include <mimalloc.h>
#endif
#include <string.h>

#include "log.h"
#include "sandbox_patterns.h"
#include "worker.h"

/* Counts every byte the state holds, so one scheduler's runaway table fails
 * that handler ("not enough memory") instead of the process. */
/* The Lua heap of a worker: a mimalloc heap of its own thread when built
 * with it (LORE_MIMALLOC), else malloc. Counts what the state holds against
 * memory_limit, and publishes the figure for lore.stats(). */
static void *heap_realloc(binding_state *bs, void *ptr, size_t nsize) {
#ifdef LORE_MIMALLOC
  /* Most of Lua's calls are new blocks: mi_heap_malloc skips realloc's checks (two calls
   * per replayed event). */
  if (!ptr) return mi_heap_malloc(bs->heap, nsize);
  return mi_heap_realloc(bs->heap, ptr, nsize);
#else
  (void)bs;
  return realloc(ptr, nsize);
#endif
}

static void heap_free(void *ptr) {
#ifdef LORE_MIMALLOC
  mi_free(ptr);
#else
  free(ptr);
#endif
}

static void *counting_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  binding_state *bs = ud;
  size_t old = ptr ? osize : 0;
  if (nsize == 0) {
    bs->mem_used -= old;
    __atomic_store_n(bs->mem_published, bs->mem_used, __ATOMIC_RELAXED);
    heap_free(ptr);
    return NULL;
  }
  if (bs->mem_limit && nsize > old && bs->mem_used + (nsize - old) > bs->mem_limit) return NULL;
  void *p = heap_realloc(bs, ptr, nsize);
  if (!p) return NULL;
  bs->mem_used = bs->mem_used - old + nsize;
  __atomic_store_n(bs->mem_published, bs->mem_used, __ATOMIC_RELAXED);
  return p;
}

binding_state *binding_state_get(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, BINDING_STATE_KEY);
  binding_state *bs = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return bs;
}

#include "lua_actor.h"

/* A backtracking pattern is one C call the count hook cannot interrupt: the
 * string library's matchers are replaced by ones that charge their steps to
 * the handler's budget (two instructions a step: a step costs about as much
 * as two VM instructions). Replaced in the state's own `string` table, which
 * the string metatable (s:find()) and every sandbox copy reach. */
static void charge_steps(lua_State *L, void *ud, size_t steps) { budget_charge(L, ud, 2 * steps); }

static void install_patterns(lua_State *L, binding_state *bs) {
  lua_getglobal(L, "string");
  sandbox_patterns_push(L, charge_steps, bs);
  static const char *const names[] = {"find", "match", "gmatch", "gsub"};
  for (int i = 0; i < 4; i++) {
    lua_getfield(L, -1, names[i]);
    lua_setfield(L, -3, names[i]);
  }
  lua_pop(L, 2);
}

extern const struct lore_embedded_lua {
  const char *name;
  const char *src;
  size_t len;
} lore_embedded_lua[];

static int open_runtime(lua_State *L) {
  binding_state *bs = lua_touserdata(L, 1);
  luaL_openlibs(L);
  install_patterns(L, bs);
  luaL_requiref(L, "lore", worker_open_lore, 0); /* refs and their methods */
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
  static const char *names[] = {"dispatch", "system",  "spawn",  "failed",   "stopped",
                                "overflow", "upgrade", "reload", "persisted"};
  int *refs[] = {&bs->ref_dispatch, &bs->ref_system,  &bs->ref_spawn,
                 &bs->ref_failed,   &bs->ref_stopped, &bs->ref_overflow,
                 &bs->ref_upgrade,  &bs->ref_reload,  &bs->ref_persisted};
  for (int i = 0; i < 9; i++) {
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
  bs->mem_published = &lrt->lua_memory[s->index];
  if (uv_mutex_init(&bs->recover_lock)) {
    free(bs);
    return UV_ENOMEM;
  }
#ifdef LORE_MIMALLOC
  if (!(bs->heap = mi_heap_new())) { /* on this worker's thread: its heap */
    uv_mutex_destroy(&bs->recover_lock);
    free(bs);
    return UV_ENOMEM;
  }
#endif
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
    log_error(&lrt->log, "worker %u: cannot start the Lua runtime: %s", s->index,
              lua_tostring(L, -1));
    lua_close(L);
    goto fail;
  }
  codec_strings_init(L, &bs->strings); /* without it (no memory), decoding works uncached */
  s->data = bs;
  recovery_warm_up(bs);
  return 0;
fail:
  uv_mutex_destroy(&bs->recover_lock);
  msgpack_sbuffer_destroy(&bs->buf);
  idmap_free(&bs->timers);
#ifdef LORE_MIMALLOC
  mi_heap_delete(bs->heap);
#endif
  free(bs);
  return UV_ENOMEM;
}

void worker_state_close(sched_t *s) {
  binding_state *bs = s->data;
  if (!bs) return;
  watchdog_forget(s->rt->data, s); /* after this the watchdog never touches bs */
  recovery_worker_close(bs);
  recovery_deadlines_close(bs);
  lua_close(bs->L);
  idle_gc_close(bs);
  entities_worker_close(bs);
  msgpack_sbuffer_destroy(&bs->buf);
  idmap_free(&bs->timers);
  free(bs->pending);
  uv_mutex_destroy(&bs->recover_lock);
#ifdef LORE_MIMALLOC
  mi_heap_delete(bs->heap); /* empty by now: the state is closed */
#endif
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

int worker_timer_arm(binding_state *bs, uint64_t id, uint64_t ms, void (*fire)(void *),
                     void (*drop)(void *), void *t) {
  sched_timer *h = sched_timer_start(bs->sched, ms, fire, t, drop);
  if (!h) {
    drop(t);
    return -1;
  }
  if (idmap_put(&bs->timers, id, h)) {
    sched_timer_cancel(h); /* drops t */
    return -2;
  }
  return 0;
}

lua_Number worker_check_delay(lua_State *L, int idx) {
  lua_Number secs = luaL_checknumber(L, idx);
  luaL_argcheck(L, secs >= 0 && secs < 1e9, idx, "delay out of range (0 to 1e9 seconds)");
  return secs;
}
