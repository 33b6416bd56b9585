/* host.c: the smallest host, built against an installed Lore (pkg-config and CMake). */
#include <lore.h>
#include <stdio.h>
#include <string.h>

/*
 * usage: host SCRIPTS_DIR. Runs Lore on its private loop (lore_run): spawns
 * `answer`, asks it a question, shuts down from the reply's callback. Exit
 * status 0 only if the answer was 42 and everything shut down cleanly.
 */

typedef struct outcome {
  lore_runtime *rt;
  int calls, status, answer;
} outcome;

static void answered(void *ud, int status, const void *reply, size_t len) {
  outcome *o = ud;
  o->calls++;
  o->status = status;
  /* 42 is one byte in MessagePack (a positive fixint) */
  o->answer = status == 0 && len == 1 ? *(const unsigned char *)reply : -1;
  lore_shutdown(o->rt, NULL, NULL); /* lore_run returns once it is done */
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s SCRIPTS_DIR\n", argv[0]);
    return 2;
  }
  if (strcmp(lore_version(), LORE_VERSION) != 0) {
    fprintf(stderr, "header %s, library %s\n", LORE_VERSION, lore_version());
    return 1;
  }
  lore_config cfg;
  lore_config_init(&cfg);
  cfg.scripts = argv[1];
  cfg.workers = 1;
  outcome o = {0};
  int rc = lore_open(&cfg, &o.rt);
  lore_ref *answer = NULL;
  if (!rc) rc = lore_spawn(o.rt, "answer", NULL, 0, &answer);
  static const char question[] =
      "\x81\xa8"
      "question\xa4"
      "life"; /* {question = "life"} */
  if (!rc) rc = lore_ask(o.rt, answer, question, sizeof question - 1, 5.0, answered, &o);
  if (rc) {
    fprintf(stderr, "host: %s\n", lore_strerror(rc));
    if (o.rt) lore_close(o.rt);
    lore_ref_free(answer);
    return 1;
  }
  lore_run(o.rt);
  int status = lore_shutdown_status(o.rt);
  lore_close(o.rt);
  lore_ref_free(answer);
  if (o.calls != 1 || o.status != 0 || o.answer != 42 || status != 0) {
    fprintf(stderr, "host: calls %d, status %d (%s), answer %d, shutdown %d\n", o.calls, o.status,
            lore_strerror(o.status), o.answer, status);
    return 1;
  }
  printf("host: Lore %s answered %d\n", lore_version(), o.answer);
  return 0;
}
