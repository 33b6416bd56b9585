/* test_crc32c.c: CRC32C check values, incremental use, both paths against a bitwise reference. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "journal.h"

/* The definition, one bit at a time: slow, obviously right. */
static uint32_t crc32c_bitwise(uint32_t crc, const unsigned char *p, size_t len) {
  crc = ~crc;
  while (len--) {
    crc ^= *p++;
    for (int k = 0; k < 8; k++) crc = (crc & 1) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
  }
  return ~crc;
}

static void test_check_values(void **state) {
  (void)state;
  assert_int_equal(crc32c(0, "", 0), 0);
  assert_int_equal(crc32c(0, NULL, 0), 0);
  assert_int_equal(crc32c(0, "123456789", 9), 0xE3069283u);
  assert_int_equal(crc32c_portable(0, "123456789", 9), 0xE3069283u);
  /* RFC 3720 (iSCSI) B.4: 32 bytes of zeros, and of 0xff. */
  unsigned char buf[32];
  memset(buf, 0, sizeof buf);
  assert_int_equal(crc32c(0, buf, sizeof buf), 0x8A9136AAu);
  memset(buf, 0xff, sizeof buf);
  assert_int_equal(crc32c(0, buf, sizeof buf), 0x62A8AB43u);
  for (int i = 0; i < 32; i++) buf[i] = (unsigned char)i;
  assert_int_equal(crc32c(0, buf, sizeof buf), 0x46DD794Eu);
}

static void test_incremental_equals_one_shot(void **state) {
  (void)state;
  const char *text = "The quick brown fox jumps over the lazy dog, then journals it.";
  size_t len = strlen(text);
  uint32_t whole = crc32c(0, text, len);
  for (size_t cut = 0; cut <= len; cut++) {
    assert_int_equal(crc32c(crc32c(0, text, cut), text + cut, len - cut), whole);
    assert_int_equal(crc32c_portable(crc32c_portable(0, text, cut), text + cut, len - cut), whole);
  }
}

/* Every length and alignment around the 8-byte loops, both paths. */
static void test_matches_reference(void **state) {
  (void)state;
  enum { N = 300 };
  unsigned char *buf = malloc(N + 8);
  assert_non_null(buf);
  srand(42);
  for (int i = 0; i < N + 8; i++) buf[i] = (unsigned char)rand();
  for (size_t off = 0; off < 8; off++) {
    for (size_t len = 0; len <= N; len++) {
      uint32_t want = crc32c_bitwise(0, buf + off, len);
      assert_int_equal(crc32c(0, buf + off, len), want);
      assert_int_equal(crc32c_portable(0, buf + off, len), want);
    }
  }
  free(buf);
}

static void test_seal(void **state) {
  (void)state;
  journal_event ev = {.payload = "123456789", .payload_len = 9};
  journal_event_seal(&ev);
  assert_int_equal(ev.crc32c, 0xE3069283u);
  journal_event empty = {.payload = NULL, .payload_len = 0, .crc32c = 7};
  journal_event_seal(&empty);
  assert_int_equal(empty.crc32c, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_check_values),
      cmocka_unit_test(test_incremental_equals_one_shot),
      cmocka_unit_test(test_matches_reference),
      cmocka_unit_test(test_seal),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
