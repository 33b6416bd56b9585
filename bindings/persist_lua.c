/* persist_lua.c: the journal calls runtime.lua makes for persistent actors. */
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "worker.h"
#include "log.h"
#include "entities.h"
#include "lua_actor.h"

/* A replay page holds at most this many events and (past its first event)
 * this many bytes: recovery's memory is bounded by size, not by rows, so a
 * stream of large events does not take gigabytes to recover. */
#define REPLAY_PAGE 4096
#define REPLAY_PAGE_BYTES ((size_t)4 << 20)

#define bs_of worker_bs

/* One request to the journal in flight, in one allocation with its strings;
 * payloads are separate allocations. Made and freed on the worker. */
typedef struct persist_write {
  journal_write w;
  runtime_t *rt;
  lore_addr target;
  uint64_t token;
  uint32_t sub;
  uint32_t incarnation; /* the actor's incarnation that issued it */
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

/* Before the Lua side sees a completion: the I/O ends, and a write of the
 * current incarnation that was stored moves the acknowledged seq. */
void persist_completion(actor_t *a, lore_msg *m) {
  persist_write *p = m->ptr;
  lua_actor *la = actor_persistent(a);
  if (!p || !la) return;
  if (m->sub == SYS_PERSISTED && p->incarnation == la->incarnation && p->w.count > 0) {
    int64_t first = p->ev[0].seq, last = p->ev[p->w.count - 1].seq;
    if (m->ival == 0 && last > la->persisted) la->persisted = last;
    /* Refused before storage: nothing is at these seqs. If no later write has
     * taken a seq after them, they are given back (no hole); otherwise the
     * journal refuses those later writes too, and their failure restarts the
     * actor, which recovers what is stored. */
    if (m->ival == JOURNAL_EREJECTED && la->next_seq == last) la->next_seq = first - 1;
  }
  binding_io_end(a);
}

/* Hands a filled write to the journal for actor a; its outcome comes back as
 * a `sub` system message carrying `token`. Returns 0, or a journal error
 * (the write is freed then). Raises only when out of memory. */
static int submit_write(lua_State *L, actor_t *a, persist_write *p, uint32_t sub,
                        lua_Integer token) {
  binding_state *bs = worker_bs(L);
  lua_actor *la = actor_persistent(a);
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
  p->incarnation = la->incarnation;
  int r = journal_submit(bs->lrt->journal, &p->w);
  if (r) {
    persist_write_free(p);
    return r;
  }
  actor_io_begin(a); /* the actor cannot be freed before the completion arrives */
  return 0;
}

/*
 * core.persist(events, metas, token) -> first_seq, ts | nil, err
 * Persists `events` (a list of Lua values, already through to_journal
 * adapters) atomically for the CURRENT actor, at the seqs after the last one
 * it handed out: the id, the writer and the seqs are this file's, never the
 * caller's. metas: nil, or a parallel list of { manifest=, version=, tags= }
 * (tags joined by "\n"); by default the manifest is the event's `type`,
 * version 1, no tags. An event that cannot be encoded rejects the whole
 * write before storage (nil + a message naming the path); no seq is used.
 */
static int core_persist(lua_State *L) {
  binding_state *bs = bs_of(L);
  lua_actor *la;
  actor_t *a = binding_current_persistent(L, &la);
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_Integer token = luaL_checkinteger(L, 3);
  size_t n = (size_t)lua_rawlen(L, 1);
  persist_write *p = calloc(1, sizeof *p + n * sizeof(journal_event));
  if (!p || !(p->id = strdup(a->name))) {
    free(p);
    return luaL_error(L, "out of memory");
  }
  int64_t first = la->next_seq + 1;
  int64_t ts = binding_now_ms();
  char err[CODEC_ERR_MAX];
  for (size_t i = 0; i < n; i++) {
    journal_event *ev = &p->ev[i];
    p->w.count = i + 1; /* persist_write_free frees what was filled so far */
    lua_rawgeti(L, 1, (lua_Integer)i + 1);
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
    if (lua_type(L, 2) == LUA_TTABLE) {
      if (lua_rawgeti(L, 2, (lua_Integer)i + 1) == LUA_TTABLE) {
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
    ev->seq = first + (int64_t)i;
    ev->writer = la->writer;
    ev->timestamp_ms = ts;
    journal_event_seal(ev);
  }
  p->w.count = n;
  p->w.kind = JOURNAL_WRITE_EVENTS;
  p->w.events = p->ev;
  int r = submit_write(L, a, p, SYS_PERSISTED, token);
  if (r) {
    lua_pushnil(L);
    lua_pushstring(L, journal_strerror(r));
    return 2;
  }
  la->next_seq += (int64_t)n;
  lua_pushinteger(L, first);
  lua_pushinteger(L, ts);
  return 2;
}

/* core.next_seq() -> the seq the current actor's next event would get */
static int core_next_seq(lua_State *L) {
  lua_actor *la;
  binding_current_persistent(L, &la);
  lua_pushinteger(L, la->next_seq + 1);
  return 1;
}

/* core.delete_events(to_seq, token) -> true | nil, err: for the current
 * actor's own stream only, and never above what it has persisted (unless
 * to_seq is math.maxinteger: everything persisted so far). */
static int core_delete_events(lua_State *L) {
  lua_actor *la;
  actor_t *a = binding_current_persistent(L, &la);
  lua_Integer to = luaL_checkinteger(L, 1);
  lua_Integer token = luaL_checkinteger(L, 2);
  if (to == LUA_MAXINTEGER) to = la->persisted;
  if (to > la->persisted) {
    lua_pushnil(L);
    lua_pushfstring(L, "cannot delete up to seq %I: the last persisted seq is %I", to,
                    (lua_Integer)la->persisted);
    return 2;
  }
  if (to < 0) {
    lua_pushnil(L);
    lua_pushliteral(L, "cannot delete up to a negative seq");
    return 2;
  }
  persist_write *p = calloc(1, sizeof *p);
  if (!p || !(p->id = strdup(a->name))) {
    free(p);
    return luaL_error(L, "out of memory");
  }
  p->w.kind = JOURNAL_WRITE_DELETE;
  p->w.id = p->id;
  p->w.seq = to;
  int r = submit_write(L, a, p, SYS_DELETED, token);
  if (r) {
    lua_pushnil(L);
    lua_pushstring(L, journal_strerror(r));
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* core.write_seq(mptr) -> for a delete's completion, the seq it deleted up to */
static int core_write_seq(lua_State *L) {
  lore_msg *m = lua_touserdata(L, 1);
  persist_write *p = m ? m->ptr : NULL;
  luaL_argcheck(L, p != NULL, 1, "not a journal completion");
  lua_pushinteger(L, p->w.kind == JOURNAL_WRITE_DELETE ? p->w.seq : 0);
  return 1;
}

/* core.new_incarnation(): the actor (re)starts its recovery: a new writer
 * id, and completions of earlier incarnations no longer count. */
static int core_new_incarnation(lua_State *L) {
  lua_actor *la;
  binding_current_persistent(L, &la);
  la->incarnation++;
  uint64_t w = 0;
  while (w == 0) {
    if (uv_random(NULL, NULL, &w, sizeof w, 0, NULL) != 0) w = (uint64_t)rand() << 32 | (uint64_t)rand();
  }
  la->writer = (int64_t)(w >> 1);
  la->next_seq = la->persisted = 0;
  return 0;
}

/* core.abandon_incarnation(): a failure: nothing more is written by this
 * incarnation (the next one recovers what was stored). */
static int core_abandon_incarnation(lua_State *L) {
  lua_actor *la;
  binding_current_persistent(L, &la);
  la->incarnation++;
  return 0;
}

/* core.recovered(seq): recovery ended at `seq` (the journal's highest). */
static int core_recovered(lua_State *L) {
  lua_actor *la;
  binding_current_persistent(L, &la);
  lua_Integer seq = luaL_checkinteger(L, 1);
  la->next_seq = la->persisted = seq;
  /* An entity that woke up: what waited for its recovery. */
  entity_manager *em = la->manager ? entities_manager(bs_of(L)->lrt, (int)la->manager - 1) : NULL;
  if (em) __atomic_add_fetch(&em->held, (int64_t)la->actor->mailbox.count, __ATOMIC_RELAXED);
  return 0;
}

/* core.io_pending() -> the current actor's I/O in flight; when some is, the
 * actor gets SYS_IO_IDLE once it has all completed. */
static int core_io_pending(lua_State *L) {
  lua_actor *la;
  actor_t *a = binding_current_persistent(L, &la);
  la->want_io_idle = a->pending_io > 0;
  lua_pushinteger(L, (lua_Integer)a->pending_io);
  return 1;
}

/* --- leases: one writer per id across processes (journals that have them) --- */

/* The subtype of a lease's completion. Kept here, out of lua_actor.h's list
 * and well above it, so that the two never collide; persistent.lua reads it
 * as core.SYS_LEASED. */
#define SYS_LEASED 64

/* Only a journal several processes share has leases: elsewhere one process
 * owns the journal, and the lease would be a round trip through the writer
 * for nothing. */
static int journal_has_leases(journal_t *j) { return strcmp(journal_scheme(j), "postgres") == 0; }

/* core.lease(token) -> true: granted (a journal without leases); false: the
 * current actor's LEASE is on its way to the journal, and its outcome comes
 * back as a SYS_LEASED system message (core.lease_result). */
static int core_lease(lua_State *L) {
  binding_state *bs = bs_of(L);
  lua_actor *la;
  actor_t *a = binding_current_persistent(L, &la);
  lua_Integer token = luaL_checkinteger(L, 1);
  if (!journal_has_leases(bs->lrt->journal)) {
    lua_pushboolean(L, 1);
    return 1;
  }
  persist_write *p = calloc(1, sizeof *p);
  if (!p || !(p->id = strdup(a->name))) {
    free(p);
    return luaL_error(L, "out of memory");
  }
  p->w.kind = JOURNAL_WRITE_LEASE;
  p->w.id = p->id;
  p->w.seq = 0; /* held elsewhere: refused at once, not waited for */
  int r = submit_write(L, a, p, SYS_LEASED, token);
  if (r) return luaL_error(L, "cannot take the lease on %s: %s", a->name, journal_strerror(r));
  lua_pushboolean(L, 0);
  return 1;
}

/* core.lease_result(mptr) -> nil (the current actor holds its id) | err,
 * storage (true when the journal failed rather than another process holding
 * the id: worth trying again). Ends the lease's I/O. */
static int core_lease_result(lua_State *L) {
  lua_actor *la;
  actor_t *a = binding_current_persistent(L, &la);
  lore_msg *m = lua_touserdata(L, 1);
  persist_write *p = m ? m->ptr : NULL;
  luaL_argcheck(L, p != NULL && p->w.kind == JOURNAL_WRITE_LEASE, 1, "not a lease's completion");
  binding_io_end(a);
  if (m->ival == 0) return 0;
  if (m->ival == JOURNAL_ELOCKED)
    lua_pushfstring(L, "id %s is held by another process", a->name);
  else
    lua_pushfstring(L, "cannot take the lease on id %s: %s", a->name, journal_strerror(m->ival));
  lua_pushboolean(L, m->ival != JOURNAL_ELOCKED && m->ival != JOURNAL_EREJECTED);
  return 2;
}

static void unlease_done(journal_write *w, int status) {
  (void)status;
  free(w);
}

/* core.unlease(id): gives the lease on `id` back (the actor that held it has
 * stopped). Nothing to wait for: a failure leaves the lock to the end of the
 * journal's session. */
static int core_unlease(lua_State *L) {
  binding_state *bs = bs_of(L);
  size_t len;
  const char *id = luaL_checklstring(L, 1, &len);
  if (!bs->lrt->journal || !journal_has_leases(bs->lrt->journal)) return 0;
  journal_write *w = calloc(1, sizeof *w + len + 1);
  if (!w) return luaL_error(L, "out of memory");
  char *copy = (char *)(w + 1);
  memcpy(copy, id, len + 1);
  w->kind = JOURNAL_WRITE_UNLEASE;
  w->id = copy;
  w->done = unlease_done;
  if (journal_submit(bs->lrt->journal, w) != 0) free(w);
  return 0;
}

/* --- recovery permits: at most max_concurrent_recoveries in the process --- */

/* Takes a permit for the current actor, or queues it (it gets
 * SYS_RECOVERY_PERMIT when one frees up). Returns whether it got one now. */
static int core_recovery_acquire(lua_State *L) {
  binding_state *bs = bs_of(L);
  lua_actor *la;
  actor_t *a = binding_current_persistent(L, &la);
  lore_runtime *lrt = bs->lrt;
  int got = 0;
  uv_mutex_lock(&lrt->permit_lock);
  if (lrt->permits_used < lrt->cfg.max_concurrent_recoveries) {
    lrt->permits_used++;
    if (lrt->permits_used > lrt->permits_peak) lrt->permits_peak = lrt->permits_used;
    got = 1;
  } else {
    permit_waiter *w = malloc(sizeof *w);
    if (w) {
      w->addr.sched = a->sched->index;
      w->addr.aid = a->aid;
      w->next = NULL;
      if (lrt->permit_tail)
        lrt->permit_tail->next = w;
      else
        lrt->permit_head = w;
      lrt->permit_tail = w;
    } else { /* out of memory: recover anyway rather than never */
      lrt->permits_used++;
      got = 1;
    }
  }
  uv_mutex_unlock(&lrt->permit_lock);
  la->has_permit = got;
  lua_pushboolean(L, got);
  return 1;
}

/* Gives a permit back: to the first waiting actor (it travels with the
 * message), or to the pool. */
void recovery_permit_release(lore_runtime *lrt) {
  uv_mutex_lock(&lrt->permit_lock);
  permit_waiter *w = lrt->permit_head;
  if (w) {
    lrt->permit_head = w->next;
    if (!lrt->permit_head) lrt->permit_tail = NULL;
  } else if (lrt->permits_used > 0) {
    lrt->permits_used--;
  }
  uv_mutex_unlock(&lrt->permit_lock);
  if (!w) return;
  lore_msg *m = msg_new(MSG_SYSTEM, NULL, 0, NULL, 0);
  if (m) {
    m->sub = SYS_RECOVERY_PERMIT;
    m->target = w->addr;
    runtime_send(lrt->rt, m);
  } else {
    uv_mutex_lock(&lrt->permit_lock);
    lrt->permits_used--;
    uv_mutex_unlock(&lrt->permit_lock);
  }
  free(w);
}

/* An actor that stops while waiting gives up its place. */
void recovery_permit_forget(lore_runtime *lrt, actor_t *a) {
  uv_mutex_lock(&lrt->permit_lock);
  permit_waiter **pp = &lrt->permit_head, *prev = NULL;
  while (*pp) {
    permit_waiter *w = *pp;
    if (w->addr.sched == a->sched->index && w->addr.aid == a->aid) {
      *pp = w->next;
      if (lrt->permit_tail == w) lrt->permit_tail = prev;
      free(w);
      break;
    }
    prev = w;
    pp = &w->next;
  }
  uv_mutex_unlock(&lrt->permit_lock);
}

static int core_recovery_release(lua_State *L) {
  binding_state *bs = bs_of(L);
  lua_actor *la;
  binding_current_persistent(L, &la);
  la->has_permit = 0;
  recovery_permit_release(bs->lrt);
  return 0;
}

/* --- replay: pages read on libuv's thread pool --- */

/* A page travels to the actor inside a MSG_SYSTEM's data: a header, then
 * records, each a rec_hdr followed by manifest, tags and payload. */
typedef struct page_hdr {
  int64_t highest;
  int64_t deleted_to; /* events 1..deleted_to were deleted (bounds, first page only) */
  int64_t count;
  int64_t last_seq;
  int32_t status;
  int32_t more; /* the page was full: ask for the next one */
} page_hdr;

typedef struct rec_hdr {
  int64_t seq, ts, offset, writer;
  int32_t version;
  uint32_t manifest_len, tags_len, payload_len;
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
  int full; /* stopped at REPLAY_PAGE_BYTES */
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
  rec_hdr h = {ev->seq,
               ev->timestamp_ms,
               ev->offset,
               ev->writer,
               ev->version,
               (uint32_t)strlen(ev->manifest ? ev->manifest : ""),
               (uint32_t)strlen(ev->tags ? ev->tags : ""),
               (uint32_t)ev->payload_len};
  buf_put(r, &h, sizeof h);
  buf_put(r, ev->manifest ? ev->manifest : "", h.manifest_len);
  buf_put(r, ev->tags ? ev->tags : "", h.tags_len);
  buf_put(r, ev->payload, h.payload_len);
  r->hdr.count++;
  r->hdr.last_seq = ev->seq;
  if (r->len >= REPLAY_PAGE_BYTES) r->full = 1;
  return r->oom || r->full;
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
    r->hdr.deleted_to = b.deleted_to;
  }
  int64_t page = r->max >= 0 && r->max < REPLAY_PAGE ? r->max : REPLAY_PAGE;
  if (st == 0 && page > 0)
    st = journal_replay(r->lrt->journal, r->id, r->from, r->to, page, collect, r);
  if (r->oom) st = JOURNAL_ENOMEM;
  r->hdr.status = st;
  r->hdr.more = st == 0 && page > 0 &&
                ((r->hdr.count == page && (r->max < 0 || r->max > page)) ||
                 (r->full && (r->max < 0 || r->max > r->hdr.count)));
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
    binding_io_end(a);
  }
  free(r->buf);
  free(r->id);
  free(r);
}

/* core.replay(from, to, max, token, want_highest): reads one page of the
 * current actor's own stream off-thread; it arrives as a SYS_PAGE system
 * message. */
static int core_replay(lua_State *L) {
  binding_state *bs = bs_of(L);
  lua_actor *la;
  actor_t *a = binding_current_persistent(L, &la);
  replay_req *r = calloc(1, sizeof *r);
  if (!r || !(r->id = strdup(a->name))) {
    free(r);
    return luaL_error(L, "out of memory");
  }
  r->from = luaL_checkinteger(L, 1);
  r->to = luaL_checkinteger(L, 2);
  r->max = luaL_checkinteger(L, 3);
  r->token = (uint64_t)luaL_checkinteger(L, 4);
  r->want_highest = lua_toboolean(L, 5);
  r->lrt = bs->lrt;
  r->sched = bs->sched;
  r->aid = a->aid;
  r->work.data = r;
  int rc = uv_queue_work(bs->sched->loop, &r->work, replay_work, replay_after);
  if (rc) {
    free(r->id);
    free(r);
    return luaL_error(L, "cannot queue a replay: %s", uv_strerror(rc));
  }
  actor_io_begin(a);
  return 0;
}

/* core.page_info(mptr) -> status, highest, count, last_seq, more, deleted_to */
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
  lua_pushinteger(L, h.deleted_to);
  return 6;
}

/* core.page_each(mptr, fn [, want_meta]): calls fn(seq, evt) -- or, with
 * want_meta, fn(seq, evt, manifest, version, tags, ts, offset) -- for each
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
    size_t total = (size_t)h.manifest_len + h.tags_len + h.payload_len;
    if (off + total > m->len) return luaL_error(L, "replay page is truncated");
    lua_pushvalue(L, 2);
    lua_pushinteger(L, h.seq);
    const char *payload = p + h.manifest_len + h.tags_len;
    if (codec_decode(L, payload, h.payload_len, err, sizeof err))
      return luaL_error(L, "decode error at seq %I: %s", (lua_Integer)h.seq, err);
    if (want_meta) {
      lua_pushlstring(L, p, h.manifest_len);
      lua_pushinteger(L, h.version);
      lua_pushlstring(L, p + h.manifest_len, h.tags_len);
      lua_pushinteger(L, h.ts);
      lua_pushinteger(L, h.offset);
    }
    lua_call(L, want_meta ? 7 : 2, 0);
    off += total;
  }
  return 0;
}

/* core.strerror(code) -> the message of a journal, snapshot store or libuv code */
static int core_strerror(lua_State *L) {
  lua_pushstring(L, binding_strerror((int)luaL_checkinteger(L, 1)));
  return 1;
}

static int core_config(lua_State *L) {
  binding_state *bs = bs_of(L);
  lore_settings *c = &bs->lrt->cfg;
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
                                 {"next_seq", core_next_seq},
                                 {"write_seq", core_write_seq},
                                 {"new_incarnation", core_new_incarnation},
                                 {"abandon_incarnation", core_abandon_incarnation},
                                 {"recovered", core_recovered},
                                 {"io_pending", core_io_pending},
                                 {"recovery_acquire", core_recovery_acquire},
                                 {"recovery_release", core_recovery_release},
                                 {"replay", core_replay},
                                 {"page_info", core_page_info},
                                 {"page_each", core_page_each},
                                 {"strerror", core_strerror},
                                 {"config", core_config},
                                 {"lease", core_lease},
                                 {"lease_result", core_lease_result},
                                 {"unlease", core_unlease},
                                 {NULL, NULL}};
  luaL_setfuncs(L, fns, 0);
  lua_pushinteger(L, SYS_LEASED);
  lua_setfield(L, -2, "SYS_LEASED");
  lua_pushinteger(L, JOURNAL_EFENCED);
  lua_setfield(L, -2, "JOURNAL_EFENCED");
  return 0;
}
