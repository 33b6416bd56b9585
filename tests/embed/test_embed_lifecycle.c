/* test_embed_lifecycle.c: shutdown on the host's loop, forced shutdown, threads, signals, logging.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "embed_support.h"

static const char echo_lua[] =
    "local M = {}\n"
    "function M.receive(state, msg, ctx)\n"
    "  if msg.op == 'echo' then ctx:reply(msg.n)\n"
    "  elseif msg.op == 'fail' then error('failing on purpose')\n"
    "  elseif msg.op == 'spin' then while true do end\n"
    "  end -- anything else is never answered\n"
    "end\n"
    "return M\n";

static char dir[512];

/* One runtime on its own host loop, per test. */
typedef struct host {
  uv_loop_t loop;
  lore_runtime *rt;
  lore_ref *echo;
  log_capture log;
} host;

static void host_config(host *h, lore_config *cfg) {
  lore_config_init(cfg);
  cfg->loop = &h->loop;
  cfg->scripts = dir;
  cfg->workers = 2;
  cfg->log = log_capture_line;
  cfg->log_ud = &h->log;
}

/* Opens with cfg (host_config's, adjusted by the test) and spawns `echo`. */
static void host_open(host *h, const lore_config *cfg) {
  assert_int_equal(lore_open(cfg, &h->rt), 0);
  assert_int_equal(lore_spawn(h->rt, "echo", NULL, 0, &h->echo), 0);
}

static void host_init(host *h) {
  memset(h, 0, sizeof *h);
  assert_int_equal(uv_loop_init(&h->loop), 0);
  log_capture_init(&h->log);
}

/* After lore_close: the host's loop has nothing of Lore's left (closes clean). */
static void host_end(host *h) {
  lore_ref_free(h->echo);
  assert_int_equal(uv_loop_close(&h->loop), 0);
  log_capture_free(&h->log);
}

static void tell_echo(host *h, const char *op, int64_t n) {
  mp_out o;
  mp_out_init(&o);
  mp_op_n(&o, op, n);
  assert_int_equal(lore_tell(h->rt, h->echo, o.sb.data, o.sb.size), 0);
  mp_out_free(&o);
}

static void count_call(void *ud) { (*(int *)ud)++; }

static void ignore_message(void *ud, const void *msg, size_t len) {
  (void)ud;
  (void)msg;
  (void)len;
}

static int setup(void **state) {
  (void)state;
  /* A shell may start us with SIGINT ignored (a background job): the signal
   * tests compare against the default disposition. */
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  if (tmpdir_make(dir, sizeof dir, "lifecycle")) return -1;
  return file_write(dir, "echo.lua", echo_lua);
}

static int teardown(void **state) {
  (void)state;
  tmpdir_remove(dir);
  return 0;
}

/* lore_shutdown's `done` runs once, after which the host's plain uv_run
 * returns: Lore holds nothing on the loop. Pending asks are told. */
static void shutdown_lets_uv_run_return(void **state) {
  (void)state;
  host h;
  host_init(&h);
  lore_config cfg;
  host_config(&h, &cfg);
  host_open(&h, &cfg);
  ask_result pending;
  memset(&pending, 0, sizeof pending);
  mp_out o;
  mp_out_init(&o);
  mp_op(&o, "ignored");
  assert_int_equal(lore_ask(h.rt, h.echo, o.sb.data, o.sb.size, 60, ask_recorder, &pending), 0);
  int done = 0, second = 0;
  assert_int_equal(lore_shutdown(h.rt, count_call, &done), 0);
  assert_int_equal(lore_shutdown(h.rt, count_call, &second), 0); /* harmless */
  assert_int_equal(done, 0);                                     /* on the loop, later */
  alarm(30); /* a uv_run that never returns ends the test */
  uv_run(&h.loop, UV_RUN_DEFAULT);
  alarm(0);
  assert_int_equal(done, 1);
  assert_int_equal(second, 0);
  assert_int_equal(pending.calls, 1);
  assert_int_equal(pending.status, LORE_ESHUTDOWN);
  assert_int_equal(lore_shutdown_status(h.rt), 0);
  assert_int_equal(uv_loop_alive(&h.loop), 0);

  /* every call that would start something is refused now */
  ask_result refused;
  memset(&refused, 0, sizeof refused);
  lore_ref *ref = NULL;
  assert_int_equal(lore_tell(h.rt, h.echo, o.sb.data, o.sb.size), LORE_ESHUTDOWN);
  assert_int_equal(lore_ask(h.rt, h.echo, o.sb.data, o.sb.size, 1, ask_recorder, &refused),
                   LORE_ESHUTDOWN);
  assert_int_equal(lore_spawn(h.rt, "echo", NULL, 0, &ref), LORE_ESHUTDOWN);
  assert_int_equal(lore_endpoint(h.rt, ignore_message, NULL, &ref), LORE_ESHUTDOWN);
  assert_null(ref);
  mp_out_free(&o);
  uv_run(&h.loop, UV_RUN_NOWAIT);
  assert_int_equal(refused.calls, 0);
  assert_int_equal(done, 1);
  lore_close(h.rt);
  host_end(&h);
}

/* lore_close on a running runtime shuts it down first. */
static void close_without_shutdown(void **state) {
  (void)state;
  host h;
  host_init(&h);
  lore_config cfg;
  host_config(&h, &cfg);
  host_open(&h, &cfg);
  tell_echo(&h, "echo", 1);
  lore_close(h.rt);
  host_end(&h);
}

/* A handler that never returns, with no instruction budget: the shutdown
 * still ends soon after shutdown_timeout, and says it had to force it. */
static void forced_shutdown(void **state) {
  (void)state;
  host h;
  host_init(&h);
  lore_config cfg;
  host_config(&h, &cfg);
  cfg.max_instructions = 0;
  cfg.shutdown_timeout = 0.5;
  host_open(&h, &cfg);
  tell_echo(&h, "spin", 0);
  run_for(&h.loop, 0.1); /* it is spinning now */
  int done = 0;
  double start = now_s();
  assert_int_equal(lore_shutdown(h.rt, count_call, &done), 0);
  alarm(30);
  uv_run(&h.loop, UV_RUN_DEFAULT);
  alarm(0);
  double took = now_s() - start;
  assert_int_equal(done, 1);
  assert_true(took >= 0.45);
  assert_true(took < 4.0);
  assert_int_equal(lore_shutdown_status(h.rt), LORE_ETIMEDOUT);
  assert_true(log_capture_has(&h.log, "by force"));
  lore_close(h.rt);
  host_end(&h);
}

typedef struct foreign_calls {
  lore_runtime *rt;
  const lore_ref *echo, *open_endpoint;
  int tell, ask, spawn, endpoint, endpoint_close, shutdown;
  ask_result never;
} foreign_calls;

static void from_other_thread(void *arg) {
  foreign_calls *c = arg;
  static const char msg[] =
      "\x81\xa2"
      "op\xa4"
      "echo"; /* {op = "echo"} */
  lore_ref *ref = NULL;
  c->tell = lore_tell(c->rt, c->echo, msg, sizeof msg - 1);
  c->ask = lore_ask(c->rt, c->echo, msg, sizeof msg - 1, 1, ask_recorder, &c->never);
  c->spawn = lore_spawn(c->rt, "echo", NULL, 0, &ref);
  c->endpoint = lore_endpoint(c->rt, ignore_message, NULL, &ref);
  c->endpoint_close = lore_endpoint_close(c->rt, c->open_endpoint);
  c->shutdown = lore_shutdown(c->rt, NULL, NULL);
}

/* Only the host loop's thread may call: others get LORE_ETHREAD, and
 * nothing they asked for happens. */
static void other_thread_is_refused(void **state) {
  (void)state;
  host h;
  host_init(&h);
  lore_config cfg;
  host_config(&h, &cfg);
  host_open(&h, &cfg);
  foreign_calls c;
  memset(&c, 0, sizeof c);
  c.rt = h.rt;
  c.echo = h.echo;
  lore_ref *ep = NULL;
  assert_int_equal(lore_endpoint(h.rt, ignore_message, NULL, &ep), 0);
  c.open_endpoint = ep;
  uv_thread_t t;
  assert_int_equal(uv_thread_create(&t, from_other_thread, &c), 0);
  assert_int_equal(uv_thread_join(&t), 0);
  assert_int_equal(c.tell, LORE_ETHREAD);
  assert_int_equal(c.ask, LORE_ETHREAD);
  assert_int_equal(c.spawn, LORE_ETHREAD);
  assert_int_equal(c.endpoint, LORE_ETHREAD);
  assert_int_equal(c.endpoint_close, LORE_ETHREAD);
  assert_int_equal(c.shutdown, LORE_ETHREAD);
  assert_int_equal(lore_endpoint_close(h.rt, ep), 0); /* it was still open */
  lore_ref_free(ep);
  run_for(&h.loop, 0.05);
  assert_int_equal(c.never.calls, 0);
  /* still running: the host thread's calls work */
  mp_out o;
  mp_out_init(&o);
  mp_op_n(&o, "echo", 5);
  ask_result r;
  assert_int_equal(ask_and_wait(h.rt, &h.loop, h.echo, &o, 5, 10, &r), 0);
  mp_out_free(&o);
  assert_int_equal(r.status, 0);
  assert_true(shutdown_and_wait(h.rt, &h.loop, 10));
  lore_close(h.rt);
  host_end(&h);
}

static int is_default(int sig) {
  struct sigaction sa;
  return sigaction(sig, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL;
}

/* Lore installs no signal handler unless handle_signals is set. */
static void no_signal_handlers(void **state) {
  (void)state;
  assert_true(is_default(SIGINT));
  assert_true(is_default(SIGTERM));
  host h;
  host_init(&h);
  lore_config cfg;
  host_config(&h, &cfg);
  host_open(&h, &cfg);
  assert_true(is_default(SIGINT));
  assert_true(is_default(SIGTERM));
  assert_true(shutdown_and_wait(h.rt, &h.loop, 10));
  lore_close(h.rt);
  host_end(&h);
}

/* With handle_signals, SIGTERM shuts the runtime down by itself (the host's
 * uv_run returns), and the handlers are gone after lore_close. */
static void handle_signals_shuts_down(void **state) {
  (void)state;
  host h;
  host_init(&h);
  lore_config cfg;
  host_config(&h, &cfg);
  cfg.handle_signals = 1;
  host_open(&h, &cfg);
  assert_false(is_default(SIGINT));
  assert_false(is_default(SIGTERM));
  assert_int_equal(raise(SIGTERM), 0);
  alarm(30);
  uv_run(&h.loop, UV_RUN_DEFAULT);
  alarm(0);
  assert_int_equal(lore_tell(h.rt, h.echo, "\xc0", 1), LORE_ESHUTDOWN);
  assert_int_equal(lore_shutdown_status(h.rt), 0);
  lore_close(h.rt);
  assert_true(is_default(SIGINT));
  assert_true(is_default(SIGTERM));
  host_end(&h);
}

/* Runs a runtime at `level` through things that log at every level, with
 * fd 2 pointing at a file; returns what that file received (bytes). */
static long session_with_stderr_captured(host *h, int level) {
  char path[600];
  snprintf(path, sizeof path, "%s/stderr-%d.txt", dir, level);
  fflush(stderr);
  int saved = dup(2), fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
  assert_true(saved >= 0 && fd >= 0);
  assert_int_equal(dup2(fd, 2), 2);
  close(fd);

  lore_config cfg;
  host_config(h, &cfg);
  cfg.log_level = level;
  int opened = lore_open(&cfg, &h->rt);
  lore_ref *nothing = NULL, *nobody = NULL;
  int missing = opened ? 0 : lore_spawn(h->rt, "no_such_script", NULL, 0, &nothing);
  int spawned = opened ? -1 : lore_spawn(h->rt, "echo", NULL, 0, &h->echo);
  ask_result failed = {0}, dead = {0};
  if (!spawned) {
    mp_out o;
    mp_out_init(&o);
    mp_op(&o, "fail");
    ask_and_wait(h->rt, &h->loop, h->echo, &o, 5, 10, &failed); /* logged: error */
    lore_ref_from_id(h->rt, "nobody", &nobody);
    ask_and_wait(h->rt, &h->loop, nobody, &o, 5, 10, &dead); /* logged: debug */
    lore_ref_free(nobody);
    mp_out_free(&o);
  }
  int down = opened ? 0 : shutdown_and_wait(h->rt, &h->loop, 10);
  if (!opened) lore_close(h->rt);

  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  assert_int_equal(opened, 0);
  assert_true(missing < 0); /* logged: warn */
  assert_int_equal(spawned, 0);
  assert_int_equal(failed.status, LORE_EFAILED);
  assert_int_equal(dead.status, LORE_EDEADLETTER);
  assert_true(down);
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  return (long)st.st_size;
}

/* cfg.log gets the lines, at cfg.log_level and above; stderr gets nothing. */
static void log_goes_to_callback(void **state) {
  (void)state;
  host h;
  host_init(&h);
  assert_int_equal(session_with_stderr_captured(&h, LORE_LOG_DEBUG), 0);
  assert_true(h.log.count[LORE_LOG_DEBUG] > 0);
  assert_true(h.log.count[LORE_LOG_WARN] > 0);
  assert_true(h.log.count[LORE_LOG_ERROR] > 0);
  assert_true(log_capture_has(&h.log, "failing on purpose"));
  host_end(&h);

  host_init(&h);
  assert_int_equal(session_with_stderr_captured(&h, LORE_LOG_ERROR), 0);
  assert_int_equal(h.log.count[LORE_LOG_DEBUG], 0);
  assert_int_equal(h.log.count[LORE_LOG_INFO], 0);
  assert_int_equal(h.log.count[LORE_LOG_WARN], 0);
  assert_true(h.log.count[LORE_LOG_ERROR] > 0);
  host_end(&h);

  host_init(&h);
  assert_int_equal(session_with_stderr_captured(&h, LORE_LOG_OFF), 0);
  for (int l = LORE_LOG_DEBUG; l < LORE_LOG_OFF; l++) assert_int_equal(h.log.count[l], 0);
  host_end(&h);
}

/* A bad configuration: lore_open refuses it, says why in the log, leaves
 * *out alone and nothing on the loop. */
static void bad_config(void **state) {
  (void)state;
  host h;
  host_init(&h);
  lore_config cfg;
  host_config(&h, &cfg);
  cfg.shutdown_timeout = 0;
  lore_runtime *sentinel = (lore_runtime *)&sentinel, *rt = sentinel;
  assert_int_equal(lore_open(&cfg, &rt), LORE_ECONFIG);
  assert_ptr_equal(rt, sentinel);
  assert_true(log_capture_has(&h.log, "shutdown_timeout"));
  host_config(&h, &cfg);
  cfg.io_spin_us = -1;
  assert_int_equal(lore_open(&cfg, &rt), LORE_ECONFIG);
  assert_true(log_capture_has(&h.log, "io_spin_us"));
  cfg.io_spin_us = 100001;
  assert_int_equal(lore_open(&cfg, &rt), LORE_ECONFIG);
  assert_ptr_equal(rt, sentinel);
  host_config(&h, &cfg);
  cfg.journal = "nosuchscheme:x";
  assert_true(lore_open(&cfg, &rt) < 0);
  assert_ptr_equal(rt, sentinel);
  h.rt = NULL;
  host_end(&h);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(shutdown_lets_uv_run_return),
      cmocka_unit_test(close_without_shutdown),
      cmocka_unit_test(forced_shutdown),
      cmocka_unit_test(other_thread_is_refused),
      cmocka_unit_test(no_signal_handlers),
      cmocka_unit_test(handle_signals_shuts_down),
      cmocka_unit_test(log_goes_to_callback),
      cmocka_unit_test(bad_config),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
