/* app_wait.h: how host-side modules suspend the application script's coroutine and wake it. */
#ifndef LORE_APP_WAIT_H
#define LORE_APP_WAIT_H

#include <lua.h>
#include <stdint.h>

#include "runtime_object.h"

/*
 * The application script is one coroutine on the host loop (lore_module.c).
 * A module whose call waits for something done elsewhere (a page read on
 * the thread pool, an answer from every worker) takes a token, starts the
 * work, and yields with app_suspend; the work's completion, on the host loop,
 * hands its results to app_wake. A completion that comes after the app
 * moved on (or after the run ended) is dropped.
 */
typedef struct host host;

/* The host of the `lore` module opened in L's state (NULL if none). */
host *app_host(lua_State *L);
/* Its runtime, opened on first need; raises when it cannot start. */
lore_runtime *app_runtime(lua_State *L, host *h);
/* A token for one wait; raises unless L is the application coroutine. */
uint64_t app_token(lua_State *L, host *h);
/* Yields the application coroutine until app_wake(token); returns (to the
 * Lua caller) the values the wake passed. Call as `return app_suspend(...)`. */
int app_suspend(lua_State *L, host *h, uint64_t token);
/* Resumes the application with the top `nargs` values of `from` (popped),
 * if it still waits for `token`: returns 1; else pops them, returns 0. */
int app_wake(host *h, uint64_t token, lua_State *from, int nargs);

#endif
