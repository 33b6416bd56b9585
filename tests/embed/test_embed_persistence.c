/* test_embed_persistence.c: a sqlite journal through lore.h; recovery; two runtimes on one loop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "embed_support.h"

static const char counter_lua[] =
    "local M = {}\n"
    "function M.init() return { total = 0, count = 0 } end\n"
    "function M.receive(state, msg, ctx)\n"
    "  if msg.op == 'add' then\n"
    "    ctx:persist({ type = 'added', n = msg.n }, function(st)\n"
    "      ctx:reply { total = st.total, count = st.count, seq = ctx.seq }\n"
    "    end)\n"
    "  elseif msg.op == 'get' then\n"
    "    ctx:reply { total = state.total, count = state.count, seq = ctx.seq }\n"
    "  end\n"
    "end\n"
    "function M.apply(state, evt)\n"
    "  if evt.type == 'added' then\n"
    "    state.total = state.total + evt.n\n"
    "    state.count = state.count + 1\n"
    "  end\n"
    "  return state\n"
    "end\n"
    "return M\n";

static char dir[512];

static int setup(void **state) {
  (void)state;
  if (tmpdir_make(dir, sizeof dir, "persistence")) return -1;
  return file_write(dir, "counter.lua", counter_lua);
}

static int teardown(void **state) {
  (void)state;
  tmpdir_remove(dir);
  return 0;
}

/* A runtime whose journal is the sqlite file dir/NAME. */
static lore_runtime *open_on(uv_loop_t *loop, const char *db, log_capture *log) {
  char journal[700];
  snprintf(journal, sizeof journal, "sqlite:%s/%s", dir, db);
  lore_config cfg;
  lore_config_init(&cfg);
  cfg.loop = loop;
  cfg.scripts = dir;
  cfg.journal = journal;
  cfg.workers = 2;
  cfg.log = log_capture_line;
  cfg.log_ud = log;
  lore_runtime *rt = NULL;
  assert_int_equal(lore_open(&cfg, &rt), 0);
  return rt;
}

static lore_ref *spawn_counter(lore_runtime *rt, const char *id) {
  mp_out o;
  mp_out_init(&o);
  mp_map(&o, 1);
  mp_str(&o, "id");
  mp_str(&o, id);
  lore_ref *ref = NULL;
  assert_int_equal(lore_spawn(rt, "counter", o.sb.data, o.sb.size, &ref), 0);
  mp_out_free(&o);
  return ref;
}

/* The counter's state, read with an ask. */
typedef struct counter_state {
  int64_t total, count, seq;
} counter_state;

static int read_field(const msgpack_object *map, const char *key, int64_t *out) {
  const msgpack_object *v = mp_get(map, key);
  if (!v || v->type != MSGPACK_OBJECT_POSITIVE_INTEGER) return 0;
  *out = (int64_t)v->via.u64;
  return 1;
}

static int parse_state(const void *bytes, size_t len, counter_state *st) {
  mp_in in;
  mp_in_parse(&in, bytes, len);
  int ok = in.ok && read_field(&in.u.data, "total", &st->total) &&
           read_field(&in.u.data, "count", &st->count) && read_field(&in.u.data, "seq", &st->seq);
  mp_in_free(&in);
  return ok;
}

static counter_state get_state(lore_runtime *rt, uv_loop_t *loop, const lore_ref *counter) {
  mp_out o;
  mp_out_init(&o);
  mp_op(&o, "get");
  ask_result r;
  assert_int_equal(ask_and_wait(rt, loop, counter, &o, 10, 20, &r), 0);
  mp_out_free(&o);
  assert_int_equal(r.calls, 1);
  assert_int_equal(r.status, 0);
  counter_state st = {-1, -1, -1};
  assert_true(parse_state(r.bytes, r.len, &st));
  return st;
}

/* One ask that persists an event; what its reply says. */
typedef struct add_ask {
  int calls, status, parsed;
  counter_state after;
  int *answered;
} add_ask;

static void add_answered(void *ud, int status, const void *reply, size_t len) {
  add_ask *a = ud;
  a->calls++;
  a->status = status;
  a->parsed = status == 0 && parse_state(reply, len, &a->after);
  (*a->answered)++;
}

/* `n` asks {op = "add", n = by} in flight at once; waits for all. */
static void add_many(lore_runtime *rt, const lore_ref *counter, int n, int by, add_ask *asks,
                     int *answered) {
  for (int i = 0; i < n; i++) {
    asks[i] = (add_ask){.answered = answered};
    mp_out o;
    mp_out_init(&o);
    mp_op_n(&o, "add", by);
    assert_int_equal(lore_ask(rt, counter, o.sb.data, o.sb.size, 30, add_answered, &asks[i]), 0);
    mp_out_free(&o);
  }
}

/* Events persisted through asks are recovered by a second runtime in the
 * same process, after the first shut down. */
static void recovered_by_second_runtime(void **state) {
  (void)state;
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  log_capture log;
  log_capture_init(&log);

  lore_runtime *rt = open_on(&loop, "one.db", &log);
  lore_ref *counter = spawn_counter(rt, "counter-1");
  static add_ask asks[100];
  int answered = 0;
  add_many(rt, counter, 100, 3, asks, &answered);
  assert_true(run_until_count(&loop, &answered, 100, 30));
  for (int i = 0; i < 100; i++) {
    /* the commands waited for each persist: they ran in order */
    assert_int_equal(asks[i].calls, 1);
    assert_int_equal(asks[i].status, 0);
    assert_true(asks[i].parsed);
    assert_int_equal(asks[i].after.seq, i + 1);
    assert_int_equal(asks[i].after.total, 3 * (i + 1));
  }
  counter_state st = get_state(rt, &loop, counter);
  assert_int_equal(st.total, 300);
  assert_int_equal(st.seq, 100);
  lore_ref_free(counter);
  assert_true(shutdown_and_wait(rt, &loop, 10));
  assert_int_equal(lore_shutdown_status(rt), 0);
  lore_close(rt);

  rt = open_on(&loop, "one.db", &log);
  counter = spawn_counter(rt, "counter-1");
  st = get_state(rt, &loop, counter);
  assert_int_equal(st.total, 300);
  assert_int_equal(st.count, 100);
  assert_int_equal(st.seq, 100);
  answered = 0;
  add_many(rt, counter, 1, 5, asks, &answered);
  assert_true(run_until_count(&loop, &answered, 1, 10));
  assert_int_equal(asks[0].after.seq, 101);
  assert_int_equal(asks[0].after.total, 305);
  lore_ref *other = spawn_counter(rt, "counter-2"); /* nothing journaled for it */
  st = get_state(rt, &loop, other);
  assert_int_equal(st.total, 0);
  assert_int_equal(st.seq, 0);
  lore_ref_free(other);
  lore_ref_free(counter);
  assert_true(shutdown_and_wait(rt, &loop, 10));
  lore_close(rt);
  assert_int_equal(uv_loop_close(&loop), 0);
  assert_int_equal(log.count[LORE_LOG_ERROR], 0);
  log_capture_free(&log);
}

static void count_call(void *ud) { (*(int *)ud)++; }

/* Two runtimes on one host loop at once: separate journals, the same
 * persistence id live in both, each its own state; one shuts down while the
 * other keeps working; then the loop is free. */
static void two_runtimes_one_loop(void **state) {
  (void)state;
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  log_capture log_a, log_b;
  log_capture_init(&log_a);
  log_capture_init(&log_b);
  lore_runtime *a = open_on(&loop, "a.db", &log_a), *b = open_on(&loop, "b.db", &log_b);
  lore_ref *ca = spawn_counter(a, "shared"), *cb = spawn_counter(b, "shared");

  static add_ask asks_a[30], asks_b[20];
  int answered = 0;
  add_many(a, ca, 30, 1, asks_a, &answered);
  add_many(b, cb, 20, 10, asks_b, &answered);
  assert_true(run_until_count(&loop, &answered, 50, 30));
  for (int i = 0; i < 30; i++) assert_int_equal(asks_a[i].after.total, i + 1);
  for (int i = 0; i < 20; i++) assert_int_equal(asks_b[i].after.total, 10 * (i + 1));

  int a_done = 0, b_done = 0;
  assert_int_equal(lore_shutdown(a, count_call, &a_done), 0);
  assert_true(run_until(&loop, &a_done, 10));
  assert_int_equal(lore_tell(a, ca, "\xc0", 1), LORE_ESHUTDOWN);
  counter_state st = get_state(b, &loop, cb); /* b did not notice */
  assert_int_equal(st.total, 200);
  assert_int_equal(st.seq, 20);
  assert_int_equal(b_done, 0);
  assert_int_equal(lore_shutdown(b, count_call, &b_done), 0);
  alarm(30);
  uv_run(&loop, UV_RUN_DEFAULT); /* returns: neither holds the loop now */
  alarm(0);
  assert_int_equal(a_done, 1);
  assert_int_equal(b_done, 1);
  lore_ref_free(ca);
  lore_ref_free(cb);
  lore_close(a);
  lore_close(b);

  /* each journal has its own runtime's events only */
  a = open_on(&loop, "a.db", &log_a);
  b = open_on(&loop, "b.db", &log_b);
  ca = spawn_counter(a, "shared");
  cb = spawn_counter(b, "shared");
  st = get_state(a, &loop, ca);
  assert_int_equal(st.total, 30);
  assert_int_equal(st.seq, 30);
  st = get_state(b, &loop, cb);
  assert_int_equal(st.total, 200);
  assert_int_equal(st.seq, 20);
  lore_ref_free(ca);
  lore_ref_free(cb);
  lore_close(b); /* without lore_shutdown: lore_close shuts down itself */
  lore_close(a);
  assert_int_equal(uv_loop_close(&loop), 0);
  assert_int_equal(log_a.count[LORE_LOG_ERROR] + log_b.count[LORE_LOG_ERROR], 0);
  log_capture_free(&log_a);
  log_capture_free(&log_b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(recovered_by_second_runtime),
      cmocka_unit_test(two_runtimes_one_loop),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
