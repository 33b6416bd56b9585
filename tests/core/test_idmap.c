/* test_idmap.c: the u64 and string hash maps: put/get/remove, replace, growth, each. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "idmap.h"

#define BIG 100000

/* Values are encoded keys so a lookup can be checked without side storage. */
static void *val(uint64_t k) { return (void *)(uintptr_t)(k * 2 + 1); }

static void test_empty(void **state) {
  (void)state;
  idmap m;
  idmap_init(&m);
  assert_null(idmap_get(&m, 1));
  assert_null(idmap_get(&m, 0));
  assert_null(idmap_remove(&m, 1));
  assert_null(idmap_get_str(&m, "x"));
  assert_null(idmap_remove_str(&m, "x"));
  assert_int_equal(m.count, 0);
  idmap_free(&m);
  idmap_free(&m); /* freeing twice is harmless: free re-inits */
}

static void test_u64_basic(void **state) {
  (void)state;
  idmap m;
  idmap_init(&m);
  assert_int_equal(idmap_put(&m, 0, val(0)), 0);
  assert_int_equal(idmap_put(&m, 42, val(42)), 0);
  assert_int_equal(idmap_put(&m, UINT64_MAX, val(7)), 0);
  assert_int_equal(m.count, 3);
  assert_ptr_equal(idmap_get(&m, 0), val(0));
  assert_ptr_equal(idmap_get(&m, 42), val(42));
  assert_ptr_equal(idmap_get(&m, UINT64_MAX), val(7));
  assert_null(idmap_get(&m, 43));
  /* Replace keeps the count. */
  assert_int_equal(idmap_put(&m, 42, val(100)), 0);
  assert_int_equal(m.count, 3);
  assert_ptr_equal(idmap_get(&m, 42), val(100));
  assert_ptr_equal(idmap_remove(&m, 42), val(100));
  assert_null(idmap_get(&m, 42));
  assert_null(idmap_remove(&m, 42));
  assert_int_equal(m.count, 2);
  /* Re-adding after a remove works. */
  assert_int_equal(idmap_put(&m, 42, val(42)), 0);
  assert_ptr_equal(idmap_get(&m, 42), val(42));
  idmap_free(&m);
  assert_int_equal(m.count, 0);
  assert_null(idmap_get(&m, 0));
}

static void test_u64_growth(void **state) {
  (void)state;
  idmap m;
  idmap_init(&m);
  /* Sequential and spread-out keys (a multiplicative pattern, as a sloppy hash would collide). */
  for (uint64_t i = 1; i <= BIG; i++) assert_int_equal(idmap_put(&m, i, val(i)), 0);
  for (uint64_t i = 1; i <= BIG; i++) {
    uint64_t k = i << 32;
    assert_int_equal(idmap_put(&m, k, val(k)), 0);
  }
  assert_int_equal(m.count, 2 * BIG);
  assert_true(m.nbuckets >= m.count);
  assert_int_equal(m.nbuckets & (m.nbuckets - 1), 0);
  for (uint64_t i = 1; i <= BIG; i++) {
    assert_ptr_equal(idmap_get(&m, i), val(i));
    assert_ptr_equal(idmap_get(&m, i << 32), val(i << 32));
  }
  assert_null(idmap_get(&m, BIG + 1));
  /* Remove the odd keys, check the rest is intact. */
  for (uint64_t i = 1; i <= BIG; i += 2) assert_ptr_equal(idmap_remove(&m, i), val(i));
  assert_int_equal(m.count, 2 * BIG - BIG / 2);
  for (uint64_t i = 1; i <= BIG; i++) {
    if (i % 2)
      assert_null(idmap_get(&m, i));
    else
      assert_ptr_equal(idmap_get(&m, i), val(i));
  }
  idmap_free(&m);
}

static void test_str_basic(void **state) {
  (void)state;
  idmap m;
  idmap_init(&m);
  char a[] = "order-1", b[] = "order-2", empty[] = "";
  assert_int_equal(idmap_put_str(&m, a, val(1)), 0);
  assert_int_equal(idmap_put_str(&m, b, val(2)), 0);
  assert_int_equal(idmap_put_str(&m, empty, val(3)), 0);
  assert_int_equal(m.count, 3);
  /* Lookups compare contents, not pointers. */
  char probe[16];
  strcpy(probe, "order-1");
  assert_ptr_equal(idmap_get_str(&m, probe), val(1));
  assert_ptr_equal(idmap_get_str(&m, "order-2"), val(2));
  assert_ptr_equal(idmap_get_str(&m, ""), val(3));
  assert_null(idmap_get_str(&m, "order-"));
  assert_null(idmap_get_str(&m, "order-10"));
  /* Replace. */
  assert_int_equal(idmap_put_str(&m, "order-2", val(20)), 0);
  assert_int_equal(m.count, 3);
  assert_ptr_equal(idmap_get_str(&m, b), val(20));
  assert_ptr_equal(idmap_remove_str(&m, "order-1"), val(1));
  assert_null(idmap_get_str(&m, a));
  assert_null(idmap_remove_str(&m, a));
  assert_int_equal(m.count, 2);
  idmap_free(&m);
}

/* Keys are not copied: they must stay alive; we keep them in one array. */
static void test_str_growth(void **state) {
  (void)state;
  char(*keys)[24] = malloc((size_t)BIG * sizeof *keys);
  assert_non_null(keys);
  idmap m;
  idmap_init(&m);
  for (uint64_t i = 0; i < BIG; i++) {
    snprintf(keys[i], sizeof keys[i], "actor/%llu", (unsigned long long)i);
    assert_int_equal(idmap_put_str(&m, keys[i], val(i)), 0);
  }
  assert_int_equal(m.count, BIG);
  for (uint64_t i = 0; i < BIG; i++) {
    char probe[24];
    snprintf(probe, sizeof probe, "actor/%llu", (unsigned long long)i);
    assert_ptr_equal(idmap_get_str(&m, probe), val(i));
  }
  for (uint64_t i = 0; i < BIG; i += 3) assert_ptr_equal(idmap_remove_str(&m, keys[i]), val(i));
  for (uint64_t i = 0; i < BIG; i++) {
    if (i % 3 == 0)
      assert_null(idmap_get_str(&m, keys[i]));
    else
      assert_ptr_equal(idmap_get_str(&m, keys[i]), val(i));
  }
  idmap_free(&m);
  free(keys);
}

/* A string entry and a u64 entry whose key equals the string's hash stay distinct. */
static void test_mixed_keys(void **state) {
  (void)state;
  idmap m;
  idmap_init(&m);
  uint64_t h = idmap_hash_str("name");
  assert_int_equal(idmap_put_str(&m, "name", val(1)), 0);
  assert_int_equal(idmap_put(&m, h, val(2)), 0);
  assert_int_equal(m.count, 2);
  assert_ptr_equal(idmap_get_str(&m, "name"), val(1));
  assert_ptr_equal(idmap_get(&m, h), val(2));
  assert_ptr_equal(idmap_remove(&m, h), val(2));
  assert_ptr_equal(idmap_get_str(&m, "name"), val(1));
  idmap_free(&m);
}

static void test_hash_str(void **state) {
  (void)state;
  assert_int_equal(idmap_hash_str("abc"), idmap_hash_str("abc"));
  assert_int_not_equal(idmap_hash_str("abc"), idmap_hash_str("abd"));
  assert_int_not_equal(idmap_hash_str(""), idmap_hash_str("a"));
}

typedef struct each_acc {
  uint64_t n, sum;
  uint8_t *seen;
} each_acc;

static void each_fn(void *value, void *ud) {
  each_acc *acc = ud;
  uint64_t k = ((uint64_t)(uintptr_t)value - 1) / 2;
  acc->n++;
  acc->sum += k;
  assert_true(k < 5000);
  assert_int_equal(acc->seen[k], 0); /* each value exactly once */
  acc->seen[k] = 1;
}

static void test_each(void **state) {
  (void)state;
  idmap m;
  idmap_init(&m);
  each_acc acc = {0, 0, calloc(5000, 1)};
  assert_non_null(acc.seen);
  idmap_each(&m, each_fn, &acc); /* empty map: no calls */
  assert_int_equal(acc.n, 0);
  uint64_t want = 0;
  for (uint64_t i = 0; i < 5000; i++) {
    assert_int_equal(idmap_put(&m, i * 7919, val(i)), 0);
    want += i;
  }
  for (uint64_t i = 0; i < 5000; i += 10) idmap_remove(&m, i * 7919);
  for (uint64_t i = 0; i < 5000; i += 10) want -= i;
  idmap_each(&m, each_fn, &acc);
  assert_int_equal(acc.n, 4500);
  assert_int_equal(acc.sum, want);
  for (uint64_t i = 0; i < 5000; i++) assert_int_equal(acc.seen[i], i % 10 ? 1 : 0);
  free(acc.seen);
  idmap_free(&m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_empty),      cmocka_unit_test(test_u64_basic),
      cmocka_unit_test(test_u64_growth), cmocka_unit_test(test_str_basic),
      cmocka_unit_test(test_str_growth), cmocka_unit_test(test_mixed_keys),
      cmocka_unit_test(test_hash_str),   cmocka_unit_test(test_each),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
