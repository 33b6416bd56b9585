/* bench_stamp.c: runs a command and stamps its "@mark NAME" lines with the time they arrive.
 *
 *   bench_stamp CMD [ARGS...]
 *
 * Lua scripts under `lore run` have no clock finer than /proc/uptime (10 ms),
 * too coarse for a 10 ms replay. A script prints "@mark NAME" (and flushes)
 * where a timed stretch begins and ends; this program reads the command's
 * output through a pipe and rewrites each such line as
 * "@mark NAME SECONDS", SECONDS on CLOCK_MONOTONIC since this program
 * started. Every other line passes through unchanged; stderr is merged.
 * A line reaches us microseconds after the flush, so the stamp's error is
 * far below the stretches measured.
 * Exit status: the command's (128 + signal if it was killed), 2 on bad usage,
 * 1 if the command cannot be run.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_BYTES 65536

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char MARK[] = "@mark ";

static void emit_line(const char *line, size_t len, double t) {
  if (len >= sizeof MARK - 1 && memcmp(line, MARK, sizeof MARK - 1) == 0)
    printf("%.*s %.6f\n", (int)len, line, t);
  else
    printf("%.*s\n", (int)len, line);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: bench_stamp CMD [ARGS...]\n");
    return 2;
  }
  double t0 = now();
  int fds[2];
  if (pipe(fds) != 0) {
    perror("bench_stamp: pipe");
    return 1;
  }
  pid_t pid = fork();
  if (pid < 0) {
    perror("bench_stamp: fork");
    return 1;
  }
  if (pid == 0) {
    close(fds[0]);
    dup2(fds[1], STDOUT_FILENO);
    dup2(fds[1], STDERR_FILENO);
    close(fds[1]);
    execvp(argv[1], argv + 1);
    fprintf(stderr, "bench_stamp: cannot run %s: %s\n", argv[1], strerror(errno));
    _exit(127);
  }
  close(fds[1]);

  static char buf[LINE_MAX_BYTES];
  size_t used = 0;
  for (;;) {
    ssize_t got = read(fds[0], buf + used, sizeof buf - used);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    double t = now() - t0;
    used += (size_t)got;
    size_t start = 0;
    for (size_t i = 0; i < used; i++) {
      if (buf[i] != '\n') continue;
      emit_line(buf + start, i - start, t);
      start = i + 1;
    }
    if (start == 0 && used == sizeof buf) { /* a line longer than the buffer: pass it on */
      fwrite(buf, 1, used, stdout);
      used = 0;
    } else {
      memmove(buf, buf + start, used - start);
      used -= start;
    }
    fflush(stdout);
  }
  if (used) emit_line(buf, used, now() - t0);
  close(fds[0]);

  int status;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      perror("bench_stamp: waitpid");
      return 1;
    }
  }
  fflush(stdout);
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}
