/* main.c: the `lore` command: run an application script, inspect a journal, print the version. */
#include <lauxlib.h>
#include <lualib.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "lore.h"

static int usage(FILE *to, int status) {
  fprintf(to,
          "usage: lore run APP.lua [ARGS...]   run an application script\n"
          "       lore journal ls|events|stats [--db URI] ...\n"
          "       lore version\n"
          "       lore help\n");
  return status;
}

int lore_journal_command(int argc, char **argv); /* journal_cli.c */

/* Runs `chunk(args...)` inside lore.run; error messages name script and line.
 * `lore run` is a host like any other: it uses the `lore` module, which is
 * built on lore.h, with SIGINT/SIGTERM handled by the runtime. */
static int run_app(lua_State *L, int argc, char **argv) {
  const char *script = argv[2];
  luaL_requiref(L, "lore", luaopen_lore, 0);
  lua_getfield(L, -1, "configure");
  lua_createtable(L, 0, 1);
  lua_pushboolean(L, 1);
  lua_setfield(L, -2, "handle_signals");
  lua_call(L, 1, 0);
  lua_createtable(L, argc - 3, 2); /* arg, as lua.c builds it */
  lua_pushstring(L, argv[0]);
  lua_rawseti(L, -2, -1);
  lua_pushstring(L, script);
  lua_rawseti(L, -2, 0);
  for (int i = 3; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - 2);
  }
  lua_setglobal(L, "arg");
  lua_getfield(L, -1, "run");
  if (luaL_loadfile(L, script) != LUA_OK) {
    fprintf(stderr, "lore: %s\n", lua_tostring(L, -1));
    return 1;
  }
  for (int i = 3; i < argc; i++) lua_pushstring(L, argv[i]);
  if (lua_pcall(L, 1 + (argc - 3), 2, 0) != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    fprintf(stderr, "lore: %s\n", msg ? msg : "(error object is not a string)");
    return 1;
  }
  if (!lua_toboolean(L, -2)) { /* the shutdown had to use force */
    fprintf(stderr, "lore: %s\n", lua_tostring(L, -1));
    return 1;
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) return usage(stderr, 2);
  if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
    return usage(stdout, 0);
  if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
    printf("lore %s (%s, libuv %s)\n", lore_version(), LUA_RELEASE, uv_version_string());
    return 0;
  }
  if (strcmp(argv[1], "journal") == 0) return lore_journal_command(argc, argv);
  if (strcmp(argv[1], "run") != 0 || argc < 3) return usage(stderr, 2);
  /* A behaviour's print to a closed stdout must be an error it sees, not a
   * SIGPIPE that kills every actor. */
  signal(SIGPIPE, SIG_IGN);
  lua_State *L = luaL_newstate();
  if (!L) {
    fprintf(stderr, "lore: cannot create a Lua state\n");
    return 1;
  }
  luaL_openlibs(L);
  int status = run_app(L, argc, argv);
  lua_close(L);
  return status;
}
