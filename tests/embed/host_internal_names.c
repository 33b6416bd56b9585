/* host_internal_names.c: a host whose own global functions share names with Lore's internals. */
#include <msgpack.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lore.h"

/*
 * Linked once against liblore.so and once against liblore.a. If the library
 * exported (or, in the archive, left global) any of these names, the link
 * would fail with a duplicate definition, or one side would call the
 * other's function: the host's versions count their calls and return
 * values Lore's never would, and Lore is driven through the paths that use
 * its own versions (a sqlite journal with CRCs, encoded events, messages,
 * debug logging, scheduling). Exit status 0 only if everything held.
 */

static int own_calls;

/* Deliberately other signatures and meanings than Lore's. */
int log_line(int level) { return own_calls++, level + 1000; }
void *msg_new(size_t n) { return own_calls++, calloc(1, n); }
uint32_t crc32c(uint32_t seed) { return own_calls++, seed ^ 0xC0FFEEu; }
int journal_open(const char *name) { return own_calls++, (int)strlen(name); }
void *sched_current(void) { return own_calls++, (void *)&own_calls; }
int codec_encode(int x) { return own_calls++, x * 3; }

static int failures;

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      failures++;                                                              \
    }                                                                          \
  } while (0)

static const char counter_lua[] =
    "local M = {}\n"
    "function M.receive(state, msg, ctx)\n"
    "  ctx:persist({ n = msg.n }, function(st) ctx:reply(st.total) end)\n"
    "end\n"
    "function M.apply(state, evt) state.total = (state.total or 0) + evt.n return state end\n"
    "return M\n";

static int log_lines;
static void count_log(void *ud, int level, const char *line) {
  (void)ud;
  (void)level;
  (void)line;
  __atomic_add_fetch(&log_lines, 1, __ATOMIC_RELAXED);
}

typedef struct answer {
  int calls, status;
  int64_t value;
} answer;

static void answered(void *ud, int status, const void *reply, size_t len) {
  answer *a = ud;
  a->calls++;
  a->status = status;
  msgpack_unpacked u;
  msgpack_unpacked_init(&u);
  size_t off = 0;
  if (status == 0 && msgpack_unpack_next(&u, reply, len, &off) == MSGPACK_UNPACK_SUCCESS &&
      u.data.type == MSGPACK_OBJECT_POSITIVE_INTEGER)
    a->value = (int64_t)u.data.via.u64;
  msgpack_unpacked_destroy(&u);
}

static void mark_done(void *ud) { *(int *)ud = 1; }

/* Runs a runtime on a sqlite journal in dir: 20 persisted asks. */
static void lore_session(const char *dir) {
  char journal[600], script[600];
  snprintf(journal, sizeof journal, "sqlite:%s/journal.db", dir);
  snprintf(script, sizeof script, "%s/counter.lua", dir);
  FILE *f = fopen(script, "w");
  CHECK(f != NULL);
  if (!f) return;
  fputs(counter_lua, f);
  fclose(f);

  uv_loop_t loop;
  CHECK(uv_loop_init(&loop) == 0);
  lore_config cfg;
  lore_config_init(&cfg);
  cfg.loop = &loop;
  cfg.scripts = dir;
  cfg.journal = journal;
  cfg.workers = 2;
  cfg.log = count_log;
  cfg.log_level = LORE_LOG_DEBUG;
  lore_runtime *rt = NULL;
  CHECK(lore_open(&cfg, &rt) == 0);
  if (!rt) return;
  static const char opts[] =
      "\x81\xa2"
      "id\xa2"
      "c1"; /* {id = "c1"} */
  lore_ref *counter = NULL;
  CHECK(lore_spawn(rt, "counter", opts, sizeof opts - 1, &counter) == 0);
  answer answers[20];
  memset(answers, 0, sizeof answers);
  for (int i = 0; counter && i < 20; i++) {
    static const char add2[] = "\x81\xa1n\x02"; /* {n = 2} */
    CHECK(lore_ask(rt, counter, add2, sizeof add2 - 1, 10, answered, &answers[i]) == 0);
  }
  lore_ref *nobody = NULL; /* a dead letter: Lore logs it, at debug */
  CHECK(lore_ref_from_id(rt, "nobody", &nobody) == 0);
  if (nobody) CHECK(lore_tell(rt, nobody, "\xc0", 1) == 0);
  lore_ref_free(nobody);
  int done = 0;
  while (counter && answers[19].calls == 0) uv_run(&loop, UV_RUN_ONCE);
  for (int i = 0; counter && i < 20; i++) {
    CHECK(answers[i].calls == 1);
    CHECK(answers[i].status == 0);
    CHECK(answers[i].value == 2 * (i + 1));
  }
  lore_ref_free(counter);
  CHECK(lore_shutdown(rt, mark_done, &done) == 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK(done == 1);
  lore_close(rt);
  CHECK(uv_loop_close(&loop) == 0);
  CHECK(__atomic_load_n(&log_lines, __ATOMIC_RELAXED) > 0); /* Lore's own log_line ran */
  unlink(script);
  snprintf(script, sizeof script, "%s/journal.db", dir);
  unlink(script);
  rmdir(dir);
}

int main(void) {
  /* the host's own functions are the host's */
  CHECK(log_line(1) == 1001);
  void *p = msg_new(8);
  CHECK(p != NULL);
  free(p);
  CHECK(crc32c(0) == 0xC0FFEEu);
  CHECK(journal_open("abc") == 3);
  CHECK(sched_current() == (void *)&own_calls);
  CHECK(codec_encode(5) == 15);
  CHECK(own_calls == 6);

  const char *base = getenv("LORE_TEST_TMP");
  if (!base || !*base) base = "/tmp";
  mkdir(base, 0755); /* may exist */
  char dir[512];
  snprintf(dir, sizeof dir, "%s/embed-names-XXXXXX", base);
  CHECK(mkdtemp(dir) != NULL);
  lore_session(dir);

  /* ...and Lore never called them */
  CHECK(own_calls == 6);
  if (failures) {
    fprintf(stderr, "host_internal_names: %d check(s) failed\n", failures);
    return 1;
  }
  printf("host_internal_names: ok (Lore %s)\n", lore_version());
  return 0;
}
