/* test_actor_map.c: the open-addressing maps of a scheduler's actors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "actor_map.h"
#include "scheduler.h"

#define N 3000

/* Actors with names after their structs, as actor_create makes them. */
static actor_t *new_actor(uint64_t aid) {
  char name[32];
  int len = snprintf(name, sizeof name, "cart-%llu", (unsigned long long)aid);
  actor_t *a = calloc(1, sizeof *a + (size_t)len + 1);
  assert_non_null(a);
  a->aid = aid;
  memcpy(a->name_buf, name, (size_t)len + 1);
  return a;
}

static void count_each(void *actor, void *ud) {
  (void)actor;
  (*(size_t *)ud)++;
}

/* Random puts and removes against a plain array of who is in: every actor
 * in is found by aid and by name, every actor out by neither, across grows
 * and removals that shift probe runs back (and wrap around the table). */
static void test_random_against_reference(void **state) {
  (void)state;
  actor_t *actors[N];
  int in[N] = {0};
  for (int i = 0; i < N; i++) actors[i] = new_actor((uint64_t)i * 7919 + 1);
  actor_map by_aid, by_name;
  actor_map_init(&by_aid, 0);
  actor_map_init(&by_name, 1);
  srand(12345);
  size_t live = 0;
  for (int step = 0; step < 40000; step++) {
    int i = rand() % N;
    if (in[i]) {
      actor_map_remove(&by_aid, actors[i]);
      actor_map_remove(&by_name, actors[i]);
      in[i] = 0;
      live--;
    } else {
      assert_int_equal(actor_map_put(&by_aid, actors[i]), 0);
      assert_int_equal(actor_map_put(&by_name, actors[i]), 0);
      in[i] = 1;
      live++;
    }
    if (step % 997 == 0) {
      for (int k = 0; k < N; k++) {
        assert_ptr_equal(actor_map_get_aid(&by_aid, actors[k]->aid), in[k] ? actors[k] : NULL);
        assert_ptr_equal(actor_map_get_name(&by_name, actors[k]->name_buf),
                         in[k] ? actors[k] : NULL);
      }
    }
  }
  assert_int_equal(by_aid.count, live);
  assert_int_equal(by_name.count, live);
  size_t seen = 0;
  actor_map_each(&by_name, count_each, &seen);
  assert_int_equal(seen, live);
  assert_true(by_aid.count * 5 <= by_aid.cap * 4);
  /* Removing an actor that is not in the map changes nothing. */
  for (int k = 0; k < N; k++) {
    if (in[k]) continue;
    actor_map_remove(&by_aid, actors[k]);
    break;
  }
  assert_int_equal(by_aid.count, live);
  actor_map_free(&by_aid);
  actor_map_free(&by_name);
  assert_null(actor_map_get_aid(&by_aid, 1));
  assert_null(actor_map_get_name(&by_name, "cart-1"));
  for (int i = 0; i < N; i++) free(actors[i]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_random_against_reference),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
