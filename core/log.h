/* log.h: leveled log lines sent to a sink: each runtime (and each journal or store) has its own. */
#ifndef LORE_LOG_H
#define LORE_LOG_H

#include <stdint.h>

/* The same numbers as LORE_LOG_* in lore.h. */
enum { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3, LOG_OFF = 4 };

/*
 * Where a component's lines go. `fn` gets one whole line (no newline) at a
 * time, from whichever thread logged it: it must be thread-safe. With fn NULL
 * lines go to stderr, one write per line, prefixed with a UTC timestamp and the
 * level. A NULL sink pointer means log_default(). A sink is never copied by
 * the components that use it: its owner keeps it alive longer than them.
 */
typedef struct log_sink {
  int level; /* lines below it are dropped; LOG_OFF drops everything */
  void (*fn)(void *ud, int level, const char *line);
  void *ud;
} log_sink;

/* stderr, at the level named by the LORE_LOG environment variable
 * (debug|info|warn|error|off), warn when unset. */
const log_sink *log_default(void);
/* debug|info|warn|error|off -> LOG_*, or -1. */
int log_level_from_name(const char *name);
const char *log_level_name(int level);

static inline int log_enabled(const log_sink *s, int level) {
  if (!s) s = log_default();
  return level >= __atomic_load_n(&s->level, __ATOMIC_RELAXED) && level < LOG_OFF;
}

/* What a sink without a callback does with a line: stderr, with a UTC
 * timestamp and the level, in one write. */
void log_print_stderr(int level, const char *line);

void log_line(const log_sink *s, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define LORE_LOG_AT_(s, lvl, ...)                                     \
  do {                                                                \
    const log_sink *log_s_ = (s);                                     \
    if (log_enabled(log_s_, lvl)) log_line(log_s_, lvl, __VA_ARGS__); \
  } while (0)
#define log_debug(s, ...) LORE_LOG_AT_(s, LOG_DEBUG, __VA_ARGS__)
#define log_info(s, ...) LORE_LOG_AT_(s, LOG_INFO, __VA_ARGS__)
#define log_warn(s, ...) LORE_LOG_AT_(s, LOG_WARN, __VA_ARGS__)
#define log_error(s, ...) LORE_LOG_AT_(s, LOG_ERROR, __VA_ARGS__)

#endif
