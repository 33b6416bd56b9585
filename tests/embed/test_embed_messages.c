/* test_embed_messages.c: a host on its own loop spawns, tells and asks, and gets every error code.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "embed_support.h"

static const char echo_lua[] =
    "local M = {}\n"
    "function M.init(opts) return { sum = 0 } end\n"
    "function M.receive(state, msg, ctx)\n"
    "  if msg.op == 'echo' then ctx:reply(msg.n)\n"
    "  elseif msg.op == 'add' then state.sum = state.sum + msg.n\n"
    "  elseif msg.op == 'sum' then ctx:reply(state.sum)\n"
    "  elseif msg.op == 'fail' then error('boom ' .. msg.n)\n"
    "  elseif msg.op == 'ignore' then -- never answers\n"
    "  end\n"
    "end\n"
    "return M\n";

/* a syntax error on line 3, which the log names with file and line */
static const char broken_lua[] =
    "local M = {}\n"
    "function M.receive(state, msg, ctx)\n"
    "  local x = = 1\n"
    "end\n"
    "return M\n";

static const char ledger_lua[] =
    "local M = {}\n"
    "function M.receive(state, msg, ctx) ctx:reply(ctx.id) end\n"
    "function M.apply(state, evt) return state end\n"
    "return M\n";

typedef struct fixture {
  char dir[512];
  uv_loop_t loop;
  lore_runtime *rt;
  log_capture log;
} fixture;

static int setup(void **state) {
  static fixture f;
  memset(&f, 0, sizeof f);
  static const char *const scripts[] = {"echo.lua",   echo_lua,   "broken.lua", broken_lua,
                                        "ledger.lua", ledger_lua, NULL};
  lore_config cfg;
  if (host_prepare(f.dir, sizeof f.dir, "messages", scripts, &f.loop, &cfg)) return -1;
  log_capture_init(&f.log);
  cfg.log = log_capture_line;
  cfg.log_ud = &f.log;
  cfg.log_level = LORE_LOG_DEBUG;
  if (lore_open(&cfg, &f.rt)) return -1;
  *state = &f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  int rc = host_finish(f->rt, &f->loop, f->dir);
  log_capture_free(&f->log);
  return rc;
}

static lore_ref *spawn_echo(fixture *f) {
  lore_ref *ref = NULL;
  assert_int_equal(lore_spawn(f->rt, "echo", NULL, 0, &ref), 0);
  assert_non_null(ref);
  return ref;
}

/* Tells are delivered in order, before an ask sent after them. */
static void tells_then_ask(void **state) {
  fixture *f = *state;
  lore_ref *echo = spawn_echo(f);
  for (int i = 1; i <= 100; i++) {
    mp_out o;
    mp_out_init(&o);
    mp_op_n(&o, "add", i);
    assert_int_equal(lore_tell(f->rt, echo, o.sb.data, o.sb.size), 0);
    mp_out_free(&o);
  }
  mp_out o;
  mp_out_init(&o);
  mp_op(&o, "sum");
  ask_result r;
  assert_int_equal(ask_and_wait(f->rt, &f->loop, echo, &o, 5, 10, &r), 0);
  mp_out_free(&o);
  assert_int_equal(r.calls, 1);
  assert_int_equal(r.status, 0);
  int64_t sum = 0;
  assert_true(mp_read_int(r.bytes, r.len, &sum));
  assert_int_equal(sum, 5050);
  lore_ref_free(echo);
}

#define ASKS 1000
#define ACTORS 4

typedef struct slot {
  int index, calls, status, right;
  int *total;
} slot;

static void slot_answered(void *ud, int status, const void *reply, size_t len) {
  slot *s = ud;
  s->calls++;
  s->status = status;
  int64_t v = -1;
  s->right = status == 0 && mp_read_int(reply, len, &v) && v == s->index;
  (*s->total)++;
}

/* 1000 asks in flight over several actors on both workers: each callback
 * runs once, with its own reply. */
static void thousand_asks(void **state) {
  fixture *f = *state;
  lore_ref *actors[ACTORS];
  for (int i = 0; i < ACTORS; i++) actors[i] = spawn_echo(f);
  static slot slots[ASKS];
  int total = 0;
  for (int i = 0; i < ASKS; i++) {
    slots[i] = (slot){.index = i, .total = &total};
    mp_out o;
    mp_out_init(&o);
    mp_op_n(&o, "echo", i);
    assert_int_equal(
        lore_ask(f->rt, actors[i % ACTORS], o.sb.data, o.sb.size, 30, slot_answered, &slots[i]), 0);
    mp_out_free(&o);
  }
  assert_int_equal(total, 0); /* nothing is answered inside lore_ask */
  assert_true(run_until_count(&f->loop, &total, ASKS, 30));
  run_for(&f->loop, 0.1); /* a second call of any callback would show now */
  assert_int_equal(total, ASKS);
  for (int i = 0; i < ASKS; i++) {
    assert_int_equal(slots[i].calls, 1);
    assert_int_equal(slots[i].status, 0);
    assert_true(slots[i].right);
  }
  for (int i = 0; i < ACTORS; i++) lore_ref_free(actors[i]);
}

/* An actor that never answers: LORE_ETIMEDOUT after the timeout, once. */
static void ask_times_out(void **state) {
  fixture *f = *state;
  lore_ref *echo = spawn_echo(f);
  mp_out o;
  mp_out_init(&o);
  mp_op(&o, "ignore");
  double start = now_s();
  ask_result r;
  assert_int_equal(ask_and_wait(f->rt, &f->loop, echo, &o, 0.2, 10, &r), 0);
  mp_out_free(&o);
  assert_int_equal(r.calls, 1);
  assert_int_equal(r.status, LORE_ETIMEDOUT);
  assert_true(r.at - start >= 0.19);
  assert_true(r.at - start < 3.0);
  run_for(&f->loop, 0.1);
  assert_int_equal(r.calls, 1);
  lore_ref_free(echo);
}

/* An actor that raises: LORE_EFAILED with its message; it restarts and answers again. */
static void actor_raises(void **state) {
  fixture *f = *state;
  lore_ref *echo = spawn_echo(f);
  mp_out o;
  mp_out_init(&o);
  mp_op_n(&o, "fail", 42);
  ask_result r;
  assert_int_equal(ask_and_wait(f->rt, &f->loop, echo, &o, 5, 10, &r), 0);
  mp_out_free(&o);
  assert_int_equal(r.calls, 1);
  assert_int_equal(r.status, LORE_EFAILED);
  assert_non_null(strstr(ask_text(&r), "boom 42"));
  assert_non_null(strstr(ask_text(&r), "echo.lua:7")); /* where it raised */
  mp_out_init(&o);
  mp_op_n(&o, "echo", 7);
  assert_int_equal(ask_and_wait(f->rt, &f->loop, echo, &o, 5, 10, &r), 0);
  mp_out_free(&o);
  int64_t v = 0;
  assert_int_equal(r.status, 0);
  assert_true(mp_read_int(r.bytes, r.len, &v));
  assert_int_equal(v, 7);
  lore_ref_free(echo);
}

/* No actor at the ref: LORE_EDEADLETTER for an ask; a tell is accepted (and counted). */
static void dead_letter(void **state) {
  fixture *f = *state;
  lore_ref *nobody = NULL;
  assert_int_equal(lore_ref_from_id(f->rt, "nobody-is-here", &nobody), 0);
  mp_out o;
  mp_out_init(&o);
  mp_op(&o, "sum");
  assert_int_equal(lore_tell(f->rt, nobody, o.sb.data, o.sb.size), 0);
  ask_result r;
  assert_int_equal(ask_and_wait(f->rt, &f->loop, nobody, &o, 5, 10, &r), 0);
  mp_out_free(&o);
  assert_int_equal(r.calls, 1);
  assert_int_equal(r.status, LORE_EDEADLETTER);
  lore_ref_free(nobody);
}

/* lore_spawn's failures: a code, nothing in *out, the detail in the log.
 * (Which code: test_embed_known_bugs, missing_behaviour_is_enobehaviour.) */
static void missing_behaviour(void **state) {
  fixture *f = *state;
  lore_ref *sentinel = (lore_ref *)&sentinel, *out = sentinel;
  assert_true(lore_spawn(f->rt, "no_such_behaviour", NULL, 0, &out) < 0);
  assert_ptr_equal(out, sentinel);
  assert_true(log_capture_has(&f->log, "'no_such_behaviour' not found"));
}

static void syntax_error(void **state) {
  fixture *f = *state;
  lore_ref *sentinel = (lore_ref *)&sentinel, *out = sentinel;
  assert_int_equal(lore_spawn(f->rt, "broken", NULL, 0, &out), LORE_ESCRIPT);
  assert_ptr_equal(out, sentinel);
  if (!log_capture_has(&f->log, "broken.lua:3:")) print_message("log:\n%s", f->log.text);
  assert_true(log_capture_has(&f->log, "broken.lua:3:")); /* the file and the line */
}

static void pack_id(mp_out *o, const char *id) {
  mp_out_init(o);
  mp_map(o, 1);
  mp_str(o, "id");
  mp_str(o, id);
}

/* Single writer: a persistence id that is live cannot be spawned again.
 * (Which code: test_embed_known_bugs, live_id_is_elive.) */
static void live_id_twice(void **state) {
  fixture *f = *state;
  mp_out opts;
  pack_id(&opts, "ledger-1");
  lore_ref *first = NULL, *second = NULL;
  assert_int_equal(lore_spawn(f->rt, "ledger", opts.sb.data, opts.sb.size, &first), 0);
  assert_true(lore_spawn(f->rt, "ledger", opts.sb.data, opts.sb.size, &second) < 0);
  assert_true(log_capture_has(&f->log, "'ledger-1' is already live"));
  assert_null(second);
  mp_out_free(&opts);
  /* the first one still answers, by its ref and by a ref made from the id */
  lore_ref *by_id = NULL;
  assert_int_equal(lore_ref_from_id(f->rt, "ledger-1", &by_id), 0);
  mp_out o;
  mp_out_init(&o);
  mp_op(&o, "who");
  ask_result r;
  assert_int_equal(ask_and_wait(f->rt, &f->loop, by_id, &o, 5, 10, &r), 0);
  mp_out_free(&o);
  assert_int_equal(r.status, 0);
  mp_in in;
  mp_in_parse(&in, r.bytes, r.len);
  assert_true(in.ok);
  assert_true(mp_is_str(&in.u.data, "ledger-1"));
  mp_in_free(&in);
  lore_ref_free(by_id);
  lore_ref_free(first);
}

/* Bad arguments are UV_EINVAL, and a callback that was refused never runs. */
static void bad_arguments(void **state) {
  fixture *f = *state;
  lore_ref *echo = spawn_echo(f), *out = NULL;
  ask_result r = {0};
  assert_int_equal(lore_spawn(f->rt, NULL, NULL, 0, &out), UV_EINVAL);
  assert_int_equal(lore_spawn(f->rt, "echo", NULL, 3, &out), UV_EINVAL);
  assert_int_equal(lore_spawn(f->rt, "echo", "\x93", 1, &out), UV_EINVAL); /* opts not a map */
  assert_int_equal(lore_tell(f->rt, NULL, NULL, 0), UV_EINVAL);
  assert_int_equal(lore_ask(f->rt, echo, NULL, 0, 1, NULL, &r), UV_EINVAL);
  assert_int_equal(lore_ref_from_id(f->rt, "", &out), UV_EINVAL);
  assert_int_equal(lore_ref_from_id(f->rt, "   ", &out), UV_EINVAL);
  assert_null(out);
  char big[8] = {0};
  size_t need = 0;
  assert_int_equal(lore_ref_pack(echo, big, 2, &need), UV_ENOBUFS);
  assert_true(need > 2);
  assert_int_equal(lore_ref_pack(echo, big, sizeof big, &need),
                   need <= sizeof big ? 0 : UV_ENOBUFS);
  run_for(&f->loop, 0.05);
  assert_int_equal(r.calls, 0);
  assert_string_equal(lore_strerror(LORE_EDEADLETTER), "no actor is running at that ref");
  assert_non_null(lore_strerror(UV_ENOMEM));
  assert_string_equal(lore_version(), LORE_VERSION);
  lore_ref_free(echo);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(tells_then_ask), cmocka_unit_test(thousand_asks),
      cmocka_unit_test(ask_times_out),  cmocka_unit_test(actor_raises),
      cmocka_unit_test(dead_letter),    cmocka_unit_test(missing_behaviour),
      cmocka_unit_test(syntax_error),   cmocka_unit_test(live_id_twice),
      cmocka_unit_test(bad_arguments),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
