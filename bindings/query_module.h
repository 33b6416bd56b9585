/* query_module.h: what the host-side query files share: the module context and its calls. */
#ifndef LORE_QUERY_MODULE_H
#define LORE_QUERY_MODULE_H

#include <lua.h>

#include "app_wait.h"
#include "runtime_object.h"

/*
 * The query module's C calls (`qcore`, handed to lua/lore/query.lua and
 * projection.lua in the application's state) share one context, their
 * upvalue: the host, and a Lua thread of its own on which completions call
 * their Lua callbacks (never the application's coroutine, which may be
 * suspended in the middle of a call).
 */
typedef struct qmod {
  host *h;
  lua_State *T;
} qmod;

/* The context: upvalue 1 of every qcore call. */
qmod *qmod_of(lua_State *L);
/* Calls the function below the nargs values on top of T; an error is logged
 * through lrt's log. T's stack is left as it was before the function. */
void qmod_call(qmod *m, lore_runtime *lrt, int nargs);
/* Takes the function at idx of L as a callback: a registry ref on T. */
int qmod_ref_fn(qmod *m, lua_State *L, int idx);

/* query_lua.c: cursors. */
void query_cursor_register(lua_State *L);
void query_cursor_push_calls(lua_State *L);
/* projection_lua.c: projection sessions. */
void projection_register(lua_State *L);
void projection_push_calls(lua_State *L);

#endif
