/* log.c: leveled logging to stderr. */
#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int current_level = -1;

static int level_from_env(void) {
  const char *v = getenv("LORE_LOG");
  if (!v) return LOG_WARN;
  static const char *names[] = {"debug", "info", "warn", "error", "off"};
  for (int i = 0; i < 5; i++)
    if (strcmp(v, names[i]) == 0) return i;
  return LOG_WARN;
}

void log_set_level(int level) { __atomic_store_n(&current_level, level, __ATOMIC_RELAXED); }

int log_level(void) {
  int l = __atomic_load_n(&current_level, __ATOMIC_RELAXED);
  if (l < 0) {
    l = level_from_env();
    log_set_level(l);
  }
  return l;
}

void log_msg(int level, const char *fmt, ...) {
  if (level < log_level()) return;
  static const char *tags[] = {"debug", "info", "warn", "error"};
  char line[2048];
  int n = snprintf(line, sizeof line, "lore %s: ", tags[level < 4 ? level : 3]);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
  va_end(ap);
  fprintf(stderr, "%s\n", line); /* one call per line: lines from threads never interleave */
}
