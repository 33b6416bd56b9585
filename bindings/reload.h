/* reload.h: hot reload of behaviour scripts (lore.reload and the hot_reload watcher). */
#ifndef LORE_RELOAD_H
#define LORE_RELOAD_H

#include "runtime_object.h"

/* status 0, or a negative code with the reason (the load error, with file
 * and line). Runs on the host loop. */
typedef void (*reload_cb)(void *ud, int status, const char *err);

typedef struct reload_state {
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

#endif
