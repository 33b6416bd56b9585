/* recovery_lua.c: what a persistent actor reads when it recovers: replay
 * pages of its stream, and the first step of a recovery (its snapshot, the
 * stream's bounds and the first page after the snapshot), read for many
 * actors at once on libuv's thread pool. */
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "codec_page.h"
#include "log.h"
#include "lua_actor.h"
#include "worker.h"

#define bs_of worker_bs

/* A replay page holds at most this many events and (past its first event)
 * this many bytes: recovery's memory is bounded by size, not by rows, so a
 * stream of large events does not take gigabytes to recover. */
#define REPLAY_PAGE 16384
#define REPLAY_PAGE_BYTES ((size_t)4 << 20)

/* Reading a page (pool thread) overlaps applying the one before (worker), so
 * a recovery costs about its reads plus what neither overlaps: the first
 * page's read and the last page's apply, and a hand-off per page (the page
 * through the loop to the actor, the next read to a pool thread: ~80 us on
 * an idle machine, a few percent of a long replay at 4,096 events a page).
 * The first page of a long stream is therefore small, each next page at
 * most REPLAY_RAMP times the one before (its read, a little slower per event
 * than the apply it overlaps, then keeps the worker busy), and the pages
 * shrink (by half) toward the end the bounds announced. A stream with at
 * most REPLAY_TAIL events left is read in one page, asked one event larger
 * than needed: a page that comes back short ends the replay without a
 * round trip for an empty page. */
#define REPLAY_FIRST_PAGE 256
#define REPLAY_RAMP(n) ((n) + (n) / 4)
#define REPLAY_TAIL 512

/* Room a page's buffer starts with per event asked for (a record header and a
 * small event): a long page then never grows (and copies itself) as it fills. */
#define PAGE_BYTES_PER_EVENT 96

/* Recoveries that begin while a batch is still waiting for a pool thread join
 * it (at most this many): one job, one wake-up, for many actors. A batch is
 * queued to the pool at the end of the worker's loop iteration, not by the
 * first recovery of a turn: a pool thread woken at once would take it with
 * one or two actors in it, and every wake-up costs a futex round trip. A
 * batch that fills up goes at once: a burst of spawns (hundreds in a turn,
 * then their permits handed on one by one) would otherwise leave the pool
 * idle until the worker had run every turn of the burst, and the worker idle
 * while the pool then read all of it. */
#define RECOVER_BATCH_MAX 64

/* A page travels to the actor inside a MSG_SYSTEM's data: a header, then
 * records, each a rec_hdr followed by manifest, tags and payload. */
typedef struct page_hdr {
  int64_t highest;
  int64_t deleted_to; /* events 1..deleted_to were deleted (bounds, first page only) */
  int64_t count;
  int64_t last_seq;
  int32_t status;
  int32_t more; /* the page was full: ask for the next one */
  int32_t lean; /* read by journal_replay_lean: no version, tags, writer, offset */
  uint32_t cap; /* bytes of the buffer after the message header (recovery_keep_page) */
} page_hdr;

typedef struct rec_hdr {
  int64_t seq, ts, offset, writer;
  int32_t version;
  uint32_t manifest_len, tags_len, payload_len;
} rec_hdr;

/* One page to read: alone (core.replay), or as a recovery's first page. It
 * is built in place inside the message that will carry it (m->data), so a
 * page is never copied. */
typedef struct page_req {
  lore_runtime *lrt;
  char *id;
  int64_t from, to, max;
  int64_t highest; /* where the bounds say the stream ends; < 0: unknown */
  int64_t after;   /* events of the page before (0: none, or unknown) */
  int64_t asked;   /* events this read asks for */
  int want_highest;
  int first; /* a recovery's first page, or the first after its snapshot */
  int lean;  /* journal_replay_lean will do */
  page_hdr hdr;
  lore_msg *m; /* m->len bytes used of cap */
  size_t cap;
  int oom;
  int full; /* stopped at REPLAY_PAGE_BYTES */
} page_req;

static int64_t page_events(const page_req *r);

/* The bytes a later page's buffer is first made with: room for as many
 * events as the rest of the stream can need, up to a full page. Pages grow
 * from small to REPLAY_PAGE events, and a buffer sized for each page as it
 * came made every page of a medium replay a larger buffer than the one
 * before: fresh memory, a page fault per 4 KiB written (~14 us each on
 * these VMs; ~500 of them in a 10,000-event replay, about a third of its
 * time). Made for the rest of the stream at once, memory is touched only as
 * far as pages fill it, and the buffer (kept as the worker's spare) serves
 * every later page. */
static size_t later_page_bytes(const page_req *r) {
  int64_t asked = page_events(r), n = REPLAY_PAGE;
  if (r->max >= 0 && r->max < asked) asked = r->max;
  if (r->highest >= 0) {
    int64_t end = r->highest < r->to ? r->highest : r->to;
    int64_t left = end - r->from + 1;
    if (left > 0 && left < n) n = left;
  }
  if (n < asked) n = asked;
  return (size_t)(n + 1) * PAGE_BYTES_PER_EVENT;
}

/* buf_room when r->m must grow (or be made). */
static __attribute__((noinline)) char *buf_grow(page_req *r, size_t n) {
  if (r->oom) return NULL;
  size_t len = r->m ? r->m->len : 0;
  if (!r->m || len + n > r->cap) {
    /* A recovery's first page is usually a few events; a page after a full
     * one is usually full too. */
    size_t cap = r->cap ? r->cap * 2 : r->want_highest ? 4096 : later_page_bytes(r);
    while (cap < len + n) cap *= 2;
    /* Not realloc: it would copy the whole old buffer, untouched memory
     * included; only its first len bytes (and the header) are the page. */
    lore_msg *m = malloc(sizeof *m + cap);
    if (!m) {
      r->oom = 1;
      return NULL;
    }
    if (r->m)
      memcpy(m, r->m, sizeof *m + len);
    else
      memset(m, 0, sizeof *m);
    free(r->m);
    r->m = m;
    r->cap = cap;
  }
  r->m->len = len + n;
  return r->m->data + len;
}

/* Room for n more bytes at the end of r->m; NULL (and r->oom) if there is
 * none to be had. Inline: every event of every replay takes its room here. */
static inline char *buf_room(page_req *r, size_t n) {
  lore_msg *m = r->m;
  if (!m || r->oom || m->len + n > r->cap) return buf_grow(r, n);
  char *to = m->data + m->len;
  m->len += n;
  return to;
}

static void buf_put(page_req *r, const void *p, size_t n) {
  char *to = buf_room(r, n);
  if (to) memcpy(to, p, n);
}

static int collect(const journal_event *ev, void *ud) {
  page_req *r = ud;
  const char *manifest = ev->manifest ? ev->manifest : "", *tags = ev->tags ? ev->tags : "";
  rec_hdr h = {ev->seq,
               ev->timestamp_ms,
               ev->offset,
               ev->writer,
               ev->version,
               (uint32_t)strlen(manifest),
               (uint32_t)(tags[0] ? strlen(tags) : 0),
               (uint32_t)ev->payload_len};
  /* One reservation per event: this runs for every row of every replay. */
  char *to = buf_room(r, sizeof h + h.manifest_len + h.tags_len + h.payload_len);
  if (!to) return 1;
  memcpy(to, &h, sizeof h);
  to += sizeof h;
  memcpy(to, manifest, h.manifest_len);
  to += h.manifest_len;
  if (h.tags_len) memcpy(to, tags, h.tags_len); /* (lean reads have none) */
  memcpy(to + h.tags_len, ev->payload, h.payload_len);
  r->hdr.count++;
  r->hdr.last_seq = ev->seq;
  if (r->m && r->m->len >= REPLAY_PAGE_BYTES) r->full = 1;
  return r->oom || r->full;
}

/* How many events to ask for (see REPLAY_FIRST_PAGE). */
static int64_t page_events(const page_req *r) {
  /* A first page with the bounds unknown (no deletions: the page itself
   * tells them) takes a stream of up to REPLAY_TAIL events
   * whole, and starts a longer one small, as a first page with the bounds
   * known does. It used to ask for a full page: a stream of up to 16,384
   * events was then read whole before the worker applied any of it, into a
   * buffer doubled a dozen times. */
  if (r->highest < 0) return r->first ? REPLAY_TAIL + 1 : REPLAY_PAGE;
  int64_t end = r->highest < r->to ? r->highest : r->to;
  int64_t left = end >= r->from ? end - r->from + 1 : 0;
  if (left <= 0) return REPLAY_PAGE; /* past the bounds: whatever was appended since */
  if (left <= REPLAY_TAIL) return left + 1;
  if (r->first) return REPLAY_FIRST_PAGE;
  int64_t page = left / 2 < REPLAY_PAGE ? left / 2 : REPLAY_PAGE;
  if (r->after > 0) {
    int64_t ramp = REPLAY_RAMP(r->after);
    if (ramp < REPLAY_FIRST_PAGE) ramp = REPLAY_FIRST_PAGE;
    if (ramp < page) page = ramp;
  }
  return page;
}

/* On a pool thread: reads the page into r->m (header first). */
static void read_page(page_req *r) {
  page_hdr blank = {0};
  r->hdr = blank;
  if (r->m) r->m->len = 0;
  if (!r->want_highest) { /* sizes the buffer (a first page's size needs the bounds) */
    r->asked = page_events(r);
    if (r->max >= 0 && r->max < r->asked) r->asked = r->max;
  }
  buf_put(r, &r->hdr, sizeof r->hdr); /* placeholder, rewritten below */
  int st = 0;
  if (r->want_highest) {
    journal_bounds b;
    st = journal_bounds_of(r->lrt->journal, r->id, &b);
    r->hdr.highest = b.highest;
    r->hdr.deleted_to = b.deleted_to;
    r->highest = st == 0 ? b.highest : -1;
  }
  int64_t page = page_events(r);
  if (r->max >= 0 && r->max < page) page = r->max;
  r->asked = page;
  if (st == 0 && page > 0)
    st = r->lean ? journal_replay_lean(r->lrt->journal, r->id, r->from, r->to, page, collect, r)
                 : journal_replay(r->lrt->journal, r->id, r->from, r->to, page, collect, r);
  r->hdr.lean = r->lean;
  r->hdr.cap = (uint32_t)r->cap;
  if (r->oom) st = JOURNAL_ENOMEM;
  r->hdr.status = st;
  r->hdr.more = st == 0 && page > 0 &&
                ((r->hdr.count == page && (r->max < 0 || r->max > page)) ||
                 (r->full && (r->max < 0 || r->max > r->hdr.count)));
  if (!r->oom) memcpy(r->m->data, &r->hdr, sizeof r->hdr);
}

/* The page as a SYS_PAGE message for actor a (an ENOMEM page if it cannot be
 * made); NULL only when even that cannot be allocated. */
static lore_msg *page_msg(page_req *r, actor_t *a, uint64_t token, int failed) {
  lore_msg *m = NULL;
  if (!r->oom && !failed && r->m) {
    m = r->m; /* the page leaves with the message */
    r->m = NULL;
  }
  if (!m) {
    page_hdr h = {0};
    h.status = JOURNAL_ENOMEM;
    m = msg_new(MSG_SYSTEM, &h, sizeof h, NULL, 0);
  }
  if (m) {
    m->kind = MSG_SYSTEM;
    m->sub = SYS_PAGE;
    m->corr = token;
    m->target.sched = a->sched->index;
    m->target.aid = a->aid;
  }
  return m;
}

/* --- core.replay: one page, alone --- */

typedef struct replay_req {
  uv_work_t work;
  sched_t *sched;
  uint64_t aid, token;
  page_req page;
} replay_req;

static void replay_work(uv_work_t *w) {
  replay_req *r = w->data;
  read_page(&r->page);
}

static void replay_after(uv_work_t *w, int status) {
  replay_req *r = w->data;
  actor_t *a = sched_find(r->sched, r->aid);
  if (a) {
    lore_msg *m = page_msg(&r->page, a, r->token, status != 0);
    if (m) actor_enqueue(a, m);
    binding_io_end(a);
  }
  free(r->page.m);
  free(r->page.id);
  free(r);
}

/* core.replay(from, to, max, token, want_highest [, highest [, lean [, after]]]):
 * reads one page of the current actor's own stream off-thread; it arrives as
 * a SYS_PAGE system message. `highest` (the stream's bounds, when known)
 * and `after` (the count of the page before, if any) size the page; `lean`:
 * the events need no version, tags, writer or offset (journal_replay_lean). */
static int core_replay(lua_State *L) {
  binding_state *bs = bs_of(L);
  lua_actor *la;
  actor_t *a = binding_current_persistent(L, &la);
  replay_req *r = calloc(1, sizeof *r);
  if (!r || !(r->page.id = strdup(actor_name(a)))) {
    free(r);
    return luaL_error(L, "out of memory");
  }
  r->page.from = luaL_checkinteger(L, 1);
  r->page.to = luaL_checkinteger(L, 2);
  r->page.max = luaL_checkinteger(L, 3);
  r->token = (uint64_t)luaL_checkinteger(L, 4);
  r->page.want_highest = r->page.first = lua_toboolean(L, 5);
  r->page.highest = luaL_optinteger(L, 6, -1);
  r->page.lean = lua_toboolean(L, 7);
  r->page.after = luaL_optinteger(L, 8, 0);
  r->page.lrt = bs->lrt;
  r->sched = bs->sched;
  r->aid = a->aid;
  r->work.data = r;
  if (bs->spare_page && !r->page.want_highest && bs->spare_cap < later_page_bytes(&r->page))
    recovery_drop_spare(bs); /* (a first page's) too small: it would grow into fresh memory */
  if (bs->spare_page) {      /* the page is read into the last one's buffer */
    r->page.m = bs->spare_page;
    r->page.cap = bs->spare_cap;
    bs->spare_page = NULL;
    memset(r->page.m, 0, sizeof *r->page.m);
  }
  int rc = uv_queue_work(bs->sched->loop, &r->work, replay_work, replay_after);
  if (rc) {
    free(r->page.m);
    free(r->page.id);
    free(r);
    return luaL_error(L, "cannot queue a replay: %s", uv_strerror(rc));
  }
  actor_io_begin(a);
  return 0;
}

/* --- core.recover: a recovery's first step, batched --- */

/* One actor's first step: its snapshot (unless `snapshot` is 0), then the
 * bounds of its stream and the first page after the snapshot. */
typedef struct recover_req {
  struct recover_req *next;
  uint64_t aid, token;
  uint32_t incarnation;
  int snapshot;
  snapshot_criteria crit;
  snap_result res;
  void *snap_data;
  size_t snap_len;
  page_req page;
} recover_req;

/* Requests read by one pool job. A batch takes new requests until a pool
 * thread starts on it (`started`, under the worker's recover_lock). */
typedef struct recover_batch {
  uv_work_t work;
  binding_state *bs;
  recover_req *head, *tail;
  struct recover_batch *next_unqueued; /* bs->recover_unqueued's list */
  int count;
  int started;
  int queued; /* handed to the pool (it may still take joiners until started) */
} recover_batch;

/* A SYS_PAGE whose ival is this answers the snapshot part of the first step
 * too: no snapshot matched, so the page starts at seq 1 and no
 * SYS_SNAP_LOADED comes (one message, one turn less per recovery). */
#define PAGE_NO_SNAPSHOT 1

/* A recovery's first page starts this small and doubles as it fills: most
 * hold a few small events, and a bigger first buffer for each of thousands
 * of waking actors was fresh memory the allocator had to fault in. */
#define FIRST_PAGE_BYTES 512

/* The stream's bounds for a recovery's first page, read after it when the
 * journal has no deletion at all: a page that holds every event from `from`
 * on (no seq or count limit, not full) ends at the highest seq. Otherwise
 * one query (on failure the page's events go: the actor fails its recovery
 * as if the bounds had been read first). */
static void bounds_after_page(lore_runtime *lrt, page_req *p) {
  page_hdr *h = &p->hdr;
  if (p->oom || !p->m || h->status != 0) return;
  if (!h->more && p->to == INT64_MAX && p->max < 0 && h->count > 0) {
    h->highest = h->last_seq;
    h->deleted_to = 0;
  } else {
    journal_bounds b;
    int st = journal_bounds_of(lrt->journal, p->id, &b);
    if (st == 0) {
      h->highest = b.highest;
      h->deleted_to = b.deleted_to;
    } else {
      h->status = st;
      h->count = h->last_seq = h->more = 0;
      p->m->len = sizeof *h;
    }
  }
  memcpy(p->m->data, h, sizeof *h);
}

static void recover_one(lore_runtime *lrt, recover_req *r, int no_snapshots, int no_deletions) {
  r->page.from = 1;
  if (r->snapshot) {
    if (no_snapshots) {
      r->res.status = SNAPSHOT_ENOTFOUND;
    } else {
      r->res.status = snapshot_store_load(lrt->snapshots, r->page.id, &r->crit, 0, &r->res.meta,
                                          &r->snap_data, &r->snap_len);
    }
    if (r->res.status == 0) {
      r->page.from = r->res.meta.seq + 1;
    } else if (r->res.status != SNAPSHOT_ENOTFOUND) {
      return; /* the actor decides (fail, or an older snapshot); no page read */
    }
  }
  if (!r->page.m && (r->page.m = malloc(sizeof(lore_msg) + FIRST_PAGE_BYTES))) {
    memset(r->page.m, 0, sizeof(lore_msg));
    r->page.cap = FIRST_PAGE_BYTES;
  }
  r->page.want_highest = !no_deletions;
  read_page(&r->page);
  if (no_deletions) bounds_after_page(lrt, &r->page);
}

static void recover_work(uv_work_t *w) {
  recover_batch *b = w->data;
  binding_state *bs = b->bs;
  uv_mutex_lock(&bs->recover_lock);
  b->started = 1;
  if (bs->recover_open == b) bs->recover_open = NULL;
  uv_mutex_unlock(&bs->recover_lock);
  /* One read transaction for the batch rather than two per actor. Every
   * request joined before `started`, so each actor's acknowledged writes
   * committed before this snapshot is taken. */
  int held = journal_read_hold(bs->lrt->journal) == 0;
  /* A store with no snapshot at all (many applications never save one)
   * answers every actor of the batch with one look. None of these actors can
   * be saving one meanwhile: each is recovering, with no snapshot operation
   * of an earlier incarnation running (core_recover), and holds its id's
   * lease where the journal has leases. */
  int no_snapshots = 0;
  for (recover_req *r = b->head; r; r = r->next) {
    if (r->snapshot) {
      if (snapshot_store_is_empty(bs->lrt->snapshots, &no_snapshots) != 0) no_snapshots = 0;
      break;
    }
  }
  /* Likewise a journal where no events were ever deleted: each first page
   * that reads its stream to the end tells the bounds (bounds_after_page). */
  int no_deletions = 0;
  if (journal_no_deletions(bs->lrt->journal, &no_deletions) != 0) no_deletions = 0;
  for (recover_req *r = b->head; r; r = r->next)
    recover_one(bs->lrt, r, no_snapshots, no_deletions);
  if (held) journal_read_release(bs->lrt->journal);
}

static void recover_free(recover_req *r) {
  free(r->snap_data);
  free(r->page.m);
  free(r->page.id);
  free(r);
}

/* On the worker: each actor gets its snapshot (if asked and found), then its
 * page; a page that follows no snapshot says so itself (PAGE_NO_SNAPSHOT). */
static void recover_after(uv_work_t *w, int status) {
  recover_batch *b = w->data;
  recover_req *r = b->head;
  while (r) {
    recover_req *next = r->next;
    actor_t *a = sched_find(b->bs->sched, r->aid);
    if (a) {
      int page_read = r->page.m != NULL || r->page.oom;
      if (status && r->snapshot) r->res.status = SNAPSHOT_EIO;
      int none = r->snapshot && r->res.status == SNAPSHOT_ENOTFOUND && page_read;
      if (r->snapshot && !none) {
        size_t extra = r->res.status == 0 ? r->snap_len : 0;
        lore_msg *m = msg_new(MSG_SYSTEM, NULL, sizeof r->res + extra, NULL, 0);
        if (m) {
          memcpy(m->data, &r->res, sizeof r->res);
          if (extra) memcpy(m->data + sizeof r->res, r->snap_data, extra);
          m->sub = SYS_SNAP_LOADED;
          m->ival = r->res.status;
          m->corr = r->token;
          m->ptr = NULL;
          m->target.sched = a->sched->index;
          m->target.aid = a->aid;
          actor_enqueue(a, m);
        }
      }
      if (page_read || (!r->snapshot && status)) {
        lore_msg *m = page_msg(&r->page, a, r->token, status != 0);
        if (m) {
          m->ival = none ? PAGE_NO_SNAPSHOT : 0;
          actor_enqueue(a, m);
        }
      }
      binding_io_end(a);
    }
    recover_free(r);
    r = next;
  }
  free(b);
}

static void queue_batch(binding_state *bs, recover_batch *b) {
  b->queued = 1;
  int rc = uv_queue_work(bs->sched->loop, &b->work, recover_work, recover_after);
  if (rc) { /* each actor gets a failed read: its recovery fails, as a read error would */
    uv_mutex_lock(&bs->recover_lock);
    if (bs->recover_open == b) bs->recover_open = NULL;
    b->started = 1;
    uv_mutex_unlock(&bs->recover_lock);
    log_error(&bs->lrt->log, "cannot queue a recovery read: %s", uv_strerror(rc));
    recover_after(&b->work, rc);
  }
}

/*
 * core.recover(criteria | false, to, max, token [, lean [, timeout]]) -> true | false
 * Begins the current actor's recovery: reads its newest snapshot matching
 * `criteria` (false: none), then its stream's bounds and the first page
 * after the snapshot (seqs up to `to`, at most `max` events, -1 for no
 * limit); `lean`: that page may come from journal_replay_lean (core.replay's
 * `lean`). The actor gets SYS_SNAP_LOADED (if a snapshot was asked for and
 * one was found, or the store failed), then SYS_PAGE (unless the snapshot
 * store failed), both with `token`; a SYS_PAGE with ival 1 (core.
 * PAGE_NO_SNAPSHOT) also says that no snapshot matched. False when
 * the actor has snapshot operations running (a save of an earlier
 * incarnation): it must load its snapshot the ordinary way, behind them.
 * `timeout` (seconds; optional): arms the recovery's deadline with `token`
 * first, whatever the answer (core.recovery_deadline, without a call of its
 * own).
 */
static int core_recover(lua_State *L) {
  binding_state *bs = bs_of(L);
  lua_actor *la;
  actor_t *a = binding_current_persistent(L, &la);
  if (!lua_isnoneornil(L, 6)) {
    lua_Number secs = worker_check_delay(L, 6);
    if (recovery_deadline_arm(bs, a, secs, luaL_checkinteger(L, 4)))
      return luaL_error(L, "out of memory");
  }
  int snapshot = lua_toboolean(L, 1);
  if (snapshot && (la->snap_running || (la->extra && la->extra->snap_next))) {
    lua_pushboolean(L, 0);
    return 1;
  }
  recover_req *r = calloc(1, sizeof *r);
  if (!r || !(r->page.id = strdup(actor_name(a)))) {
    free(r);
    return luaL_error(L, "out of memory");
  }
  if (snapshot) r->crit = binding_check_criteria(L, 1);
  r->snapshot = snapshot;
  r->page.to = luaL_checkinteger(L, 2);
  r->page.max = luaL_checkinteger(L, 3);
  r->token = (uint64_t)luaL_checkinteger(L, 4);
  r->page.want_highest = r->page.first = 1;
  r->page.highest = -1; /* unknown until the bounds (or a short first page) tell */
  r->page.lean = lua_toboolean(L, 5);
  r->page.lrt = bs->lrt;
  r->aid = a->aid;
  r->incarnation = la->incarnation;
  r->res.incarnation = la->incarnation;
  uv_mutex_lock(&bs->recover_lock);
  recover_batch *b = bs->recover_open;
  int join = b && !b->started && b->count < RECOVER_BATCH_MAX;
  if (join) {
    b->tail->next = r;
    b->tail = r;
    b->count++;
  }
  uv_mutex_unlock(&bs->recover_lock);
  if (!join) {
    if (!(b = calloc(1, sizeof *b))) {
      recover_free(r);
      return luaL_error(L, "out of memory");
    }
    b->bs = bs;
    b->head = b->tail = r;
    b->count = 1;
    b->work.data = b;
    uv_mutex_lock(&bs->recover_lock);
    bs->recover_open = b;
    uv_mutex_unlock(&bs->recover_lock);
    recover_batch **last = &bs->recover_unqueued; /* in order: a few at most */
    while (*last) last = &(*last)->next_unqueued;
    *last = b;
  }
  actor_io_begin(a);
  if (b->count == RECOVER_BATCH_MAX && !b->queued) { /* full: no one joins it any more */
    recover_batch **p = &bs->recover_unqueued;
    while (*p != b) p = &(*p)->next_unqueued;
    *p = b->next_unqueued;
    queue_batch(bs, b); /* after io_begin: a failure to queue ends the io at once */
  }
  lua_pushboolean(L, 1);
  return 1;
}

void recovery_flush(binding_state *bs) {
  recover_batch *b = bs->recover_unqueued;
  bs->recover_unqueued = NULL;
  while (b) {
    recover_batch *next = b->next_unqueued;
    queue_batch(bs, b);
    b = next;
  }
}

/* A long replay reads page after page into fresh buffers of up to 4 MiB,
 * and first touches of fresh memory were ~40% of a 1,000,000-event
 * replay's reading thread (~14 us a page fault on these VMs). Pages of a
 * long replay take turns: the next one is read while this one is applied,
 * so one spare per worker, the page just applied, serves the read after
 * that. Small pages (a recovery's first, a few events) are not kept. */
#define SPARE_PAGE_MIN ((size_t)64 << 10)

int recovery_keep_page(binding_state *bs, lore_msg *m) {
  if (bs->spare_page || m->len < sizeof(page_hdr)) return 0;
  page_hdr h;
  memcpy(&h, m->data, sizeof h);
  if (h.cap < SPARE_PAGE_MIN) return 0;
  bs->spare_page = m;
  bs->spare_cap = h.cap;
  return 1;
}

void recovery_drop_spare(binding_state *bs) {
  free(bs->spare_page);
  bs->spare_page = NULL;
}

/* The worker closes with batches never queued (a forced stop): their actors
 * are gone, nothing waits for them. */
void recovery_worker_close(binding_state *bs) {
  recovery_drop_spare(bs);
  recover_batch *b = bs->recover_unqueued;
  bs->recover_unqueued = NULL;
  bs->recover_open = NULL;
  while (b) {
    recover_batch *next = b->next_unqueued;
    for (recover_req *r = b->head, *rn; r; r = rn) {
      rn = r->next;
      recover_free(r);
    }
    free(b);
    b = next;
  }
}

/* core.page_info(mptr) -> status, highest, count, last_seq, more, deleted_to, lean */
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
  lua_pushboolean(L, h.lean);
  return 7;
}

/* core.page_each(mptr, fn [, want_meta [, internal]]): calls fn(seq, evt)
 * -- or, with want_meta, fn(seq, evt, manifest, version, tags, ts, offset)
 * -- for each event of the page; Lore's own events ("lore.*" manifests) go
 * to internal(seq, evt, manifest, ts) instead when it is given. A payload
 * that does not decode raises "decode error at seq N: ...". */
static int core_page_each(lua_State *L) {
  lore_msg *m = lua_touserdata(L, 1);
  luaL_argcheck(L, m && m->len >= sizeof(page_hdr), 1, "not a replay page");
  luaL_checktype(L, 2, LUA_TFUNCTION);
  int want_meta = lua_toboolean(L, 3); /* strings cost interning: only on request */
  binding_state *bs = bs_of(L);
  int internal = lua_isfunction(L, 4);
  size_t off = sizeof(page_hdr);
  char err[CODEC_ERR_MAX];
  while (off + sizeof(rec_hdr) <= m->len) {
    rec_hdr h;
    memcpy(&h, m->data + off, sizeof h);
    off += sizeof h;
    const char *p = m->data + off;
    size_t total = (size_t)h.manifest_len + h.tags_len + h.payload_len;
    if (off + total > m->len) return luaL_error(L, "replay page is truncated");
    int own = internal && manifest_is_internal(p, h.manifest_len);
    lua_pushvalue(L, own ? 4 : 2);
    lua_pushinteger(L, h.seq);
    const char *payload = p + h.manifest_len + h.tags_len;
    if (codec_decode(L, payload, h.payload_len, err, sizeof err))
      return luaL_error(L, "decode error at seq %I: %s", (lua_Integer)h.seq, err);
    if (own) {
      lua_pushlstring(L, p, h.manifest_len);
      lua_pushinteger(L, h.ts);
      lua_call(L, 4, 0);
      off += total;
      continue;
    }
    if (want_meta) {
      lua_pushlstring(L, p, h.manifest_len);
      lua_pushinteger(L, h.version);
      lua_pushlstring(L, p + h.manifest_len, h.tags_len);
      lua_pushinteger(L, h.ts);
      lua_pushinteger(L, h.offset);
    }
    lua_call(L, want_meta ? 7 : 2, 0);
    off += total;
    budget_restart(bs); /* each event is a handler call of its own */
  }
  return 0;
}

/* Pushes the tags stored as "a\nb" as the list { "a", "b" } (what meta.tags
 * is everywhere a behaviour sees it). */
static void push_tag_list(lua_State *L, const char *s, size_t len) {
  lua_createtable(L, 0, 0);
  lua_Integer n = 0;
  size_t i = 0;
  while (i < len) {
    const char *nl = memchr(s + i, '\n', len - i);
    size_t end = nl ? (size_t)(nl - s) : len;
    if (end > i) {
      lua_pushlstring(L, s + i, end - i);
      lua_rawseti(L, -2, ++n);
    }
    i = end + 1;
  }
}

/*
 * core.page_apply(mptr, apply, state, rec, expect, id, want_meta, seq_slot
 *                 [, internal]) -> state, expect, last_seq
 * The hot loop of recovery, in C: for each event of the page, rec[seq_slot]
 * = its seq (ctx.seq), then state = apply(state, evt [, meta]) (the same
 * state when apply returns nil); meta = { seq, ts, id, version, tags,
 * manifest } only when want_meta. expect is the seq the first event must
 * have (false: any); every later one must follow the one before. Raises on
 * a gap, an undecodable payload, or whatever apply raises (the caller's
 * pcall catches it). Each apply is a handler call of its own for the
 * instruction budget. Lore's own events ("lore.*" manifests: deliveries,
 * timers) go to internal(seq, evt, manifest, ts) instead of apply when it
 * is given; they still take their place in the sequence.
 */
static int core_page_apply(lua_State *L) {
  lore_msg *m = lua_touserdata(L, 1);
  luaL_argcheck(L, m && m->len >= sizeof(page_hdr), 1, "not a replay page");
  luaL_checktype(L, 2, LUA_TFUNCTION);
  luaL_checktype(L, 4, LUA_TTABLE);
  int checking = lua_isinteger(L, 5);
  int64_t expect = checking ? lua_tointeger(L, 5) : 0, last = 0;
  size_t id_len;
  const char *id = luaL_checklstring(L, 6, &id_len);
  int want_meta = lua_toboolean(L, 7);
  lua_Integer seq_slot = luaL_checkinteger(L, 8);
  int internal = lua_isfunction(L, 9);
  binding_state *bs = bs_of(L);
  lua_settop(L, 9);
  page_hdr ph;
  memcpy(&ph, m->data, sizeof ph);
  codec_page pg; /* from 10 on, for the whole page */
  if (codec_page_open_for(L, &pg, &bs->strings, ph.count)) codec_page_open(L, &pg, NULL);
  size_t off = sizeof(page_hdr);
  char err[CODEC_ERR_MAX];
  while (off + sizeof(rec_hdr) <= m->len) {
    rec_hdr h;
    memcpy(&h, m->data + off, sizeof h);
    off += sizeof h;
    const char *p = m->data + off;
    size_t total = (size_t)h.manifest_len + h.tags_len + h.payload_len;
    if (off + total > m->len) return luaL_error(L, "replay page is truncated");
    if (checking && h.seq != expect)
      return luaL_error(L, "sequence gap at id %s: expected seq %I, found %I", id,
                        (lua_Integer)expect, (lua_Integer)h.seq);
    checking = 1;
    expect = h.seq + 1;
    last = h.seq;
    lua_pushinteger(L, h.seq);
    lua_rawseti(L, 4, seq_slot);
    if (internal && manifest_is_internal(p, h.manifest_len)) {
      lua_pushvalue(L, 9);
      lua_pushinteger(L, h.seq);
      if (codec_decode(L, p + h.manifest_len + h.tags_len, h.payload_len, err, sizeof err))
        return luaL_error(L, "decode error at seq %I: %s", (lua_Integer)h.seq, err);
      lua_pushlstring(L, p, h.manifest_len);
      lua_pushinteger(L, h.ts);
      lua_call(L, 4, 0);
      off += total;
      budget_restart(bs);
      continue;
    }
    lua_pushvalue(L, 2);
    lua_pushvalue(L, 3);
    if (codec_page_decode(L, &pg, p + h.manifest_len + h.tags_len, h.payload_len, err, sizeof err))
      return luaL_error(L, "decode error at seq %I: %s", (lua_Integer)h.seq, err);
    if (want_meta) {
      lua_createtable(L, 0, 6);
      lua_pushinteger(L, h.seq);
      lua_setfield(L, -2, "seq");
      lua_pushinteger(L, h.ts);
      lua_setfield(L, -2, "ts");
      lua_pushlstring(L, id, id_len);
      lua_setfield(L, -2, "id");
      lua_pushinteger(L, h.version);
      lua_setfield(L, -2, "version");
      push_tag_list(L, p + h.manifest_len, h.tags_len);
      lua_setfield(L, -2, "tags");
      lua_pushlstring(L, p, h.manifest_len);
      lua_setfield(L, -2, "manifest");
    }
    lua_call(L, want_meta ? 3 : 2, 1);
    if (lua_isnil(L, -1))
      lua_pop(L, 1);
    else
      lua_replace(L, 3);
    off += total;
    budget_restart(bs);
  }
  lua_pushvalue(L, 3);
  if (checking)
    lua_pushinteger(L, expect);
  else
    lua_pushboolean(L, 0);
  lua_pushinteger(L, last);
  return 3;
}

/* libuv's thread pool size: its own reading of UV_THREADPOOL_SIZE (libuv
 * 1.44: 4 unless set, clamped to 1..1024). */
static int pool_threads(void) {
  const char *v = getenv("UV_THREADPOOL_SIZE");
  long n = v ? strtol(v, NULL, 10) : 4;
  return n < 1 ? 1 : n > 1024 ? 1024 : (int)n;
}

/* libuv starts its thread pool on the process's first uv_queue_work, and
 * waits there for each of its threads to start: ~1.5 ms the first recovery
 * would wait. A started worker queues a job instead; its loop, which runs
 * from now on, completes it. The job opens the journal's read connections,
 * one per pool thread (as many reads as can run at once), off the first
 * recoveries' path. */
static void warm_work(uv_work_t *w) {
  binding_state *bs = w->data;
  if (bs->lrt->journal) journal_warm_readers(bs->lrt->journal, pool_threads());
}

static void warm_after(uv_work_t *w, int status) {
  (void)status;
  free(w);
}

void recovery_warm_up(binding_state *bs) {
  uv_work_t *w = malloc(sizeof *w);
  if (!w) return;
  w->data = bs;
  if (uv_queue_work(bs->sched->loop, w, warm_work, warm_after) != 0) free(w);
}

int luaopen_lore_core_recovery(lua_State *L) {
  static const luaL_Reg fns[] = {{"replay", core_replay},         {"recover", core_recover},
                                 {"page_info", core_page_info},   {"page_each", core_page_each},
                                 {"page_apply", core_page_apply}, {NULL, NULL}};
  luaL_setfuncs(L, fns, 0);
  lua_pushinteger(L, PAGE_NO_SNAPSHOT);
  lua_setfield(L, -2, "PAGE_NO_SNAPSHOT");
  return 0;
}
