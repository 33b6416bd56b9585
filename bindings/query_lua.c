/* query_lua.c: lore.query cursors for the application: pages read off-loop, adapted, live. */
#include <lauxlib.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "app_wait.h"
#include "binding.h"
#include "codec.h"
#include "host.h"
#include "query.h"
#include "query_module.h"
#include "query_page.h"

/*
 * A cursor reads one kind of stream in pages: one id's events by seq
 * ("events"), the events of a tag by offset ("tag"), or the persistence ids
 * ("ids"). A fetch is one step: read the next page on the thread pool; if
 * adapters may apply, have a worker pass it through from_journal; hand the
 * page to a Lua callback as { {evt, meta}, ... } (ids: { {id, highest} }).
 * At the end of what is stored, a live cursor waits for the journal to tell
 * of a newer commit, then reads again; any other cursor ends.
 *
 * Every read first takes the journal's highest offset (`seen`): every event
 * up to it was committed before the read began, so a read that came back
 * short has seen them all. A live reader waits only while no commit above
 * `seen` was told of.
 */

enum { QK_EVENTS, QK_TAG, QK_IDS, QK_NEW_IDS };

#define CURSOR_MT "lore.query_cursor"

typedef struct qread qread;
typedef struct qadapt qadapt;

typedef struct qcursor {
  query_closer closer; /* detached at shutdown */
  query_waiter waiter; /* on the live readers' list while at the end */
  qmod *m;
  query_state *qs; /* NULL: detached (closed, or its runtime is gone) */
  int kind;
  char *key;      /* events: the id; tag: the tag */
  char *after_id; /* ids: the last id listed */
  int64_t next_seq, to;
  int64_t after;     /* tag, new ids: the last offset read */
  int64_t ids_since; /* ids, live: the offset the listing began at */
  int follow, internal, adapt;
  int report_idle;   /* a live cursor that reaches the end ends the fetch with `false` */
  int64_t idle_seen; /* `seen` when the end was last reported */
  int at_end;        /* the last read came back short */
  int ended;         /* nothing more will come */
  int resubscribed;
  int64_t seen;
  qread *job;
  qadapt *areq;
  int fn_ref;     /* the callback of the fetch in progress (LUA_NOREF: none) */
  int in_fetch;   /* inside qcore.fetch: an error is raised there, not called back */
  char *sync_err; /* such an error */
} qcursor;

struct qread {
  qjob job;
  qcursor *c; /* NULL: the cursor went away */
  int kind, internal;
  char *key;
  int64_t from, to, after, m0;
  int more;
  qpage page;
};

struct qadapt {
  qcursor *c;
  char *raw;
  size_t len;
};

static qcursor *cursor_of(qjob *j) { return ((qread *)j)->c; }

/* --- reading, on the thread pool --- */

static int collect_event(const journal_event *ev, void *ud) {
  qread *r = ud;
  qpage *p = &r->page;
  p->read++;
  p->last_seq = ev->seq;
  p->last_offset = ev->offset;
  const char *manifest = ev->manifest ? ev->manifest : "";
  int keep = r->internal || !qpage_internal(manifest, strlen(manifest));
  if (r->kind == QK_NEW_IDS) {
    /* an id's first event is seq 1: a new id */
    if (ev->seq == 1) qpage_add_id(p, ev->id ? ev->id : "", 1);
  } else if (keep) {
    qpage_add(p, ev, NULL);
  }
  if (qpage_full(p)) {
    r->more = 1;
    return 1;
  }
  return 0;
}

static void collect_id(const char *id, int64_t highest, void *ud) {
  qread *r = ud;
  r->page.read++;
  qpage_add_id(&r->page, id, highest);
}

static void read_run(qjob *j) {
  qread *r = (qread *)j;
  journal_t *jn = query_runtime(j->qs)->journal;
  int st = journal_max_offset(jn, &r->m0);
  if (st == 0) {
    switch (r->kind) {
      case QK_EVENTS:
        st = journal_replay(jn, r->key, r->from, r->to, QPAGE_EVENTS, collect_event, r);
        break;
      case QK_TAG:
        st = journal_replay_tag(jn, r->key, r->after, QPAGE_EVENTS, collect_event, r);
        break;
      case QK_NEW_IDS:
        st = journal_replay_all(jn, r->after, QPAGE_EVENTS, collect_event, r);
        break;
      default:
        st = journal_list_ids_after(jn, r->key ? r->key : "", QPAGE_EVENTS, collect_id, r);
        break;
    }
  }
  if (r->page.read >= QPAGE_EVENTS) r->more = 1;
  if (r->page.oom) st = JOURNAL_ENOMEM;
  j->status = st;
}

/* --- handing a page (or the end, or an error) to the fetch's callback --- */

static void release_fn(qcursor *c) {
  if (c->fn_ref != LUA_NOREF) luaL_unref(c->m->T, LUA_REGISTRYINDEX, c->fn_ref);
  c->fn_ref = LUA_NOREF;
}

/* Calls fn(...) with the nargs values pushed on T above fn. */
static void call_fn(qcursor *c, int nargs) { qmod_call(c->m, query_runtime(c->qs), nargs); }

/* Pushes the callback (taking it off the cursor: the call may fetch again). */
static int push_fn(qcursor *c) {
  lua_State *T = c->m->T;
  int ref = c->fn_ref;
  c->fn_ref = LUA_NOREF;
  if (ref == LUA_NOREF) return 0;
  if (c->qs == NULL || query_closing(c->qs)) { /* the run is over: nobody to tell */
    luaL_unref(T, LUA_REGISTRYINDEX, ref);
    return 0;
  }
  lua_rawgeti(T, LUA_REGISTRYINDEX, ref);
  luaL_unref(T, LUA_REGISTRYINDEX, ref);
  return 1;
}

static void deliver_error(qcursor *c, const char *err) {
  if (c->in_fetch) { /* the caller has not waited yet: a callback now would be lost */
    if (!c->sync_err) c->sync_err = strdup(err);
    return;
  }
  if (!push_fn(c)) return;
  lua_State *T = c->m->T;
  lua_pushnil(T);
  lua_pushstring(T, err);
  call_fn(c, 2);
}

static void deliver_end(qcursor *c) {
  c->ended = 1;
  if (!push_fn(c)) return;
  lua_pushnil(c->m->T);
  call_fn(c, 1);
}

/* A live cursor at the end, having seen more of the journal than when it
 * last said so: fn(false) (a projection learns how far it has looked). */
static void deliver_idle(qcursor *c) {
  c->idle_seen = c->seen;
  if (!push_fn(c)) return;
  lua_pushboolean(c->m->T, 0);
  call_fn(c, 1);
}

static void deliver_raw(qcursor *c, const char *buf, size_t len) {
  lua_State *T = c->m->T;
  if (!push_fn(c)) return;
  if (c->kind == QK_IDS || c->kind == QK_NEW_IDS) {
    qpage_push_ids(T, buf, len);
    call_fn(c, 1);
    return;
  }
  char err[CODEC_ERR_MAX + 128];
  if (qpage_push_items(T, buf, len, err, sizeof err)) {
    lua_pushnil(T);
    lua_pushstring(T, err);
    call_fn(c, 2);
    return;
  }
  call_fn(c, 1);
}

static const char *status_text(int status) { return lore_strerror(status); }

static void adapt_answered(void *ud, int status, const void *reply, size_t len) {
  qadapt *a = ud;
  qcursor *c = a->c;
  if (c) {
    c->areq = NULL;
    if (status) {
      char err[512];
      snprintf(err, sizeof err, "%.*s", len ? (int)len : 0, len ? (const char *)reply : "");
      deliver_error(c, len ? err : status_text(status));
    } else if (len == 0) {
      deliver_raw(c, a->raw, a->len);
    } else {
      lua_State *T = c->m->T;
      char err[CODEC_ERR_MAX];
      int top = lua_gettop(T);
      if (push_fn(c)) {
        if (codec_decode(T, reply, len, err, sizeof err)) {
          lua_pushnil(T);
          lua_pushfstring(T, "adapted page does not decode: %s", err);
          call_fn(c, 2);
        } else {
          call_fn(c, 1);
        }
      }
      lua_settop(T, top);
    }
  }
  free(a->raw);
  free(a);
}

/* A page of events: through a worker's from_journal adapters, or straight. */
static void deliver_page(qcursor *c, qread *r) {
  if (!c->adapt) {
    deliver_raw(c, r->page.buf, r->page.len);
    return;
  }
  qadapt *a = calloc(1, sizeof *a);
  if (!a) {
    deliver_error(c, "out of memory");
    return;
  }
  a->c = c;
  a->raw = r->page.buf; /* the page moves to the request */
  a->len = r->page.len;
  r->page.buf = NULL;
  r->page.len = r->page.cap = 0;
  lore_runtime *lrt = query_runtime(c->qs);
  int rc = host_ask_worker(lrt, query_next_worker(c->qs), WORKER_ADAPT_PAGE, a->raw, a->len,
                           adapt_answered, a);
  if (rc) {
    free(a->raw);
    free(a);
    deliver_error(c, status_text(rc));
    return;
  }
  c->areq = a;
}

/* --- the cursor's steps --- */

static void cursor_read(qcursor *c);

static void cursor_wait(qcursor *c) {
  int sub = query_subscribe(c->qs);
  if (sub < 0) {
    deliver_error(c, status_text(sub));
    return;
  }
  /* Subscribed just now: a commit since the last read began went untold. */
  if (sub == 1 || query_latest(c->qs) > c->seen) {
    cursor_read(c);
    return;
  }
  query_wait_add(c->qs, &c->waiter);
}

static void woken(query_waiter *w, int64_t latest) {
  qcursor *c = (qcursor *)((char *)w - offsetof(qcursor, waiter));
  if (!c->qs) return;
  if (latest > c->seen)
    cursor_read(c);
  else
    query_wait_add(c->qs, w);
}

static void read_done(qjob *j, int status) {
  qread *r = (qread *)j;
  qcursor *c = cursor_of(j);
  if (c) c->job = NULL;
  if (!c || !c->qs) goto out;
  if (status) {
    deliver_error(c, status_text(status));
    goto out;
  }
  qpage *p = &r->page;
  if (r->m0 > c->seen) c->seen = r->m0;
  int first_listing = c->kind == QK_IDS && !c->after_id;
  if (first_listing) c->ids_since = r->m0;
  if (p->read > 0) {
    switch (c->kind) {
      case QK_EVENTS:
        c->next_seq = p->last_seq + 1;
        break;
      case QK_IDS:
        free(c->after_id);
        c->after_id = p->last_id;
        p->last_id = NULL;
        break;
      default:
        c->after = p->last_offset;
        break;
    }
  } else if (c->kind == QK_IDS && first_listing) {
    c->after_id = strdup(""); /* an empty journal: the listing is over */
    if (!c->after_id) {
      deliver_error(c, "out of memory");
      goto out;
    }
  }
  c->at_end = !r->more;
  if (c->kind == QK_EVENTS && (c->next_seq > c->to || c->next_seq <= 0)) {
    c->at_end = 1;
    c->follow = 0; /* the range is done: nothing later belongs to it */
  }
  if (p->kept > 0) {
    deliver_page(c, r);
  } else if (!c->at_end) {
    cursor_read(c); /* a page of hidden events only */
  } else if (c->kind == QK_IDS && c->follow) {
    c->kind = QK_NEW_IDS; /* the listing is done: new ids from here on */
    c->after = c->ids_since;
    c->at_end = 0;
    cursor_read(c);
  } else if (c->follow && c->report_idle && c->seen > c->idle_seen) {
    deliver_idle(c);
  } else if (c->follow) {
    cursor_wait(c);
  } else {
    deliver_end(c);
  }
out:
  qpage_free(&r->page);
  free(r->key);
  free(r);
}

static void cursor_read(qcursor *c) {
  qread *r = calloc(1, sizeof *r);
  const char *key = c->kind == QK_IDS ? c->after_id : c->key;
  if (!r || (key && !(r->key = strdup(key)))) {
    free(r);
    deliver_error(c, "out of memory");
    return;
  }
  qpage_init(&r->page);
  r->c = c;
  r->kind = c->kind;
  r->internal = c->internal;
  r->from = c->next_seq;
  r->to = c->to;
  r->after = c->after;
  r->job.run = read_run;
  r->job.done = read_done;
  int rc = qjob_start(c->qs, &r->job);
  if (rc) {
    free(r->key);
    free(r);
    deliver_error(c, status_text(rc));
    return;
  }
  c->job = r;
}

/* Detaches the cursor from its runtime: no callback reaches it any more. */
static void cursor_detach(qcursor *c) {
  if (!c->qs) return;
  query_wait_remove(c->qs, &c->waiter);
  query_closer_remove(c->qs, &c->closer);
  if (c->job) c->job->c = NULL;
  if (c->areq) c->areq->c = NULL;
  c->job = NULL;
  c->areq = NULL;
  c->qs = NULL;
  c->ended = 1;
}

static void cursor_closed_by_runtime(query_closer *cl) {
  qcursor *c = (qcursor *)((char *)cl - offsetof(qcursor, closer));
  cl->listed = 0;
  c->closer.listed = 0;
  cursor_detach(c);
}

/* --- the Lua side: qcore.cursor, fetch, close --- */

static qcursor *check_cursor(lua_State *L) { return luaL_checkudata(L, 1, CURSOR_MT); }

static int cursor_gc(lua_State *L) {
  qcursor *c = check_cursor(L);
  cursor_detach(c);
  if (c->fn_ref != LUA_NOREF && c->m) luaL_unref(c->m->T, LUA_REGISTRYINDEX, c->fn_ref);
  c->fn_ref = LUA_NOREF;
  free(c->key);
  free(c->after_id);
  c->key = c->after_id = NULL;
  return 0;
}

/* qcore.cursor(kind, key, from, to, follow, internal, report_idle) -> cursor
 * kind: "events" (key: id; from, to: seqs), "tag" (key: tag; from: the
 * first offset), "ids". The runtime must be running. */
static int l_cursor(lua_State *L) {
  qmod *m = qmod_of(L);
  static const char *const kinds[] = {"events", "tag", "ids", NULL};
  int kind = luaL_checkoption(L, 1, NULL, kinds);
  const char *key = kind == QK_IDS ? NULL : luaL_checkstring(L, 2);
  lua_Integer from = luaL_optinteger(L, 3, 0), to = luaL_optinteger(L, 4, LUA_MAXINTEGER);
  int follow = lua_toboolean(L, 5), internal = lua_toboolean(L, 6);
  int report_idle = lua_toboolean(L, 7);
  lore_runtime *lrt = app_runtime(L, m->h);
  query_state *qs = query_state_of(lrt);
  if (!qs) return luaL_error(L, "out of memory");
  if (query_closing(qs)) return luaL_error(L, "%s", lore_strerror(LORE_ESHUTDOWN));
  qcursor *c = lua_newuserdatauv(L, sizeof *c, 0);
  memset(c, 0, sizeof *c);
  c->fn_ref = LUA_NOREF;
  luaL_setmetatable(L, CURSOR_MT);
  if (key && !(c->key = strdup(key))) return luaL_error(L, "out of memory");
  c->m = m;
  c->qs = qs;
  c->kind = kind;
  c->follow = follow;
  c->internal = internal;
  c->report_idle = report_idle;
  c->next_seq = from < 1 ? 1 : from;
  c->to = to;
  c->after = from > 0 ? from - 1 : 0; /* tag: `from` is the first offset wanted */
  c->adapt = kind != QK_IDS && query_adapting(qs);
  c->waiter.wake = woken;
  c->closer.close = cursor_closed_by_runtime;
  query_closer_add(qs, &c->closer);
  return 1;
}

/* qcore.fetch(cursor, fn) -> true: fn(items) later (fn(nil) at the end,
 * fn(nil, err) on an error, fn(false) for a live cursor made with
 * report_idle that reached the end); false: the cursor had ended, fn is not
 * called. */
static int l_fetch(lua_State *L) {
  qcursor *c = check_cursor(L);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  if (c->ended || !c->qs) {
    lua_pushboolean(L, 0);
    return 1;
  }
  if (c->fn_ref != LUA_NOREF || c->job || c->areq || c->waiter.listed)
    return luaL_error(L, "this query is already reading (one step at a time)");
  if (query_closing(c->qs) || (c->at_end && !c->follow)) {
    c->ended = 1; /* the last read came back short: nothing more (no callback) */
    lua_pushboolean(L, 0);
    return 1;
  }
  c->fn_ref = qmod_ref_fn(c->m, L, 2);
  c->in_fetch = 1;
  if (c->at_end)
    cursor_wait(c);
  else
    cursor_read(c);
  c->in_fetch = 0;
  if (c->sync_err) {
    release_fn(c);
    lua_pushstring(L, c->sync_err);
    free(c->sync_err);
    c->sync_err = NULL;
    return lua_error(L);
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* qcore.close(cursor): stops it now (a live query left with `break`). */
static int l_close(lua_State *L) {
  qcursor *c = check_cursor(L);
  cursor_detach(c);
  release_fn(c);
  return 0;
}

/* qcore.position(cursor) -> seen, after, at_end: the journal's highest
 * offset when the last read began, the last offset read (tag) or the next
 * seq (events), and whether that read came back short (then every event up
 * to `seen` has been read). */
static int l_position(lua_State *L) {
  qcursor *c = check_cursor(L);
  lua_pushinteger(L, (lua_Integer)c->seen);
  lua_pushinteger(L, (lua_Integer)(c->kind == QK_EVENTS ? c->next_seq : c->after));
  lua_pushboolean(L, c->at_end);
  return 3;
}

void query_cursor_register(lua_State *L) {
  if (luaL_newmetatable(L, CURSOR_MT)) {
    lua_pushcfunction(L, cursor_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, cursor_gc);
    lua_setfield(L, -2, "__close");
    lua_pushliteral(L, "lore.query_cursor");
    lua_setfield(L, -2, "__name");
  }
  lua_pop(L, 1);
}

void query_cursor_push_calls(lua_State *L) {
  static const luaL_Reg fns[] = {{"cursor", l_cursor},
                                 {"fetch", l_fetch},
                                 {"close", l_close},
                                 {"position", l_position},
                                 {NULL, NULL}};
  lua_pushvalue(L, -2); /* the qmod upvalue under the table */
  luaL_setfuncs(L, fns, 1);
}
