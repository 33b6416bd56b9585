/* log.c: log lines to a sink, or to stderr with a timestamp. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

int log_level_from_name(const char *name) {
  for (int i = 0; name && i < 5; i++)
    if (strcmp(name, level_names[i]) == 0) return i;
  return -1;
}

const char *log_level_name(int level) {
  return level >= 0 && level <= LOG_OFF ? level_names[level] : "?";
}

static log_sink default_sink = {.level = -1};

const log_sink *log_default(void) {
  if (__atomic_load_n(&default_sink.level, __ATOMIC_ACQUIRE) < 0) {
    int l = log_level_from_name(getenv("LORE_LOG"));
    __atomic_store_n(&default_sink.level, l < 0 ? LOG_WARN : l, __ATOMIC_RELEASE);
  }
  return &default_sink;
}

void log_line(const log_sink *s, int level, const char *fmt, ...) {
  if (!s) s = log_default();
  if (!log_enabled(s, level)) return;
  char line[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (s->fn) {
    s->fn(s->ud, level, line);
    return;
  }
  log_print_stderr(level, line);
}

void log_print_stderr(int level, const char *line) {
  struct timeval tv;
  struct tm tm;
  gettimeofday(&tv, NULL);
  gmtime_r(&tv.tv_sec, &tm);
  char stamp[32];
  strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
  /* One call per line: lines from several threads never interleave. */
  fprintf(stderr, "%s.%03dZ lore %s: %s\n", stamp, (int)(tv.tv_usec / 1000), log_level_name(level),
          line);
}
