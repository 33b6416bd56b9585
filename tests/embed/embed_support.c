/* embed_support.c: what the embedding tests share (see embed_support.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* nftw, mkdtemp: the project builds with it, a host may not */
#endif
#include "embed_support.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* --- files --- */

/* mkdir -p */
static int mkdirs(const char *path) {
  char p[1024];
  int n = snprintf(p, sizeof p, "%s", path);
  if (n <= 0 || (size_t)n >= sizeof p) return -1;
  for (char *s = p + 1; *s; s++) {
    if (*s != '/') continue;
    *s = '\0';
    if (mkdir(p, 0755) != 0 && errno != EEXIST) return -1;
    *s = '/';
  }
  return mkdir(p, 0755) == 0 || errno == EEXIST ? 0 : -1;
}

int tmpdir_make(char *buf, size_t cap, const char *tag) {
  const char *base = getenv("LORE_TEST_TMP");
  if (!base || !*base) base = "/tmp";
  if (mkdirs(base) != 0) return -1;
  int n = snprintf(buf, cap, "%s/embed-%s-XXXXXX", base, tag);
  if (n < 0 || (size_t)n >= cap) return -1;
  return mkdtemp(buf) ? 0 : -1;
}

int file_write(const char *dir, const char *name, const char *text) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  if (!f) return -1;
  size_t n = strlen(text);
  int ok = fwrite(text, 1, n, f) == n;
  return fclose(f) == 0 && ok ? 0 : -1;
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  remove(path);
  return 0;
}

void tmpdir_remove(const char *dir) {
  if (dir && *dir) nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* --- MessagePack out --- */

void mp_out_init(mp_out *o) {
  msgpack_sbuffer_init(&o->sb);
  msgpack_packer_init(&o->pk, &o->sb, msgpack_sbuffer_write);
}

void mp_out_free(mp_out *o) { msgpack_sbuffer_destroy(&o->sb); }

void mp_str(mp_out *o, const char *s) { msgpack_pack_str_with_body(&o->pk, s, strlen(s)); }
void mp_int(mp_out *o, int64_t v) { msgpack_pack_int64(&o->pk, v); }
void mp_map(mp_out *o, uint32_t pairs) { msgpack_pack_map(&o->pk, pairs); }

int mp_ref(mp_out *o, const lore_ref *ref) {
  char buf[64];
  size_t len = 0;
  int rc = lore_ref_pack(ref, buf, sizeof buf, &len);
  if (rc) return rc;
  msgpack_sbuffer_write(&o->sb, buf, len);
  return 0;
}

void mp_op(mp_out *o, const char *op) {
  mp_map(o, 1);
  mp_str(o, "op");
  mp_str(o, op);
}

void mp_op_n(mp_out *o, const char *op, int64_t n) {
  mp_map(o, 2);
  mp_str(o, "op");
  mp_str(o, op);
  mp_str(o, "n");
  mp_int(o, n);
}

/* --- MessagePack in --- */

void mp_in_parse(mp_in *in, const void *bytes, size_t len) {
  msgpack_unpacked_init(&in->u);
  size_t off = 0;
  in->ok = bytes && len &&
           msgpack_unpack_next(&in->u, bytes, len, &off) == MSGPACK_UNPACK_SUCCESS && off == len;
}

void mp_in_free(mp_in *in) { msgpack_unpacked_destroy(&in->u); }

const msgpack_object *mp_get(const msgpack_object *map, const char *key) {
  if (!map || map->type != MSGPACK_OBJECT_MAP) return NULL;
  size_t klen = strlen(key);
  for (uint32_t i = 0; i < map->via.map.size; i++) {
    const msgpack_object *k = &map->via.map.ptr[i].key;
    if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == klen &&
        memcmp(k->via.str.ptr, key, klen) == 0)
      return &map->via.map.ptr[i].val;
  }
  return NULL;
}

int mp_is_int(const msgpack_object *o, int64_t v) {
  if (!o) return 0;
  if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) return v >= 0 && o->via.u64 == (uint64_t)v;
  if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) return o->via.i64 == v;
  return 0;
}

int mp_is_str(const msgpack_object *o, const char *s) {
  size_t n = strlen(s);
  return o && o->type == MSGPACK_OBJECT_STR && o->via.str.size == n &&
         memcmp(o->via.str.ptr, s, n) == 0;
}

int mp_read_int(const void *bytes, size_t len, int64_t *v) {
  mp_in in;
  mp_in_parse(&in, bytes, len);
  int ok = 0;
  if (in.ok && in.u.data.type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
    *v = (int64_t)in.u.data.via.u64;
    ok = 1;
  } else if (in.ok && in.u.data.type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
    *v = in.u.data.via.i64;
    ok = 1;
  }
  mp_in_free(&in);
  return ok;
}

/* --- the loop --- */

double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void tick(uv_timer_t *t) { (void)t; }

/* Runs the loop one turn at a time until stop(arg) or the deadline. */
static int run_while(uv_loop_t *loop, int (*stop)(const void *arg), const void *arg,
                     double seconds) {
  uv_timer_t guard;
  uv_timer_init(loop, &guard);
  uv_timer_start(&guard, tick, 10, 10); /* wakes the loop: the deadline is seen */
  double end = now_s() + seconds;
  while (!stop(arg) && now_s() < end) uv_run(loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&guard, NULL);
  uv_run(loop, UV_RUN_NOWAIT); /* the close completes before `guard` goes */
  return stop(arg);
}

static int flag_set(const void *arg) { return *(const int *)arg != 0; }

int run_until(uv_loop_t *loop, const int *flag, double seconds) {
  return run_while(loop, flag_set, flag, seconds);
}

typedef struct count_goal {
  const int *count;
  int target;
} count_goal;

static int count_reached(const void *arg) {
  const count_goal *g = arg;
  return *g->count >= g->target;
}

int run_until_count(uv_loop_t *loop, const int *count, int target, double seconds) {
  count_goal g = {count, target};
  return run_while(loop, count_reached, &g, seconds);
}

static int never(const void *arg) {
  (void)arg;
  return 0;
}

void run_for(uv_loop_t *loop, double seconds) { run_while(loop, never, NULL, seconds); }

/* --- lore --- */

void log_capture_init(log_capture *c) {
  memset(c, 0, sizeof *c);
  uv_mutex_init(&c->lock);
}

void log_capture_free(log_capture *c) { uv_mutex_destroy(&c->lock); }

void log_capture_line(void *ud, int level, const char *line) {
  log_capture *c = ud;
  uv_mutex_lock(&c->lock);
  if (level >= 0 && level < LORE_LOG_OFF) c->count[level]++;
  int n = snprintf(c->text + c->len, sizeof c->text - c->len, "%d %s\n", level, line);
  if (n > 0) c->len = c->len + (size_t)n < sizeof c->text ? c->len + (size_t)n : sizeof c->text - 1;
  uv_mutex_unlock(&c->lock);
}

int log_capture_has(log_capture *c, const char *needle) {
  uv_mutex_lock(&c->lock);
  int has = strstr(c->text, needle) != NULL;
  uv_mutex_unlock(&c->lock);
  return has;
}

void ask_recorder(void *ud, int status, const void *reply, size_t len) {
  ask_result *r = ud;
  r->calls++;
  r->status = status;
  r->len = len;
  size_t n = len < sizeof r->bytes - 1 ? len : sizeof r->bytes - 1;
  if (n) memcpy(r->bytes, reply, n);
  r->bytes[n] = '\0';
  r->at = now_s();
}

const char *ask_text(const ask_result *r) { return r->bytes; }

int ask_and_wait(lore_runtime *rt, uv_loop_t *loop, const lore_ref *to, mp_out *o, double timeout_s,
                 double wait_s, ask_result *res) {
  memset(res, 0, sizeof *res);
  int rc = lore_ask(rt, to, o->sb.data, o->sb.size, timeout_s, ask_recorder, res);
  if (rc == 0) run_until(loop, &res->calls, wait_s);
  return rc;
}

static void count_done(void *ud) { (*(int *)ud)++; }

int shutdown_and_wait(lore_runtime *rt, uv_loop_t *loop, double seconds) {
  static int done; /* one shutdown at a time in these tests */
  done = 0;
  if (lore_shutdown(rt, count_done, &done) != 0) return 0;
  return run_until(loop, &done, seconds);
}

int host_prepare(char *dir, size_t cap, const char *tag, const char *const *scripts,
                 uv_loop_t *loop, lore_config *cfg) {
  if (tmpdir_make(dir, cap, tag)) return -1;
  for (const char *const *s = scripts; s && s[0]; s += 2)
    if (file_write(dir, s[0], s[1])) return -1;
  if (uv_loop_init(loop)) return -1;
  lore_config_init(cfg);
  cfg->loop = loop;
  cfg->scripts = dir;
  cfg->workers = 2;
  return 0;
}

int host_finish(lore_runtime *rt, uv_loop_t *loop, const char *dir) {
  int ok = shutdown_and_wait(rt, loop, 10);
  lore_close(rt);
  int closed = uv_loop_close(loop); /* Lore left nothing on the host's loop */
  tmpdir_remove(dir);
  return ok && closed == 0 ? 0 : -1;
}
