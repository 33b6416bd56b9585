/* persist_lua.c: the journal calls runtime.lua makes for persistent actors. */
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "entities.h"
#include "log.h"
#include "lua_actor.h"
#include "worker.h"

#define bs_of worker_bs

/* One request to the journal in flight. It lives inside the message that
 * carries its outcome back to the actor (lore_msg.data), with its id and its
 * events' payloads, manifests and tags after it: one allocation per persist,
 * made and freed on the worker (freeing on the writer thread made the two
 * threads fight over malloc's arena lock). */
typedef struct persist_write {
  journal_write w;
  runtime_t *rt;
  lore_addr target;
  uint64_t token;
  uint32_t sub;
  uint32_t incarnation; /* the actor's incarnation that issued it */
  lore_msg *msg;        /* the message this write lives in */
  char *id;
  journal_event ev[];
} persist_write;

/* An event encoded into the worker's buffer, not yet copied into its write. */
typedef struct pending_event {
  size_t off, len;      /* payload bytes in bs->buf */
  const char *manifest; /* a Lua string, alive while the event is on the stack */
  size_t manifest_len;
  const char *tags;
  size_t tags_len;
  int32_t version;
} pending_event;

/* Allocates the message and the write in it, with room for `extra` bytes
 * after `n` events. NULL when out of memory. */
static persist_write *persist_write_new(size_t n, size_t extra) {
  size_t head = sizeof(persist_write) + n * sizeof(journal_event);
  head = (head + 7) & ~(size_t)7;
  lore_msg *m = msg_new(MSG_SYSTEM, NULL, head + extra, NULL, 0);
  if (!m) return NULL;
  persist_write *p = (persist_write *)(void *)m->data;
  memset(p, 0, head);
  p->msg = m;
  m->ptr = p;
  return p;
}

static void persist_write_free(persist_write *p) { msg_free(p->msg); }

/* A write with no events (a delete, a lease) for actor a's id, copied in. */
static persist_write *persist_write_of_id(actor_t *a) {
  size_t id_len = strlen(actor_name(a));
  persist_write *p = persist_write_new(0, id_len + 1);
  if (!p) return NULL;
  p->id = (char *)p->msg->data + ((sizeof(persist_write) + 7) & ~(size_t)7);
  memcpy(p->id, actor_name(a), id_len + 1);
  return p;
}

/* The outcomes of the writer thread's current batch, handed on together by
 * persist_completions_flush once its callbacks are done: one inbox push and
 * at most one wake-up per worker a batch, where a push each made a worker
 * wake for its first completion or two and then again for the rest. Only
 * the writer thread touches them (one writer per journal, one journal per
 * runtime). */
static _Thread_local msg_queue completions;
static _Thread_local runtime_t *completions_rt;

void persist_completions_flush(void *ud) {
  (void)ud;
  if (completions_rt) runtime_send_all(completions_rt, &completions);
  completions_rt = NULL;
}

static int64_t writer_id(binding_state *bs, const actor_t *a, const lua_actor *la);

/* On the journal's writer thread: post the outcome to the actor. */
static void persist_write_done(journal_write *w, int status) {
  persist_write *p = w->data;
  __atomic_sub_fetch(&p->rt->scheds[p->target.sched]->inbox_io, 1, __ATOMIC_RELAXED);
  lore_msg *m = p->msg;
  m->sub = p->sub;
  m->ival = status;
  m->corr = p->token;
  m->target = p->target;
  if (completions_rt != p->rt) persist_completions_flush(NULL);
  completions_rt = p->rt;
  msg_queue_push(&completions, m);
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

/* The first seq and the timestamp of a completed events write (0, 0 for others). */
void persist_written(lore_msg *m, int64_t *first, int64_t *ts) {
  persist_write *p = m->ptr;
  *first = *ts = 0;
  if (p && p->w.kind == JOURNAL_WRITE_EVENTS && p->w.count > 0) {
    *first = p->ev[0].seq;
    *ts = p->ev[0].timestamp_ms;
  }
}

/* Hands a filled write to the journal for actor a; its outcome comes back as
 * a `sub` system message carrying `token`. Returns 0, or a journal error
 * (the write is freed then). */
static int submit_write(binding_state *bs, actor_t *a, persist_write *p, uint32_t sub,
                        lua_Integer token) {
  lua_actor *la = actor_persistent(a);
  p->w.done = persist_write_done;
  p->w.data = p;
  p->rt = bs->sched->rt;
  p->target.sched = bs->sched->index;
  p->target.aid = a->aid;
  p->token = (uint64_t)token;
  p->sub = sub;
  p->incarnation = la->incarnation;
  __atomic_add_fetch(&bs->sched->inbox_io, 1, __ATOMIC_RELAXED); /* before the writer can end it */
  int r = journal_submit(bs->lrt->journal, &p->w);
  if (r) {
    __atomic_sub_fetch(&bs->sched->inbox_io, 1, __ATOMIC_RELAXED);
    persist_write_free(p);
    return r;
  }
  actor_io_begin(a); /* the actor cannot be freed before the completion arrives */
  return 0;
}

/* Grows the worker's scratch list of pending events to hold n. */
static pending_event *scratch_events(lua_State *L, binding_state *bs, size_t n) {
  if (n > bs->pending_cap) {
    size_t cap = bs->pending_cap ? bs->pending_cap : 16;
    while (cap < n) cap *= 2;
    pending_event *grown = realloc(bs->pending, cap * sizeof *grown);
    if (!grown) luaL_error(L, "out of memory");
    bs->pending = grown;
    bs->pending_cap = cap;
  }
  return bs->pending;
}

/* Encodes the event at the top of the stack (popped, with everything read
 * here) into bs->buf as pe; reads its manifest (its `type`, raw) and the
 * metadata at stack index `metas` (a list of { manifest=, version=, tags= },
 * or 0). The strings pe points to stay alive after the pops: the tables in
 * core.persist's arguments hold them. Returns 0, or nonzero with err set. */
static int encode_event(lua_State *L, binding_state *bs, pending_event *pe, size_t i, size_t n,
                        int metas, char *err, size_t errlen) {
  int top = lua_gettop(L) - 1;
  char root[32];
  snprintf(root, sizeof root, n > 1 ? "event[%zu]" : "event", i + 1);
  pe->off = bs->buf.size;
  pe->manifest = pe->tags = NULL;
  pe->manifest_len = pe->tags_len = 0;
  pe->version = 1;
  int internal = 0; /* only the runtime's Lua marks its own events so */
  if (codec_encode(L, -1, root, &bs->buf, err, errlen)) {
    lua_settop(L, top);
    return 1;
  }
  pe->len = bs->buf.size - pe->off;
  if (lua_type(L, -1) == LUA_TTABLE) {
    lua_pushliteral(L, "type");
    if (lua_rawget(L, -2) == LUA_TSTRING && lua_rawlen(L, -1) > 0)
      pe->manifest = lua_tolstring(L, -1, &pe->manifest_len);
  }
  if (metas && lua_rawgeti(L, metas, (lua_Integer)i + 1) == LUA_TTABLE) {
    int mt = lua_gettop(L);
    if (lua_getfield(L, mt, "manifest") == LUA_TSTRING)
      pe->manifest = lua_tolstring(L, -1, &pe->manifest_len);
    if (lua_getfield(L, mt, "tags") == LUA_TSTRING) pe->tags = lua_tolstring(L, -1, &pe->tags_len);
    if (lua_getfield(L, mt, "version") == LUA_TNUMBER && lua_isinteger(L, -1))
      pe->version = (int32_t)lua_tointeger(L, -1);
    if (lua_getfield(L, mt, "internal") == LUA_TBOOLEAN) internal = lua_toboolean(L, -1);
  }
  if (!internal && pe->manifest && manifest_is_internal(pe->manifest, pe->manifest_len)) {
    snprintf(err, errlen, "%s: the event type '%s' is reserved for Lore's own events (\"%s...\")",
             root, pe->manifest, INTERNAL_MANIFEST_PREFIX);
    lua_settop(L, top);
    return 1;
  }
  lua_settop(L, top);
  return 0;
}

/*
 * core.persist(events, metas, token [, single]) -> first_seq, ts | nil, err
 * Persists `events` (a list of Lua values, already through to_journal
 * adapters; with `single`, arg 1 is one event itself) atomically for the
 * CURRENT actor, at the seqs after the last one it handed out: the id, the
 * writer and the seqs are this file's, never the caller's. metas: nil, or a
 * parallel list of { manifest=, version=, tags= } (tags joined by "\n"); by
 * default the manifest is the event's `type`, version 1, no tags. An event
 * that cannot be encoded rejects the whole write before storage (nil + a
 * message naming the path); no seq is used. So does an event whose manifest
 * is one of Lore's own ("lore.*") unless its meta says internal = true (only
 * the runtime's Lua writes those).
 */
static int core_persist(lua_State *L) {
  binding_state *bs = bs_of(L);
  lua_actor *la;
  actor_t *a = binding_current_persistent(L, &la);
  lua_Integer token = luaL_checkinteger(L, 3);
  int single = lua_toboolean(L, 4);
  if (!single) luaL_checktype(L, 1, LUA_TTABLE);
  int metas = lua_type(L, 2) == LUA_TTABLE ? 2 : 0;
  size_t n = single ? 1 : (size_t)lua_rawlen(L, 1);
  pending_event *pe = scratch_events(L, bs, n);
  char err[CODEC_ERR_MAX];
  bs->buf.size = 0;
  size_t id_len = strlen(actor_name(a)), extra = id_len + 1;
  int base = lua_gettop(L);
  for (size_t i = 0; i < n; i++) {
    if (single)
      lua_pushvalue(L, 1);
    else
      lua_rawgeti(L, 1, (lua_Integer)i + 1);
    if (encode_event(L, bs, &pe[i], i, n, metas, err, sizeof err)) {
      bs->buf.size = 0;
      lua_settop(L, base);
      lua_pushnil(L);
      lua_pushstring(L, err);
      return 2;
    }
    extra += pe[i].len + pe[i].manifest_len + 1 + pe[i].tags_len + 1;
  }
  persist_write *p = persist_write_new(n, extra);
  if (!p) {
    bs->buf.size = 0;
    return luaL_error(L, "out of memory");
  }
  char *at = (char *)p->msg->data +
             (((sizeof(persist_write) + n * sizeof(journal_event)) + 7) & ~(size_t)7);
  p->id = at;
  memcpy(at, actor_name(a), id_len + 1);
  at += id_len + 1;
  int64_t first = la->next_seq + 1;
  int64_t ts = binding_now_ms();
  int64_t writer = writer_id(bs, a, la);
  for (size_t i = 0; i < n; i++) {
    journal_event *ev = &p->ev[i];
    ev->payload = at;
    ev->payload_len = pe[i].len;
    memcpy(at, bs->buf.data + pe[i].off, pe[i].len);
    at += pe[i].len;
    ev->manifest = at;
    if (pe[i].manifest_len) memcpy(at, pe[i].manifest, pe[i].manifest_len);
    at[pe[i].manifest_len] = '\0';
    at += pe[i].manifest_len + 1;
    ev->tags = at;
    if (pe[i].tags_len) memcpy(at, pe[i].tags, pe[i].tags_len);
    at[pe[i].tags_len] = '\0';
    at += pe[i].tags_len + 1;
    ev->version = pe[i].version;
    ev->id = p->id;
    ev->seq = first + (int64_t)i;
    ev->writer = writer;
    ev->timestamp_ms = ts;
    journal_event_seal(ev);
  }
  bs->buf.size = 0;
  lua_settop(L, base);
  p->w.count = n;
  p->w.kind = JOURNAL_WRITE_EVENTS;
  p->w.events = p->ev;
  int r = submit_write(bs, a, p, SYS_PERSISTED, token);
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
  persist_write *p = persist_write_of_id(a);
  if (!p) return luaL_error(L, "out of memory");
  p->w.kind = JOURNAL_WRITE_DELETE;
  p->w.id = p->id;
  p->w.seq = to;
  int r = submit_write(bs_of(L), a, p, SYS_DELETED, token);
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

/* A writer id: nonzero, 63 bits, one per incarnation, never stored: it is
 * splitmix64's output for (the worker's seed + (aid << 24 | incarnation) x
 * its odd constant). The seed is drawn once per worker from the system's
 * random source (a system call per recovery was a visible part of waking
 * many actors), so ids of other processes, runtimes and workers differ as
 * random draws do. Within one worker, aids are never reused (a runtime-wide
 * counter) and an actor's incarnation changes at each (re)start, so the
 * input differs for every incarnation, and splitmix64's finalizer is a
 * bijection: two incarnations share an id only through the dropped low bit
 * (odds of 2^-63 a pair, as with random ids), or after 2^24 restarts of one
 * actor (when its incarnation wraps; a write that old is long settled), or
 * past 2^40 aids. Deriving it keeps a persistent actor's C side at 32 bytes. */
static int64_t writer_id(binding_state *bs, const actor_t *a, const lua_actor *la) {
  if (!bs->writer_seed) {
    uint64_t seed = 0;
    if (uv_random(NULL, NULL, &seed, sizeof seed, 0, NULL) != 0)
      seed = (uint64_t)uv_hrtime() ^ ((uint64_t)(uintptr_t)bs << 17);
    bs->writer_seed = seed | 1;
  }
  uint64_t z = bs->writer_seed + ((a->aid << 24) | la->incarnation) * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return (int64_t)(z >> 1 ? z >> 1 : 1);
}

/* core.new_incarnation(): the actor (re)starts its recovery: a new writer
 * id (writer_id derives it from the incarnation), and completions of earlier
 * incarnations no longer count. */
static void new_incarnation(lua_actor *la) {
  la->incarnation++;
  la->next_seq = la->persisted = 0;
}

static int core_new_incarnation(lua_State *L) {
  lua_actor *la;
  binding_current_persistent(L, &la);
  new_incarnation(la);
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

/* core.recovered(seq, deadline, permit): recovery ended at `seq` (the
 * journal's highest); its deadline goes (`deadline`: one is armed) and its
 * permit is given back (`permit`: it holds one). One call where a recovery's
 * end made three. */
static int core_recovered(lua_State *L) {
  binding_state *bs = bs_of(L);
  lua_actor *la;
  actor_t *a = binding_current_persistent(L, &la);
  lua_Integer seq = luaL_checkinteger(L, 1);
  la->next_seq = la->persisted = seq;
  if (lua_toboolean(L, 2)) recovery_deadline_drop(bs, a->aid);
  if (lua_toboolean(L, 3)) {
    la->has_permit = 0;
    recovery_permit_release(bs->lrt);
  }
  /* An entity that woke up: what waited for its recovery. */
  int64_t manager = lua_actor_manager(la);
  entity_manager *em = manager ? entities_manager(bs_of(L)->lrt, (int)manager - 1) : NULL;
  if (em) __atomic_add_fetch(&em->held, (int64_t)a->mailbox.count, __ATOMIC_RELAXED);
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
static int lease(lua_State *L, binding_state *bs, actor_t *a, lua_Integer token) {
  if (!journal_has_leases(bs->lrt->journal)) return 1;
  persist_write *p = persist_write_of_id(a);
  if (!p) return luaL_error(L, "out of memory");
  p->w.kind = JOURNAL_WRITE_LEASE;
  p->w.id = p->id;
  p->w.seq = 0; /* held elsewhere: refused at once, not waited for */
  int r = submit_write(bs, a, p, SYS_LEASED, token);
  if (r)
    return luaL_error(L, "cannot take the lease on %s: %s", actor_name(a), journal_strerror(r));
  return 0;
}

static int core_lease(lua_State *L) {
  lua_actor *la;
  actor_t *a = binding_current_persistent(L, &la);
  lua_pushboolean(L, lease(L, bs_of(L), a, luaL_checkinteger(L, 1)));
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
    lua_pushfstring(L, "id %s is held by another process", actor_name(a));
  else
    lua_pushfstring(L, "cannot take the lease on id %s: %s", actor_name(a),
                    journal_strerror(m->ival));
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
static int permit_acquire(lore_runtime *lrt, actor_t *a, lua_actor *la) {
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
  return got;
}

static int core_recovery_acquire(lua_State *L) {
  lua_actor *la;
  actor_t *a = binding_current_persistent(L, &la);
  lua_pushboolean(L, permit_acquire(bs_of(L)->lrt, a, la));
  return 1;
}

/* What core.recovery_start did: */
#define START_PERMIT 1  /* took a permit: the recovery begins now */
#define START_QUEUED 2  /* queued for a permit (SYS_RECOVERY_PERMIT) */
#define START_LEASING 3 /* the id's lease is on its way (SYS_LEASED) */
#define START_WAITING 4 /* asked for its lease already: SYS_LEASED goes on */

/* core.recovery_start(hold, lease) -> START_*: the current actor (re)starts
 * its recovery: a new incarnation (core.new_incarnation), its mailbox held
 * (core.hold, when `hold`), then by `lease`: -1, its lease was asked for
 * already; 0, it holds its lease; a token, it asks for its lease
 * (core.lease) with that token; and once it holds it, a recovery permit
 * (core.recovery_acquire). One call where a recovery's start made four. */
static int core_recovery_start(lua_State *L) {
  binding_state *bs = bs_of(L);
  lua_actor *la;
  actor_t *a = binding_current_persistent(L, &la);
  int hold = lua_toboolean(L, 1);
  lua_Integer token = luaL_checkinteger(L, 2);
  new_incarnation(la);
  if (hold) actor_hold(a);
  int r = START_WAITING;
  if (token >= 0) {
    if (token > 0 && !lease(L, bs, a, token))
      r = START_LEASING;
    else
      r = permit_acquire(bs->lrt, a, la) ? START_PERMIT : START_QUEUED;
  }
  lua_pushinteger(L, r);
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
                                 {"recovery_start", core_recovery_start},
                                 {"recovery_release", core_recovery_release},
                                 {"strerror", core_strerror},
                                 {"config", core_config},
                                 {"lease", core_lease},
                                 {"lease_result", core_lease_result},
                                 {"unlease", core_unlease},
                                 {NULL, NULL}};
  luaL_setfuncs(L, fns, 0);
  lua_pushinteger(L, SYS_LEASED);
  lua_setfield(L, -2, "SYS_LEASED");
  lua_pushinteger(L, START_PERMIT);
  lua_setfield(L, -2, "START_PERMIT");
  lua_pushinteger(L, START_LEASING);
  lua_setfield(L, -2, "START_LEASING");
  lua_pushinteger(L, JOURNAL_EFENCED);
  lua_setfield(L, -2, "JOURNAL_EFENCED");
  return 0;
}
