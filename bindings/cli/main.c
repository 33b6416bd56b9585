/* main.c: the `lore` command: its top-level options, `lore run`, `lore version`, `lore help`. */
#include <getopt.h>
#include <lauxlib.h>
#include <lualib.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "lore.h"

static const char *program = "lore"; /* argv[0], for the app's arg[-1] */

static void usage(FILE *to) {
  fprintf(
      to,
      "usage: lore [--help] [--version] COMMAND [ARGS...]\n"
      "\n"
      "commands:\n"
      "  run APP.lua [ARGS...]        run an application script\n"
      "  test [PATHS...]              run busted specs of behaviours (default: spec/ or tests/)\n"
      "  journal ls|events|stats|snapshots|tail [OPTIONS]\n"
      "                               inspect a journal (default --db sqlite:lore.db)\n"
      "  version                      print the version\n"
      "  help [COMMAND]               print this, or a command's own help\n"
      "\n"
      "'lore COMMAND --help' tells more. Exit status: 0 success, 1 error, 2 bad usage.\n");
}

static void print_version(void) {
  printf("lore %s (%s, libuv %s)\n", lore_version(), LUA_RELEASE, uv_version_string());
}

/* Runs `chunk(args...)` inside lore.run; error messages name script and line.
 * `lore run` is a host like any other: it uses the `lore` module, which is
 * built on lore.h, with SIGINT/SIGTERM handled by the runtime. */
static int run_app(lua_State *L, const char *script, int nargs, char **args, const char *argv0) {
  luaL_requiref(L, "lore", luaopen_lore, 0);
  lua_getfield(L, -1, "configure");
  lua_createtable(L, 0, 1);
  lua_pushboolean(L, 1);
  lua_setfield(L, -2, "handle_signals");
  lua_call(L, 1, 0);
  lua_createtable(L, nargs, 2); /* arg, as lua.c builds it */
  lua_pushstring(L, argv0);
  lua_rawseti(L, -2, -1);
  lua_pushstring(L, script);
  lua_rawseti(L, -2, 0);
  for (int i = 0; i < nargs; i++) {
    lua_pushstring(L, args[i]);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setglobal(L, "arg");
  lua_getfield(L, -1, "run");
  if (luaL_loadfile(L, script) != LUA_OK) {
    fprintf(stderr, "lore: %s\n", lua_tostring(L, -1));
    return CLI_FAIL;
  }
  for (int i = 0; i < nargs; i++) lua_pushstring(L, args[i]);
  if (lua_pcall(L, 1 + nargs, 2, 0) != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    fprintf(stderr, "lore: %s\n", msg ? msg : "(error object is not a string)");
    return CLI_FAIL;
  }
  if (!lua_toboolean(L, -2)) { /* the shutdown had to use force */
    fprintf(stderr, "lore: %s\n", lua_tostring(L, -1));
    return CLI_FAIL;
  }
  return CLI_OK;
}

int cli_run(int argc, char **argv) {
  static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
  cli_getopt_reset();
  int c;
  /* '+': the first operand is the script; everything after it is the app's. */
  while ((c = getopt_long(argc, argv, "+:h", opts, NULL)) != -1) {
    if (c != 'h') return cli_option_error("lore run", c, argv);
    printf(
        "usage: lore run APP.lua [ARGS...]\n"
        "\n"
        "Runs APP.lua as the application coroutine of a runtime. ARGS reach it as `...`\n"
        "and in the global `arg`. It ends when the script returns and no actor is alive,\n"
        "on lore.shutdown(), or on SIGINT/SIGTERM (in-flight journal writes finish).\n"
        "Use 'lore run -- FILE' for a script whose name starts with '-'.\n"
        "\n"
        "Exit status: 0 success, 1 an error in the script (named with its line), 2 bad usage.\n");
    return CLI_OK;
  }
  if (optind >= argc) return cli_usage_error("lore run", "missing the script to run (APP.lua)");
  const char *script = argv[optind];
  /* A behaviour's print to a closed stdout must be an error it sees, not a
   * SIGPIPE that kills every actor. */
  signal(SIGPIPE, SIG_IGN);
  lua_State *L = luaL_newstate();
  if (!L) return cli_fail("lore run", "cannot create a Lua state");
  luaL_openlibs(L);
  int status = run_app(L, script, argc - optind - 1, argv + optind + 1, program);
  lua_close(L);
  return status;
}

static int version_command(int argc, char **argv) {
  static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
  cli_getopt_reset();
  int c;
  while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
    if (c != 'h') return cli_option_error("lore version", c, argv);
    printf("usage: lore version\n\nPrints Lore's version and those of Lua and libuv it runs on.\n");
    return CLI_OK;
  }
  if (optind < argc)
    return cli_usage_error("lore version", "unexpected argument '%s'", argv[optind]);
  print_version();
  return cli_finish_output("lore version", CLI_OK);
}

typedef struct command {
  const char *name;
  int (*run)(int argc, char **argv);
} command;

static const command commands[] = {
    {"run", cli_run},
    {"test", cli_test},
    {"journal", cli_journal},
    {"version", version_command},
};

static const command *find_command(const char *name) {
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (strcmp(commands[i].name, name) == 0) return &commands[i];
  return NULL;
}

/* `lore help [COMMAND]`: the command's own --help. */
static int help_command(int argc, char **argv) {
  if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
    usage(stdout);
    return CLI_OK;
  }
  if (argc > 2) return cli_usage_error("lore help", "unexpected argument '%s'", argv[2]);
  const command *cmd = find_command(argv[1]);
  if (!cmd) return cli_usage_error("lore help", "unknown command '%s'", argv[1]);
  char *help_argv[] = {argv[1], "--help", NULL};
  return cmd->run(2, help_argv);
}

int main(int argc, char **argv) {
  if (argc > 0) program = argv[0];
  static const struct option opts[] = {
      {"help", no_argument, NULL, 'h'}, {"version", no_argument, NULL, 'V'}, {NULL, 0, NULL, 0}};
  cli_getopt_reset();
  int c;
  while ((c = getopt_long(argc, argv, "+:hV", opts, NULL)) != -1) {
    switch (c) {
      case 'h':
        usage(stdout);
        return cli_finish_output("lore", CLI_OK);
      case 'V':
        print_version();
        return cli_finish_output("lore", CLI_OK);
      default:
        return cli_option_error("lore", c, argv);
    }
  }
  if (optind >= argc) {
    usage(stderr);
    return CLI_USAGE;
  }
  char **sub = argv + optind;
  int nsub = argc - optind;
  if (strcmp(sub[0], "help") == 0) return help_command(nsub, sub);
  const command *cmd = find_command(sub[0]);
  if (!cmd) return cli_usage_error("lore", "unknown command '%s'", sub[0]);
  return cmd->run(nsub, sub);
}
