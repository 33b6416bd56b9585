/* reload.h: hot reload of behaviour scripts (lore.reload and the hot_reload watcher). */
#ifndef LORE_RELOAD_H
#define LORE_RELOAD_H

#include <lua.h>

#include "runtime_object.h"

/* status 0, or a negative code with the reason (the load error, with file
 * and line). Runs on the host loop. */
typedef void (*reload_cb)(void *ud, int status, const char *err);

typedef struct reload_state {
  /* The text of every script file loaded so far, one for the whole runtime
   * (any thread, under `lock`): every worker compiles the same text, so an
   * edited file reaches none of them before its reload commits. */
  uv_mutex_t lock;
  struct source_entry *sources;
  struct reload_job *head, *tail; /* one at a time, in order */
  struct watched_dir *watched[256];
  int nwatched;
  uv_timer_t debounce;
  int timer_on;
  char *pending[64]; /* modules changed since the debounce timer started */
  int npending;
  int closing;
  void (*closed)(lore_runtime *lrt);
} reload_state;

/* Reloads module `module` (a behaviour, or a module behaviours require) on
 * every worker; cb (may be NULL) gets the outcome. */
int reload_begin(lore_runtime *lrt, const char *module, reload_cb cb, void *ud);
/* Starts watching cfg.scripts (hot_reload = 1). */
int reload_watch_start(lore_runtime *lrt);
/* Closes the watcher's handles; returns 1 if some are closing (then
 * `closed` runs once they are), 0 if there were none. */
int reload_close(lore_runtime *lrt, void (*closed)(lore_runtime *lrt));
void reload_free(lore_runtime *lrt);

/* Adds to the worker's `core` table (on top of the stack): core.source(path)
 * -> the runtime's text of that script file (read from disk on first use),
 * or nil, err; core.reload_staging(on): while on, this thread sees the text
 * a reload in progress is preparing instead. */
void reload_push_core_calls(lua_State *L);

#endif
