/* test_cli.c: `lore test [PATHS...]`: busted specs of behaviours, each spec file in a fresh
 * runtime. */
#include <getopt.h>
#include <lauxlib.h>
#include <limits.h>
#include <lualib.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "lore.h"

#define CMD "lore test"
#define MAX_LIST 64

/* The Lua files of bindings/cli, compiled in (scripts/embed_lua.cmake). */
extern const struct lore_cli_lua {
  const char *name;
  const char *src;
  size_t len;
} lore_cli_lua[];

typedef struct test_options {
  const char *output, *pattern;
  const char *filters[MAX_LIST];
  int nfilters;
  const char *scripts[MAX_LIST];
  int nscripts;
} test_options;

static int help(void) {
  printf(
      "usage: lore test [--scripts DIR]... [--filter PATTERN]... [--pattern PATTERN]\n"
      "                 [--output FORMAT] [PATHS...]\n"
      "\n"
      "Runs busted specs: the *_spec.lua files under PATHS (default: ./spec, or else\n"
      "./tests). Each spec file runs inside its own fresh runtime (a private memory\n"
      "journal and snapshot store, the default settings), so it can spawn, tell and\n"
      "ask at once; the runtime stops when the file is done. `require \"lore\"` and\n"
      "`require \"lore.testing\"` (eventually, unique_id, restart) work, and the\n"
      "behaviour directories are on package.path, so a spec may also require a\n"
      "behaviour module and call its functions directly.\n"
      "  -s, --scripts DIR     a behaviour directory (repeatable; default ./behaviours\n"
      "                        when it exists, else .)\n"
      "  -f, --filter PATTERN  only tests whose name matches this Lua pattern (repeatable)\n"
      "  -p, --pattern PATTERN spec file names to run (Lua pattern, default _spec)\n"
      "  -o, --output FORMAT   busted's output: utfTerminal, plainTerminal, TAP, json, junit\n"
      "\n"
      "Exit status: 0 when every test passed, 1 when one failed (or no spec was found),\n"
      "2 on bad usage.\n");
  return CLI_OK;
}

static int is_dir(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static const struct lore_cli_lua *embedded(const char *name) {
  for (const struct lore_cli_lua *e = lore_cli_lua; e->name; e++)
    if (strcmp(e->name, name) == 0) return e;
  return NULL;
}

/* package.preload["lore.testing"] */
static int open_testing(lua_State *L) {
  const struct lore_cli_lua *e = embedded("lore_testing");
  if (!e || luaL_loadbuffer(L, e->src, e->len, "=lore.testing") != LUA_OK) return lua_error(L);
  lua_call(L, 0, 1);
  return 1;
}

static void set_string_list(lua_State *L, const char *key, const char *const *items, int n) {
  lua_createtable(L, n, 0);
  for (int i = 0; i < n; i++) {
    lua_pushstring(L, items[i]);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, key);
}

/* The runtime settings every spec file starts from: lore_config_init's, with
 * a private memory journal and snapshot store and the behaviour directories. */
static void push_defaults(lua_State *L, const test_options *o) {
  static const char *const levels[] = {"debug", "info", "warn", "error", "off"};
  lore_config cfg;
  lore_config_init(&cfg);
  lua_createtable(L, 0, 12);
  lua_pushliteral(L, "memory:");
  lua_setfield(L, -2, "journal");
  lua_pushliteral(L, "memory:");
  lua_setfield(L, -2, "snapshots");
  set_string_list(L, "scripts", o->scripts, o->nscripts);
  lua_pushinteger(L, cfg.workers);
  lua_setfield(L, -2, "workers");
  lua_pushboolean(L, cfg.hot_reload);
  lua_setfield(L, -2, "hot_reload");
  lua_pushboolean(L, cfg.handle_signals);
  lua_setfield(L, -2, "handle_signals");
  if (cfg.log_level >= 0 && cfg.log_level <= 4) {
    lua_pushstring(L, levels[cfg.log_level]);
    lua_setfield(L, -2, "log_level");
  }
  lua_pushinteger(L, cfg.max_instructions);
  lua_setfield(L, -2, "max_instructions");
  lua_pushinteger(L, cfg.memory_limit);
  lua_setfield(L, -2, "memory_limit");
  lua_pushstring(L, cfg.synchronous_full ? "full" : "normal");
  lua_setfield(L, -2, "synchronous");
  lua_pushinteger(L, cfg.max_concurrent_recoveries);
  lua_setfield(L, -2, "max_concurrent_recoveries");
  lua_pushnumber(L, cfg.recovery_timeout);
  lua_setfield(L, -2, "recovery_timeout");
  lua_pushnumber(L, cfg.shutdown_timeout);
  lua_setfield(L, -2, "shutdown_timeout");
}

static int traceback(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  luaL_traceback(L, L, msg ? msg : "(error object is not a string)", 1);
  return 1;
}

static int run_specs(const test_options *o, char **paths, int npaths) {
  lua_State *L = luaL_newstate();
  if (!L) return cli_fail(CMD, "cannot create a Lua state");
  luaL_openlibs(L);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_lore);
  lua_setfield(L, -2, "lore");
  lua_pushcfunction(L, open_testing);
  lua_setfield(L, -2, "lore.testing");
  lua_pop(L, 1);
  lua_pushcfunction(L, traceback);
  const struct lore_cli_lua *runner = embedded("test_runner");
  if (!runner || luaL_loadbuffer(L, runner->src, runner->len, "=[lore test]") != LUA_OK) {
    int r = cli_fail(CMD, "%s", runner ? lua_tostring(L, -1) : "the test runner is missing");
    lua_close(L);
    return r;
  }
  lua_createtable(L, 0, 6);
  set_string_list(L, "paths", (const char *const *)paths, npaths);
  set_string_list(L, "filters", o->filters, o->nfilters);
  if (o->output) {
    lua_pushstring(L, o->output);
    lua_setfield(L, -2, "output");
  }
  if (o->pattern) {
    lua_pushstring(L, o->pattern);
    lua_setfield(L, -2, "pattern");
  }
  push_defaults(L, o);
  lua_setfield(L, -2, "defaults");
  int status;
  if (lua_pcall(L, 1, 1, 1) != LUA_OK) {
    status = cli_fail(CMD, "%s", lua_tostring(L, -1));
  } else {
    status = (int)lua_tointeger(L, -1);
  }
  lua_close(L);
  return status;
}

static int add(const char *cmd, const char **list, int *n, const char *item, const char *opt) {
  if (*n >= MAX_LIST) return cli_usage_error(cmd, "too many %s options", opt);
  list[(*n)++] = item;
  return 0;
}

int cli_test(int argc, char **argv) {
  static const struct option opts[] = {
      {"help", no_argument, NULL, 'h'},         {"scripts", required_argument, NULL, 's'},
      {"filter", required_argument, NULL, 'f'}, {"pattern", required_argument, NULL, 'p'},
      {"output", required_argument, NULL, 'o'}, {NULL, 0, NULL, 0}};
  test_options o;
  memset(&o, 0, sizeof o);
  /* Absolute behaviour directories: a spec may change the working directory. */
  static char resolved[MAX_LIST][PATH_MAX];
  cli_getopt_reset();
  int c, r;
  while ((c = getopt_long(argc, argv, ":hs:f:p:o:", opts, NULL)) != -1) {
    switch (c) {
      case 'h':
        return help();
      case 's':
        if (!is_dir(optarg) || o.nscripts >= MAX_LIST || !realpath(optarg, resolved[o.nscripts]))
          return cli_usage_error(CMD, "--scripts: no such directory: '%s'", optarg);
        if ((r = add(CMD, o.scripts, &o.nscripts, resolved[o.nscripts], "--scripts"))) return r;
        break;
      case 'f':
        if ((r = add(CMD, o.filters, &o.nfilters, optarg, "--filter"))) return r;
        break;
      case 'p':
        o.pattern = optarg;
        break;
      case 'o':
        o.output = optarg;
        break;
      default:
        return cli_option_error(CMD, c, argv);
    }
  }
  if (o.nscripts == 0) {
    const char *dir = is_dir("behaviours") ? "behaviours" : ".";
    if (!realpath(dir, resolved[0])) return cli_fail(CMD, "cannot resolve '%s'", dir);
    o.scripts[o.nscripts++] = resolved[0];
  }
  char **paths = argv + optind;
  int npaths = argc - optind;
  static char *default_path[1];
  if (npaths == 0) {
    default_path[0] = is_dir("spec") ? "spec" : is_dir("tests") ? "tests" : NULL;
    if (!default_path[0])
      return cli_usage_error(CMD, "no spec/ or tests/ directory here: name the specs to run");
    paths = default_path;
    npaths = 1;
  }
  for (int i = 0; i < npaths; i++) {
    struct stat st;
    if (stat(paths[i], &st) != 0)
      return cli_usage_error(CMD, "no such file or directory: '%s'", paths[i]);
  }
  /* A spec's print to a closed stdout is an error it sees, not the end of the run. */
  signal(SIGPIPE, SIG_IGN);
  return cli_finish_output(CMD, run_specs(&o, paths, npaths));
}
