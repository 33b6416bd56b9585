/* watchdog.c: arms the instruction budget of handler calls that run long, from its own thread. */
#include <stdlib.h>

#include "log.h"
#include "worker.h"

#define WATCHDOG_TICK_MS 5
/* With no handler call seen running on two ticks in a row, it looks ten times
 * less often: an idle runtime wakes 20 times a second, not 200. A call that
 * begins meanwhile is hooked at most ~100 ms after it began (its budget
 * counts from then). */
#define WATCHDOG_IDLE_TICK_MS 50

/* Every tick the watchdog looks at each worker's state: a handler call seen
 * in progress on two consecutive ticks (so running 5-10 ms) gets the count
 * hook, which then enforces max_instructions. lua_sethook is safe to call
 * from another thread (lua.c calls it from a signal handler). The lock keeps
 * a worker from freeing its state while the watchdog looks at it. */
typedef struct watchdog {
  lore_runtime *lrt;
  uv_thread_t thread;
  uv_mutex_t lock;
  int stop;
  binding_state **states; /* by scheduler index; NULL when gone */
  uint64_t *seen_gen;
} watchdog;

static void watchdog_main(void *arg) {
  watchdog *w = arg;
  int n = w->lrt->rt->workers;
  int armed = w->lrt->cfg.max_instructions > 0; /* else it only waits for an interrupt */
  int quiet = 0;                                /* ticks in a row with no call running */
  for (;;) {
    uv_sleep(quiet >= 2 ? WATCHDOG_IDLE_TICK_MS : WATCHDOG_TICK_MS);
    uv_mutex_lock(&w->lock);
    if (w->stop) {
      uv_mutex_unlock(&w->lock);
      return;
    }
    int any = 0;
    for (int i = 1; i <= n; i++) {
      binding_state *bs = w->states[i];
      if (!bs) continue;
      uint64_t gen = __atomic_load_n(&bs->call_gen, __ATOMIC_ACQUIRE);
      int running = __atomic_load_n(&bs->in_call, __ATOMIC_ACQUIRE);
      any |= running || gen != w->seen_gen[i];
      if (armed && running && gen == w->seen_gen[i] &&
          !__atomic_load_n(&bs->hooked, __ATOMIC_ACQUIRE)) {
        __atomic_store_n(&bs->hooked, 1, __ATOMIC_RELEASE);
        lua_sethook(bs->L, budget_hook, LUA_MASKCOUNT, HOOK_EVERY);
      }
      w->seen_gen[i] = gen;
    }
    quiet = any ? 0 : quiet + 1;
    uv_mutex_unlock(&w->lock);
  }
}

int watchdog_start(lore_runtime *lrt) {
  int n = lrt->rt->workers;
  watchdog *w = calloc(1, sizeof *w);
  if (!w) return UV_ENOMEM;
  w->lrt = lrt;
  w->states = calloc((size_t)n + 1, sizeof *w->states);
  w->seen_gen = calloc((size_t)n + 1, sizeof *w->seen_gen);
  if (!w->states || !w->seen_gen || uv_mutex_init(&w->lock)) goto fail;
  for (int i = 1; i <= n; i++) {
    w->states[i] = lrt->rt->scheds[i]->data;
    w->seen_gen[i] = UINT64_MAX;
  }
  if (uv_thread_create(&w->thread, watchdog_main, w)) {
    uv_mutex_destroy(&w->lock);
    goto fail;
  }
  lrt->watchdog = w;
  return 0;
fail:
  free(w->states);
  free(w->seen_gen);
  free(w);
  return UV_ENOMEM;
}

void watchdog_forget(lore_runtime *lrt, sched_t *s) {
  watchdog *w = lrt ? lrt->watchdog : NULL;
  if (!w) return;
  uv_mutex_lock(&w->lock);
  w->states[s->index] = NULL;
  uv_mutex_unlock(&w->lock);
}

/* A forced shutdown: every worker's running handler (and any coroutine it
 * runs, which carries the hook already) raises at its next hook, and the
 * pattern functions stop at their next charge. */
void watchdog_interrupt(lore_runtime *lrt) {
  watchdog *w = lrt->watchdog;
  if (!w) return;
  uv_mutex_lock(&w->lock);
  for (int i = 1; i <= lrt->rt->workers; i++) {
    binding_state *bs = w->states[i];
    if (!bs) continue;
    __atomic_store_n(&bs->interrupt, 1, __ATOMIC_RELEASE);
    __atomic_store_n(&bs->hooked, 1, __ATOMIC_RELEASE);
    lua_sethook(bs->L, budget_hook, LUA_MASKCOUNT, HOOK_EVERY);
  }
  uv_mutex_unlock(&w->lock);
}

void watchdog_stop(lore_runtime *lrt) {
  watchdog *w = lrt->watchdog;
  if (!w) return;
  uv_mutex_lock(&w->lock);
  w->stop = 1;
  uv_mutex_unlock(&w->lock);
  uv_thread_join(&w->thread);
  uv_mutex_destroy(&w->lock);
  free(w->states);
  free(w->seen_gen);
  free(w);
  lrt->watchdog = NULL;
}
