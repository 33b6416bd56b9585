/* budget.c: the instruction budget of handler calls, which no script can escape. */
#include <lauxlib.h>

#include "lua_actor.h"
#include "worker.h"

/*
 * A count hook stops a handler that runs too long: the error fails that
 * actor only, and the scheduler goes on with the others. Any active hook makes
 * Lua 5.4 trace every instruction (about a quarter of message throughput), so
 * on the worker's main thread the hook is not installed up front: the
 * watchdog (watchdog.c) installs it on a state whose handler call has been
 * running for a few milliseconds, and binding_pcall removes it when that call
 * ends. The budget therefore counts from the moment the watchdog noticed the
 * call.
 *
 * What a script might try, and why it fails:
 * - loop inside a coroutine it created: the sandbox creates every coroutine
 *   through core.cocreate, which installs the hook on it at once (a hook is
 *   per thread); its instructions spend the same handler budget.
 * - catch the budget error (pcall, xpcall, coroutine.resume) and go on: once
 *   the budget is spent, `blown` stays set until the handler call ends; the
 *   sandbox's protected calls and resumes raise the error again, and the hook
 *   raises again every HOOK_EVERY instructions.
 * - loop in an xpcall message handler: the hook raises inside it too; Lua
 *   ends the nesting with "error in error handling", and the sandbox's xpcall
 *   passes the budget error on.
 * - a pattern that backtracks for ever: the sandbox's string.find/match/
 *   gmatch/gsub charge their steps to the same budget.
 * When the runtime shuts down, `interrupt` makes every hooked state raise at
 * its next hook, whatever its budget (max_instructions = 0 included).
 */
void budget_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  binding_state *bs = *(binding_state **)lua_getextraspace(L);
  if (__atomic_load_n(&bs->interrupt, __ATOMIC_ACQUIRE)) {
    bs->blown = 1;
    luaL_where(L, 0);
    lua_pushliteral(L, "interrupted: the runtime is shutting down");
    lua_concat(L, 2);
    lua_error(L);
  }
  if (bs->budget_left < 0) { /* not inside a handler */
    if (L == bs->L) {        /* a late install by the watchdog: take it off again */
      __atomic_store_n(&bs->hooked, 0, __ATOMIC_RELEASE);
      lua_sethook(L, NULL, 0, 0);
    }
    return; /* a coroutine keeps its hook for the next handler that resumes it */
  }
  if (bs->budget_left == INT64_MAX) return; /* unlimited */
  bs->budget_left -= HOOK_EVERY;
  if (bs->budget_left < 0) {
    bs->budget_left = 0; /* a hook firing again while unwinding must raise again */
    bs->blown = 1;
    /* Level 0 is the function that was running: the runaway handler's line. */
    luaL_where(L, 0);
    lua_pushfstring(L, "instruction budget exceeded (a handler ran more than %I instructions)",
                    (lua_Integer)bs->lrt->cfg.max_instructions);
    lua_concat(L, 2);
    lua_error(L);
  }
}

/* Work done by C functions the hook cannot see (pattern matching) is
 * charged here, in instructions. Raises when the budget is spent. */
void budget_charge(lua_State *L, binding_state *bs, size_t units) {
  if (__atomic_load_n(&bs->interrupt, __ATOMIC_ACQUIRE)) {
    bs->blown = 1;
    luaL_error(L, "interrupted: the runtime is shutting down");
  }
  if (bs->budget_left < 0 || bs->budget_left == INT64_MAX) return;
  if ((uint64_t)bs->budget_left < units) {
    bs->budget_left = 0;
    bs->blown = 1;
    luaL_error(L, "instruction budget exceeded (a pattern match ran more than %I steps)",
               (lua_Integer)bs->lrt->cfg.max_instructions);
  }
  bs->budget_left -= (int64_t)units;
}

void budget_restart(binding_state *bs) {
  if (bs->budget_left < 0) return;
  int64_t limit = bs->lrt->cfg.max_instructions;
  bs->budget_left = limit > 0 ? limit : INT64_MAX;
  __atomic_store_n(&bs->call_gen, bs->call_gen + 1, __ATOMIC_RELEASE);
  if (__atomic_load_n(&bs->hooked, __ATOMIC_ACQUIRE) &&
      !__atomic_load_n(&bs->interrupt, __ATOMIC_ACQUIRE)) {
    __atomic_store_n(&bs->hooked, 0, __ATOMIC_RELEASE);
    lua_sethook(bs->L, NULL, 0, 0);
  }
}

int binding_pcall(binding_state *bs, int nargs, int nresults) {
  int64_t saved = bs->budget_left;
  int64_t limit = bs->lrt ? bs->lrt->cfg.max_instructions : 0;
  /* Nested calls (a handler spawning a child) share the outer budget. */
  if (saved < 0) {
    bs->budget_left = limit > 0 ? limit : INT64_MAX;
    bs->blown = 0;
    /* Only this thread writes these: plain stores, no locked instructions
     * on the per-message path (the watchdog only reads them). */
    __atomic_store_n(&bs->call_gen, bs->call_gen + 1, __ATOMIC_RELEASE);
    __atomic_store_n(&bs->in_call, 1, __ATOMIC_RELEASE);
  }
  int status = lua_pcall(bs->L, nargs, nresults, 0);
  if (saved < 0) {
    bs->budget_left = -1;
    __atomic_store_n(&bs->in_call, 0, __ATOMIC_RELEASE);
    /* A hook the watchdog installs just after this check removes itself
     * (budget_hook outside a call). */
    if (__atomic_load_n(&bs->hooked, __ATOMIC_ACQUIRE) &&
        !__atomic_load_n(&bs->interrupt, __ATOMIC_ACQUIRE)) {
      __atomic_store_n(&bs->hooked, 0, __ATOMIC_RELEASE);
      lua_sethook(bs->L, NULL, 0, 0);
    }
  }
  return status;
}

/* core.budget_blown() -> whether the running handler spent its budget */
static int core_budget_blown(lua_State *L) {
  lua_pushboolean(L, worker_bs(L)->blown);
  return 1;
}

/* core.cocreate(f) -> a coroutine that carries the budget hook from its first
 * instruction (the sandbox's coroutine.create and coroutine.wrap). */
static int core_cocreate(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_State *co = lua_newthread(L);
  lua_sethook(co, budget_hook, LUA_MASKCOUNT, HOOK_EVERY);
  lua_pushvalue(L, 1);
  lua_xmove(L, co, 1);
  return 1;
}

void binding_push_budget_calls(lua_State *L) {
  lua_pushcfunction(L, core_budget_blown);
  lua_setfield(L, -2, "budget_blown");
  lua_pushcfunction(L, core_cocreate);
  lua_setfield(L, -2, "cocreate");
}
