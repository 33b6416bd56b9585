/* journal_breaker.h: a journal's circuit breaker: after N failed commits in a row, writes fail
 * fast. */
#ifndef LORE_JOURNAL_BREAKER_H
#define LORE_JOURNAL_BREAKER_H

#include <stdint.h>

/*
 * One breaker per journal, shared by every actor that writes to it. Without
 * it, a journal that keeps failing (disk full, database down) makes every
 * writing actor fail, restart, recover and fail again: a herd of restarts
 * hammering storage that cannot answer.
 *
 * States:
 * - CLOSED: writes go through; the writer counts failed commits in a row
 *   (a commit that stores, or refuses single writes such as a conflict,
 *   counts as a success: the storage works).
 * - OPEN: after `max_failures` failed commits in a row, every write is
 *   refused at submit (JOURNAL_EBREAKER: nothing was stored, the caller knows
 *   it at once) until `reset` has passed since the last failure.
 * - HALF_OPEN: after that, the first write submitted goes through as a trial
 *   and the others are refused until a commit ends: a success closes the
 *   breaker, a failure opens it again for another `reset`.
 *
 * Threads: admit runs on any submitting thread (lock-free: one atomic load
 * while closed); record runs on the writer thread after each commit.
 */

enum { BREAKER_CLOSED = 0, BREAKER_OPEN = 1, BREAKER_HALF_OPEN = 2 };

typedef struct journal_breaker {
  int max_failures;   /* 0: the breaker never opens */
  uint64_t reset_ns;  /* how long it stays open */
  int state;          /* atomic: BREAKER_* */
  int failures;       /* failed commits in a row (writer thread only) */
  uint64_t opened_at; /* atomic: monotonic ns of the last failure while open */
  uint64_t trips;     /* atomic: how many times it opened */
} journal_breaker;

/* A closed breaker; max_failures <= 0 disables it. */
void journal_breaker_init(journal_breaker *b, int max_failures, uint64_t reset_ms);

/* Whether one write may be submitted at monotonic time now_ns: 0, or
 * JOURNAL_EBREAKER (the write must not be queued). */
int journal_breaker_admit(journal_breaker *b, uint64_t now_ns);

/* The outcome of one commit (failed: the whole commit failed). Returns the
 * state it changed to, or -1 when the state did not change. */
int journal_breaker_record(journal_breaker *b, int failed, uint64_t now_ns);

/* BREAKER_* now (any thread). */
int journal_breaker_state(const journal_breaker *b);

#endif
