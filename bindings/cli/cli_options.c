/* cli_options.c: option-parsing helpers every `lore` command uses (getopt_long underneath). */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

void cli_getopt_reset(void) {
  optind = 0; /* 0, not 1: glibc then also forgets the scan state of the previous vector */
  opterr = 0;
}

static void vsay(const char *cmd, const char *fmt, va_list ap) {
  fprintf(stderr, "%s: ", cmd);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
}

int cli_usage_error(const char *cmd, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsay(cmd, fmt, ap);
  va_end(ap);
  fprintf(stderr, "Try '%s --help'.\n", cmd);
  return CLI_USAGE;
}

int cli_fail(const char *cmd, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsay(cmd, fmt, ap);
  va_end(ap);
  return CLI_FAIL;
}

int cli_option_error(const char *cmd, int c, char *const *argv) {
  const char *arg = argv[optind - 1];
  int is_long = strncmp(arg, "--", 2) == 0;
  if (c == ':') return cli_usage_error(cmd, "option '%s' needs a value", arg);
  if (!is_long && optopt) return cli_usage_error(cmd, "unknown option '-%c'", optopt);
  const char *eq = strchr(arg, '=');
  if (is_long && optopt && eq)
    return cli_usage_error(cmd, "option '%.*s' takes no value", (int)(eq - arg), arg);
  return cli_usage_error(cmd, "unknown option '%s'", arg);
}

int cli_parse_int64(const char *cmd, const char *opt, const char *text, int64_t min, int64_t *out) {
  char *end = NULL;
  errno = 0;
  long long v = strtoll(text, &end, 10);
  if (!*text || *end || errno == ERANGE || isspace((unsigned char)text[0]) || v < min)
    return cli_usage_error(cmd, "%s needs a whole number >= %" PRId64 ", not '%s'", opt, min, text);
  *out = v;
  return 0;
}

int cli_finish_output(const char *cmd, int status) {
  if (fflush(stdout) != 0 || ferror(stdout))
    return cli_fail(cmd, "cannot write the output: %s", strerror(errno));
  return status;
}
