/* minimal_host.c: the smallest complete host: Lore on the program's own libuv loop.
 *
 *   cc -o minimal_host minimal_host.c $(pkg-config --cflags --libs lore)
 *   ./minimal_host docs/examples/behaviours
 *
 * It opens a runtime on its loop, spawns the `counter` behaviour, tells it to
 * add 5, asks for the count, prints the answer, shuts Lore down from the
 * reply's callback and returns once uv_run does. Messages are MessagePack;
 * the few bytes needed here are written by hand (a real host would use
 * msgpack-c, see docs/examples/endpoint_host.c).
 */
#include <lore.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

typedef struct app {
  lore_runtime *rt;
  long long count;
  int answered;
} app;

/* Lore's log lines, from any of its threads: one fprintf per line. */
static void log_line(void *ud, int level, const char *line) {
  (void)ud;
  static const char *const names[] = {"debug", "info", "warn", "error"};
  fprintf(stderr, "lore %s: %s\n", level >= 0 && level < 4 ? names[level] : "?", line);
}

/* --- just enough MessagePack: small maps of short strings and integers --- */

typedef struct mp {
  unsigned char b[64];
  size_t n;
} mp;

static void mp_map(mp *m, unsigned pairs) { m->b[m->n++] = (unsigned char)(0x80 | pairs); }

static void mp_str(mp *m, const char *s) {
  size_t len = strlen(s); /* fixstr: up to 31 bytes */
  m->b[m->n++] = (unsigned char)(0xa0 | len);
  memcpy(m->b + m->n, s, len);
  m->n += len;
}

static void mp_small_int(mp *m, int v) { m->b[m->n++] = (unsigned char)v; } /* 0..127 */

/* An integer reply (any MessagePack integer form); 0 on success. */
static int mp_read_int(const unsigned char *p, size_t len, long long *out) {
  if (len == 1 && (p[0] <= 0x7f || p[0] >= 0xe0)) {
    *out = (int8_t)p[0];
    return 0;
  }
  int width = p[0] == 0xcc || p[0] == 0xd0   ? 1
              : p[0] == 0xcd || p[0] == 0xd1 ? 2
              : p[0] == 0xce || p[0] == 0xd2 ? 4
              : p[0] == 0xcf || p[0] == 0xd3 ? 8
                                             : 0;
  if (!width || len != (size_t)width + 1) return -1;
  uint64_t v = 0;
  for (int i = 1; i <= width; i++) v = v << 8 | p[i];
  if (p[0] >= 0xd0 && width < 8 && (v >> (8 * width - 1))) v |= ~(uint64_t)0 << (8 * width);
  *out = (long long)v;
  return 0;
}

/* --- the host --- */

static void lore_is_down(void *ud) {
  (void)ud;
  printf("Lore is down: the loop has nothing of it left\n");
}

/* Runs on the loop's thread, exactly once: the answer, or why there is none. */
static void got_count(void *ud, int status, const void *reply, size_t len) {
  app *a = ud;
  a->answered = 1;
  if (status != 0)
    fprintf(stderr, "ask failed: %s\n", lore_strerror(status));
  else if (mp_read_int(reply, len, &a->count) != 0)
    fprintf(stderr, "the reply is not an integer\n");
  else
    printf("count: %lld\n", a->count);
  lore_shutdown(a->rt, lore_is_down, a); /* uv_run returns once it is done */
}

int main(int argc, char **argv) {
  const char *scripts = argc > 1 ? argv[1] : "behaviours";
  uv_loop_t loop;
  if (uv_loop_init(&loop) != 0) return 1;

  lore_config cfg;
  lore_config_init(&cfg); /* every field to its default first */
  cfg.loop = &loop;       /* replies arrive as callbacks on this loop */
  cfg.scripts = scripts;
  cfg.workers = 2;
  cfg.log = log_line;

  app a = {0};
  int rc = lore_open(&cfg, &a.rt);
  if (rc != 0) {
    fprintf(stderr, "lore_open: %s\n", lore_strerror(rc));
    uv_loop_close(&loop);
    return 1;
  }

  mp opts = {0}; /* {start = 10} */
  mp_map(&opts, 1);
  mp_str(&opts, "start");
  mp_small_int(&opts, 10);
  lore_ref *counter = NULL;
  rc = lore_spawn(a.rt, "counter", opts.b, opts.n, &counter);

  mp add = {0}; /* {type = "add", by = 5} */
  mp_map(&add, 2);
  mp_str(&add, "type");
  mp_str(&add, "add");
  mp_str(&add, "by");
  mp_small_int(&add, 5);
  if (rc == 0) rc = lore_tell(a.rt, counter, add.b, add.n);

  mp get = {0}; /* {type = "get"} */
  mp_map(&get, 1);
  mp_str(&get, "type");
  mp_str(&get, "get");
  if (rc == 0) rc = lore_ask(a.rt, counter, get.b, get.n, 2.0, got_count, &a);

  if (rc != 0) { /* got_count will not run: shut down here */
    fprintf(stderr, "lore: %s\n", lore_strerror(rc));
    lore_shutdown(a.rt, NULL, NULL);
  }
  uv_run(&loop, UV_RUN_DEFAULT); /* the host's own loop; Lore's callbacks run in it */

  int status = lore_shutdown_status(a.rt); /* 0: every actor stopped cleanly */
  lore_close(a.rt);
  lore_ref_free(counter); /* NULL is fine */
  if (uv_loop_close(&loop) != 0) fprintf(stderr, "the loop still had handles\n");
  return rc == 0 && a.answered && a.count == 15 && status == 0 ? 0 : 1;
}
