/* lore_module.c: the `lore` module: configure, spawn, ask, sleep, shutdown, run. */
#include <lauxlib.h>
#include <lualib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "binding.h"
#include "codec.h"
#include "log.h"
#include "ref.h"

/*
 * The host: the application's own Lua state, which drives the runtime from
 * lore.run. The application script runs as one coroutine ("the app"); spawn,
 * ask and sleep yield it, and the host loop resumes it when the answer (or
 * the timeout) arrives, so the runtime never blocks on the script.
 */
typedef struct host {
  binding_state bs; /* first: the host's binding state */
  lore_config cfg;  /* from lore.configure, copied into each runtime */
  lore_runtime *lrt;
  lua_State *runL; /* the thread that called lore.run */
  lua_State *co;   /* the app coroutine */
  int co_ref, co_done, co_failed, err_ref;
  uint64_t waiting_corr; /* what the app waits for (0: not waiting) */
  sched_timer *wait_timer; /* its timeout, cancelled when the answer comes first */
  int running, shutdown_requested;
  uv_signal_t sigint, sigterm;
} host;

#define HOST_KEY "lore.host"

static host *host_of(lua_State *L) { return lua_touserdata(L, lua_upvalueindex(1)); }

/* --- runtime lifecycle --- */

static int host_is_host(sched_t *s) { return s->index == 0; }

static int hook_sched_start(sched_t *s) { return host_is_host(s) ? 0 : worker_state_open(s); }
static void hook_sched_stop(sched_t *s) {
  if (!host_is_host(s)) worker_state_close(s);
}
static int hook_sched_message(sched_t *s, lore_msg *m) {
  return host_is_host(s) ? host_sched_message(s, m) : worker_sched_message(s, m);
}
static void hook_dead_letter(sched_t *s, lore_msg *m) {
  if (!host_is_host(s)) worker_dead_letter(s, m);
}

const runtime_hooks lore_runtime_hooks = {hook_sched_start, hook_sched_stop, hook_sched_message,
                                          hook_dead_letter};

static void on_signal(uv_signal_t *sig, int signum) {
  host *h = sig->data;
  log_info(h->lrt ? &h->lrt->log : NULL, "signal %d: shutting down", signum);
  h->shutdown_requested = 1;
}

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

static int copy_config(lore_config *dst, const lore_config *src) {
  *dst = *src;
  dst->journal = dup_or_null(src->journal);
  dst->snapshots = dup_or_null(src->snapshots);
  for (int i = 0; i < src->nscripts; i++) dst->scripts[i] = dup_or_null(src->scripts[i]);
  return 0;
}

static void free_runtime(host *h) {
  lore_runtime *lrt = h->lrt;
  if (!lrt) return;
  watchdog_stop(lrt);
  if (lrt->journal) journal_close(lrt->journal);
  if (lrt->snapshots) snapshot_store_close(lrt->snapshots);
  runtime_free(lrt->rt);
  lore_config_free(&lrt->cfg);
  free(lrt);
  h->lrt = NULL;
  h->bs.sched = NULL;
  h->bs.lrt = NULL;
}

static void stop_runtime(host *h);

/* Creates and starts the runtime on first need; raises on failure. */
static lore_runtime *ensure_runtime(lua_State *L, host *h) {
  if (h->lrt) return h->lrt;
  if (!h->running) luaL_error(L, "the runtime runs inside lore.run (or `lore run APP.lua`)");
  lore_runtime *lrt = calloc(1, sizeof *lrt);
  if (!lrt) luaL_error(L, "out of memory");
  copy_config(&lrt->cfg, &h->cfg);
  lrt->log.level = lrt->cfg.log_level;
  const char *juri = lrt->cfg.journal ? lrt->cfg.journal : "memory:";
  journal_options jopt = {.synchronous_full = lrt->cfg.synchronous_full, .log = &lrt->log};
  int r = journal_open(juri, &jopt, &lrt->journal);
  if (r) {
    lua_pushfstring(L, "cannot open journal '%s': %s", juri, journal_strerror(r));
    goto fail;
  }
  /* Snapshots default to the journal's own store (same sqlite file, same
   * named memory store), so one setting keeps an application's data together. */
  const char *suri = lrt->cfg.snapshots;
  if (!suri)
    suri = strncmp(juri, "sqlite:", 7) == 0 || strncmp(juri, "memory:", 7) == 0 ? juri : "memory:";
  if ((r = snapshot_store_open(suri, &lrt->log, &lrt->snapshots))) {
    lua_pushfstring(L, "cannot open snapshot store '%s': %s", suri, snapshot_strerror(r));
    goto fail;
  }
  runtime_config rc = {.workers = lrt->cfg.workers, .log = &lrt->log};
  if ((r = runtime_create(&rc, &lore_runtime_hooks, lrt, &lrt->rt))) {
    lua_pushfstring(L, "cannot create the runtime: %s", uv_strerror(r));
    goto fail;
  }
  h->lrt = lrt;
  h->bs.lrt = lrt;
  h->bs.sched = runtime_host(lrt->rt);
  h->bs.sched->data = &h->bs;
  if ((r = runtime_start(lrt->rt))) {
    free_runtime(h);
    luaL_error(L, "cannot start the runtime's workers (see the log above): %s", uv_strerror(r));
  }
  if ((r = watchdog_start(lrt))) {
    stop_runtime(h);
    luaL_error(L, "cannot start the watchdog: %s", uv_strerror(r));
  }
  uv_loop_t *loop = runtime_host_loop(lrt->rt);
  uv_signal_init(loop, &h->sigint);
  uv_signal_init(loop, &h->sigterm);
  h->sigint.data = h->sigterm.data = h;
  uv_signal_start(&h->sigint, on_signal, SIGINT);
  uv_signal_start(&h->sigterm, on_signal, SIGTERM);
  uv_unref((uv_handle_t *)&h->sigint);
  uv_unref((uv_handle_t *)&h->sigterm);
  return lrt;
fail: /* the message is on the stack; nothing of the runtime is left */
  if (lrt->snapshots) snapshot_store_close(lrt->snapshots);
  if (lrt->journal) journal_close(lrt->journal);
  lore_config_free(&lrt->cfg);
  free(lrt);
  lua_error(L);
  return NULL;
}

/* Stops every actor safely (each after what it already has), lets journal
 * writes finish, and frees the runtime. */
static void stop_runtime(host *h) {
  if (!h->lrt) return;
  runtime_shutdown(h->lrt->rt);
  runtime_join(h->lrt->rt);
  free_runtime(h);
}

/* --- resuming the app --- */

static void resume_app(host *h, int nargs) {
  h->waiting_corr = 0;
  if (h->wait_timer) {
    sched_timer_cancel(h->wait_timer);
    h->wait_timer = NULL;
  }
  int nres = 0;
  int status = lua_resume(h->co, h->runL, nargs, &nres);
  if (status == LUA_YIELD) {
    lua_pop(h->co, nres);
    return;
  }
  h->co_done = 1;
  if (status != LUA_OK) {
    h->co_failed = 1;
    const char *msg = lua_tostring(h->co, -1);
    luaL_traceback(h->runL, h->co, msg ? msg : "(error object is not a string)", 0);
    h->err_ref = luaL_ref(h->runL, LUA_REGISTRYINDEX);
  }
}

int host_sched_message(sched_t *s, lore_msg *m) {
  host *h = (host *)s->data;
  if (m->kind != MSG_REPLY || !h || !h->co || m->corr != h->waiting_corr || h->co_done)
    return ACTOR_CONSUMED; /* a late reply (after a timeout), or the alive==0 wake-up */
  lua_State *co = h->co;
  char err[CODEC_ERR_MAX];
  lua_checkstack(co, 4);
  if (m->sub == 1) {
    lua_pushboolean(co, 0);
    lua_pushlstring(co, m->data, m->len);
  } else if (m->len == 0) {
    lua_pushboolean(co, 1);
    lua_pushnil(co);
  } else if (codec_decode(co, m->data, m->len, err, sizeof err)) {
    lua_pushboolean(co, 0);
    lua_pushstring(co, err);
  } else {
    lua_pushboolean(co, 1);
    lua_insert(co, -2);
  }
  resume_app(h, 2);
  return ACTOR_CONSUMED;
}

static void timeout_fire(void *ud) {
  uint64_t *p = ud;
  host *h = (host *)runtime_host(sched_current()->rt)->data;
  if (h && h->waiting_corr == p[0] && !h->co_done) {
    h->wait_timer = NULL; /* firing: no longer cancellable */
    lua_checkstack(h->co, 2);
    lua_pushboolean(h->co, p[1] ? 1 : 0); /* sleep: ok; ask: timed out */
    if (p[1])
      lua_pushnil(h->co);
    else
      lua_pushliteral(h->co, "timeout");
    resume_app(h, 2);
  }
  free(p);
}

/* Suspends the app until the reply for corr (or the timeout) arrives. */
static int wait_for(lua_State *L, host *h, uint64_t corr, double timeout, int is_sleep,
                    lua_KFunction k, lua_KContext ctx) {
  if (L != h->co || !lua_isyieldable(L))
    return luaL_error(L, "this call waits; make it from the application script's own coroutine "
                         "(the function given to lore.run), not from a nested coroutine");
  if (timeout >= 0) {
    uint64_t *p = malloc(2 * sizeof *p);
    if (!p) return luaL_error(L, "out of memory");
    p[0] = corr;
    p[1] = (uint64_t)is_sleep;
    double ms = timeout * 1000.0;
    h->wait_timer = sched_timer_start(h->bs.sched, ms > 1e12 ? (uint64_t)1e12 : (uint64_t)ms,
                                      timeout_fire, p, free);
    if (!h->wait_timer) {
      free(p);
      return luaL_error(L, "cannot start a timer");
    }
  }
  h->waiting_corr = corr;
  return lua_yieldk(L, 0, ctx, k);
}

/* --- the module's functions --- */

static int raise_plain(lua_State *L) { return lua_error(L); }

/* After an ask: (true, value) or (false, error) are on top. */
static int ask_cont(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  if (!lua_toboolean(L, -2)) return raise_plain(L); /* "timeout" or the actor's error */
  return 1;
}

int host_ask(lua_State *L) {
  host *h = host_of(L);
  lore_ref *r = ref_check(L, 1);
  luaL_checkany(L, 2);
  double timeout = luaL_optnumber(L, 3, 5.0);
  luaL_argcheck(L, timeout >= 0 && !isnan(timeout), 3, "timeout must be a number of seconds >= 0");
  ensure_runtime(L, h);
  size_t len;
  const char *data = binding_encode(L, &h->bs, 2, "message", &len);
  uint64_t corr = runtime_new_corr(h->lrt->rt);
  binding_send(&h->bs, r, MSG_USER, data, len, corr);
  return wait_for(L, h, corr, timeout, 0, ask_cont, 0);
}

static int spawn_cont(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  if (!lua_toboolean(L, -2)) return raise_plain(L);
  lua_pop(L, 2);
  return 1; /* the ref pushed before yielding */
}

static void check_opts(lua_State *L, int idx) {
  if (lua_isnoneornil(L, idx)) {
    lua_newtable(L);
    lua_replace(L, idx);
  }
  luaL_checktype(L, idx, LUA_TTABLE);
  int t = lua_getfield(L, idx, "id");
  if (t != LUA_TNIL && t != LUA_TSTRING)
    luaL_argerror(L, idx, "opts.id (the persistence id) must be a string");
  if (t == LUA_TSTRING && (lua_rawlen(L, -1) == 0 || lua_rawlen(L, -1) >= REF_SERIALIZED_MAX - 1))
    luaL_argerror(L, idx, "opts.id must be a non-empty string shorter than 4 KiB");
  lua_pop(L, 1);
}

/* lore.spawn(behaviour, opts) -> ref; raises if the behaviour cannot start
 * (not found, syntax error, init failed, id already live). */
static int l_spawn(lua_State *L) {
  host *h = host_of(L);
  luaL_checkstring(L, 1);
  lua_settop(L, 2);
  check_opts(L, 2);
  ensure_runtime(L, h);
  size_t len;
  binding_encode(L, &h->bs, 2, "opts", &len); /* an error names the path from opts, e.g. opts.f */
  runtime_t *rt = h->lrt->rt;
  lua_getfield(L, 2, "id");
  const char *id = lua_tostring(L, -1);
  uint32_t target = id ? runtime_sched_for_name(rt, id) : runtime_sched_next(rt);
  uint64_t aid = runtime_new_aid(rt);
  if (id)
    ref_push_name(L, id, strlen(id)); /* a persistent actor's ref names its id */
  else
    ref_push_addr(L, target, aid);
  lua_createtable(L, 2, 0);
  lua_pushvalue(L, 1);
  lua_rawseti(L, -2, 1);
  lua_pushvalue(L, 2);
  lua_rawseti(L, -2, 2);
  const char *data = binding_encode(L, &h->bs, -1, "opts", &len);
  lore_msg *m = msg_new(MSG_SPAWN, data, len, NULL, 0);
  if (!m) return luaL_error(L, "out of memory");
  lua_pop(L, 1);
  m->target.sched = target;
  m->ival = (int64_t)aid;
  m->corr = runtime_new_corr(rt);
  __atomic_add_fetch(&rt->alive, 1, __ATOMIC_SEQ_CST);
  uint64_t corr = m->corr;
  runtime_send(rt, m);
  return wait_for(L, h, corr, -1, 0, spawn_cont, 0);
}

static int l_ref(lua_State *L) {
  size_t len;
  const char *id = luaL_checklstring(L, 1, &len);
  luaL_argcheck(L, len > 0 && len < REF_SERIALIZED_MAX - 1, 1, "a persistence id is 1 to 4094 bytes");
  ref_push_name(L, id, len);
  return 1;
}

static int sleep_cont(lua_State *L, int status, lua_KContext ctx) {
  (void)L;
  (void)status;
  (void)ctx;
  return 0;
}

static int l_sleep(lua_State *L) {
  host *h = host_of(L);
  double secs = luaL_checknumber(L, 1);
  luaL_argcheck(L, secs >= 0 && !isnan(secs), 1, "seconds must be >= 0");
  ensure_runtime(L, h);
  return wait_for(L, h, runtime_new_corr(h->lrt->rt), secs, 1, sleep_cont, 0);
}

static int l_shutdown(lua_State *L) {
  host *h = host_of(L);
  h->shutdown_requested = 1;
  return 0;
}

static int l_stats(lua_State *L) {
  host *h = host_of(L);
  lua_createtable(L, 0, 4);
  runtime_t *rt = h->lrt ? h->lrt->rt : NULL;
  lua_pushinteger(L, rt ? __atomic_load_n(&rt->alive, __ATOMIC_SEQ_CST) : 0);
  lua_setfield(L, -2, "alive");
  lua_pushinteger(L, rt ? (lua_Integer)__atomic_load_n(&rt->dead_letters, __ATOMIC_SEQ_CST) : 0);
  lua_setfield(L, -2, "dead_letters");
  lua_pushinteger(L, rt ? rt->workers : 0);
  lua_setfield(L, -2, "workers");
  if (h->lrt && h->lrt->journal) {
    uint64_t batches, writes;
    journal_writer_stats(h->lrt->journal, &batches, &writes);
    lua_pushinteger(L, (lua_Integer)batches);
    lua_setfield(L, -2, "journal_batches");
    lua_pushinteger(L, (lua_Integer)writes);
    lua_setfield(L, -2, "journal_writes");
  }
  return 1;
}

static void set_str(lua_State *L, char **dst, const char *key) {
  if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "lore.configure: %s must be a string", key);
  free(*dst);
  *dst = strdup(lua_tostring(L, -1));
}

static lua_Integer get_int(lua_State *L, const char *key, lua_Integer min) {
  int isnum;
  lua_Integer v = lua_tointegerx(L, -1, &isnum);
  if (!isnum || v < min) luaL_error(L, "lore.configure: %s must be an integer >= %I", key, min);
  return v;
}

/* lore.configure{...}: before the runtime starts. Unknown keys are errors:
 * a typo must not silently fall back to a default. */
static int l_configure(lua_State *L) {
  host *h = host_of(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  if (h->lrt) return luaL_error(L, "lore.configure must come before the first spawn");
  lore_config *c = &h->cfg;
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    if (lua_type(L, -2) != LUA_TSTRING) return luaL_error(L, "lore.configure: keys are names");
    const char *k = lua_tostring(L, -2);
    if (strcmp(k, "journal") == 0)
      set_str(L, &c->journal, k);
    else if (strcmp(k, "snapshots") == 0)
      set_str(L, &c->snapshots, k);
    else if (strcmp(k, "workers") == 0)
      c->workers = (int)get_int(L, k, 0);
    else if (strcmp(k, "max_instructions") == 0)
      c->max_instructions = get_int(L, k, 0);
    else if (strcmp(k, "memory_limit") == 0)
      c->memory_limit = get_int(L, k, 0);
    else if (strcmp(k, "max_concurrent_recoveries") == 0)
      c->max_concurrent_recoveries = (int)get_int(L, k, 1);
    else if (strcmp(k, "recovery_timeout") == 0)
      c->recovery_timeout = luaL_checknumber(L, -1);
    else if (strcmp(k, "synchronous") == 0) {
      const char *v = lua_tostring(L, -1);
      if (!v || (strcmp(v, "full") && strcmp(v, "normal")))
        return luaL_error(L, "lore.configure: synchronous is \"full\" or \"normal\"");
      c->synchronous_full = strcmp(v, "full") == 0;
    } else if (strcmp(k, "log_level") == 0) {
      static const char *const levels[] = {"debug", "info", "warn", "error", "off", NULL};
      c->log_level = luaL_checkoption(L, -1, NULL, levels);
    } else if (strcmp(k, "hot_reload") == 0) {
      /* accepted; reloading is a later feature (see README) */
    } else if (strcmp(k, "scripts") == 0) {
      /* Checked in full before the old list is replaced: a bad value changes nothing. */
      int t = lua_type(L, -1);
      lua_Integer n = t == LUA_TTABLE ? (lua_Integer)lua_rawlen(L, -1) : 1;
      if (t != LUA_TSTRING && t != LUA_TTABLE)
        return luaL_error(L, "lore.configure: scripts must be a directory or a list of them");
      if (n > LORE_MAX_SCRIPT_DIRS) return luaL_error(L, "lore.configure: too many script dirs");
      for (lua_Integer i = 1; t == LUA_TTABLE && i <= n; i++) {
        int et = lua_rawgeti(L, -1, i);
        lua_pop(L, 1);
        if (et != LUA_TSTRING)
          return luaL_error(L, "lore.configure: scripts must be a list of directories");
      }
      for (int i = 0; i < c->nscripts; i++) free(c->scripts[i]);
      c->nscripts = 0;
      if (t == LUA_TSTRING) {
        c->scripts[c->nscripts++] = strdup(lua_tostring(L, -1));
      } else {
        for (lua_Integer i = 1; i <= n; i++) {
          lua_rawgeti(L, -1, i);
          c->scripts[c->nscripts++] = strdup(lua_tostring(L, -1));
          lua_pop(L, 1);
        }
      }
    } else {
      return luaL_error(L, "lore.configure: unknown option '%s'", k);
    }
    lua_pop(L, 1);
  }
  return 0;
}

/* lore.run(fn, ...): runs fn as the application coroutine on a fresh runtime
 * until it returns and no actor is alive, lore.shutdown() is called, or a
 * signal arrives; then stops every actor safely. Raises fn's error. */
static int l_run(lua_State *L) {
  host *h = host_of(L);
  luaL_checktype(L, 1, LUA_TFUNCTION);
  if (h->running) return luaL_error(L, "lore.run is already running");
  int nargs = lua_gettop(L) - 1;
  h->running = 1;
  h->shutdown_requested = h->co_done = h->co_failed = 0;
  h->waiting_corr = 0;
  h->err_ref = LUA_NOREF;
  h->runL = L;
  h->co = lua_newthread(L);
  h->co_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_xmove(L, h->co, nargs + 1);
  int ok = 1;
  /* The first resume may itself raise (e.g. ensure_runtime failing). */
  resume_app(h, nargs);
  while (!h->shutdown_requested) {
    /* A failed app ends the run: its error is reported now, and the actors it
     * left are stopped safely, instead of the process waiting on them forever. */
    if (h->co_failed) break;
    if (h->co_done && (!h->lrt || __atomic_load_n(&h->lrt->rt->alive, __ATOMIC_SEQ_CST) <= 0))
      break;
    if (!h->lrt) break; /* suspended without a runtime: nothing can resume it */
    uv_run(runtime_host_loop(h->lrt->rt), UV_RUN_ONCE);
  }
  stop_runtime(h);
  if (h->co_failed) {
    ok = 0;
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->err_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, h->err_ref);
  }
  luaL_unref(L, LUA_REGISTRYINDEX, h->co_ref);
  h->co = NULL;
  h->running = 0;
  if (!ok) return lua_error(L);
  lua_pushboolean(L, 1);
  return 1;
}

static int host_gc(lua_State *L) {
  host *h = lua_touserdata(L, 1);
  if (h->lrt) stop_runtime(h);
  msgpack_sbuffer_destroy(&h->bs.buf);
  idmap_free(&h->bs.timers);
  lore_config_free(&h->cfg);
  return 0;
}

static int l_version(lua_State *L) {
  lua_pushliteral(L, "0.1.0");
  return 1;
}

/* In a worker's state, `require "lore"` gives refs only: behaviours act
 * through ctx. */
static int open_in_worker(lua_State *L, binding_state *bs) {
  ref_methods_register(L, bs);
  lua_newtable(L);
  lua_pushcfunction(L, l_ref);
  lua_setfield(L, -2, "ref");
  return 1;
}

int lore_open_module(lua_State *L) {
  binding_state *worker = binding_state_get(L);
  if (worker) return open_in_worker(L, worker);
  if (lua_getfield(L, LUA_REGISTRYINDEX, HOST_KEY) == LUA_TTABLE) return 1; /* already open */
  lua_pop(L, 1);
  host *h = lua_newuserdatauv(L, sizeof *h, 0);
  memset(h, 0, sizeof *h);
  h->bs.L = L;
  h->bs.is_host = 1;
  h->bs.budget_left = -1;
  msgpack_sbuffer_init(&h->bs.buf);
  idmap_init(&h->bs.timers);
  lore_config_init(&h->cfg);
  lua_newtable(L);
  lua_pushcfunction(L, host_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_setfield(L, LUA_REGISTRYINDEX, "lore.host_state"); /* lives as long as the state */
  ref_methods_register(L, &h->bs);
  static const luaL_Reg fns[] = {{"configure", l_configure}, {"spawn", l_spawn},
                                 {"ref", l_ref},             {"sleep", l_sleep},
                                 {"shutdown", l_shutdown},   {"run", l_run},
                                 {"stats", l_stats},         {"version", l_version},
                                 {NULL, NULL}};
  luaL_newlibtable(L, fns);
  lua_pushlightuserdata(L, h);
  luaL_setfuncs(L, fns, 1);
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, HOST_KEY);
  return 1;
}
