/* endpoint_host.c: a host endpoint that actors tell, and a native module for behaviour scripts.
 *
 *   cc -o endpoint_host endpoint_host.c $(pkg-config --cflags --libs lore msgpack)
 *   ./endpoint_host docs/examples/behaviours
 *
 * (`msgpack-c` instead of `msgpack` with msgpack-c 6.) The host preloads a
 * native module `stamp` (a counter kept in C), opens an endpoint whose
 * messages arrive in on_message, hands its ref to the `notifier` actor inside
 * a message (lore_ref_pack), publishes two texts, and shuts down once the
 * endpoint has heard both.
 */
#include <lauxlib.h>
#include <lore.h>
#include <msgpack.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

/* --- the native module: behaviour scripts call stamp.next() on any worker --- */

static long long stamps; /* shared by every worker thread: atomic */

static int stamp_next(lua_State *L) {
  lua_pushinteger(L, __atomic_add_fetch(&stamps, 1, __ATOMIC_RELAXED));
  return 1;
}

/* Runs once in each worker's Lua state that requires "stamp". */
static int luaopen_stamp(lua_State *L) {
  static const luaL_Reg fns[] = {{"next", stamp_next}, {NULL, NULL}};
  luaL_newlib(L, fns);
  return 1;
}

/* --- the host --- */

typedef struct app {
  lore_runtime *rt;
  lore_ref *endpoint;
  int heard;
} app;

static void down(void *ud) {
  (void)ud;
  printf("shut down\n");
}

/* A message an actor told the endpoint: on the loop's thread; the bytes are
 * only valid during the call. */
static void on_message(void *ud, const void *msg, size_t len) {
  app *a = ud;
  msgpack_unpacked u;
  msgpack_unpacked_init(&u);
  if (msgpack_unpack_next(&u, msg, len, NULL) == MSGPACK_UNPACK_SUCCESS &&
      u.data.type == MSGPACK_OBJECT_MAP) {
    const msgpack_object_map *m = &u.data.via.map;
    for (uint32_t i = 0; i < m->size; i++) {
      const msgpack_object *k = &m->ptr[i].key, *v = &m->ptr[i].val;
      if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == 4 &&
          memcmp(k->via.str.ptr, "text", 4) == 0 && v->type == MSGPACK_OBJECT_STR)
        printf("endpoint heard: %.*s\n", (int)v->via.str.size, v->via.str.ptr);
    }
  }
  msgpack_unpacked_destroy(&u);
  if (++a->heard == 2) {
    lore_endpoint_close(a->rt, a->endpoint); /* on_message never runs again */
    lore_shutdown(a->rt, down, a);
  }
}

/* Tells `to` {op = OP, KEY = TEXT}, or {op = OP, KEY = <the endpoint's ref>} when text is NULL. */
static int tell_notifier(app *a, const lore_ref *to, const char *op, const char *key,
                         const char *text) {
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  msgpack_packer pk;
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, 2);
  msgpack_pack_str_with_body(&pk, "op", 2);
  msgpack_pack_str_with_body(&pk, op, strlen(op));
  msgpack_pack_str_with_body(&pk, key, strlen(key));
  int rc = 0;
  if (text) {
    msgpack_pack_str_with_body(&pk, text, strlen(text));
  } else {
    char ref[64]; /* lore_ref_pack says how much it needs if this is too small */
    size_t n;
    rc = lore_ref_pack(a->endpoint, ref, sizeof ref, &n);
    if (rc == 0) msgpack_sbuffer_write(&sb, ref, n); /* already one MessagePack value */
  }
  if (rc == 0) rc = lore_tell(a->rt, to, sb.data, sb.size);
  msgpack_sbuffer_destroy(&sb);
  return rc;
}

int main(int argc, char **argv) {
  uv_loop_t loop;
  if (uv_loop_init(&loop) != 0) return 1;
  lore_config cfg;
  lore_config_init(&cfg);
  cfg.loop = &loop;
  cfg.scripts = argc > 1 ? argv[1] : "behaviours";
  cfg.workers = 2;

  app a = {0};
  int rc = lore_open(&cfg, &a.rt);
  if (rc != 0) {
    fprintf(stderr, "lore_open: %s\n", lore_strerror(rc));
    uv_loop_close(&loop);
    return 1;
  }
  lore_ref *notifier = NULL;
  rc = lore_preload(a.rt, "stamp", luaopen_stamp); /* before the first spawn */
  if (rc == 0) rc = lore_endpoint(a.rt, on_message, &a, &a.endpoint);
  if (rc == 0) rc = lore_spawn(a.rt, "notifier", NULL, 0, &notifier);
  if (rc == 0) rc = tell_notifier(&a, notifier, "subscribe", "to", NULL);
  if (rc == 0) rc = tell_notifier(&a, notifier, "publish", "text", "hello");
  if (rc == 0) rc = tell_notifier(&a, notifier, "publish", "text", "world");
  if (rc != 0) {
    fprintf(stderr, "lore: %s\n", lore_strerror(rc));
    lore_shutdown(a.rt, NULL, NULL);
  }
  uv_run(&loop, UV_RUN_DEFAULT);

  int status = lore_shutdown_status(a.rt);
  lore_close(a.rt);
  lore_ref_free(notifier);
  lore_ref_free(a.endpoint);
  uv_loop_close(&loop);
  return rc == 0 && a.heard == 2 && status == 0 ? 0 : 1;
}
