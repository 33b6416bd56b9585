/* idle_gc.c: a worker that runs out of work finishes the Lua collector's
 * cycle in small steps.
 *
 * Lua's incremental collector is paid for by allocation: it advances only
 * while the program allocates. A worker that goes quiet after a burst (a
 * wave of recoveries, a spike of messages) therefore keeps that burst's
 * garbage (pages, decoded messages, recovery state) for as long as it stays
 * quiet, which for a game or app server can be hours. So when the worker
 * has nothing ready to run and its heap has grown since the last such
 * cycle, it steps the collector from a timer, one bounded step at a time,
 * until the cycle ends or work arrives (work always goes first: a step
 * never runs while an actor is ready, and one step is short). */
#include <lauxlib.h>
#ifdef LORE_MIMALLOC
#include <mimalloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#endif

#include "binding.h"
#include "worker.h"

/* Quiet this long before the first step: a gap inside a burst is not idleness. */
#define IDLE_GC_DELAY_MS 20
/* Between steps, so that a message arriving meanwhile waits at most one step. */
#define IDLE_GC_PERIOD_MS 1
/* One step does the collector work of this many KiB allocated (well under a
 * millisecond on the machines we measure). */
#define IDLE_GC_STEP_KB 64
/* The heap must have grown by this much (KiB) since the last idle cycle ended:
 * an idle worker whose heap did not change has nothing new to collect. */
#define IDLE_GC_GROWTH_KB 256
/* Allocated between two steps beyond this (KiB): the worker was not idle. */
#define IDLE_GC_ACTIVITY_KB 16

static void idle_gc_step(void *ud);

static int quiet(binding_state *bs) {
  return !bs->sched->ready_head && !bs->sched->shutting_down && !bs->sched->closed;
}

static void arm(binding_state *bs, uint64_t ms) {
  bs->idle_gc_seen_kb = lua_gc(bs->L, LUA_GCCOUNT);
  bs->idle_gc = sched_timer_start(bs->sched, ms, idle_gc_step, bs, NULL);
}

#ifdef LORE_MIMALLOC
/* The pages the cycle emptied go back to the OS now. mimalloc 2.0 frees an
 * empty page into its segment and only marks it for a decommit after a
 * delay (25 ms); the mark is acted on when that segment frees or hands out
 * another page after the delay has passed, and each free within the delay
 * pushes it back a little. An idle worker does neither, so pages the wave
 * and the cycle emptied stayed committed (~120 B per actor after 100,000
 * recoveries). For this collect the delay is 1 ms and the push-back 0: a
 * page freed now into a segment whose mark has expired decommits every
 * marked page of that segment (the segments the cycle emptied pages in are
 * the ones it frees pages in now); then a sweep (below) acts on the marks of
 * the others. (The options are the process's; another thread freeing a page
 * meanwhile decommits it sooner too, which costs it a syscall, nothing
 * more.) The worker thread's own heap holds the C side's requests and
 * messages of the same burst. */
static pthread_mutex_t release_lock = PTHREAD_MUTEX_INITIALIZER;

/* The lock: two workers going idle together would otherwise interleave, and
 * the second could save the first's temporary values and restore them for
 * good. (A worker's step may have the extension at 0 meanwhile: then this
 * restores that 0, and the step's end restores the real value.) */
static void release_pages(binding_state *bs) {
  pthread_mutex_lock(&release_lock);
  long delay = mi_option_get(mi_option_decommit_delay);
  long extend = mi_option_get(mi_option_decommit_extend_delay);
  mi_option_set(mi_option_decommit_delay, 1);
  mi_option_set(mi_option_decommit_extend_delay, 0);
  mi_heap_collect(bs->heap, true);
  mi_collect(true);
  mi_option_set(mi_option_decommit_extend_delay, extend);
  mi_option_set(mi_option_decommit_delay, delay);
  pthread_mutex_unlock(&release_lock);
}

/* mimalloc 2.0's segments: 32 MiB, aligned on their size. A segment's pages
 * are all one thread's (here the worker's: its Lua heap's and its C side's). */
#define SEGMENT_MASK (~(uintptr_t)((32u << 20) - 1))
/* The segments one sweep can tell apart, and the pages it may take. */
#define SWEEP_SEGMENTS 64
#define SWEEP_MAX_PAGES 512
/* Pages a step takes or gives back: a step stays well under a millisecond. */
#define SWEEP_CHUNK 8
/* First one block a page, a span of 7 slices (64 KiB each) or more; then
 * mimalloc's largest small block, a quarter of a one-slice page. */
#define SWEEP_LARGE (448u << 10)
#define SWEEP_SMALL (16u << 10)
#define SWEEP_BLOCKS (SWEEP_MAX_PAGES * 5)

typedef struct segment_set {
  uintptr_t base[SWEEP_SEGMENTS];
  int n;
} segment_set;

static int known_segment(const segment_set *set, const void *p) {
  uintptr_t seg = (uintptr_t)p & SEGMENT_MASK;
  for (int i = 0; i < set->n; i++)
    if (set->base[i] == seg) return 1;
  return 0;
}

static bool note_segment(const mi_heap_t *heap, const mi_heap_area_t *area, void *block,
                         size_t size, void *arg) {
  (void)heap, (void)block, (void)size;
  segment_set *set = arg;
  if (known_segment(set, area->blocks)) return true;
  if (set->n == SWEEP_SEGMENTS) return false;
  set->base[set->n++] = (uintptr_t)area->blocks & SEGMENT_MASK;
  return true;
}

/* Marks that have not expired wait, and each free before they expire
 * pushes them back (1 ms a free: a wave's frees push them seconds or
 * minutes ahead). A segment that frees or hands out no page after that
 * kept the wave's pages committed for good (~100 B per actor after 100,000
 * recoveries; with the decommit delay 0 for the whole process they go, but
 * messaging runs 2-4x slower). What acts on them at once: a page handed out
 * of a marked span, with the delay 0, sets its segment's expiry to now, and
 * the hand-out then decommits every marked page of that segment; a page
 * freed with the delay 0 is decommitted at once, marked or not. So after
 * the cycle a scratch heap takes pages from the worker thread's free spans
 * (large ones first, one block a page, then one-slice ones) until one comes
 * from a segment that holds none of the worker's pages (the free spans are
 * used up: that segment is new), then gives them all back with the delay
 * 0. Each page taken faults in one to four OS pages. It goes in steps of a
 * few pages, 1 ms apart, while the worker stays quiet; work arriving ends
 * it (the pages go back as any others, marked). One sweep at a time per
 * worker thread: its state is the thread's. */
enum { SWEEP_TAKE_LARGE, SWEEP_TAKE_SMALL, SWEEP_GIVE, SWEEP_DONE };
static _Thread_local struct sweep {
  mi_heap_t *heap; /* the scratch heap, while a sweep runs */
  void **blocks;   /* what it took, to give back */
  int n, given, pages, phase;
  segment_set set;
} sweep;

static void sweep_end(void) {
  mi_heap_destroy(sweep.heap);
  free(sweep.blocks);
  sweep.heap = NULL, sweep.blocks = NULL;
}

/* One block of `size` each `per_page` (so a new page each time). */
static void take(size_t size, int per_page) {
  for (int k = 0; k < SWEEP_CHUNK; k++) {
    void *p = NULL;
    for (int i = 0; i < per_page; i++)
      if ((p = mi_heap_malloc(sweep.heap, size))) sweep.blocks[sweep.n++] = p;
    if (!p || !known_segment(&sweep.set, p) || ++sweep.pages >= SWEEP_MAX_PAGES) {
      sweep.phase++;
      return;
    }
  }
}

static void give(void) {
  for (int k = 0; k < SWEEP_CHUNK * 4 && sweep.given < sweep.n; k++)
    mi_free(sweep.blocks[sweep.given++]);
  if (sweep.given == sweep.n) sweep.phase = SWEEP_DONE;
}

static void sweep_step(void *ud);

static void arm_sweep(binding_state *bs) {
  bs->idle_gc = sched_timer_start(bs->sched, IDLE_GC_PERIOD_MS, sweep_step, bs, NULL);
  if (!bs->idle_gc) sweep_end(); /* no timer (no memory): give it all back now */
}

static void sweep_step(void *ud) {
  binding_state *bs = ud;
  bs->idle_gc = NULL;
  if (!sweep.heap) return;
  if (!quiet(bs)) { /* work first: what it took goes back as any freed page, marked */
    sweep_end();
    return;
  }
  pthread_mutex_lock(&release_lock);
  long delay = mi_option_get(mi_option_decommit_delay);
  mi_option_set(mi_option_decommit_delay, 0);
  if (sweep.phase == SWEEP_TAKE_LARGE)
    take(SWEEP_LARGE, 1);
  else if (sweep.phase == SWEEP_TAKE_SMALL)
    take(SWEEP_SMALL, 4);
  else
    give();
  if (sweep.phase == SWEEP_DONE) sweep_end(); /* empty now: its pages freed, decommitted */
  mi_option_set(mi_option_decommit_delay, delay);
  pthread_mutex_unlock(&release_lock);
  if (sweep.heap) arm_sweep(bs);
}

static void sweep_start(binding_state *bs) {
  if (sweep.heap) return;
  sweep.set.n = 0;
  if (!mi_heap_visit_blocks(bs->heap, false, note_segment, &sweep.set)) return;
  if (!mi_heap_visit_blocks(mi_heap_get_default(), false, note_segment, &sweep.set)) return;
  if (sweep.set.n == 0) return;
  if (!(sweep.blocks = malloc(SWEEP_BLOCKS * sizeof *sweep.blocks))) return;
  if (!(sweep.heap = mi_heap_new())) {
    free(sweep.blocks);
    sweep.blocks = NULL;
    return;
  }
  sweep.n = sweep.given = sweep.pages = 0;
  sweep.phase = SWEEP_TAKE_LARGE;
  arm_sweep(bs);
}

void idle_gc_close(binding_state *bs) {
  (void)bs;
  if (sweep.heap) sweep_end();
}

/* One step of the cycle. The pages it empties are marked for a decommit
 * like any others, but each free in a segment whose mark has not expired
 * pushes the mark back by the extension (1 ms): a cycle freeing hundreds of
 * pages in a segment pushed its decommit seconds past the cycle's end, out
 * of release_pages' reach. With the extension 0 while any worker steps, the
 * marks expire 25 ms after the page that set them, and a later free in the
 * same segment (this cycle's, or release_pages') acts on them. The lock is
 * not held across the step itself: it may run finalizers (Lua code), and
 * another worker must never wait on that. */
static int stepping;      /* workers inside a step (under release_lock) */
static long saved_extend; /* the extension to restore when the last one ends */

static int collect_step(binding_state *bs) {
  pthread_mutex_lock(&release_lock);
  if (stepping++ == 0) {
    saved_extend = mi_option_get(mi_option_decommit_extend_delay);
    mi_option_set(mi_option_decommit_extend_delay, 0);
  }
  pthread_mutex_unlock(&release_lock);
  int done = lua_gc(bs->L, LUA_GCSTEP, IDLE_GC_STEP_KB);
  pthread_mutex_lock(&release_lock);
  if (--stepping == 0) mi_option_set(mi_option_decommit_extend_delay, saved_extend);
  pthread_mutex_unlock(&release_lock);
  return done;
}
#else
static void release_pages(binding_state *bs) { (void)bs; }
static void sweep_start(binding_state *bs) { (void)bs; }
void idle_gc_close(binding_state *bs) { (void)bs; }
static int collect_step(binding_state *bs) { return lua_gc(bs->L, LUA_GCSTEP, IDLE_GC_STEP_KB); }
#endif

static void idle_gc_step(void *ud) {
  binding_state *bs = ud;
  bs->idle_gc = NULL;
  if (!quiet(bs)) return; /* busy: the end of that work arms it anew */
  if (lua_gc(bs->L, LUA_GCCOUNT) > bs->idle_gc_seen_kb + IDLE_GC_ACTIVITY_KB) {
    arm(bs, IDLE_GC_DELAY_MS); /* it allocated since: work came and went, not idleness */
    return;
  }
  if (collect_step(bs)) {
    bs->idle_gc_base_kb = lua_gc(bs->L, LUA_GCCOUNT);
    recovery_drop_spare(bs); /* a replay's spare page (up to 4 MiB) is not kept idle */
    release_pages(bs);
    sweep_start(bs);
    return;
  }
  arm(bs, IDLE_GC_PERIOD_MS);
}

void idle_gc_check(binding_state *bs) {
  if (bs->idle_gc || !quiet(bs)) return;
  int kb = lua_gc(bs->L, LUA_GCCOUNT);
  if (kb < bs->idle_gc_base_kb) bs->idle_gc_base_kb = kb; /* growth counts from the low point */
  if (kb < bs->idle_gc_base_kb + IDLE_GC_GROWTH_KB) return;
  arm(bs, IDLE_GC_DELAY_MS);
}
