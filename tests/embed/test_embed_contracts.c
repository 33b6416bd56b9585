/* test_embed_contracts.c: lore.h contracts the library once broke (one test each). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "embed_support.h"

/*
 * Contracts of lore.h each of which the library once broke: spawn's codes
 * (LORE_ENOBEHAVIOUR, LORE_ELIVE), lore_preload's thread check, and an ask
 * to a closed endpoint answered as a dead letter at once.
 */

static const char echo_lua[] =
    "local M = {}\n"
    "function M.receive(state, msg, ctx) ctx:reply(msg) end\n"
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
} fixture;

static int setup(void **state) {
  static fixture f;
  memset(&f, 0, sizeof f);
  static const char *const scripts[] = {"echo.lua", echo_lua, "ledger.lua", ledger_lua, NULL};
  lore_config cfg;
  if (host_prepare(f.dir, sizeof f.dir, "known-bugs", scripts, &f.loop, &cfg)) return -1;
  cfg.log_level = LORE_LOG_OFF;
  if (lore_open(&cfg, &f.rt)) return -1;
  *state = &f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  return host_finish(f->rt, &f->loop, f->dir);
}

static int luaopen_empty(lua_State *L) {
  (void)L;
  return 0;
}

typedef struct preload_call {
  lore_runtime *rt;
  int rc;
} preload_call;

static void preload_from_other_thread(void *arg) {
  preload_call *c = arg;
  c->rc = lore_preload(c->rt, "empty", luaopen_empty);
}

/* lore.h: every function is called from the host loop's thread, and
 * LORE_ETHREAD is what a call from another thread gets. lore_preload does
 * not check (bindings/runtime_object.c, lore_preload): it returns 0 and
 * changes rt->preloads, which workers read. Runs first: before any spawn. */
static void preload_checks_the_thread(void **state) {
  fixture *f = *state;
  preload_call c = {f->rt, 1};
  uv_thread_t t;
  assert_int_equal(uv_thread_create(&t, preload_from_other_thread, &c), 0);
  uv_thread_join(&t);
  assert_int_equal(c.rc, LORE_ETHREAD);
}

/* lore.h: lore_spawn returns LORE_ENOBEHAVIOUR for a behaviour that is not
 * on cfg.scripts. It returns LORE_ESCRIPT: lua/lore/runtime.lua R.spawn
 * returns (nil, message) without the reason word that bindings/actor_lua.c
 * spawn_code() maps ("nobehaviour", "live", "shutdown"), so every failed
 * spawn is LORE_ESCRIPT. */
static void missing_behaviour_is_enobehaviour(void **state) {
  fixture *f = *state;
  lore_ref *ref = NULL;
  assert_int_equal(lore_spawn(f->rt, "no_such_behaviour", NULL, 0, &ref), LORE_ENOBEHAVIOUR);
}

/* lore.h: LORE_ELIVE when an actor with that persistence id is already
 * live. The second spawn returns LORE_ESCRIPT (same cause as above). */
static void live_id_is_elive(void **state) {
  fixture *f = *state;
  static const char opts[] =
      "\x81\xa2"
      "id\xa8"
      "ledger-7"; /* {id = "ledger-7"} */
  lore_ref *first = NULL, *second = NULL;
  assert_int_equal(lore_spawn(f->rt, "ledger", opts, sizeof opts - 1, &first), 0);
  int rc = lore_spawn(f->rt, "ledger", opts, sizeof opts - 1, &second);
  lore_ref_free(first);
  lore_ref_free(second);
  assert_int_equal(rc, LORE_ELIVE);
}

static void ignore_message(void *ud, const void *msg, size_t len) {
  (void)ud;
  (void)msg;
  (void)len;
}

/* lore.h: lore_endpoint_close makes messages to the endpoint dead letters,
 * and an ask to a ref where no actor runs ends with LORE_EDEADLETTER. An ask
 * to a closed endpoint waits for its full timeout instead (LORE_ETIMEDOUT):
 * bindings/host.c host_dead_letter() drops the message without answering
 * the asker, where a worker (worker_dead_letter) replies REPLY_DEAD. */
static void ask_to_closed_endpoint_is_dead_letter(void **state) {
  fixture *f = *state;
  lore_ref *ep = NULL;
  assert_int_equal(lore_endpoint(f->rt, ignore_message, NULL, &ep), 0);
  assert_int_equal(lore_endpoint_close(f->rt, ep), 0);
  mp_out o;
  mp_out_init(&o);
  mp_op(&o, "anyone");
  ask_result r;
  assert_int_equal(ask_and_wait(f->rt, &f->loop, ep, &o, 1.0, 5, &r), 0);
  mp_out_free(&o);
  lore_ref_free(ep);
  assert_int_equal(r.calls, 1);
  assert_int_equal(r.status, LORE_EDEADLETTER);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(preload_checks_the_thread),
      cmocka_unit_test(missing_behaviour_is_enobehaviour),
      cmocka_unit_test(live_id_is_elive),
      cmocka_unit_test(ask_to_closed_endpoint_is_dead_letter),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
