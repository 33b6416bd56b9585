/* test_embed_endpoint.c: host endpoints: refs handed to actors in messages, told back, closed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "embed_support.h"

/* Keeps the refs it is given and tells them things. */
static const char relay_lua[] =
    "local M = {}\n"
    "function M.init() return { subs = {} } end\n"
    "function M.receive(state, msg, ctx)\n"
    "  if msg.op == 'subscribe' then\n"
    "    state.subs[#state.subs + 1] = msg.to\n"
    "    msg.to:tell { hello = 'welcome', n = #state.subs }\n"
    "  elseif msg.op == 'publish' then\n"
    "    for i = 1, msg.n do\n"
    "      for _, to in ipairs(state.subs) do to:tell { seq = i } end\n"
    "    end\n"
    "  elseif msg.op == 'count' then ctx:reply(#state.subs)\n"
    "  elseif msg.op == 'echo' then ctx:reply(msg.to)\n"
    "  end\n"
    "end\n"
    "return M\n";

typedef struct fixture {
  char dir[512];
  uv_loop_t loop;
  lore_runtime *rt;
  lore_ref *relay;
} fixture;

/* What one endpoint received. */
typedef struct inbox {
  int messages, welcomes, last_seq, out_of_order;
} inbox;

static void on_message(void *ud, const void *msg, size_t len) {
  inbox *in = ud;
  in->messages++;
  mp_in m;
  mp_in_parse(&m, msg, len);
  const msgpack_object *seq = mp_get(&m.u.data, "seq");
  if (mp_is_str(mp_get(&m.u.data, "hello"), "welcome")) {
    in->welcomes++;
  } else if (seq && seq->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
    int n = (int)seq->via.u64; /* each publish counts from 1 */
    if (n != in->last_seq + 1 && n != 1) in->out_of_order++;
    in->last_seq = n;
  }
  mp_in_free(&m);
}

static int setup(void **state) {
  static fixture f;
  memset(&f, 0, sizeof f);
  static const char *const scripts[] = {"relay.lua", relay_lua, NULL};
  lore_config cfg;
  if (host_prepare(f.dir, sizeof f.dir, "endpoint", scripts, &f.loop, &cfg)) return -1;
  cfg.log_level = LORE_LOG_ERROR;
  if (lore_open(&cfg, &f.rt)) return -1;
  *state = &f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  return host_finish(f->rt, &f->loop, f->dir);
}

static int per_test(void **state) {
  fixture *f = *state;
  return lore_spawn(f->rt, "relay", NULL, 0, &f->relay);
}

static int per_test_end(void **state) {
  fixture *f = *state;
  lore_ref_free(f->relay);
  f->relay = NULL;
  return 0;
}

static void send_op(fixture *f, const char *op, int64_t n) {
  mp_out o;
  mp_out_init(&o);
  mp_op_n(&o, op, n);
  assert_int_equal(lore_tell(f->rt, f->relay, o.sb.data, o.sb.size), 0);
  mp_out_free(&o);
}

static void subscribe(fixture *f, const lore_ref *endpoint) {
  mp_out o;
  mp_out_init(&o);
  mp_map(&o, 2);
  mp_str(&o, "op");
  mp_str(&o, "subscribe");
  mp_str(&o, "to");
  assert_int_equal(mp_ref(&o, endpoint), 0);
  assert_int_equal(lore_tell(f->rt, f->relay, o.sb.data, o.sb.size), 0);
  mp_out_free(&o);
}

/* The relay has handled everything told to it before (one sender, FIFO),
 * and what it told the host has arrived (it shares the way back). */
static void sync_relay(fixture *f) {
  mp_out o;
  mp_out_init(&o);
  mp_op(&o, "count");
  ask_result r;
  assert_int_equal(ask_and_wait(f->rt, &f->loop, f->relay, &o, 5, 10, &r), 0);
  mp_out_free(&o);
  assert_int_equal(r.calls, 1);
  assert_int_equal(r.status, 0);
}

/* An actor given an endpoint's ref in a message tells it back, in order. */
static void actor_tells_endpoint(void **state) {
  fixture *f = *state;
  inbox in = {0};
  lore_ref *ep = NULL;
  assert_int_equal(lore_endpoint(f->rt, on_message, &in, &ep), 0);
  subscribe(f, ep);
  send_op(f, "publish", 200);
  assert_true(run_until_count(&f->loop, &in.messages, 201, 10));
  assert_int_equal(in.welcomes, 1);
  assert_int_equal(in.last_seq, 200);
  assert_int_equal(in.out_of_order, 0);
  assert_int_equal(lore_endpoint_close(f->rt, ep), 0);
  lore_ref_free(ep);
}

/* After lore_endpoint_close its callback never runs again; the other
 * endpoint still gets everything. */
static void closed_endpoint_gets_nothing(void **state) {
  fixture *f = *state;
  inbox kept = {0}, closed = {0};
  lore_ref *a = NULL, *b = NULL;
  assert_int_equal(lore_endpoint(f->rt, on_message, &kept, &a), 0);
  assert_int_equal(lore_endpoint(f->rt, on_message, &closed, &b), 0);
  subscribe(f, a);
  subscribe(f, b);
  send_op(f, "publish", 10);
  sync_relay(f);
  assert_int_equal(kept.messages, 11);
  assert_int_equal(closed.messages, 11);

  /* queued for b while it closes: dropped, never delivered */
  send_op(f, "publish", 10);
  assert_int_equal(lore_endpoint_close(f->rt, b), 0);
  sync_relay(f);
  send_op(f, "publish", 10);
  sync_relay(f);
  run_for(&f->loop, 0.05);
  assert_int_equal(closed.messages, 11);
  assert_int_equal(kept.messages, 31);
  assert_int_equal(kept.out_of_order, 0);

  /* the host's own tell to a closed endpoint is a dead letter, not a call */
  mp_out o;
  mp_out_init(&o);
  mp_op(&o, "late");
  assert_int_equal(lore_tell(f->rt, b, o.sb.data, o.sb.size), 0);
  mp_out_free(&o);
  run_for(&f->loop, 0.05);
  assert_int_equal(closed.messages, 11);
  assert_int_equal(lore_endpoint_close(f->rt, b), UV_ENOENT);
  assert_int_equal(lore_endpoint_close(f->rt, f->relay), UV_EINVAL); /* not an endpoint */
  assert_int_equal(lore_endpoint_close(f->rt, a), 0);
  lore_ref_free(a);
  lore_ref_free(b);
}

/* A ref survives the trip through an actor: the reply holds the same
 * MessagePack value lore_ref_pack made. */
static void ref_round_trip(void **state) {
  fixture *f = *state;
  inbox in = {0};
  lore_ref *ep = NULL;
  assert_int_equal(lore_endpoint(f->rt, on_message, &in, &ep), 0);
  char packed[64];
  size_t len = 0;
  assert_int_equal(lore_ref_pack(ep, packed, sizeof packed, &len), 0);
  mp_out o;
  mp_out_init(&o);
  mp_map(&o, 2);
  mp_str(&o, "op");
  mp_str(&o, "echo");
  mp_str(&o, "to");
  assert_int_equal(mp_ref(&o, ep), 0);
  ask_result r;
  assert_int_equal(ask_and_wait(f->rt, &f->loop, f->relay, &o, 5, 10, &r), 0);
  mp_out_free(&o);
  assert_int_equal(r.status, 0);
  assert_int_equal(r.len, len);
  assert_memory_equal(r.bytes, packed, len);
  mp_in m;
  mp_in_parse(&m, r.bytes, r.len);
  assert_true(m.ok);
  assert_int_equal(m.u.data.type, MSGPACK_OBJECT_EXT);
  assert_int_equal(m.u.data.via.ext.type, 1);
  mp_in_free(&m);
  assert_int_equal(lore_endpoint_close(f->rt, ep), 0);
  lore_ref_free(ep);
}

/* Endpoints still open at shutdown are closed by it (ASan sees no leak). */
static void endpoint_left_open(void **state) {
  fixture *f = *state;
  static inbox in;
  lore_ref *ep = NULL;
  assert_int_equal(lore_endpoint(f->rt, on_message, &in, &ep), 0);
  subscribe(f, ep);
  assert_true(run_until_count(&f->loop, &in.messages, 1, 10));
  lore_ref_free(ep); /* the ref is the caller's; the endpoint lives on */
  send_op(f, "publish", 3);
  assert_true(run_until_count(&f->loop, &in.messages, 4, 10));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(actor_tells_endpoint, per_test, per_test_end),
      cmocka_unit_test_setup_teardown(closed_endpoint_gets_nothing, per_test, per_test_end),
      cmocka_unit_test_setup_teardown(ref_round_trip, per_test, per_test_end),
      cmocka_unit_test_setup_teardown(endpoint_left_open, per_test, per_test_end),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
