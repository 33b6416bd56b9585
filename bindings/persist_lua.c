/* persist_lua.c: the journal calls runtime.lua makes for persistent actors. */
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "binding.h"
#include "codec.h"
#include "log.h"

/* System message subtypes (MSG_SYSTEM.sub), shared with persistent.lua. */
enum { SYS_PERSISTED = 16, SYS_DELETED = 17, SYS_PAGE = 18 };

#define REPLAY_PAGE 4096

#define bs_of worker_bs
#define check_actor binding_check_actor


/* One atomic write in flight, in one allocation with its strings; payloads
 * are separate allocations. Freed by the writer thread's completion. */
typedef struct persist_write {
  journal_write w;
  runtime_t *rt;
  lore_addr target;
  uint64_t token;
  uint32_t sub;
  char *id;
  lore_msg *done_msg; /* allocated by the worker: see persist_write_done */
  journal_event ev[];
} persist_write;

static void persist_write_free(persist_write *p) {
  for (size_t i = 0; i < p->w.count; i++) {
    free((void *)p->ev[i].payload);
    free((void *)p->ev[i].manifest);
    free((void *)p->ev[i].tags);
  }
  if (p->done_msg) msg_free(p->done_msg);
  free(p->id);
  free(p);
}

static void persist_write_release(void *p) { persist_write_free(p); }

/* On the journal's writer thread: post the outcome to the actor. The message
 * was allocated by the worker and carries the write back to it, so every
 * allocation of a persist is made and freed on the worker's thread: freeing
 * on the writer thread made the two threads fight over malloc's arena lock. */
static void persist_write_done(journal_write *w, int status) {
  persist_write *p = w->data;
  lore_msg *m = p->done_msg;
  p->done_msg = NULL;
  m->sub = p->sub;
  m->ival = status;
  m->corr = p->token;
  m->target = p->target;
  m->ptr = p;
  m->free_ptr = persist_write_release;
  runtime_send(p->rt, m);
}

/* The journal's writer id is an int64: the first 64 bits of the
 * incarnation's UUID (0 if `uuid` is not one). */
static int64_t writer_id_of(const char *uuid) {
  uint64_t v = 0;
  int digits = 0;
  for (; *uuid && digits < 16; uuid++) {
    int d;
    if (*uuid >= '0' && *uuid <= '9')
      d = *uuid - '0';
    else if (*uuid >= 'a' && *uuid <= 'f')
      d = *uuid - 'a' + 10;
    else if (*uuid >= 'A' && *uuid <= 'F')
      d = *uuid - 'A' + 10;
    else if (*uuid == '-')
      continue;
    else
      break;
    v = v << 4 | (uint64_t)d;
    digits++;
  }
  return digits == 16 ? (int64_t)v : 0;
}

/* Hands a filled write to the journal for actor a; its outcome comes back as
 * a `sub` system message carrying `token`. Returns true, or nil and the error. */
static int submit_write(lua_State *L, actor_t *a, persist_write *p, uint32_t sub,
                        lua_Integer token) {
  binding_state *bs = worker_bs(L);
  if (!(p->done_msg = msg_new(MSG_SYSTEM, NULL, 0, NULL, 0))) {
    persist_write_free(p);
    return luaL_error(L, "out of memory");
  }
  p->w.done = persist_write_done;
  p->w.data = p;
  p->rt = bs->sched->rt;
  p->target.sched = bs->sched->index;
  p->target.aid = a->aid;
  p->token = (uint64_t)token;
  p->sub = sub;
  int r = journal_submit(bs->lrt->journal, &p->w);
  if (r) {
    persist_write_free(p);
    lua_pushnil(L);
    lua_pushstring(L, journal_strerror(r));
    return 2;
  }
  actor_io_begin(a); /* the actor cannot be freed before the completion arrives */
  lua_pushboolean(L, 1);
  return 1;
}

/*
 * core.persist(aid, id, writer, first_seq, events, metas, token) -> true | nil, err
 * events: a list of Lua values (already through to_journal adapters);
 * metas: nil, or a parallel list of { manifest=, version=, tags= } (tags
 * joined by "\n"); by default the manifest is the event's `type`, version 1,
 * no tags.
 * Encoding failure of any event rejects the whole atomic write before storage
 * (nil + message naming the path); nothing is submitted then.
 */
static int core_persist(lua_State *L) {
  binding_state *bs = bs_of(L);
  actor_t *a = check_actor(L, 1);
  const char *id = luaL_checkstring(L, 2);
  const char *writer = luaL_checkstring(L, 3);
  lua_Integer first = luaL_checkinteger(L, 4);
  luaL_checktype(L, 5, LUA_TTABLE);
  lua_Integer token = luaL_checkinteger(L, 7);
  size_t n = (size_t)lua_rawlen(L, 5);
  persist_write *p = calloc(1, sizeof *p + n * sizeof(journal_event));
  if (!p) return luaL_error(L, "out of memory");
  p->id = strdup(id);
  int64_t writer_id = writer_id_of(writer);
  int64_t ts = binding_now_ms();
  char err[CODEC_ERR_MAX];
  for (size_t i = 0; i < n; i++) {
    journal_event *ev = &p->ev[i];
    p->w.count = i + 1; /* persist_write_free frees what was filled so far */
    lua_rawgeti(L, 5, (lua_Integer)i + 1);
    bs->buf.size = 0;
    char root[32];
    snprintf(root, sizeof root, n > 1 ? "event[%zu]" : "event", i + 1);
    if (codec_encode(L, -1, root, &bs->buf, err, sizeof err)) {
      bs->buf.size = 0;
      persist_write_free(p);
      lua_pushnil(L);
      lua_pushstring(L, err);
      return 2;
    }
    /* The manifest is the event's `type`, read raw (no metamethods). */
    if (lua_type(L, -1) == LUA_TTABLE) {
      lua_pushliteral(L, "type");
      if (lua_rawget(L, -2) == LUA_TSTRING && lua_rawlen(L, -1) > 0)
        ev->manifest = strdup(lua_tostring(L, -1));
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
    void *payload = malloc(bs->buf.size ? bs->buf.size : 1);
    if (!payload) {
      persist_write_free(p);
      return luaL_error(L, "out of memory");
    }
    memcpy(payload, bs->buf.data, bs->buf.size);
    ev->payload = payload;
    ev->payload_len = bs->buf.size;
    ev->version = 1;
    /* Explicit metadata (event adapters) overrides the defaults. */
    if (lua_type(L, 6) == LUA_TTABLE) {
      if (lua_rawgeti(L, 6, (lua_Integer)i + 1) == LUA_TTABLE) {
        int mt = lua_gettop(L);
        if (lua_getfield(L, mt, "manifest") == LUA_TSTRING) {
          free((void *)ev->manifest);
          ev->manifest = strdup(lua_tostring(L, -1));
        }
        if (lua_getfield(L, mt, "tags") == LUA_TSTRING) ev->tags = strdup(lua_tostring(L, -1));
        if (lua_getfield(L, mt, "version") == LUA_TNUMBER && lua_isinteger(L, -1))
          ev->version = (int32_t)lua_tointeger(L, -1);
        lua_pop(L, 3);
      }
      lua_pop(L, 1);
    }
    ev->id = p->id;
    ev->seq = first + (lua_Integer)i;
    ev->writer = writer_id;
    ev->timestamp_ms = ts;
    journal_event_seal(ev);
  }
  p->w.count = n;
  p->w.kind = JOURNAL_WRITE_EVENTS;
  p->w.events = p->ev;
  return submit_write(L, a, p, SYS_PERSISTED, token);
}

/* core.delete_events(aid, id, to_seq, token) -> true | nil, err */
static int core_delete_events(lua_State *L) {
  actor_t *a = check_actor(L, 1);
  const char *id = luaL_checkstring(L, 2);
  lua_Integer to = luaL_checkinteger(L, 3);
  lua_Integer token = luaL_checkinteger(L, 4);
  persist_write *p = calloc(1, sizeof *p);
  if (!p || !(p->id = strdup(id))) {
    free(p);
    return luaL_error(L, "out of memory");
  }
  p->w.kind = JOURNAL_WRITE_DELETE;
  p->w.id = p->id;
  p->w.seq = to;
  return submit_write(L, a, p, SYS_DELETED, token);
}

static int core_io_end(lua_State *L) {
  actor_io_end(check_actor(L, 1));
  return 0;
}

/* --- replay: pages read on libuv's thread pool --- */

/* A page travels to the actor inside a MSG_SYSTEM's data: a header, then
 * records, each a rec_hdr followed by manifest, tags, writer and payload. */
typedef struct page_hdr {
  int64_t highest;
  int64_t count;
  int64_t last_seq;
  int32_t status;
  int32_t more; /* the page was full: ask for the next one */
} page_hdr;

typedef struct rec_hdr {
  int64_t seq, ts;
  int32_t version;
  uint32_t manifest_len, tags_len, writer_len, payload_len;
} rec_hdr;

typedef struct replay_req {
  uv_work_t work;
  lore_runtime *lrt;
  sched_t *sched;
  uint64_t aid, token;
  char *id;
  int64_t from, to, max;
  int want_highest;
  page_hdr hdr;
  char *buf;
  size_t len, cap;
  int oom;
} replay_req;

static void buf_put(replay_req *r, const void *p, size_t n) {
  if (r->oom) return;
  if (r->len + n > r->cap) {
    size_t cap = r->cap ? r->cap * 2 : 65536;
    while (cap < r->len + n) cap *= 2;
    char *b = realloc(r->buf, cap);
    if (!b) {
      r->oom = 1;
      return;
    }
    r->buf = b;
    r->cap = cap;
  }
  memcpy(r->buf + r->len, p, n);
  r->len += n;
}

static int collect(const journal_event *ev, void *ud) {
  replay_req *r = ud;
  char writer[24];
  snprintf(writer, sizeof writer, "%lld", (long long)ev->writer);
  rec_hdr h = {ev->seq,
               ev->timestamp_ms,
               ev->version,
               (uint32_t)strlen(ev->manifest ? ev->manifest : ""),
               (uint32_t)strlen(ev->tags ? ev->tags : ""),
               (uint32_t)strlen(writer),
               (uint32_t)ev->payload_len};
  buf_put(r, &h, sizeof h);
  buf_put(r, ev->manifest ? ev->manifest : "", h.manifest_len);
  buf_put(r, ev->tags ? ev->tags : "", h.tags_len);
  buf_put(r, writer, h.writer_len);
  buf_put(r, ev->payload, h.payload_len);
  r->hdr.count++;
  r->hdr.last_seq = ev->seq;
  return r->oom;
}

static void replay_work(uv_work_t *w) {
  replay_req *r = w->data;
  page_hdr blank = {0};
  r->hdr = blank;
  buf_put(r, &r->hdr, sizeof r->hdr); /* placeholder, rewritten below */
  int st = 0;
  if (r->want_highest) {
    journal_bounds b;
    st = journal_bounds_of(r->lrt->journal, r->id, &b);
    r->hdr.highest = b.highest;
  }
  int64_t page = r->max >= 0 && r->max < REPLAY_PAGE ? r->max : REPLAY_PAGE;
  if (st == 0 && page > 0)
    st = journal_replay(r->lrt->journal, r->id, r->from, r->to, page, collect, r);
  if (r->oom) st = JOURNAL_ENOMEM;
  r->hdr.status = st;
  r->hdr.more = st == 0 && page > 0 && r->hdr.count == page && (r->max < 0 || r->max > page);
  if (!r->oom) memcpy(r->buf, &r->hdr, sizeof r->hdr);
}

static void replay_after(uv_work_t *w, int status) {
  replay_req *r = w->data;
  actor_t *a = sched_find(r->sched, r->aid);
  if (a) {
    lore_msg *m = NULL;
    if (!r->oom && status == 0) m = msg_new(MSG_SYSTEM, r->buf, r->len, NULL, 0);
    if (!m) {
      page_hdr h = {0};
      h.status = JOURNAL_ENOMEM;
      m = msg_new(MSG_SYSTEM, &h, sizeof h, NULL, 0);
    }
    if (m) {
      m->sub = SYS_PAGE;
      m->corr = r->token;
      m->target.sched = r->sched->index;
      m->target.aid = r->aid;
      actor_enqueue(a, m);
    }
    actor_io_end(a);
  }
  free(r->buf);
  free(r->id);
  free(r);
}

/* core.replay(aid, id, from, to, max, token, want_highest): reads one page
 * off-thread; it arrives as a SYS_PAGE system message. */
static int core_replay(lua_State *L) {
  binding_state *bs = bs_of(L);
  actor_t *a = check_actor(L, 1);
  replay_req *r = calloc(1, sizeof *r);
  if (!r || !(r->id = strdup(luaL_checkstring(L, 2)))) {
    free(r);
    return luaL_error(L, "out of memory");
  }
  r->from = luaL_checkinteger(L, 3);
  r->to = luaL_checkinteger(L, 4);
  r->max = luaL_checkinteger(L, 5);
  r->token = (uint64_t)luaL_checkinteger(L, 6);
  r->want_highest = lua_toboolean(L, 7);
  r->lrt = bs->lrt;
  r->sched = bs->sched;
  r->aid = a->aid;
  r->work.data = r;
  int rc = uv_queue_work(&bs->sched->loop, &r->work, replay_work, replay_after);
  if (rc) {
    free(r->id);
    free(r);
    return luaL_error(L, "cannot queue a replay: %s", uv_strerror(rc));
  }
  actor_io_begin(a);
  return 0;
}

/* core.page_info(mptr) -> status, highest, count, last_seq, more */
static int core_page_info(lua_State *L) {
  lore_msg *m = lua_touserdata(L, 1);
  luaL_argcheck(L, m && m->len >= sizeof(page_hdr), 1, "not a replay page");
  page_hdr h;
  memcpy(&h, m->data, sizeof h);
  lua_pushinteger(L, h.status);
  lua_pushinteger(L, h.highest);
  lua_pushinteger(L, h.count);
  lua_pushinteger(L, h.last_seq);
  lua_pushboolean(L, h.more);
  return 5;
}

/* core.page_each(mptr, fn [, want_meta]): calls fn(seq, evt) -- or, with
 * want_meta, fn(seq, evt, manifest, version, tags, writer, ts) -- for each
 * event of the page. A payload that does not decode
 * raises "decode error at seq N: ...". */
static int core_page_each(lua_State *L) {
  lore_msg *m = lua_touserdata(L, 1);
  luaL_argcheck(L, m && m->len >= sizeof(page_hdr), 1, "not a replay page");
  luaL_checktype(L, 2, LUA_TFUNCTION);
  int want_meta = lua_toboolean(L, 3); /* strings cost interning: only on request */
  size_t off = sizeof(page_hdr);
  char err[CODEC_ERR_MAX];
  while (off + sizeof(rec_hdr) <= m->len) {
    rec_hdr h;
    memcpy(&h, m->data + off, sizeof h);
    off += sizeof h;
    const char *p = m->data + off;
    size_t total = (size_t)h.manifest_len + h.tags_len + h.writer_len + h.payload_len;
    if (off + total > m->len) return luaL_error(L, "replay page is truncated");
    lua_pushvalue(L, 2);
    lua_pushinteger(L, h.seq);
    const char *payload = p + h.manifest_len + h.tags_len + h.writer_len;
    if (codec_decode(L, payload, h.payload_len, err, sizeof err))
      return luaL_error(L, "decode error at seq %I: %s", (lua_Integer)h.seq, err);
    if (want_meta) {
      lua_pushlstring(L, p, h.manifest_len);
      lua_pushinteger(L, h.version);
      lua_pushlstring(L, p + h.manifest_len, h.tags_len);
      lua_pushlstring(L, p + h.manifest_len + h.tags_len, h.writer_len);
      lua_pushinteger(L, h.ts);
    }
    lua_call(L, want_meta ? 7 : 2, 0);
    off += total;
  }
  return 0;
}

/* core.uuid() -> a random (v4) UUID: the writer id of an incarnation. */
static int core_uuid(lua_State *L) {
  unsigned char b[16];
  if (uv_random(NULL, NULL, b, sizeof b, 0, NULL) != 0) {
    for (int i = 0; i < 16; i++) b[i] = (unsigned char)(rand() & 0xff);
  }
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  char s[37];
  snprintf(s, sizeof s,
           "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
           b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
           b[15]);
  lua_pushstring(L, s);
  return 1;
}

static int core_journal_strerror(lua_State *L) {
  lua_pushstring(L, journal_strerror((int)luaL_checkinteger(L, 1)));
  return 1;
}

static int core_config(lua_State *L) {
  binding_state *bs = bs_of(L);
  lore_config *c = &bs->lrt->cfg;
  lua_createtable(L, 0, 3);
  lua_pushinteger(L, c->max_concurrent_recoveries);
  lua_setfield(L, -2, "max_concurrent_recoveries");
  lua_pushnumber(L, c->recovery_timeout);
  lua_setfield(L, -2, "recovery_timeout");
  return 1;
}

int luaopen_lore_core_persist(lua_State *L) {
  static const luaL_Reg fns[] = {{"persist", core_persist},
                                 {"delete_events", core_delete_events},
                                 {"io_end", core_io_end},
                                 {"replay", core_replay},
                                 {"page_info", core_page_info},
                                 {"page_each", core_page_each},
                                 {"uuid", core_uuid},
                                 {"journal_strerror", core_journal_strerror},
                                 {"config", core_config},
                                 {NULL, NULL}};
  luaL_setfuncs(L, fns, 0);
  return 0;
}
