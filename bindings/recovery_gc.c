/* recovery_gc.c: while a wave of recoveries queues for permits, a worker's
 * collector starts its cycles sooner.
 *
 * Lua's incremental collector starts a cycle once the heap reaches `pause`
 * percent of what the last cycle left (200: twice). With a wave of actors
 * waking (100,000 spawned at once, say), every recovery leaves garbage (its
 * page, the decoded events, its own state) among the actors the wave keeps,
 * and the heap climbs to about twice what they keep; the RSS stays near that
 * peak, since the allocator keeps every page that holds one live object. So
 * while actors wait for a recovery permit (all of them are taken), the
 * worker's pause is RECOVERY_GC_PAUSE, and Lua's default once none waits.
 * Messaging and a single long replay keep the default: the shorter pause
 * costs collector work per byte allocated, a wave's actors are mostly new
 * live data. Checked at the end of a loop iteration, every few ms. */
#include <lauxlib.h>

#include "binding.h"
#include "runtime_object.h"
#include "worker.h"

/* The pause while recoveries wait for permits (percent; Lua's default: 200). */
#define RECOVERY_GC_PAUSE 120
#define DEFAULT_GC_PAUSE 200
/* How often a worker looks whether recoveries wait (ms). */
#define RECOVERY_GC_CHECK_MS 5

void recovery_gc_check(binding_state *bs) {
  /* At most once per RECOVERY_GC_CHECK_MS of the loop's clock: the mutex
   * stays off a busy worker's loop iterations. */
  uint64_t now = uv_now(bs->sched->loop);
  if (now - bs->gc_wave_checked < RECOVERY_GC_CHECK_MS) return;
  bs->gc_wave_checked = now;
  lore_runtime *lrt = bs->lrt;
  uv_mutex_lock(&lrt->permit_lock);
  int wave = lrt->permit_head != NULL;
  uv_mutex_unlock(&lrt->permit_lock);
  if (wave == bs->gc_wave) return;
  bs->gc_wave = wave;
  lua_gc(bs->L, LUA_GCINC, wave ? RECOVERY_GC_PAUSE : DEFAULT_GC_PAUSE, 0, 0);
}
