/* journal_breaker.c: a journal's circuit breaker: after N failed commits in a row, writes fail
 * fast. */
#include "journal_breaker.h"

#include "journal.h"

void journal_breaker_init(journal_breaker *b, int max_failures, uint64_t reset_ms) {
  b->max_failures = max_failures > 0 ? max_failures : 0;
  b->reset_ns = reset_ms * 1000000u;
  b->state = BREAKER_CLOSED;
  b->failures = 0;
  b->opened_at = 0;
  b->trips = 0;
}

int journal_breaker_admit(journal_breaker *b, uint64_t now_ns) {
  int st = __atomic_load_n(&b->state, __ATOMIC_ACQUIRE);
  if (st == BREAKER_CLOSED) return 0;
  if (st == BREAKER_HALF_OPEN) return JOURNAL_EBREAKER; /* a trial is in flight */
  uint64_t since = __atomic_load_n(&b->opened_at, __ATOMIC_ACQUIRE);
  /* signed: the writer may have stored a failure a moment after now_ns was read */
  if ((int64_t)(now_ns - since) < (int64_t)b->reset_ns) return JOURNAL_EBREAKER;
  /* The first submitter after the reset period is the trial; the others wait for its commit. */
  int expected = BREAKER_OPEN;
  if (__atomic_compare_exchange_n(&b->state, &expected, BREAKER_HALF_OPEN, 0, __ATOMIC_ACQ_REL,
                                  __ATOMIC_ACQUIRE))
    return 0;
  return expected == BREAKER_CLOSED ? 0 : JOURNAL_EBREAKER;
}

int journal_breaker_record(journal_breaker *b, int failed, uint64_t now_ns) {
  int st = __atomic_load_n(&b->state, __ATOMIC_ACQUIRE);
  if (!failed) {
    b->failures = 0;
    if (st == BREAKER_CLOSED) return -1;
    __atomic_store_n(&b->state, BREAKER_CLOSED, __ATOMIC_RELEASE);
    return BREAKER_CLOSED;
  }
  if (b->failures < INT32_MAX) b->failures++;
  if (st == BREAKER_OPEN) {
    /* Writes admitted before it opened are still failing: the reset period
     * counts from the last failure. */
    __atomic_store_n(&b->opened_at, now_ns, __ATOMIC_RELEASE);
    return -1;
  }
  if (st == BREAKER_CLOSED && (b->max_failures == 0 || b->failures < b->max_failures)) return -1;
  __atomic_store_n(&b->opened_at, now_ns, __ATOMIC_RELEASE);
  __atomic_store_n(&b->state, BREAKER_OPEN, __ATOMIC_RELEASE);
  __atomic_add_fetch(&b->trips, 1, __ATOMIC_RELAXED);
  return BREAKER_OPEN;
}

int journal_breaker_state(const journal_breaker *b) {
  return __atomic_load_n(&b->state, __ATOMIC_ACQUIRE);
}
