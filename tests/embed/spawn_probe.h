/* spawn_probe.h: does lore_spawn return after lore_open? (a known library bug says no) */
#ifndef LORE_EMBED_SPAWN_PROBE_H
#define LORE_EMBED_SPAWN_PROBE_H

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lore.h"

/*
 * The known bug: lore_open (bindings/runtime_object.c) calls runtime_start,
 * which leaves the host scheduler as the calling thread's current
 * scheduler (core's contract). host.c assumes it is current only between
 * enter_host/leave_host, so lore_spawn's message goes to the host's outbox,
 * flushed only in a turn of the host loop, and lore_spawn waits on a
 * semaphore for a worker that never gets it: the first lore_spawn after
 * lore_open never returns.
 *
 * Every test here spawns, so each one first runs this probe in a child
 * process and is skipped (exit status 77, ctest SKIP_RETURN_CODE) while the
 * bug is there, instead of hanging; embed/spawn_after_open (an expected
 * failure) and test_embed_known_bugs show the bug itself. Once it is fixed
 * the probe passes and every test runs.
 */

#define SPAWN_PROBE_SKIP 77
#define SPAWN_PROBE_SECONDS 3.0

static void spawn_probe_child(const char *dir) {
  char path[600];
  snprintf(path, sizeof path, "%s/probe.lua", dir);
  FILE *f = fopen(path, "w");
  if (!f) _exit(2);
  fputs("return { receive = function() end }\n", f);
  fclose(f);
  uv_loop_t loop;
  uv_loop_init(&loop);
  lore_config cfg;
  lore_config_init(&cfg);
  cfg.loop = &loop;
  cfg.scripts = dir;
  cfg.workers = 1;
  cfg.log_level = LORE_LOG_OFF;
  lore_runtime *rt = NULL;
  lore_ref *ref = NULL;
  if (lore_open(&cfg, &rt)) _exit(2);
  _exit(lore_spawn(rt, "probe", NULL, 0, &ref) == 0 ? 0 : 2); /* no cleanup: the child ends */
}

/* 0: lore_spawn returned; 1: it did not within SPAWN_PROBE_SECONDS (the
 * bug); -1: the probe itself could not run. */
static int lore_spawn_deadlocks(void) {
  const char *base = getenv("LORE_TEST_TMP");
  if (!base || !*base) base = "/tmp";
  mkdir(base, 0755);
  char dir[512];
  snprintf(dir, sizeof dir, "%s/embed-probe-XXXXXX", base);
  if (!mkdtemp(dir)) return -1;
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) spawn_probe_child(dir);
  int status = 0, verdict = -1;
  struct timespec pause = {0, 10 * 1000 * 1000};
  for (double waited = 0; waited < SPAWN_PROBE_SECONDS; waited += 0.01) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      verdict = WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
      break;
    }
    nanosleep(&pause, NULL);
  }
  if (verdict == -1 && waitpid(pid, &status, WNOHANG) == 0) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    verdict = 1;
  }
  char path[600];
  snprintf(path, sizeof path, "%s/probe.lua", dir);
  unlink(path);
  rmdir(dir);
  return verdict;
}

/* In a test's main: skip the whole program while the bug is there. */
#define SKIP_WHILE_SPAWN_DEADLOCKS()                                           \
  do {                                                                         \
    if (lore_spawn_deadlocks() == 1) {                                         \
      printf(                                                                  \
          "SKIPPED: lore_spawn never returns after lore_open (known bug, see " \
          "tests/embed/spawn_probe.h)\n");                                     \
      return SPAWN_PROBE_SKIP;                                                 \
    }                                                                          \
  } while (0)

#endif
