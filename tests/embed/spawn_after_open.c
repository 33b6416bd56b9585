#include "spawn_probe.h"

/* spawn_after_open.c: exit 0 if lore_spawn returns after lore_open, 1 if it hangs (it once did).
 */

int main(void) {
  int r = lore_spawn_deadlocks();
  if (r == 1) {
    fprintf(stderr,
            "spawn_after_open: lore_spawn did not return within %.0f s of lore_open "
            "(see tests/embed/spawn_probe.h)\n",
            SPAWN_PROBE_SECONDS);
    return 1;
  }
  if (r < 0) {
    fprintf(stderr, "spawn_after_open: the probe could not run\n");
    return 2;
  }
  printf("spawn_after_open: lore_spawn returned\n");
  return 0;
}
