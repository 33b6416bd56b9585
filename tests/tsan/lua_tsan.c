/*
 * lua_tsan.c: `lua5.4 SCRIPT ARGS...` linked with ThreadSanitizer, to run the
 * busted specs against a LORE_TSAN build's lore.so.
 *
 * The stock lua5.4 with libtsan in LD_PRELOAD runs the specs too, but every
 * process they start inherits the preload, and the shells of io.popen and
 * os.execute (dash, bash) then crash at startup: they call setjmp before
 * anything else, and TSan's setjmp interceptor jumps through a pointer that a
 * preloaded runtime has not set yet. Linked in here instead, TSan is started
 * before main and the children are plain processes.
 */
#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>

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
