/* snapshot_lua.c: the snapshot-store calls persistent.lua makes: save, load, delete, retention. */
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "log.h"
#include "lua_actor.h"
#include "worker.h"

enum { OP_SAVE, OP_LOAD, OP_DELETE };

typedef struct snap_req {
  uv_work_t work;
  struct snap_req *next; /* the actor's queue (lua_actor_extra.snap_next) */
  lore_runtime *lrt;
  sched_t *sched;
  uint64_t aid, token;
  int op;
  char *id;
  snapshot_criteria crit;
  int skip;
  int keep; /* save: keep the newest `keep` (0: all) */
  snapshot_meta meta;
  void *data;
  size_t len;
  snap_result res;
} snap_req;

#define bs_of worker_bs

static void snap_work(uv_work_t *w) {
  snap_req *r = w->data;
  snapshot_store_t *s = r->lrt->snapshots;
  r->res.meta = r->meta;
  if (r->op == OP_SAVE) {
    r->res.status = snapshot_store_save(s, r->id, &r->meta, r->data, r->len);
    if (r->res.status == 0 && r->keep > 0) {
      /* Retention: the K newest stay; everything older goes. */
      snapshot_criteria all = snapshot_criteria_latest();
      snapshot_meta *list = malloc(sizeof *list * ((size_t)r->keep + 1));
      size_t n = 0;
      if (list && snapshot_store_list(s, r->id, &all, list, (size_t)r->keep + 1, &n) == 0) {
        r->res.oldest_kept = n ? list[n < (size_t)r->keep ? n - 1 : (size_t)r->keep - 1].seq : 0;
        if (n > (size_t)r->keep) {
          snapshot_criteria older = all;
          older.max_seq = r->res.oldest_kept - 1;
          int st = snapshot_store_delete(s, r->id, &older);
          if (st)
            log_warn(&r->lrt->log, "snapshots of %s: retention delete failed: %s", r->id,
                     snapshot_strerror(st));
        }
      }
      free(list);
    } else if (r->res.status == 0) {
      r->res.oldest_kept = r->meta.seq;
    }
  } else if (r->op == OP_LOAD) {
    free(r->data);
    r->data = NULL;
    r->res.status =
        snapshot_store_load(s, r->id, &r->crit, r->skip, &r->res.meta, &r->data, &r->len);
    if (r->res.status) r->len = 0;
  } else {
    r->res.status = snapshot_store_delete(s, r->id, &r->crit);
  }
}

static void snap_start(actor_t *a, snap_req *r);

static void snap_after(uv_work_t *w, int status) {
  snap_req *r = w->data;
  actor_t *a = sched_find(r->sched, r->aid);
  if (status) r->res.status = SNAPSHOT_EIO;
  lua_actor *la = a ? actor_persistent(a) : NULL;
  snap_req *next = NULL;
  if (la) { /* the next operation starts when this one has answered */
    la->snap_running = 0;
    if (la->extra && (next = la->extra->snap_next)) la->extra->snap_next = next->next;
  }
  if (a) {
    size_t extra = r->op == OP_LOAD ? r->len : 0;
    lore_msg *m = msg_new(MSG_SYSTEM, NULL, sizeof r->res + extra, NULL, 0);
    if (m) {
      memcpy(m->data, &r->res, sizeof r->res);
      if (extra) memcpy(m->data + sizeof r->res, r->data, extra);
      m->sub = r->op == OP_SAVE   ? SYS_SNAP_SAVED
               : r->op == OP_LOAD ? SYS_SNAP_LOADED
                                  : SYS_SNAP_DELETED;
      m->ival = r->res.status;
      m->corr = r->token;
      m->target.sched = r->sched->index;
      m->target.aid = r->aid;
      actor_enqueue(a, m);
    }
  }
  free(r->data);
  free(r->id);
  free(r);
  if (next) snap_start(a, next);
  if (a) binding_io_end(a); /* last: the actor may be finalized here */
}

/* Runs r now: its result comes back through snap_after. */
static void snap_start(actor_t *a, snap_req *r) {
  lua_actor *la = actor_persistent(a);
  la->snap_running = 1;
  if (uv_queue_work(r->sched->loop, &r->work, snap_work, snap_after) != 0) {
    r->res.status = SNAPSHOT_EIO; /* answered at once, as if it had run */
    snap_after(&r->work, 0);
  }
}

/* A request for the current actor's own snapshots. */
static snap_req *new_req(lua_State *L, actor_t *a, int op) {
  binding_state *bs = bs_of(L);
  snap_req *r = calloc(1, sizeof *r);
  if (!r || !(r->id = strdup(actor_name(a)))) {
    free(r);
    luaL_error(L, "out of memory");
  }
  r->lrt = bs->lrt;
  r->sched = bs->sched;
  r->aid = a->aid;
  r->op = op;
  r->res.incarnation = actor_persistent(a)->incarnation;
  r->work.data = r;
  return r;
}

/* Queues r behind the actor's snapshot operation in progress, if any. */
static void submit(lua_State *L, actor_t *a, snap_req *r) {
  lua_actor *la = actor_persistent(a);
  if (la->snap_running && !lua_actor_extra_of(la, a)) {
    free(r->data);
    free(r->id);
    free(r);
    luaL_error(L, "out of memory");
  }
  actor_io_begin(a); /* one per operation, queued or running */
  if (la->snap_running) {
    snap_req **last = &la->extra->snap_next;
    while (*last) last = &(*last)->next;
    *last = r;
    return;
  }
  snap_start(a, r);
}

/* core.snapshot_save(value, keep, token) -> timestamp_ms | nil, err: a
 * snapshot of the current actor at the seq it has persisted up to. The value
 * is encoded now: the snapshot is the state as it is at this call. */
static int core_snapshot_save(lua_State *L) {
  binding_state *bs = bs_of(L);
  lua_actor *la;
  actor_t *a = binding_current_persistent(L, &la);
  lua_Integer seq = la->persisted;
  luaL_checkany(L, 1);
  lua_Integer keep = luaL_optinteger(L, 2, 0);
  lua_Integer token = luaL_checkinteger(L, 3);
  char err[CODEC_ERR_MAX];
  bs->buf.size = 0;
  if (codec_encode(L, 1, "snapshot", &bs->buf, err, sizeof err)) {
    bs->buf.size = 0;
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  snap_req *r = new_req(L, a, OP_SAVE);
  r->data = malloc(bs->buf.size ? bs->buf.size : 1);
  if (!r->data) {
    free(r->id);
    free(r);
    return luaL_error(L, "out of memory");
  }
  memcpy(r->data, bs->buf.data, bs->buf.size);
  r->len = bs->buf.size;
  r->meta.seq = seq;
  r->meta.timestamp_ms = binding_now_ms();
  r->keep = keep > 0 ? (int)keep : 0;
  r->token = (uint64_t)token;
  submit(L, a, r);
  lua_pushinteger(L, r->meta.timestamp_ms);
  return 1;
}

snapshot_criteria binding_check_criteria(lua_State *L, int idx) {
  snapshot_criteria c = snapshot_criteria_latest();
  if (lua_isnoneornil(L, idx)) return c;
  luaL_checktype(L, idx, LUA_TTABLE);
  /* The common criteria (the latest snapshot) are an empty table: four
   * field lookups by name, each a string interned, are most of the cost.
   * (A table with a metatable may answer through __index: read by name.) */
  idx = lua_absindex(L, idx);
  if (lua_getmetatable(L, idx)) {
    lua_pop(L, 1);
  } else {
    lua_pushnil(L);
    if (!lua_next(L, idx)) return c;
    lua_pop(L, 2);
  }
  static const char *keys[] = {"max_seq", "min_seq", "max_ts", "min_ts"};
  int64_t *fields[] = {&c.max_seq, &c.min_seq, &c.max_ts, &c.min_ts};
  for (int i = 0; i < 4; i++) {
    int t = lua_getfield(L, idx, keys[i]);
    if (t != LUA_TNIL) {
      int isint;
      lua_Integer v = lua_tointegerx(L, -1, &isint);
      if (!isint) luaL_error(L, "snapshot criteria: %s must be an integer", keys[i]);
      *fields[i] = v;
    }
    lua_pop(L, 1);
  }
  return c;
}

/* core.snapshot_load(criteria, skip, token) */
static int core_snapshot_load(lua_State *L) {
  lua_actor *la;
  actor_t *a = binding_current_persistent(L, &la);
  snapshot_criteria c = binding_check_criteria(L, 1);
  lua_Integer skip = luaL_checkinteger(L, 2);
  lua_Integer token = luaL_checkinteger(L, 3);
  snap_req *r = new_req(L, a, OP_LOAD);
  r->crit = c;
  r->skip = (int)skip;
  r->token = (uint64_t)token;
  submit(L, a, r);
  return 0;
}

/* core.snapshot_delete(criteria, token) */
static int core_snapshot_delete(lua_State *L) {
  lua_actor *la;
  actor_t *a = binding_current_persistent(L, &la);
  snapshot_criteria c = binding_check_criteria(L, 1);
  lua_Integer token = luaL_checkinteger(L, 2);
  snap_req *r = new_req(L, a, OP_DELETE);
  r->crit = c;
  r->token = (uint64_t)token;
  submit(L, a, r);
  return 0;
}

/* core.snapshot_result(mptr) -> status, seq, ts, oldest_kept, current
 * (current: asked by the actor's present incarnation) */
static int core_snapshot_result(lua_State *L) {
  lore_msg *m = lua_touserdata(L, 1);
  luaL_argcheck(L, m && m->len >= sizeof(snap_result), 1, "not a snapshot result");
  snap_result res;
  memcpy(&res, m->data, sizeof res);
  actor_t *a = worker_bs(L)->cur_actor;
  lua_actor *la = a ? actor_persistent(a) : NULL;
  lua_pushinteger(L, res.status);
  lua_pushinteger(L, res.meta.seq);
  lua_pushinteger(L, res.meta.timestamp_ms);
  lua_pushinteger(L, res.oldest_kept);
  lua_pushboolean(L, la && la->incarnation == res.incarnation);
  return 5;
}

/* core.snapshot_decode(mptr) -> value | nil, err */
static int core_snapshot_decode(lua_State *L) {
  lore_msg *m = lua_touserdata(L, 1);
  luaL_argcheck(L, m && m->len >= sizeof(snap_result), 1, "not a snapshot result");
  char err[CODEC_ERR_MAX];
  if (codec_decode(L, m->data + sizeof(snap_result), m->len - sizeof(snap_result), err,
                   sizeof err)) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  return 1;
}

int luaopen_lore_core_snapshot(lua_State *L) {
  static const luaL_Reg fns[] = {
      {"snapshot_save", core_snapshot_save},     {"snapshot_load", core_snapshot_load},
      {"snapshot_delete", core_snapshot_delete}, {"snapshot_result", core_snapshot_result},
      {"snapshot_decode", core_snapshot_decode}, {NULL, NULL}};
  luaL_setfuncs(L, fns, 0);
  return 0;
}
