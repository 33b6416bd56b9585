/* runtime_object.h: the runtime object lore.h is the face of: settings, stores, lifecycle (no Lua).
 */
#ifndef LORE_RUNTIME_OBJECT_H
#define LORE_RUNTIME_OBJECT_H

#include <stdint.h>
#include <uv.h>

#include "idmap.h"
#include "journal.h"
#include "log.h"
#include "lore.h"
#include "scheduler.h"
#include "snapshot_store.h"

/*
 * One lore_runtime per lore_open. It owns the core runtime (schedulers and
 * worker threads), the journal, the snapshot store and the log sink, and it
 * is runtime_t.data. The host side (host.c) and the worker side (worker
 * states, actor_lua.c, ...) both read it; only the host thread changes it,
 * except where a field says otherwise.
 *
 * Lifecycle (all on the host thread):
 *   lore_open: settings checked and copied, stores opened, workers started.
 *   lore_shutdown: RUNNING -> STOPPING (safe stop of every actor); after
 *     shutdown_timeout -> FORCING (runaway handlers interrupted, actors stopped
 *     by force); after a grace period stuck workers are abandoned; then the
 *     journal is flushed and closed, the host's handles closed -> DOWN, and
 *     the caller's `done` runs.
 *   lore_close: frees everything.
 */

#define LORE_MAX_SCRIPT_DIRS 16

/* lore_config, owned: what the runtime was opened with. */
typedef struct lore_settings {
  int workers;
  char *journal;   /* URI */
  char *snapshots; /* URI */
  char *scripts[LORE_MAX_SCRIPT_DIRS];
  int nscripts;
  int hot_reload;
  int handle_signals;
  int64_t max_instructions; /* per handler call; 0: unlimited */
  int64_t memory_limit;     /* bytes per worker state; 0: unlimited */
  int synchronous_full;
  int max_concurrent_recoveries;
  double recovery_timeout;
  double shutdown_timeout;
  int log_level;
  int breaker_max_failures;
  double breaker_reset_timeout;
  int io_spin_us;
} lore_settings;

/* An actor waiting for a recovery permit. */
typedef struct permit_waiter {
  lore_addr addr;
  struct permit_waiter *next;
} permit_waiter;

/* A native module behaviour scripts may require (lore_preload). */
typedef struct native_module {
  char *name;
  lua_CFunction open;
} native_module;

enum { RT_RUNNING, RT_STOPPING, RT_FORCING, RT_CLOSING, RT_DOWN };

struct lore_runtime {
  runtime_t *rt;
  lore_settings cfg;
  journal_t *journal;
  snapshot_store_t *snapshots;
  log_sink log;
  struct watchdog *watchdog;
  uv_thread_t host_thread;
  uv_loop_t private_loop; /* the host loop when the embedder gave none */
  uv_loop_t *loop;        /* the host loop */

  /* Recovery permits (any worker thread, under permit_lock):
   * max_concurrent_recoveries for the whole runtime, first come first served. */
  uv_mutex_t permit_lock;
  int permits_used;
  int permits_peak; /* the most ever in use at once (lore.stats) */
  permit_waiter *permit_head, *permit_tail;

  /* Entity managers (entities.c): appended by the host thread, read by any
   * worker up to nmanagers (published with release/acquire). */
  struct entity_manager *managers[256];
  int nmanagers;

  struct reload_state *reload; /* hot reload (reload.c), or NULL */
  struct query_state *queries; /* queries and projections (query_state.c), or NULL */

  native_module *preloads; /* read by workers only after the first spawn */
  int npreloads;
  int spawned; /* a spawn happened: preloads are fixed */

  /* Host side (host.c). */
  idmap asks;      /* corr -> pending ask */
  idmap endpoints; /* aid -> endpoint */
  uv_signal_t sigint, sigterm;
  int signals_on;
  int signalled; /* how many SIGINT/SIGTERM arrived (duplicates aside) */
  uint64_t first_signal_ms;

  /* Shutdown. */
  int phase;
  int status; /* lore_shutdown_status */
  int workers_stopped;
  uint8_t *stopped_flags; /* by worker index: told us it stopped */
  /* By worker index: bytes of that worker's Lua heap, stored (relaxed) by
   * its allocator, read by lore.stats() on the host. */
  size_t *lua_memory;
  int closing; /* host-loop handles still closing at the end */
  uv_timer_t shutdown_timer;
  int timer_on;
  void (*done)(void *ud);
  void *done_ud;
  /* Told when something the host's application layer waits for happens: the
   * last actor ended (MSG_HOST_NONE_ALIVE) or a signal arrived. */
  void (*on_event)(lore_runtime *lrt, int what, void *ud);
  void *on_event_ud;
};

enum { LORE_EVENT_NONE_ALIVE = 1, LORE_EVENT_SIGNAL = 2, LORE_EVENT_DOWN = 3 };

/* Called when the runtime should begin shutting down on its own (a signal):
 * same as lore_shutdown without a callback. */
void runtime_object_begin_shutdown(lore_runtime *lrt);
/* Worker `index` told the host it has stopped (host.c passes it on). */
void runtime_object_worker_stopped(lore_runtime *lrt, uint32_t index);

/* The message of any Lore error code (journal, snapshot store, runtime, libuv). */
const char *binding_strerror(int code);

#endif
