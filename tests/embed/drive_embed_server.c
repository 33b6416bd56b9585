/* drive_embed_server.c: real clients over loopback against examples/embed-server, across a restart.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

/* usage: drive_embed_server SERVER_EXE SCRIPTS_DIR */
static const char *server_exe, *scripts_dir;
static char journal[600];
static pid_t live_server; /* killed by teardown if a failed test left it running */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* --- the server process --- */

typedef struct server {
  pid_t pid;
  int out; /* its stdout */
  int port;
} server;

/* Reads one line from fd within `seconds`; returns its length or -1. */
static int read_line_fd(int fd, char *line, size_t cap, double seconds) {
  size_t n = 0;
  double end = now_s() + seconds;
  while (n + 1 < cap) {
    struct pollfd p = {fd, POLLIN, 0};
    int left = (int)((end - now_s()) * 1000);
    if (left <= 0 || poll(&p, 1, left) <= 0) return -1;
    char ch;
    if (read(fd, &ch, 1) != 1) return -1;
    if (ch == '\n') break;
    line[n++] = ch;
  }
  line[n] = '\0';
  return (int)n;
}

static void server_start(server *s) {
  int pipefd[2];
  assert_int_equal(pipe(pipefd), 0);
  s->pid = fork();
  assert_true(s->pid >= 0);
  if (s->pid == 0) {
    dup2(pipefd[1], 1);
    close(pipefd[0]);
    close(pipefd[1]);
    execl(server_exe, server_exe, "--journal", journal, "--port", "0", "--scripts", scripts_dir,
          (char *)NULL);
    _exit(127);
  }
  close(pipefd[1]);
  live_server = s->pid;
  s->out = pipefd[0];
  char line[256];
  assert_true(read_line_fd(s->out, line, sizeof line, 20) > 0);
  const char *at = strstr(line, "listening on 127.0.0.1:");
  assert_non_null(at);
  s->port = atoi(at + strlen("listening on 127.0.0.1:"));
  assert_true(s->port > 0);
}

/* Sends sig; the server must exit 0 within 10 s. */
static void server_stop(server *s, int sig) {
  assert_int_equal(kill(s->pid, sig), 0);
  int status = -1;
  double end = now_s() + 10;
  pid_t r = 0;
  while ((r = waitpid(s->pid, &status, WNOHANG)) == 0 && now_s() < end) usleep(10000);
  if (r == 0) {
    kill(s->pid, SIGKILL);
    waitpid(s->pid, &status, 0);
    live_server = 0;
    fail_msg("the server did not exit within 10 s of signal %d", sig);
  }
  live_server = 0;
  close(s->out);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
}

/* --- clients --- */

typedef struct client {
  int fd;
  char buf[4096];
  size_t len;
} client;

static void client_connect(client *c, int port) {
  memset(c, 0, sizeof *c);
  c->fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(c->fd >= 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(connect(c->fd, (struct sockaddr *)&a, sizeof a), 0);
}

static void client_send(client *c, const char *line) {
  char b[512];
  int n = snprintf(b, sizeof b, "%s\n", line);
  assert_int_equal(write(c->fd, b, (size_t)n), n);
}

/* Next whole line within `seconds` into out: 1, 0 on timeout, -1 on EOF. */
static int client_line(client *c, char *out, size_t cap, double seconds) {
  double end = now_s() + seconds;
  for (;;) {
    char *nl = memchr(c->buf, '\n', c->len);
    if (nl) {
      size_t n = (size_t)(nl - c->buf);
      snprintf(out, cap, "%.*s", (int)n, c->buf);
      c->len -= n + 1;
      memmove(c->buf, nl + 1, c->len);
      return 1;
    }
    struct pollfd p = {c->fd, POLLIN, 0};
    int left = (int)((end - now_s()) * 1000);
    if (left <= 0 || poll(&p, 1, left) <= 0) return 0;
    ssize_t r = read(c->fd, c->buf + c->len, sizeof c->buf - c->len);
    if (r <= 0) return -1;
    c->len += (size_t)r;
  }
}

/* Reads lines until one contains every needle (others are skipped, e.g. the
 * greeting); fails the test after 10 s. The line is left in out. */
static void expect(client *c, char *out, size_t cap, const char *needle, const char *needle2) {
  char line[1024];
  double end = now_s() + 10;
  while (now_s() < end) {
    int r = client_line(c, line, sizeof line, end - now_s());
    if (r < 0) fail_msg("connection closed while waiting for '%s'", needle);
    if (r == 0) break;
    if (strstr(line, needle) && (!needle2 || strstr(line, needle2))) {
      if (out) snprintf(out, cap, "%s", line);
      return;
    }
  }
  fail_msg("no line with '%s'%s%s within 10 s", needle, needle2 ? " and " : "",
           needle2 ? needle2 : "");
}

/* After the server closed the connection: EOF (whatever lines came before). */
static void expect_closed(client *c) {
  char line[1024];
  double end = now_s() + 10;
  int r;
  while ((r = client_line(c, line, sizeof line, end - now_s())) == 1) {
  }
  assert_int_equal(r, -1);
  close(c->fd);
}

static int setup(void **state) {
  (void)state;
  const char *base = getenv("LORE_TEST_TMP");
  if (!base || !*base) base = "/tmp";
  mkdir(base, 0755);
  char dir[512];
  snprintf(dir, sizeof dir, "%s/embed-server-XXXXXX", base);
  if (!mkdtemp(dir)) return -1;
  snprintf(journal, sizeof journal, "%s/rooms.db", dir);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  if (live_server > 0) {
    kill(live_server, SIGKILL);
    waitpid(live_server, NULL, 0);
  }
  char path[700];
  static const char *const suffixes[] = {"", "-wal", "-shm"};
  for (int i = 0; i < 3; i++) {
    snprintf(path, sizeof path, "%s%s", journal, suffixes[i]);
    unlink(path);
  }
  *strrchr(journal, '/') = '\0';
  rmdir(journal);
  return 0;
}

/* Two players in a room see each other's moves and rolls; the server is
 * stopped (SIGTERM) and started again on the same journal; the room still
 * knows its players and moves; new moves continue from there. */
static void room_survives_restart(void **state) {
  (void)state;
  server s;
  server_start(&s);
  client alice, bob;
  client_connect(&alice, s.port);
  client_connect(&bob, s.port);
  char line[1024];

  client_send(&alice, "join chess alice");
  expect(&alice, NULL, 0, "[chess] alice joined", NULL);
  client_send(&bob, "join chess bob");
  expect(&bob, NULL, 0, "[chess] bob joined", NULL);
  expect(&alice, NULL, 0, "[chess] bob joined", NULL);

  client_send(&alice, "move chess e4");
  expect(&bob, NULL, 0, "[chess] alice: e4", NULL);
  expect(&alice, NULL, 0, "[chess] alice: e4", NULL);
  client_send(&bob, "move chess e5");
  expect(&alice, NULL, 0, "[chess] bob: e5", NULL);
  expect(&bob, NULL, 0, "[chess] bob: e5", NULL);
  client_send(&bob, "roll chess");
  expect(&alice, line, sizeof line, "[chess] bob rolled ", "(d6)");
  int rolled = atoi(line + strlen("[chess] bob rolled "));
  assert_in_range(rolled, 1, 6);
  expect(&bob, NULL, 0, "[chess] bob rolled ", "(d6)");

  /* a move before joining is refused, and told only to its sender */
  client carol;
  client_connect(&carol, s.port);
  client_send(&carol, "move chess Nf3");
  expect(&carol, NULL, 0, "error: join chess first", NULL);
  client_send(&alice, "look chess");
  expect(&alice, line, sizeof line, "[chess] players: alice, bob |", NULL);
  assert_null(strstr(line, "Nf3"));

  server_stop(&s, SIGTERM);
  expect_closed(&alice);
  expect_closed(&bob);
  expect_closed(&carol);

  server_start(&s);
  client dave;
  client_connect(&dave, s.port);
  client_send(&dave, "look chess");
  char expected[128];
  snprintf(expected, sizeof expected, "bob: rolled %d (d6)", rolled);
  expect(&dave, line, sizeof line, "[chess] players: alice, bob | moves: alice: e4; bob: e5",
         expected);
  client_send(&dave, "join chess dave");
  expect(&dave, NULL, 0, "[chess] dave joined", NULL);
  client_send(&dave, "move chess Nf3");
  expect(&dave, NULL, 0, "[chess] dave: Nf3", NULL);
  client_send(&dave, "look chess");
  expect(&dave, NULL, 0, "[chess] players: alice, bob, dave |", "; dave: Nf3");
  client_send(&dave, "quit");
  expect_closed(&dave);
  server_stop(&s, SIGINT);
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s SERVER_EXE SCRIPTS_DIR\n", argv[0]);
    return 2;
  } /* the server's first room would hang */
  server_exe = argv[1];
  scripts_dir = argv[2];
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {cmocka_unit_test(room_survives_restart)};
  return cmocka_run_group_tests(tests, setup, teardown);
}
