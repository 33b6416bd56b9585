/* test_embed_preload.c: a native module of the host, required by behaviour scripts on every worker.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <lauxlib.h>

#include "embed_support.h"

#define WORKERS 2
#define ACTORS 8

/* The threads `calc` was opened on, in order: a worker's number is its index here. */
static uv_mutex_t opens_lock;
static uv_thread_t opened_on[16];
static int opens;

static int calc_mul(lua_State *L) {
  lua_pushinteger(L, luaL_checkinteger(L, 1) * luaL_checkinteger(L, 2));
  return 1;
}

/* Which of the threads that opened the module runs this call (0-based), or -1. */
static int calc_worker(lua_State *L) {
  uv_thread_t self = uv_thread_self();
  int found = -1;
  uv_mutex_lock(&opens_lock);
  for (int i = 0; i < opens; i++)
    if (uv_thread_equal(&self, &opened_on[i])) found = i;
  uv_mutex_unlock(&opens_lock);
  lua_pushinteger(L, found);
  return 1;
}

static int luaopen_calc(lua_State *L) {
  uv_mutex_lock(&opens_lock);
  if (opens < 16) opened_on[opens] = uv_thread_self();
  opens++;
  uv_mutex_unlock(&opens_lock);
  static const luaL_Reg fns[] = {{"mul", calc_mul}, {"worker", calc_worker}, {NULL, NULL}};
  luaL_newlib(L, fns);
  return 1;
}

static int luaopen_other(lua_State *L) {
  lua_newtable(L);
  return 1;
}

static const char multiplier_lua[] =
    "local calc = require 'calc'\n"
    "local M = {}\n"
    "function M.receive(state, msg, ctx)\n"
    "  ctx:reply { product = calc.mul(msg.a, msg.b), worker = calc.worker() }\n"
    "end\n"
    "return M\n";

/* A second behaviour on the same workers: the module is not opened again. */
static const char squarer_lua[] =
    "local calc = require 'calc'\n"
    "local M = {}\n"
    "function M.receive(state, msg, ctx) ctx:reply(calc.mul(msg.a, msg.a)) end\n"
    "return M\n";

static const char needs_missing_lua[] =
    "local nope = require 'not_preloaded'\n"
    "return { receive = function() end }\n";

typedef struct fixture {
  char dir[512];
  uv_loop_t loop;
  lore_runtime *rt;
} fixture;

static int setup(void **state) {
  static fixture f;
  memset(&f, 0, sizeof f);
  uv_mutex_init(&opens_lock);
  static const char *const scripts[] = {
      "multiplier.lua",    multiplier_lua,    "squarer.lua", squarer_lua,
      "needs_missing.lua", needs_missing_lua, NULL};
  lore_config cfg;
  if (host_prepare(f.dir, sizeof f.dir, "preload", scripts, &f.loop, &cfg)) return -1;
  cfg.workers = WORKERS;
  cfg.log_level = LORE_LOG_OFF;
  if (lore_open(&cfg, &f.rt)) return -1;
  *state = &f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  int rc = host_finish(f->rt, &f->loop, f->dir);
  uv_mutex_destroy(&opens_lock);
  return rc;
}

static void preload_before_spawn(void **state) {
  fixture *f = *state;
  assert_int_equal(lore_preload(f->rt, "calc", luaopen_calc), 0);
  assert_int_equal(lore_preload(f->rt, "calc", luaopen_other), UV_EEXIST);
  assert_int_equal(lore_preload(f->rt, "other", NULL), UV_EINVAL);
  assert_int_equal(lore_preload(f->rt, "", luaopen_other), UV_EINVAL);
  assert_int_equal(opens, 0); /* opened by workers, when a script requires it */
}

typedef struct product {
  int calls, status, value, worker;
  int *answered;
} product;

static void product_answered(void *ud, int status, const void *reply, size_t len) {
  product *p = ud;
  p->calls++;
  p->status = status;
  mp_in in;
  mp_in_parse(&in, reply, len);
  const msgpack_object *v = mp_get(&in.u.data, "product"), *w = mp_get(&in.u.data, "worker");
  p->value = v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? (int)v->via.u64 : -1;
  p->worker = w && w->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? (int)w->via.u64 : -1;
  mp_in_free(&in);
  (*p->answered)++;
}

static void ask_ab(fixture *f, const lore_ref *to, int a, int b, lore_reply_cb cb, void *ud) {
  mp_out o;
  mp_out_init(&o);
  mp_map(&o, 2);
  mp_str(&o, "a");
  mp_int(&o, a);
  mp_str(&o, "b");
  mp_int(&o, b);
  assert_int_equal(lore_ask(f->rt, to, o.sb.data, o.sb.size, 10, cb, ud), 0);
  mp_out_free(&o);
}

/* Actors spread over every worker all use the module; each worker opened it once. */
static void every_worker_requires_it(void **state) {
  fixture *f = *state;
  lore_ref *refs[ACTORS];
  for (int i = 0; i < ACTORS; i++)
    assert_int_equal(lore_spawn(f->rt, "multiplier", NULL, 0, &refs[i]), 0);
  product answers[ACTORS];
  int answered = 0;
  for (int i = 0; i < ACTORS; i++) {
    answers[i] = (product){.answered = &answered};
    ask_ab(f, refs[i], i + 2, 7, product_answered, &answers[i]);
  }
  assert_true(run_until_count(&f->loop, &answered, ACTORS, 10));
  int seen[WORKERS] = {0};
  for (int i = 0; i < ACTORS; i++) {
    assert_int_equal(answers[i].calls, 1);
    assert_int_equal(answers[i].status, 0);
    assert_int_equal(answers[i].value, (i + 2) * 7);
    assert_in_range(answers[i].worker, 0, WORKERS - 1);
    seen[answers[i].worker]++;
  }
  for (int w = 0; w < WORKERS; w++) assert_true(seen[w] > 0);
  assert_int_equal(opens, WORKERS);
  uv_thread_t self = uv_thread_self();
  assert_false(uv_thread_equal(&opened_on[0], &opened_on[1]));
  for (int w = 0; w < WORKERS; w++) assert_false(uv_thread_equal(&self, &opened_on[w]));

  /* another behaviour on the same workers gets the same module, not a new one */
  for (int i = 0; i < ACTORS; i++) {
    lore_ref *sq = NULL;
    assert_int_equal(lore_spawn(f->rt, "squarer", NULL, 0, &sq), 0);
    ask_result r;
    mp_out o;
    mp_out_init(&o);
    mp_map(&o, 1);
    mp_str(&o, "a");
    mp_int(&o, i);
    assert_int_equal(ask_and_wait(f->rt, &f->loop, sq, &o, 5, 10, &r), 0);
    mp_out_free(&o);
    int64_t v = -1;
    assert_int_equal(r.status, 0);
    assert_true(mp_read_int(r.bytes, r.len, &v));
    assert_int_equal(v, i * i);
    lore_ref_free(sq);
  }
  assert_int_equal(opens, WORKERS);
  for (int i = 0; i < ACTORS; i++) lore_ref_free(refs[i]);
}

/* After the first spawn the set of modules is fixed; a module nobody
 * preloaded is a load error of the script that requires it. */
static void fixed_after_spawn(void **state) {
  fixture *f = *state;
  assert_int_equal(lore_preload(f->rt, "other", luaopen_other), UV_EBUSY);
  lore_ref *ref = NULL;
  assert_int_equal(lore_spawn(f->rt, "needs_missing", NULL, 0, &ref), LORE_ESCRIPT);
  assert_null(ref);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(preload_before_spawn),
      cmocka_unit_test(every_worker_requires_it),
      cmocka_unit_test(fixed_after_spawn),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
