/*
 * lua_tsan.c: `lua5.4 SCRIPT ARGS...` linked with ThreadSanitizer and with Lore
 * built in, to run the busted specs against a LORE_TSAN build.
 *
 * Two things the stock lua5.4 + lore.so cannot do under TSan:
 * - With libtsan in LD_PRELOAD, every process the specs start inherits it, and
 *   the shells of io.popen and os.execute (dash, bash) crash at startup: they
 *   call setjmp before anything else, and TSan's setjmp interceptor jumps
 *   through a pointer a preloaded runtime has not set yet. Linked in here, TSan
 *   starts before main and the children are plain processes.
 * - A dlopen'ed lore.so keeps its thread-locals (the scheduler's current_sched)
 *   in dynamic TLS, which each thread allocates with malloc on first use. The
 *   TSan runtime of gcc 12 takes a block whose address ends in 0x010 for a
 *   glibc 2.19 one and reads its size from the 16 bytes before it: garbage, so
 *   it dies with "ThreadSanitizer failed to allocate 0x1ec2... bytes" (1 run in
 *   13 of four persistence specs). `require "lore"` finds Lore in
 *   package.preload instead, linked into this executable as into `lore`, so its
 *   thread-locals are in static TLS.
 */
#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>

#include "lore.h"

/* Adds a traceback to an error, as lua.c does. */
static int traceback(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  luaL_traceback(L, L, msg ? msg : "(error object is not a string)", 1);
  return 1;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s SCRIPT [ARGS...]\n", argv[0]);
    return 2;
  }
  lua_State *L = luaL_newstate();
  if (!L) return 1;
  luaL_openlibs(L);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_lore);
  lua_setfield(L, -2, "lore");
  lua_pop(L, 1);
  /* arg as lua.c sets it: arg[0] the script, arg[-1] the interpreter. */
  lua_createtable(L, argc, 1);
  for (int i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - 1);
  }
  lua_setglobal(L, "arg");
  lua_pushcfunction(L, traceback);
  int status = luaL_loadfile(L, argv[1]); /* skips a #! first line */
  if (status == LUA_OK) {
    for (int i = 2; i < argc; i++) lua_pushstring(L, argv[i]);
    status = lua_pcall(L, argc - 2, 0, 1);
  }
  if (status != LUA_OK) fprintf(stderr, "%s: %s\n", argv[0], lua_tostring(L, -1));
  lua_close(L);
  return status == LUA_OK ? 0 : 1;
}
