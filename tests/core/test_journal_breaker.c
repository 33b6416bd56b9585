/* test_journal_breaker.c: the journal's circuit breaker: trip, fail fast, half-open trial, close.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "journal.h"
#include "journal_breaker.h"

#define MS 1000000u

static void test_stays_closed_below_the_threshold(void **state) {
  (void)state;
  journal_breaker b;
  journal_breaker_init(&b, 3, 100);
  assert_int_equal(journal_breaker_record(&b, 1, 1 * MS), -1);
  assert_int_equal(journal_breaker_record(&b, 1, 2 * MS), -1);
  assert_int_equal(journal_breaker_admit(&b, 3 * MS), 0);
  /* a success in between starts the count again */
  assert_int_equal(journal_breaker_record(&b, 0, 3 * MS), -1);
  assert_int_equal(journal_breaker_record(&b, 1, 4 * MS), -1);
  assert_int_equal(journal_breaker_record(&b, 1, 5 * MS), -1);
  assert_int_equal(journal_breaker_state(&b), BREAKER_CLOSED);
  assert_int_equal(journal_breaker_admit(&b, 6 * MS), 0);
}

static void test_trips_and_fails_fast(void **state) {
  (void)state;
  journal_breaker b;
  journal_breaker_init(&b, 3, 100);
  for (int i = 0; i < 2; i++) journal_breaker_record(&b, 1, 10 * MS);
  assert_int_equal(journal_breaker_record(&b, 1, 10 * MS), BREAKER_OPEN);
  assert_int_equal(journal_breaker_state(&b), BREAKER_OPEN);
  assert_int_equal(b.trips, 1);
  assert_int_equal(journal_breaker_admit(&b, 11 * MS), JOURNAL_EBREAKER);
  assert_int_equal(journal_breaker_admit(&b, 109 * MS), JOURNAL_EBREAKER);
  /* a clock read just before the failure was stored does not let a write through */
  assert_int_equal(journal_breaker_admit(&b, 9 * MS), JOURNAL_EBREAKER);
}

static void test_failures_while_open_extend_it(void **state) {
  (void)state;
  journal_breaker b;
  journal_breaker_init(&b, 1, 100);
  assert_int_equal(journal_breaker_record(&b, 1, 0), BREAKER_OPEN);
  /* a write admitted before the trip fails later */
  assert_int_equal(journal_breaker_record(&b, 1, 50 * MS), -1);
  assert_int_equal(journal_breaker_admit(&b, 120 * MS), JOURNAL_EBREAKER);
  assert_int_equal(journal_breaker_admit(&b, 150 * MS), 0);
}

static void test_half_open_lets_one_trial_through(void **state) {
  (void)state;
  journal_breaker b;
  journal_breaker_init(&b, 2, 100);
  journal_breaker_record(&b, 1, 0);
  journal_breaker_record(&b, 1, 0);
  assert_int_equal(journal_breaker_admit(&b, 100 * MS), 0); /* the trial */
  assert_int_equal(journal_breaker_state(&b), BREAKER_HALF_OPEN);
  assert_int_equal(journal_breaker_admit(&b, 101 * MS), JOURNAL_EBREAKER);
  assert_int_equal(journal_breaker_admit(&b, 500 * MS), JOURNAL_EBREAKER);
  /* the trial fails: open again for a whole period */
  assert_int_equal(journal_breaker_record(&b, 1, 600 * MS), BREAKER_OPEN);
  assert_int_equal(b.trips, 2);
  assert_int_equal(journal_breaker_admit(&b, 650 * MS), JOURNAL_EBREAKER);
  assert_int_equal(journal_breaker_admit(&b, 700 * MS), 0);
  /* the next trial succeeds: closed, every write goes through */
  assert_int_equal(journal_breaker_record(&b, 0, 710 * MS), BREAKER_CLOSED);
  assert_int_equal(journal_breaker_admit(&b, 711 * MS), 0);
  assert_int_equal(journal_breaker_admit(&b, 711 * MS), 0);
  /* and it takes the full count of failures to trip again */
  assert_int_equal(journal_breaker_record(&b, 1, 720 * MS), -1);
  assert_int_equal(journal_breaker_state(&b), BREAKER_CLOSED);
}

static void test_disabled_never_opens(void **state) {
  (void)state;
  journal_breaker b;
  journal_breaker_init(&b, 0, 100);
  for (int i = 0; i < 1000; i++) assert_int_equal(journal_breaker_record(&b, 1, (uint64_t)i), -1);
  assert_int_equal(journal_breaker_admit(&b, 1000), 0);
  assert_int_equal(b.trips, 0);
}

static void test_strerror(void **state) {
  (void)state;
  assert_non_null(strstr(journal_strerror(JOURNAL_EBREAKER), "circuit breaker"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_stays_closed_below_the_threshold),
      cmocka_unit_test(test_trips_and_fails_fast),
      cmocka_unit_test(test_failures_while_open_extend_it),
      cmocka_unit_test(test_half_open_lets_one_trial_through),
      cmocka_unit_test(test_disabled_never_opens),
      cmocka_unit_test(test_strerror),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
