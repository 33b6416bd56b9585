/* runtime_object.c: lore_open, lore_run, lore_shutdown, lore_close: a runtime's whole life. */
#include "runtime_object.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "entities.h"
#include "host.h"
#include "lua_actor.h"
#include "query.h"
#include "reload.h"
#include "worker.h"

/* After shutdown_timeout the stragglers are stopped by force; a worker that
 * still has not finished this much later is stuck in C code: abandoned. */
#define FORCE_GRACE_MS 2000

/* --- configuration --- */

void lore_config_init(lore_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->log_level = log_default()->level;
  cfg->max_instructions = 100000000;
  cfg->memory_limit = (long long)1 << 30;
  cfg->synchronous_full = 1;
  /* A recovering actor holds its recovery state (~0.3 KB) and at most one
   * replay page: a stream of small events is read whole in its first page
   * (a buffer from 512 bytes up), so 1024 of them at once take ~1 MB. Fewer
   * made most of a mass wake-up wait for a permit (one more message and
   * turn each); a stream of big events holds up to a full page (4 MiB)
   * whatever the number of permits that read it. */
  cfg->max_concurrent_recoveries = 1024;
  cfg->recovery_timeout = 30.0;
  cfg->shutdown_timeout = 5.0;
  cfg->breaker_max_failures = 5;
  cfg->breaker_reset_timeout = 10.0;
  /* A commit with fsync takes ~50-400 us on SSDs and these VMs' disks. */
  cfg->io_spin_us = 1000;
}

static void settings_free(lore_settings *s) {
  free(s->journal);
  free(s->snapshots);
  for (int i = 0; i < s->nscripts; i++) free(s->scripts[i]);
  memset(s, 0, sizeof *s);
}

/* The snapshot store a journal URI implies: the same file or named store
 * (one setting keeps an application's data together). */
static const char *default_snapshots(const char *journal) {
  return strncmp(journal, "sqlite:", 7) == 0 || strncmp(journal, "memory:", 7) == 0 ||
                 strncmp(journal, "postgres:", 9) == 0
             ? journal
             : "memory:";
}

static int bad_setting(const log_sink *log, const char *what) {
  log_error(log, "lore_open: %s", what);
  return LORE_ECONFIG;
}

/* Checks cfg and copies it into *s (owned). */
static int settings_from(const lore_config *cfg, const log_sink *log, lore_settings *s) {
  memset(s, 0, sizeof *s);
  if (cfg->workers < 0 || cfg->workers > 1024) return bad_setting(log, "workers must be 0..1024");
  if (cfg->max_instructions < 0) return bad_setting(log, "max_instructions must be >= 0");
  if (cfg->memory_limit < 0) return bad_setting(log, "memory_limit must be >= 0");
  if (cfg->max_concurrent_recoveries < 1 || cfg->max_concurrent_recoveries > 1000000)
    return bad_setting(log, "max_concurrent_recoveries must be 1..1000000");
  if (!isfinite(cfg->recovery_timeout) || cfg->recovery_timeout <= 0 || cfg->recovery_timeout > 1e6)
    return bad_setting(log, "recovery_timeout must be a number of seconds in (0, 1e6]");
  if (!isfinite(cfg->shutdown_timeout) || cfg->shutdown_timeout <= 0 ||
      cfg->shutdown_timeout > 3600)
    return bad_setting(log, "shutdown_timeout must be a number of seconds in (0, 3600]");
  if (cfg->breaker_max_failures < 0 || cfg->breaker_max_failures > 1000000)
    return bad_setting(log, "breaker_max_failures must be 0..1000000 (0: no circuit breaker)");
  if (!isfinite(cfg->breaker_reset_timeout) || cfg->breaker_reset_timeout <= 0 ||
      cfg->breaker_reset_timeout > 86400)
    return bad_setting(log, "breaker_reset_timeout must be a number of seconds in (0, 86400]");
  if (cfg->io_spin_us < 0 || cfg->io_spin_us > 100000)
    return bad_setting(log, "io_spin_us must be 0..100000 (microseconds; 0: never spin)");
  if (cfg->log_level < LOG_DEBUG || cfg->log_level > LOG_OFF)
    return bad_setting(log, "log_level must be one of LORE_LOG_*");
  s->workers = cfg->workers;
  s->hot_reload = cfg->hot_reload;
  s->handle_signals = cfg->handle_signals;
  s->max_instructions = cfg->max_instructions;
  s->memory_limit = cfg->memory_limit;
  s->synchronous_full = cfg->synchronous_full;
  s->max_concurrent_recoveries = cfg->max_concurrent_recoveries;
  s->recovery_timeout = cfg->recovery_timeout;
  s->shutdown_timeout = cfg->shutdown_timeout;
  s->log_level = cfg->log_level;
  s->breaker_max_failures = cfg->breaker_max_failures;
  s->breaker_reset_timeout = cfg->breaker_reset_timeout;
  s->io_spin_us = cfg->io_spin_us;
  const char *journal = cfg->journal ? cfg->journal : "memory:";
  s->journal = strdup(journal);
  s->snapshots = strdup(cfg->snapshots ? cfg->snapshots : default_snapshots(journal));
  if (!s->journal || !s->snapshots) goto oom;
  const char *dirs = cfg->scripts ? cfg->scripts : ".";
  while (*dirs) {
    size_t n = strcspn(dirs, ";");
    if (n > 0) {
      if (s->nscripts == LORE_MAX_SCRIPT_DIRS) {
        settings_free(s);
        return bad_setting(log, "more than 16 script directories");
      }
      if (!(s->scripts[s->nscripts++] = strndup(dirs, n))) goto oom;
    }
    dirs += n;
    if (*dirs == ';') dirs++;
  }
  if (s->nscripts == 0 && !(s->scripts[s->nscripts++] = strdup("."))) goto oom;
  return 0;
oom:
  settings_free(s);
  return UV_ENOMEM;
}

/* --- the runtime hooks: the host's half, or a worker's --- */

static int hook_sched_start(sched_t *s) { return s->index ? worker_state_open(s) : 0; }
static void hook_sched_stop(sched_t *s) {
  if (s->index) worker_state_close(s);
}
static int hook_sched_message(sched_t *s, lore_msg *m) {
  return s->index ? worker_sched_message(s, m) : host_sched_message(s, m);
}
static void hook_dead_letter(sched_t *s, lore_msg *m) {
  if (s->index)
    worker_dead_letter(s, m);
  else
    host_dead_letter(s, m);
}

static int hook_route_missing(sched_t *s, lore_msg *m) {
  return s->index ? entities_route_missing(s, m) : ACTOR_CONSUMED;
}

static void hook_sched_prepare(sched_t *s) {
  if (!s->index || !s->data) return;
  recovery_flush(s->data);
  recovery_gc_check(s->data);
  idle_gc_check(s->data);
}

static const runtime_hooks hooks = {hook_sched_start, hook_sched_stop,    hook_sched_message,
                                    hook_dead_letter, hook_route_missing, hook_sched_prepare};

/* --- signals --- */

static void shutdown_timer_fired(uv_timer_t *t);

/* A second signal at least this long after the first forces the shutdown
 * (a user pressing Ctrl-C again); sooner, it is the same request delivered
 * twice (timeout(1) and service managers signal the process and its group). */
#define SECOND_SIGNAL_MS 1000

static void on_signal(uv_signal_t *sig, int signum) {
  lore_runtime *lrt = sig->data;
  uint64_t now = uv_now(lrt->loop);
  if (lrt->signalled && now - lrt->first_signal_ms < SECOND_SIGNAL_MS) return;
  if (!lrt->signalled) lrt->first_signal_ms = now;
  lrt->signalled++;
  log_info(&lrt->log, "signal %d: shutting down%s", signum,
           lrt->signalled > 1 ? " now (second signal)" : "");
  if (lrt->on_event) lrt->on_event(lrt, LORE_EVENT_SIGNAL, lrt->on_event_ud);
  runtime_object_begin_shutdown(lrt);
  if (lrt->signalled > 1 && lrt->phase == RT_STOPPING && lrt->timer_on)
    uv_timer_start(&lrt->shutdown_timer, shutdown_timer_fired, 0, 0);
}

static void start_signals(lore_runtime *lrt) {
  uv_signal_init(lrt->loop, &lrt->sigint);
  uv_signal_init(lrt->loop, &lrt->sigterm);
  lrt->sigint.data = lrt->sigterm.data = lrt;
  uv_signal_start(&lrt->sigint, on_signal, SIGINT);
  uv_signal_start(&lrt->sigterm, on_signal, SIGTERM);
  uv_unref((uv_handle_t *)&lrt->sigint);
  uv_unref((uv_handle_t *)&lrt->sigterm);
  lrt->signals_on = 1;
}

/* --- open --- */

static void runtime_object_free(lore_runtime *lrt) {
  if (lrt->rt) runtime_free(lrt->rt);
  host_free(lrt);
  if (lrt->snapshots) snapshot_store_close(lrt->snapshots);
  if (lrt->journal) journal_close(lrt->journal);
  while (lrt->permit_head) {
    permit_waiter *w = lrt->permit_head;
    lrt->permit_head = w->next;
    free(w);
  }
  uv_mutex_destroy(&lrt->permit_lock);
  entities_free(lrt);
  reload_free(lrt);
  query_free(lrt);
  for (int i = 0; i < lrt->npreloads; i++) free(lrt->preloads[i].name);
  free(lrt->preloads);
  if (lrt->loop == &lrt->private_loop && uv_loop_close(&lrt->private_loop) != 0)
    log_warn(&lrt->log, "lore_close: the private loop still had handles");
  settings_free(&lrt->cfg);
  free(lrt->stopped_flags);
  free(lrt->lua_memory);
  free(lrt);
}

int lore_open(const lore_config *cfg, lore_runtime **out) {
  if (!cfg || !out) return UV_EINVAL;
  lore_runtime *lrt = calloc(1, sizeof *lrt);
  if (!lrt) return UV_ENOMEM;
  lrt->log.level = cfg->log_level;
  lrt->log.fn = cfg->log;
  lrt->log.ud = cfg->log_ud;
  lrt->host_thread = uv_thread_self();
  uv_mutex_init(&lrt->permit_lock);
  host_init(lrt);
  int r = settings_from(cfg, &lrt->log, &lrt->cfg);
  if (r) goto fail;
  if (cfg->loop) {
    lrt->loop = cfg->loop;
  } else {
    if ((r = uv_loop_init(&lrt->private_loop))) goto fail;
    lrt->loop = &lrt->private_loop;
  }
  journal_options jopt = {.synchronous_full = lrt->cfg.synchronous_full,
                          .log = &lrt->log,
                          .breaker_max_failures = lrt->cfg.breaker_max_failures,
                          .breaker_reset_ms = (int)(lrt->cfg.breaker_reset_timeout * 1000.0 + 0.5)};
  if ((r = journal_open(lrt->cfg.journal, &jopt, &lrt->journal))) {
    log_error(&lrt->log, "cannot open journal '%s': %s", lrt->cfg.journal, journal_strerror(r));
    goto fail;
  }
  journal_set_batch_done(lrt->journal, persist_completions_flush, NULL);
  if ((r = snapshot_store_open(lrt->cfg.snapshots, &lrt->log, &lrt->snapshots))) {
    log_error(&lrt->log, "cannot open snapshot store '%s': %s", lrt->cfg.snapshots,
              snapshot_strerror(r));
    goto fail;
  }
  runtime_config rc = {.workers = lrt->cfg.workers,
                       .log = &lrt->log,
                       .host_loop = lrt->loop,
                       .io_spin_us = lrt->cfg.io_spin_us};
  if ((r = runtime_create(&rc, &hooks, lrt, &lrt->rt))) goto fail;
  if (!(lrt->stopped_flags = calloc((size_t)lrt->rt->workers + 1, 1)) ||
      !(lrt->lua_memory = calloc((size_t)lrt->rt->workers + 1, sizeof *lrt->lua_memory))) {
    r = UV_ENOMEM;
    goto fail;
  }
  /* runtime_start makes the host scheduler this thread's current one; the
   * host side makes it current only while it works (host.c), so that
   * messages it sends go straight to their inboxes. */
  sched_t *prev = sched_current();
  r = runtime_start(lrt->rt);
  sched_leave(prev);
  if (r) {
    log_error(&lrt->log, "cannot start the runtime's workers (see above): %s", lore_strerror(r));
    goto fail;
  }
  if ((r = watchdog_start(lrt))) {
    runtime_shutdown(lrt->rt);
    runtime_join(lrt->rt);
    goto fail;
  }
  uv_timer_init(lrt->loop, &lrt->shutdown_timer);
  lrt->shutdown_timer.data = lrt;
  uv_unref((uv_handle_t *)&lrt->shutdown_timer);
  lrt->timer_on = 1;
  if (lrt->cfg.handle_signals) start_signals(lrt);
  lrt->phase = RT_RUNNING;
  if (lrt->cfg.hot_reload && (r = reload_watch_start(lrt))) {
    lore_close(lrt);
    return r;
  }
  *out = lrt;
  return 0;
fail:
  if (lrt->rt) {
    /* never started (or stopped again above): its host handles close now */
    runtime_close_host(lrt->rt, NULL);
    if (lrt->loop == &lrt->private_loop) uv_run(lrt->loop, UV_RUN_DEFAULT);
  }
  runtime_object_free(lrt);
  return r;
}

int lore_preload(lore_runtime *rt, const char *name, lua_CFunction open) {
  if (!rt || !name || !*name || !open) return UV_EINVAL;
  uv_thread_t self = uv_thread_self();
  if (!uv_thread_equal(&self, &rt->host_thread)) return LORE_ETHREAD;
  if (rt->spawned) return UV_EBUSY;
  for (int i = 0; i < rt->npreloads; i++)
    if (strcmp(rt->preloads[i].name, name) == 0) return UV_EEXIST;
  native_module *grown = realloc(rt->preloads, (size_t)(rt->npreloads + 1) * sizeof *grown);
  if (!grown) return UV_ENOMEM;
  rt->preloads = grown;
  if (!(grown[rt->npreloads].name = strdup(name))) return UV_ENOMEM;
  grown[rt->npreloads].open = open;
  rt->npreloads++;
  return 0;
}

int lore_run(lore_runtime *rt) {
  if (!rt || rt->loop != &rt->private_loop) return UV_EINVAL;
  while (rt->phase != RT_DOWN) uv_run(rt->loop, UV_RUN_ONCE);
  return 0;
}

/* --- shutdown --- */

static void finish(lore_runtime *lrt);

static void shutdown_timer_fired(uv_timer_t *t) {
  lore_runtime *lrt = t->data;
  if (lrt->phase == RT_STOPPING) {
    /* Too slow: interrupt runaway handlers, stop what is left by force. */
    lrt->phase = RT_FORCING;
    lrt->status = LORE_ETIMEDOUT;
    log_warn(&lrt->log, "shutdown: actors still running after %.1f s: stopping them by force",
             lrt->cfg.shutdown_timeout);
    watchdog_interrupt(lrt);
    runtime_force_stop(lrt->rt);
    uv_timer_start(&lrt->shutdown_timer, shutdown_timer_fired, FORCE_GRACE_MS, 0);
  } else if (lrt->phase == RT_FORCING) {
    /* A worker that did not come back is stuck in C code (a native module,
     * a system call): give up on it rather than hang the process. */
    for (int i = 1; i <= lrt->rt->workers; i++) {
      if (lrt->stopped_flags[i]) continue;
      log_error(&lrt->log, "shutdown: worker %d is stuck (in C code?): abandoned", i);
      runtime_abandon(lrt->rt, (uint32_t)i);
    }
    lrt->status = UV_EBUSY;
    finish(lrt);
  }
}

void runtime_object_begin_shutdown(lore_runtime *lrt) {
  if (lrt->phase != RT_RUNNING) return;
  lrt->phase = RT_STOPPING;
  runtime_shutdown(lrt->rt);
  uv_ref((uv_handle_t *)&lrt->shutdown_timer); /* the loop runs until the shutdown is done */
  uv_timer_start(&lrt->shutdown_timer, shutdown_timer_fired,
                 (uint64_t)(lrt->cfg.shutdown_timeout * 1000.0), 0);
}

int lore_shutdown(lore_runtime *rt, void (*done)(void *ud), void *ud) {
  if (!rt) return UV_EINVAL;
  uv_thread_t self = uv_thread_self();
  if (!uv_thread_equal(&self, &rt->host_thread)) return LORE_ETHREAD;
  if (done && !rt->done) {
    rt->done = done;
    rt->done_ud = ud;
  }
  if (rt->phase == RT_DOWN) {
    void (*cb)(void *) = rt->done;
    rt->done = NULL;
    if (cb) cb(rt->done_ud);
    return 0;
  }
  runtime_object_begin_shutdown(rt);
  return 0;
}

void runtime_object_worker_stopped(lore_runtime *lrt, uint32_t index) {
  if (index < 1 || index > (uint32_t)lrt->rt->workers || lrt->stopped_flags[index]) return;
  lrt->stopped_flags[index] = 1;
  if (++lrt->workers_stopped == lrt->rt->workers &&
      (lrt->phase == RT_STOPPING || lrt->phase == RT_FORCING))
    finish(lrt);
}

/* One more of the host loop's handles is closed; after the last, `done`. */
static void one_closed(lore_runtime *lrt) {
  if (--lrt->closing != 0) return;
  lrt->phase = RT_DOWN;
  if (lrt->on_event) lrt->on_event(lrt, LORE_EVENT_DOWN, lrt->on_event_ud);
  void (*cb)(void *) = lrt->done;
  lrt->done = NULL;
  if (cb) cb(lrt->done_ud);
}

static void handle_closed(uv_handle_t *h) { one_closed(h->data); }
static void host_closed(sched_t *host) { one_closed(host->rt->data); }
static void watcher_closed(lore_runtime *lrt) { one_closed(lrt); }
static void queries_closed(lore_runtime *lrt) { one_closed(lrt); }

/* Every worker has stopped (or was abandoned): flush and close the stores,
 * answer what the host still waits for, close the host loop's handles. */
static void finish(lore_runtime *lrt) {
  lrt->phase = RT_CLOSING;
  runtime_join(lrt->rt); /* immediate: each has said it stopped */
  watchdog_stop(lrt);
  /* Queries and projections leave the journal first (their reads finish,
   * their sessions close). */
  int querying = query_shutdown(lrt, queries_closed);
  if (lrt->status != UV_EBUSY) {
    journal_close(lrt->journal); /* every queued write lands first */
    lrt->journal = NULL;
    snapshot_store_close(lrt->snapshots);
    lrt->snapshots = NULL;
  } /* else a stuck worker may still touch them: they stay open (the process ends soon) */
  host_drop_pending(lrt);
  lrt->closing = 1; /* the host scheduler's handles, counted as one */
  lrt->closing += reload_close(lrt, watcher_closed);
  lrt->closing += querying;
  if (lrt->signals_on) {
    lrt->closing += 2;
    uv_close((uv_handle_t *)&lrt->sigint, handle_closed);
    uv_close((uv_handle_t *)&lrt->sigterm, handle_closed);
    lrt->signals_on = 0;
  }
  if (lrt->timer_on) {
    lrt->closing++;
    uv_close((uv_handle_t *)&lrt->shutdown_timer, handle_closed);
    lrt->timer_on = 0;
  }
  runtime_close_host(lrt->rt, host_closed);
}

int lore_shutdown_status(const lore_runtime *rt) { return rt ? rt->status : UV_EINVAL; }

void lore_close(lore_runtime *rt) {
  if (!rt) return;
  if (rt->phase != RT_DOWN) {
    runtime_object_begin_shutdown(rt);
    while (rt->phase != RT_DOWN) uv_run(rt->loop, UV_RUN_ONCE);
  }
  if (rt->status == UV_EBUSY) return; /* a stuck worker still uses it all */
  runtime_object_free(rt);
}

/* --- errors and version --- */

const char *lore_strerror(int code) {
  switch (code) {
    case LORE_OK:
      return "ok";
    case LORE_ENOBEHAVIOUR:
      return "no such behaviour";
    case LORE_ESCRIPT:
      return "the behaviour script failed to load or start";
    case LORE_EFAILED:
      return "the actor failed while handling the message";
    case LORE_EDEADLETTER:
      return "no actor is running at that ref";
    case LORE_ELIVE:
      return "an actor with that persistence id is already live";
    case LORE_ESHUTDOWN:
      return "the runtime is shutting down";
    case LORE_ETHREAD:
      return "called from a thread that does not run the host loop";
    case LORE_ECONFIG:
      return "a configuration value is out of range";
    case LORE_EBADMSG:
      return "not one MessagePack value";
    default:
      break;
  }
  if (code <= -5001 && code > -5100) return journal_strerror(code);
  if (code <= -5101 && code > -5200) return snapshot_strerror(code);
  static _Thread_local char buf[96];
  return uv_strerror_r(code, buf, sizeof buf);
}

const char *binding_strerror(int code) { return lore_strerror(code); }

const char *lore_version(void) { return LORE_VERSION; }
