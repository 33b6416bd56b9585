/* test_embed_fixes_deep.c: values nested deeper than msgpack-c's own limit (32) but within
 * the codec's (64) travel both ways through lore_tell, lore_ask and lore_spawn's opts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "embed_support.h"

/* Answers any message with itself; {op = "raise", v = V} raises V. */
static const char deep_lua[] =
    "local M = {}\n"
    "function M.init(opts) return { opts = opts } end\n"
    "function M.receive(state, msg, ctx)\n"
    "  if type(msg) == 'table' and msg.op == 'raise' then error(msg.v) end\n"
    "  if type(msg) == 'table' and msg.op == 'opts' then return ctx:reply(state.opts.deep) end\n"
    "  ctx:reply(msg)\n"
    "end\n"
    "return M\n";

typedef struct fixture {
  char dir[512];
  uv_loop_t loop;
  lore_runtime *rt;
} fixture;

static int setup(void **state) {
  static fixture f;
  memset(&f, 0, sizeof f);
  static const char *const scripts[] = {"deep.lua", deep_lua, NULL};
  lore_config cfg;
  if (host_prepare(f.dir, sizeof f.dir, "deep", scripts, &f.loop, &cfg)) return -1;
  if (lore_open(&cfg, &f.rt)) return -1;
  *state = &f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  return host_finish(f->rt, &f->loop, f->dir);
}

/* `depth` arrays, one inside the other, around the integer 7. */
static void pack_nested(mp_out *o, int depth) {
  for (int i = 0; i < depth; i++) msgpack_pack_array(&o->pk, 1);
  mp_int(o, 7);
}

/* A 40-deep message is accepted and comes back byte for byte. */
static void deep_ask_round_trip(void **state) {
  fixture *f = *state;
  lore_ref *ref = NULL;
  assert_int_equal(lore_spawn(f->rt, "deep", NULL, 0, &ref), 0);
  mp_out o;
  mp_out_init(&o);
  pack_nested(&o, 40);
  assert_int_equal(lore_tell(f->rt, ref, o.sb.data, o.sb.size), 0);
  ask_result r;
  assert_int_equal(ask_and_wait(f->rt, &f->loop, ref, &o, 5, 10, &r), 0);
  assert_int_equal(r.calls, 1);
  assert_int_equal(r.status, 0);
  assert_int_equal(r.len, o.sb.size);
  assert_memory_equal(r.bytes, o.sb.data, o.sb.size);
  mp_out_free(&o);
  lore_ref_free(ref);
}

/* Beyond the codec's limit the host refuses the message at the call. */
static void too_deep_refused(void **state) {
  fixture *f = *state;
  lore_ref *ref = NULL;
  assert_int_equal(lore_spawn(f->rt, "deep", NULL, 0, &ref), 0);
  mp_out o;
  mp_out_init(&o);
  pack_nested(&o, 70);
  assert_int_equal(lore_tell(f->rt, ref, o.sb.data, o.sb.size), LORE_EBADMSG);
  mp_out_free(&o);
  lore_ref_free(ref);
}

/* A 40-deep value raised by the actor: a C asker gets its text, not raw bytes. */
static void deep_raise_text(void **state) {
  fixture *f = *state;
  lore_ref *ref = NULL;
  assert_int_equal(lore_spawn(f->rt, "deep", NULL, 0, &ref), 0);
  mp_out o;
  mp_out_init(&o);
  mp_map(&o, 2);
  mp_str(&o, "op");
  mp_str(&o, "raise");
  mp_str(&o, "v");
  pack_nested(&o, 40);
  ask_result r;
  assert_int_equal(ask_and_wait(f->rt, &f->loop, ref, &o, 5, 10, &r), 0);
  mp_out_free(&o);
  assert_int_equal(r.calls, 1);
  assert_int_equal(r.status, LORE_EFAILED);
  /* the text is luaL_tolstring's "table: 0x..." (a plain table has no __tostring) */
  assert_true(r.len > 6);
  assert_memory_equal(r.bytes, "table:", 6);
  lore_ref_free(ref);
}

/* Spawn options may nest as deep as any message, with the id found beside them. */
static void deep_spawn_opts(void **state) {
  fixture *f = *state;
  mp_out opts;
  mp_out_init(&opts);
  mp_map(&opts, 2);
  mp_str(&opts, "deep");
  pack_nested(&opts, 40);
  mp_str(&opts, "id");
  mp_str(&opts, "deep-1");
  lore_ref *ref = NULL;
  assert_int_equal(lore_spawn(f->rt, "deep", opts.sb.data, opts.sb.size, &ref), 0);
  mp_out_free(&opts);
  mp_out o;
  mp_out_init(&o);
  mp_op(&o, "opts");
  ask_result r;
  assert_int_equal(ask_and_wait(f->rt, &f->loop, ref, &o, 5, 10, &r), 0);
  mp_out_free(&o);
  assert_int_equal(r.status, 0);
  mp_out want;
  mp_out_init(&want);
  pack_nested(&want, 40);
  assert_int_equal(r.len, want.sb.size);
  assert_memory_equal(r.bytes, want.sb.data, want.sb.size);
  mp_out_free(&want);
  lore_ref_free(ref);
  /* the id was read from those options: a ref by that id reaches the actor */
  lore_ref *by_id = NULL;
  assert_int_equal(lore_ref_from_id(f->rt, "deep-1", &by_id), 0);
  mp_out_init(&o);
  mp_int(&o, 5);
  assert_int_equal(ask_and_wait(f->rt, &f->loop, by_id, &o, 5, 10, &r), 0);
  mp_out_free(&o);
  assert_int_equal(r.status, 0);
  int64_t v = 0;
  assert_true(mp_read_int(r.bytes, r.len, &v));
  assert_int_equal(v, 5);
  lore_ref_free(by_id);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(deep_ask_round_trip),
      cmocka_unit_test(too_deep_refused),
      cmocka_unit_test(deep_raise_text),
      cmocka_unit_test(deep_spawn_opts),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
