/* lore_module.c: the `lore` Lua module for application scripts, built on the public runtime API. */
#include <lauxlib.h>
#include <lualib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app_wait.h"
#include "binding.h"
#include "codec.h"
#include "entities.h"
#include "host.h"
#include "query.h"
#include "ref.h"
#include "reload.h"
#include "worker.h"

/*
 * The application script runs as one coroutine ("the app") of the Lua state
 * that called lore.run. spawn, ask and sleep yield it, and the host loop
 * resumes it when the answer (or the timeout) arrives, so the runtime never
 * blocks on the script. The runtime is opened on first need (lore.configure
 * may come first) with a private loop that lore.run drives.
 */
typedef struct host {
  binding_state bs; /* first: ref methods find it as their upvalue */
  lore_config cfg;  /* from lore.configure; the strings below are its own */
  char *journal, *snapshots, *scripts;
  lore_runtime *lrt;
  lua_State *runL; /* the thread that called lore.run */
  lua_State *co;   /* the app coroutine */
  int co_ref, co_done, co_failed, err_ref;
  uint64_t wait_id, next_wait; /* what the app waits for (0: not waiting) */
  int running, shutdown_requested, none_alive;
  char last_error[512]; /* the runtime's last error line (lore_open's reason) */
} host;

#define HOST_KEY "lore.host"

static host *host_of(lua_State *L) { return lua_touserdata(L, lua_upvalueindex(1)); }

/* --- the runtime's log: stderr as usual, and the last error remembered --- */

static void host_log(void *ud, int level, const char *line) {
  host *h = ud;
  if (level >= LOG_ERROR) snprintf(h->last_error, sizeof h->last_error, "%s", line);
  log_print_stderr(level, line);
}

static void on_event(lore_runtime *lrt, int what, void *ud) {
  (void)lrt;
  host *h = ud;
  if (what == LORE_EVENT_SIGNAL) h->shutdown_requested = 1;
  if (what == LORE_EVENT_NONE_ALIVE) h->none_alive = 1;
}

/* Opens the runtime on first need; raises on failure. */
static lore_runtime *ensure_runtime(lua_State *L, host *h) {
  if (h->lrt) return h->lrt;
  if (!h->running) luaL_error(L, "the runtime runs inside lore.run (or `lore run APP.lua`)");
  h->last_error[0] = '\0';
  h->cfg.log = host_log;
  h->cfg.log_ud = h;
  int r = lore_open(&h->cfg, &h->lrt);
  if (r) {
    h->lrt = NULL;
    luaL_error(L, "cannot start the runtime: %s",
               h->last_error[0] ? h->last_error : lore_strerror(r));
  }
  h->lrt->on_event = on_event;
  h->lrt->on_event_ud = h;
  h->bs.lrt = h->lrt;
  h->bs.sched = runtime_host(h->lrt->rt);
  return h->lrt;
}

/* Shuts the runtime down (waiting for it) and frees it. Returns
 * lore_shutdown_status. */
static int stop_runtime(host *h) {
  if (!h->lrt) return 0;
  lore_shutdown(h->lrt, NULL, NULL);
  lore_run(h->lrt);
  int status = lore_shutdown_status(h->lrt);
  lore_close(h->lrt);
  h->lrt = NULL;
  h->bs.lrt = NULL;
  h->bs.sched = NULL;
  return status;
}

/* --- resuming the app --- */

static void resume_app(host *h, int nargs) {
  h->wait_id = 0;
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

/* One wait of the app: the callbacks below resume it only if it still waits
 * for this (a late answer after the app moved on is dropped). */
typedef struct app_wait {
  host *h;
  uint64_t id;
  double timeout;
  char target[64]; /* for a timeout's message */
} app_wait;

static app_wait *wait_new(lua_State *L, host *h) {
  app_wait *w = malloc(sizeof *w);
  if (!w) luaL_error(L, "out of memory");
  w->h = h;
  w->id = ++h->next_wait;
  w->timeout = 0;
  w->target[0] = '\0';
  return w;
}

static int still_waiting(app_wait *w) {
  host *h = w->h;
  return h->co && !h->co_done && h->wait_id == w->id;
}

static int yield_for(lua_State *L, host *h, app_wait *w, lua_KFunction k) {
  h->wait_id = w->id;
  return lua_yieldk(L, 0, 0, k);
}

static void check_waitable(lua_State *L, host *h) {
  if (L != h->co || !lua_isyieldable(L))
    luaL_error(L,
               "this call waits; make it from the application script's own coroutine "
               "(the function given to lore.run), not from a nested coroutine");
}

/* After a wait: (true, value) or (false, error) are on top. */
static int raise_or_return(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  if (!lua_toboolean(L, -2)) return lua_error(L); /* the error text */
  return 1;
}

/* --- ask --- */

static void ask_answered(void *ud, int status, const void *reply, size_t len) {
  app_wait *w = ud;
  host *h = w->h;
  if (still_waiting(w)) {
    lua_State *co = h->co;
    char err[CODEC_ERR_MAX];
    lua_checkstack(co, 4);
    if (status == LORE_ETIMEDOUT) {
      lua_pushboolean(co, 0);
      lua_pushfstring(co, "timeout: %s did not answer within %f s", w->target, w->timeout);
    } else if (status == HOST_ERAISED) { /* {text, value}: raise the value itself */
      lua_pushboolean(co, 0);
      if (codec_decode(co, reply, len, err, sizeof err) == 0) {
        lua_rawgeti(co, -1, 2);
        if (lua_isnil(co, -1)) {
          lua_pop(co, 1);
          lua_rawgeti(co, -1, 1);
        }
        lua_remove(co, -2);
      } else {
        lua_pushstring(co, err);
      }
    } else if (status) {
      lua_pushboolean(co, 0);
      lua_pushlstring(co, reply, len);
    } else if (len == 0) {
      lua_pushboolean(co, 1);
      lua_pushnil(co);
    } else if (codec_decode(co, reply, len, err, sizeof err)) {
      lua_pushboolean(co, 0);
      lua_pushstring(co, err);
    } else {
      lua_pushboolean(co, 1);
      lua_insert(co, -2);
    }
    free(w);
    resume_app(h, 2);
    return;
  }
  free(w);
}

static int host_ask_as(lua_State *L, host *h);

int host_ask(lua_State *L) { return host_ask_as(L, host_of(L)); }

/* ref:ask(msg, timeout) with the ref at 1 (mgr:ask arranges the same). */
static int host_ask_as(lua_State *L, host *h) {
  lore_ref *r = ref_check(L, 1);
  luaL_checkany(L, 2);
  double timeout = luaL_optnumber(L, 3, 5.0);
  luaL_argcheck(L, timeout >= 0 && !isnan(timeout), 3, "timeout must be a number of seconds >= 0");
  ensure_runtime(L, h);
  check_waitable(L, h);
  size_t len;
  const char *data = binding_encode(L, &h->bs, 2, "message", &len);
  app_wait *w = wait_new(L, h);
  w->timeout = timeout;
  lua_pushvalue(L, 1);
  snprintf(w->target, sizeof w->target, "%s", luaL_tolstring(L, -1, NULL));
  lua_pop(L, 2);
  int rc = host_ask_raised(h->lrt, r, data, len, timeout, ask_answered, w);
  if (rc) {
    free(w);
    return luaL_error(L, "%s", lore_strerror(rc));
  }
  return yield_for(L, h, w, raise_or_return);
}

/* --- spawn --- */

static void spawn_answered(void *ud, int status, const void *detail, size_t len) {
  app_wait *w = ud;
  host *h = w->h;
  if (still_waiting(w)) {
    lua_State *co = h->co;
    lua_checkstack(co, 2);
    lua_pushboolean(co, status == 0);
    if (status == 0)
      lua_pushnil(co);
    else if (len)
      lua_pushlstring(co, detail, len);
    else
      lua_pushstring(co, lore_strerror(status));
    free(w);
    resume_app(h, 2);
    return;
  }
  free(w);
}

static int spawn_cont(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  if (!lua_toboolean(L, -2)) return lua_error(L);
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
  const char *why = t == LUA_TSTRING ? binding_id_problem(L, -1) : NULL;
  if (why) luaL_argerror(L, idx, lua_pushfstring(L, "opts.id %s", why));
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
  check_waitable(L, h);
  size_t len;
  binding_encode(L, &h->bs, 2, "opts", &len); /* an error names the path from opts, e.g. opts.f */
  lua_getfield(L, 2, "id");
  const char *id = lua_tostring(L, -1);
  lua_createtable(L, 2, 0);
  lua_pushvalue(L, 1);
  lua_rawseti(L, -2, 1);
  lua_pushvalue(L, 2);
  lua_rawseti(L, -2, 2);
  const char *data = binding_encode(L, &h->bs, -1, "opts", &len);
  lua_pop(L, 1);
  app_wait *w = wait_new(L, h);
  uint32_t sched;
  uint64_t aid;
  int rc = host_spawn_async(h->lrt, data, len, id, spawn_answered, w, &sched, &aid);
  if (rc) {
    free(w);
    return luaL_error(L, "%s", lore_strerror(rc));
  }
  if (id)
    ref_push_name(L, id, strlen(id)); /* a persistent actor's ref names its id */
  else
    ref_push_addr(L, sched, aid);
  return yield_for(L, h, w, spawn_cont);
}

/* --- sleep --- */

static void slept(void *ud) {
  app_wait *w = ud;
  host *h = w->h;
  if (still_waiting(w)) {
    free(w);
    resume_app(h, 0);
    return;
  }
  free(w);
}

static void sleep_dropped(void *ud) { free(ud); }

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
  check_waitable(L, h);
  app_wait *w = wait_new(L, h);
  int rc = host_after(h->lrt, secs, slept, w, sleep_dropped);
  if (rc) {
    free(w);
    return luaL_error(L, "%s", lore_strerror(rc));
  }
  return yield_for(L, h, w, sleep_cont);
}

/* --- the rest of the module --- */

static int l_shutdown(lua_State *L) {
  host *h = host_of(L);
  h->shutdown_requested = 1;
  return 0;
}

static void set_count(lua_State *L, const char *k, long long v) {
  lua_pushinteger(L, (lua_Integer)v);
  lua_setfield(L, -2, k);
}

static void push_manager_stats(lua_State *L, entity_manager *em);

static int l_stats(lua_State *L) {
  host *h = host_of(L);
  host_stats st = {0};
  if (h->lrt) host_get_stats(h->lrt, &st);
  lua_createtable(L, 0, 5);
  set_count(L, "alive", st.alive);
  set_count(L, "dead_letters", st.dead_letters);
  set_count(L, "workers", st.workers);
  set_count(L, "recoveries", st.recoveries);
  set_count(L, "recoveries_peak", st.recoveries_peak);
  set_count(L, "lua_memory", st.lua_memory);
  set_count(L, "io_spins", st.io_spins);
  set_count(L, "io_spin_hits", st.io_spin_hits);
  int n = h->lrt ? entities_count(h->lrt) : 0;
  lua_createtable(L, 0, n);
  for (int i = 0; i < n; i++) {
    entity_manager *em = entities_manager(h->lrt, i);
    push_manager_stats(L, em);
    lua_setfield(L, -2, em->name);
  }
  lua_setfield(L, -2, "entities");
  if (h->lrt) {
    set_count(L, "journal_batches", st.journal_batches);
    set_count(L, "journal_writes", st.journal_writes);
    set_count(L, "journal_cohort_waits", st.cohort_waits);
    set_count(L, "journal_cohort_timeouts", st.cohort_timeouts);
    static const char *const breaker[] = {"closed", "open", "half-open"};
    lua_pushstring(L,
                   breaker[st.breaker_state >= 0 && st.breaker_state <= 2 ? st.breaker_state : 0]);
    lua_setfield(L, -2, "journal_breaker");
    set_count(L, "journal_breaker_trips", st.breaker_trips);
  }
  return 1;
}

/* A string option: checked, then kept in the table at `staged` until every
 * option of the call is known to be good. */
static void stage_str(lua_State *L, int staged, const char *key) {
  if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "lore.configure: %s must be a string", key);
  lua_pushvalue(L, -1);
  lua_setfield(L, staged, key);
}

/* Replaces *dst with a copy of staged[key], if the call set it. */
static void apply_str(lua_State *L, int staged, const char *key, char **dst) {
  if (lua_getfield(L, staged, key) == LUA_TSTRING) {
    char *copy = strdup(lua_tostring(L, -1));
    if (!copy) luaL_error(L, "lore.configure: out of memory");
    free(*dst);
    *dst = copy;
  }
  lua_pop(L, 1);
}

static lua_Integer get_int(lua_State *L, const char *key, lua_Integer min, lua_Integer max) {
  int isnum;
  lua_Integer v = lua_tointegerx(L, -1, &isnum);
  if (!isnum || v < min || v > max)
    luaL_error(L, "lore.configure: %s must be an integer from %I to %I", key, min, max);
  return v;
}

/* A number of seconds: finite, above 0, at most `max`. */
static double get_seconds(lua_State *L, const char *key, double max) {
  int isnum;
  double v = (double)lua_tonumberx(L, -1, &isnum);
  if (!isnum || !isfinite(v) || v <= 0 || v > max)
    luaL_error(L, "lore.configure: %s must be a number of seconds above 0 and at most %f", key,
               max);
  return v;
}

/* scripts: a directory or a list of them, joined with ';' (lore_config's
 * form) and staged like the other strings. */
static void stage_scripts(lua_State *L, int staged) {
  int t = lua_type(L, -1);
  if (t != LUA_TSTRING && t != LUA_TTABLE)
    luaL_error(L, "lore.configure: scripts must be a directory or a list of them");
  int list = lua_gettop(L);
  lua_Integer n = t == LUA_TTABLE ? (lua_Integer)lua_rawlen(L, list) : 1;
  if (n > LORE_MAX_SCRIPT_DIRS) luaL_error(L, "lore.configure: too many script dirs (16 at most)");
  for (lua_Integer i = 1; i <= n; i++) {
    if (t == LUA_TTABLE && lua_rawgeti(L, list, i) != LUA_TSTRING)
      luaL_error(L, "lore.configure: scripts must be a list of directories");
    if (t == LUA_TSTRING) lua_pushvalue(L, list);
    size_t len;
    const char *d = lua_tolstring(L, -1, &len);
    if (len == 0 || memchr(d, ';', len))
      luaL_error(L, "lore.configure: a script directory must be a non-empty path without ';'");
  }
  /* The n strings are on the stack above `list`: join them with ';'. */
  for (lua_Integer i = n; i > 1; i--) {
    lua_pushliteral(L, ";");
    lua_insert(L, list + (int)i);
  }
  if (n == 0)
    lua_pushliteral(L, "");
  else
    lua_concat(L, (int)(2 * n - 1));
  lua_setfield(L, staged, "scripts");
  lua_settop(L, list);
}

/* lore.configure{...}: before the runtime starts. Unknown keys are errors:
 * a typo must not silently fall back to a default. The whole call is checked
 * before anything changes: a bad value (or key) changes nothing. */
static int l_configure(lua_State *L) {
  host *h = host_of(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  if (h->lrt) return luaL_error(L, "lore.configure must come before the first spawn");
  lore_config next = h->cfg, *c = &next;
  lua_settop(L, 1);
  lua_newtable(L); /* 2: the string options, staged */
  const int staged = 2;
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    if (lua_type(L, -2) != LUA_TSTRING) return luaL_error(L, "lore.configure: keys are names");
    const char *k = lua_tostring(L, -2);
    if (strcmp(k, "journal") == 0 || strcmp(k, "snapshots") == 0)
      stage_str(L, staged, k);
    else if (strcmp(k, "workers") == 0)
      c->workers = (int)get_int(L, k, 0, 1024);
    else if (strcmp(k, "max_instructions") == 0)
      c->max_instructions = get_int(L, k, 0, LUA_MAXINTEGER);
    else if (strcmp(k, "memory_limit") == 0)
      c->memory_limit = get_int(L, k, 0, LUA_MAXINTEGER);
    else if (strcmp(k, "max_concurrent_recoveries") == 0)
      c->max_concurrent_recoveries = (int)get_int(L, k, 1, 1000000);
    else if (strcmp(k, "recovery_timeout") == 0)
      c->recovery_timeout = get_seconds(L, k, 1e6);
    else if (strcmp(k, "shutdown_timeout") == 0)
      c->shutdown_timeout = get_seconds(L, k, 3600);
    else if (strcmp(k, "breaker_max_failures") == 0)
      c->breaker_max_failures = (int)get_int(L, k, 0, 1000000);
    else if (strcmp(k, "breaker_reset_timeout") == 0)
      c->breaker_reset_timeout = get_seconds(L, k, 86400);
    else if (strcmp(k, "io_spin_us") == 0)
      c->io_spin_us = (int)get_int(L, k, 0, 100000);
    else if (strcmp(k, "synchronous") == 0) {
      const char *v = lua_tostring(L, -1);
      if (!v || (strcmp(v, "full") && strcmp(v, "normal")))
        return luaL_error(L, "lore.configure: synchronous is \"full\" or \"normal\"");
      c->synchronous_full = strcmp(v, "full") == 0;
    } else if (strcmp(k, "log_level") == 0) {
      static const char *const levels[] = {"debug", "info", "warn", "error", "off"};
      const char *v = lua_tostring(L, -1);
      int found = -1;
      for (int i = 0; v && found < 0 && i < 5; i++)
        if (strcmp(v, levels[i]) == 0) found = i;
      if (found < 0 || lua_type(L, -1) != LUA_TSTRING)
        return luaL_error(L,
                          "lore.configure: log_level is \"debug\", \"info\", \"warn\", "
                          "\"error\" or \"off\"");
      c->log_level = found;
    } else if (strcmp(k, "hot_reload") == 0) {
      if (!lua_isboolean(L, -1)) return luaL_error(L, "lore.configure: hot_reload is a boolean");
      c->hot_reload = lua_toboolean(L, -1);
    } else if (strcmp(k, "handle_signals") == 0) {
      if (!lua_isboolean(L, -1))
        return luaL_error(L, "lore.configure: handle_signals is a boolean");
      c->handle_signals = lua_toboolean(L, -1);
    } else if (strcmp(k, "scripts") == 0) {
      stage_scripts(L, staged);
    } else {
      return luaL_error(L, "lore.configure: unknown option '%s'", k);
    }
    lua_pop(L, 1);
  }
  /* Everything checked: now it changes, the strings first (only an
   * out-of-memory error can stop them, and then the old ones stay valid). */
  apply_str(L, staged, "journal", &h->journal);
  h->cfg.journal = h->journal; /* never a freed string, even if the next one fails */
  apply_str(L, staged, "snapshots", &h->snapshots);
  h->cfg.snapshots = h->snapshots;
  apply_str(L, staged, "scripts", &h->scripts);
  h->cfg.scripts = h->scripts;
  next.journal = h->journal;
  next.snapshots = h->snapshots;
  next.scripts = h->scripts;
  h->cfg = next;
  return 0;
}

/* lore.run(fn, ...): runs fn as the application coroutine until it returns
 * and no actor is alive, lore.shutdown() is called, or a signal arrives; then
 * stops every actor safely. Raises fn's error. Returns true, or false and a
 * message when the shutdown had to stop actors by force. */
static int l_run(lua_State *L) {
  host *h = host_of(L);
  luaL_checktype(L, 1, LUA_TFUNCTION);
  if (h->running) return luaL_error(L, "lore.run is already running");
  int nargs = lua_gettop(L) - 1;
  h->running = 1;
  h->shutdown_requested = h->co_done = h->co_failed = h->none_alive = 0;
  h->wait_id = 0;
  h->err_ref = LUA_NOREF;
  h->runL = L;
  h->co = lua_newthread(L);
  h->co_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_xmove(L, h->co, nargs + 1);
  /* The first resume may itself raise (e.g. ensure_runtime failing). */
  resume_app(h, nargs);
  while (!h->shutdown_requested) {
    /* A failed app ends the run: its error is reported now, and the actors it
     * left are stopped safely, instead of the process waiting on them forever. */
    if (h->co_failed) break;
    if (h->co_done && (!h->lrt || host_alive(h->lrt) <= 0)) break;
    if (!h->lrt) break; /* suspended without a runtime: nothing can resume it */
    if (h->lrt->phase != RT_RUNNING) break;
    uv_run(h->lrt->loop, UV_RUN_ONCE);
  }
  /* From here the app is never resumed again (the asks it waits for are
   * answered with "shutting down" while the runtime stops). */
  h->co_done = 1;
  int status = stop_runtime(h);
  luaL_unref(L, LUA_REGISTRYINDEX, h->co_ref);
  h->co = NULL;
  h->running = 0;
  if (h->co_failed) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->err_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, h->err_ref);
    return lua_error(L);
  }
  if (status) {
    lua_pushboolean(L, 0);
    lua_pushfstring(L, "shutdown: %s",
                    status == UV_EBUSY ? "a worker was stuck and had to be abandoned"
                                       : "actors had to be stopped by force");
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int host_gc(lua_State *L) {
  host *h = lua_touserdata(L, 1);
  if (h->lrt) stop_runtime(h);
  msgpack_sbuffer_destroy(&h->bs.buf);
  idmap_free(&h->bs.timers);
  free(h->journal);
  free(h->snapshots);
  free(h->scripts);
  return 0;
}

static int l_version(lua_State *L) {
  lua_pushstring(L, lore_version());
  return 1;
}

/* --- hot reload on demand --- */

static void reloaded(void *ud, int status, const char *err) {
  app_wait *w = ud;
  host *h = w->h;
  if (still_waiting(w)) {
    lua_State *co = h->co;
    lua_checkstack(co, 2);
    if (status == 0) {
      lua_pushboolean(co, 1);
      lua_pushnil(co);
    } else {
      lua_pushnil(co);
      lua_pushstring(co, err);
    }
    free(w);
    resume_app(h, 2);
    return;
  }
  free(w);
}

static int reload_cont(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  if (lua_toboolean(L, -2)) {
    lua_pop(L, 1);
    return 1;
  }
  return 2; /* nil, err */
}

/* lore.reload(name) -> true | nil, err: reloads behaviour (or module) `name`
 * on every worker now, as a changed file would with hot_reload. Waits. */
static int l_reload(lua_State *L) {
  host *h = host_of(L);
  const char *name = luaL_checkstring(L, 1);
  ensure_runtime(L, h);
  check_waitable(L, h);
  app_wait *w = wait_new(L, h);
  int rc = reload_begin(h->lrt, name, reloaded, w);
  if (rc) {
    free(w);
    lua_pushnil(L);
    lua_pushstring(L, lore_strerror(rc));
    return 2;
  }
  return yield_for(L, h, w, reload_cont);
}

/* --- entity managers --- */

#define MANAGER_MT "lore.entities"

typedef struct manager_ud {
  host *h;
  int index;
  char name[REF_MANAGER_MAX + 1];
} manager_ud;

static manager_ud *check_manager(lua_State *L) {
  manager_ud *m = luaL_checkudata(L, 1, MANAGER_MT);
  if (!m->h->lrt) luaL_error(L, "the runtime this entity manager belonged to has stopped");
  return m;
}

/* Replaces (mgr, id) at 1 and 2 by the entity's ref at 1. */
static void entity_ref_at_1(lua_State *L, manager_ud *m) {
  size_t len;
  const char *id = luaL_checklstring(L, 2, &len);
  const char *why = binding_id_problem(L, 2);
  if (why) luaL_argerror(L, 2, lua_pushfstring(L, "an entity id %s", why));
  ref_push_entity(L, m->name, strlen(m->name), id, len);
  lua_replace(L, 1);
  lua_remove(L, 2);
}

/* mgr:ref(id) -> a ref to that entity, valid across its passivation */
static int mgr_ref(lua_State *L) {
  manager_ud *m = check_manager(L);
  lua_settop(L, 2);
  entity_ref_at_1(L, m);
  return 1;
}

/* mgr:tell(id, msg) */
static int mgr_tell(lua_State *L) {
  manager_ud *m = check_manager(L);
  luaL_checkany(L, 3);
  lua_settop(L, 3);
  entity_ref_at_1(L, m);
  lore_ref *r = ref_check(L, 1);
  size_t len;
  const char *data = binding_encode(L, &m->h->bs, 2, "message", &len);
  int rc = host_tell_encoded(m->h->lrt, r, data, len);
  if (rc) return luaL_error(L, "%s", lore_strerror(rc));
  return 0;
}

/* mgr:ask(id, msg, timeout): as ref:ask (it waits: the app's coroutine only) */
static int mgr_ask(lua_State *L) {
  manager_ud *m = check_manager(L);
  luaL_checkany(L, 3);
  entity_ref_at_1(L, m);
  return host_ask_as(L, m->h);
}

static void set_figure(lua_State *L, const char *k, int64_t *v) {
  lua_pushinteger(L, (lua_Integer)__atomic_load_n(v, __ATOMIC_RELAXED));
  lua_setfield(L, -2, k);
}

static void push_manager_stats(lua_State *L, entity_manager *em) {
  lua_createtable(L, 0, 4);
  set_figure(L, "live", &em->live);
  set_figure(L, "passivated", &em->passivated);
  set_figure(L, "woken", &em->woken);
  set_figure(L, "held", &em->held);
}

/* mgr:stats() -> { live =, passivated =, woken =, held = } */
static int mgr_stats(lua_State *L) {
  manager_ud *m = check_manager(L);
  push_manager_stats(L, entities_manager(m->h->lrt, m->index));
  return 1;
}

static int mgr_tostring(lua_State *L) {
  manager_ud *m = luaL_checkudata(L, 1, MANAGER_MT);
  lua_pushfstring(L, "lore.entities(%s)", m->name);
  return 1;
}

/* lore.entities(behaviour, opts) -> a manager: opts.name (default: the
 * behaviour's name), opts.passivate_after (seconds, default 120). */
static int l_entities(lua_State *L) {
  host *h = host_of(L);
  const char *behaviour = luaL_checkstring(L, 1);
  lua_settop(L, 2);
  if (lua_isnil(L, 2)) {
    lua_newtable(L);
    lua_replace(L, 2);
  }
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_getfield(L, 2, "name");
  const char *name = luaL_optstring(L, -1, behaviour);
  lua_getfield(L, 2, "passivate_after");
  double after = luaL_optnumber(L, -1, 120.0);
  if (!(after > 0) || after > 1e7)
    return luaL_argerror(L, 2, "opts.passivate_after must be a number of seconds above 0");
  if (strlen(name) == 0 || strlen(name) > REF_MANAGER_MAX)
    return luaL_argerror(L, 2, "opts.name must be 1 to 255 bytes");
  ensure_runtime(L, h);
  int index = entities_register(h->lrt, name, behaviour, after);
  if (index < 0)
    return luaL_error(L, "lore.entities(%s): %s", name,
                      index == UV_EEXIST ? "that manager name is taken by another behaviour"
                                         : lore_strerror(index));
  manager_ud *m = lua_newuserdatauv(L, sizeof *m, 0);
  m->h = h;
  m->index = index;
  snprintf(m->name, sizeof m->name, "%s", name);
  if (luaL_newmetatable(L, MANAGER_MT)) {
    static const luaL_Reg methods[] = {
        {"ref", mgr_ref}, {"tell", mgr_tell}, {"ask", mgr_ask}, {"stats", mgr_stats}, {NULL, NULL}};
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, mgr_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_setmetatable(L, -2);
  return 1;
}

/* lore.preload(name, cfunction): behaviour scripts may then require(name);
 * the function (from package.loadlib, say) is a native module's open
 * function, run once per worker state. Before the first spawn. */
static int l_preload(lua_State *L) {
  host *h = host_of(L);
  const char *name = luaL_checkstring(L, 1);
  lua_CFunction open = lua_tocfunction(L, 2);
  luaL_argcheck(L, open != NULL, 2, "a C function (a native module's luaopen_ function)");
  ensure_runtime(L, h);
  int rc = lore_preload(h->lrt, name, open);
  if (rc) return luaL_error(L, "lore.preload(%s): %s", name, lore_strerror(rc));
  return 0;
}

/* --- waits for the other host-side modules (app_wait.h: queries, adapters) --- */

host *app_host(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, "lore.host_state");
  host *h = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return h;
}

lore_runtime *app_runtime(lua_State *L, host *h) { return ensure_runtime(L, h); }

uint64_t app_token(lua_State *L, host *h) {
  check_waitable(L, h);
  return ++h->next_wait;
}

static int app_suspend_cont(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  return lua_gettop(L) - (int)ctx;
}

int app_suspend(lua_State *L, host *h, uint64_t token) {
  h->wait_id = token;
  return lua_yieldk(L, 0, (lua_KContext)lua_gettop(L), app_suspend_cont);
}

int app_wake(host *h, uint64_t token, lua_State *from, int nargs) {
  if (!(h->co && !h->co_done && h->wait_id == token)) {
    lua_pop(from, nargs);
    return 0;
  }
  lua_checkstack(h->co, nargs + 1);
  lua_xmove(from, h->co, nargs);
  resume_app(h, nargs);
  return 1;
}

LORE_EXTERN int luaopen_lore(lua_State *L) {
  binding_state *worker = binding_state_get(L);
  if (worker) return worker_open_lore(L);
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
  static const luaL_Reg fns[] = {
      {"configure", l_configure}, {"spawn", l_spawn},       {"ref", binding_l_ref},
      {"sleep", l_sleep},         {"shutdown", l_shutdown}, {"run", l_run},
      {"stats", l_stats},         {"version", l_version},   {"preload", l_preload},
      {"entities", l_entities},   {"reload", l_reload},     {NULL, NULL}};
  luaL_newlibtable(L, fns);
  lua_pushlightuserdata(L, h);
  luaL_setfuncs(L, fns, 1);
  query_module_open(L); /* lore.query, lore.adapter, lore.projection (query_lua.c) */
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, HOST_KEY);
  return 1;
}
