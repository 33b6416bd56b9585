/* host.c: the host side of a runtime: tells, asks, spawns, endpoints and refs on the host loop. */
#include "host.h"

#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "binding.h"
#include "codec.h"
#include "entities.h"
#include "ids.h"
#include "ref.h"

/* Every lore_ call comes from the host loop's thread. */
#define HOST_THREAD_CHECK(lrt)                                              \
  do {                                                                      \
    uv_thread_t self_ = uv_thread_self();                                   \
    if (!uv_thread_equal(&self_, &(lrt)->host_thread)) return LORE_ETHREAD; \
  } while (0)

#define RUNNING_CHECK(lrt)                                 \
  do {                                                     \
    if ((lrt)->phase != RT_RUNNING) return LORE_ESHUTDOWN; \
  } while (0)

/* The host scheduler's code runs as "current" only while Lore does
 * something on the host thread, so two runtimes can share that thread. */
static sched_t *enter_host(lore_runtime *lrt) { return sched_enter(runtime_host(lrt->rt)); }

static void leave_host(sched_t *prev) { sched_leave(prev); }

/* --- refs --- */

static lore_ref *ref_alloc(size_t name_len) {
  if (name_len >= REF_SERIALIZED_MAX) return NULL; /* ids are shorter (id_problem) */
  lore_ref *r = calloc(1, REF_SIZE(name_len + 1));
  if (r) r->name_len = (uint16_t)name_len;
  return r;
}

int lore_ref_from_id(lore_runtime *rt, const char *id, lore_ref **out) {
  if (!rt || !id || !out) return UV_EINVAL;
  size_t len = strlen(id);
  if (id_problem(id, len)) return UV_EINVAL;
  lore_ref *r = ref_alloc(len);
  if (!r) return UV_ENOMEM;
  memcpy(r->name, id, len);
  *out = r;
  return 0;
}

void lore_ref_free(lore_ref *ref) { free(ref); }

int lore_ref_pack(const lore_ref *ref, void *buf, size_t cap, size_t *len) {
  if (!ref || !len) return UV_EINVAL;
  char bytes[REF_SERIALIZED_MAX];
  size_t n = ref_serialize(ref, bytes, sizeof bytes);
  if (!n) return UV_EINVAL;
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  msgpack_packer pk;
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  int rc = msgpack_pack_ext(&pk, n, REF_EXT_TYPE) || msgpack_pack_ext_body(&pk, bytes, n);
  if (rc) {
    msgpack_sbuffer_destroy(&sb);
    return UV_ENOMEM;
  }
  *len = sb.size;
  rc = sb.size > cap || !buf ? UV_ENOBUFS : 0;
  if (!rc) memcpy(buf, sb.data, sb.size);
  msgpack_sbuffer_destroy(&sb);
  return rc;
}

/* A message to `to`, from the host. */
static lore_msg *msg_to(lore_runtime *lrt, const lore_ref *to, uint32_t kind, const void *data,
                        size_t len) {
  lore_msg *m = msg_new(kind, data, len, to->name_len ? to->name : NULL, to->name_len);
  if (!m) return NULL;
  if (!to->name_len) {
    m->target.sched = to->sched;
    m->target.aid = to->aid;
  }
  if (kind == MSG_USER) m->ival = entities_tag(lrt, ref_manager(to)); /* wakes an entity */
  return m;
}

/* Whether bytes are exactly one value an actor can decode: a malformed
 * message is refused at the call (LORE_EBADMSG), not dropped later by its
 * receiver. The codec's own check, so the host takes what actors take (the
 * same nesting limit above all). */
static int one_value(const void *data, size_t len) {
  return data && len && codec_check(data, len, NULL, NULL, 0) == 0;
}

int lore_tell(lore_runtime *rt, const lore_ref *to, const void *msg, size_t len) {
  if (!rt || !to) return UV_EINVAL;
  HOST_THREAD_CHECK(rt);
  RUNNING_CHECK(rt);
  if (!one_value(msg, len)) return LORE_EBADMSG;
  return host_tell_encoded(rt, to, msg, len);
}

int host_tell_encoded(lore_runtime *rt, const lore_ref *to, const void *msg, size_t len) {
  if (!rt || !to) return UV_EINVAL;
  HOST_THREAD_CHECK(rt);
  RUNNING_CHECK(rt);
  if (!msg || !len) return LORE_EBADMSG;
  lore_msg *m = msg_to(rt, to, MSG_USER, msg, len);
  if (!m) return UV_ENOMEM;
  runtime_send(rt->rt, m);
  return 0;
}

int host_stop(lore_runtime *lrt, const lore_ref *ref) {
  if (!lrt || !ref) return UV_EINVAL;
  RUNNING_CHECK(lrt);
  lore_msg *m = msg_to(lrt, ref, MSG_STOP, NULL, 0);
  if (!m) return UV_ENOMEM;
  runtime_send(lrt->rt, m);
  return 0;
}

/* --- asks: many in flight, found again by corr --- */

typedef struct pending_ask {
  uint64_t corr;
  lore_runtime *lrt;
  lore_reply_cb cb;
  void *ud;
  sched_timer *timer;
  int raw_errors; /* the Lua module: an error value raised by a handler, as MessagePack */
} pending_ask;

/* The text of a REPLY_RAISED ({text, value}); the whole bytes if malformed. */
static void raised_text(const char *data, size_t len, const char **text, size_t *tlen) {
  *text = data;
  *tlen = len;
  codec_root root = {0};
  if (codec_check(data, len, &root, NULL, 0) == 0 && root.type == CODEC_ROOT_ARRAY &&
      root.found_str) {
    *text = root.str; /* points into the reply's bytes */
    *tlen = root.str_len;
  }
}

static void ask_free(void *p) { free(p); }

/* Takes the ask out of the map and calls its callback (exactly once). */
static void ask_finish(pending_ask *a, int status, const void *data, size_t len) {
  idmap_remove(&a->lrt->asks, a->corr);
  if (a->timer) sched_timer_cancel(a->timer);
  a->timer = NULL;
  lore_reply_cb cb = a->cb;
  void *ud = a->ud;
  free(a);
  cb(ud, status, data, len);
}

static void ask_timeout(void *p) {
  pending_ask *a = p;
  a->timer = NULL; /* firing: it frees itself */
  static const char text[] = "timeout";
  ask_finish(a, LORE_ETIMEDOUT, text, sizeof text - 1);
}

/* Registers a pending ask; returns it, or NULL when out of memory. */
static pending_ask *ask_register(lore_runtime *lrt, double timeout_s, lore_reply_cb cb, void *ud) {
  pending_ask *a = calloc(1, sizeof *a);
  if (!a) return NULL;
  a->corr = runtime_new_corr(lrt->rt);
  a->lrt = lrt;
  a->cb = cb;
  a->ud = ud;
  if (idmap_put(&lrt->asks, a->corr, a)) {
    free(a);
    return NULL;
  }
  if (timeout_s >= 0) {
    double ms = timeout_s * 1000.0;
    a->timer = sched_timer_start(runtime_host(lrt->rt), ms > 1e12 ? (uint64_t)1e12 : (uint64_t)ms,
                                 ask_timeout, a, NULL);
    if (!a->timer) {
      idmap_remove(&lrt->asks, a->corr);
      free(a);
      return NULL;
    }
  }
  return a;
}

static int ask(lore_runtime *rt, const lore_ref *to, const void *msg, size_t len, double timeout_s,
               lore_reply_cb cb, void *ud, int raw_errors) {
  if (!rt || !to || !cb || timeout_s != timeout_s) return UV_EINVAL;
  HOST_THREAD_CHECK(rt);
  RUNNING_CHECK(rt);
  /* host_ask_raised's bytes come from Lore's own encoder (see host_tell_encoded) */
  if (raw_errors ? !msg || !len : !one_value(msg, len)) return LORE_EBADMSG;
  lore_msg *m = msg_to(rt, to, MSG_USER, msg, len);
  if (!m) return UV_ENOMEM;
  sched_t *prev = enter_host(rt);
  pending_ask *a = ask_register(rt, timeout_s, cb, ud);
  leave_host(prev);
  if (!a) {
    msg_free(m);
    return UV_ENOMEM;
  }
  a->raw_errors = raw_errors;
  m->corr = a->corr;
  runtime_send(rt->rt, m);
  return 0;
}

int lore_ask(lore_runtime *rt, const lore_ref *to, const void *msg, size_t len, double timeout_s,
             lore_reply_cb cb, void *ud) {
  return ask(rt, to, msg, len, timeout_s, cb, ud, 0);
}

int host_ask_raised(lore_runtime *rt, const lore_ref *to, const void *msg, size_t len,
                    double timeout_s, lore_reply_cb cb, void *ud) {
  return ask(rt, to, msg, len, timeout_s, cb, ud, 1);
}

int host_ask_worker(lore_runtime *lrt, uint32_t sched, uint32_t sub, const void *data, size_t len,
                    lore_reply_cb cb, void *ud) {
  RUNNING_CHECK(lrt);
  lore_msg *m = msg_new(MSG_SYSTEM, data, len, NULL, 0);
  if (!m) return UV_ENOMEM;
  m->sub = sub;
  m->target.sched = sched;
  sched_t *prev = enter_host(lrt);
  pending_ask *a = ask_register(lrt, -1, cb, ud);
  leave_host(prev);
  if (!a) {
    msg_free(m);
    return UV_ENOMEM;
  }
  m->corr = a->corr;
  runtime_send(lrt->rt, m);
  return 0;
}

/* --- spawns --- */

/* A blocking spawn (lore_spawn) waits on this; the worker fills status and
 * detail, and whoever frees the message posts (also when it never reached
 * a worker: the runtime was shutting down). */
typedef struct spawn_wait {
  uv_sem_t sem;
  int status;
  char detail[256];
} spawn_wait;

static void spawn_wait_post(void *p) {
  spawn_wait *w = p;
  uv_sem_post(&w->sem); /* w is the waiter's: not touched after this */
}

/* Finds opts.id in a MessagePack map: 0 (id copied to *id, or NULL when
 * absent), or UV_EINVAL (not a map, or a bad id). */
static int opts_id(const void *opts, size_t len, char **id) {
  *id = NULL;
  if (!opts || !len) return 0;
  codec_root root = {.key = "id"};
  if (codec_check(opts, len, &root, NULL, 0) != 0 || root.type != CODEC_ROOT_MAP) return UV_EINVAL;
  if (!root.found) return 0;
  if (!root.found_str || id_problem(root.str, root.str_len)) return UV_EINVAL;
  return (*id = strndup(root.str, root.str_len)) ? 0 : UV_ENOMEM;
}

/* The spawn message: {behaviour, opts} as MessagePack, placed by opts.id. */
static lore_msg *spawn_msg(lore_runtime *lrt, const void *payload, size_t len, const char *id,
                           uint32_t *sched_out, uint64_t *aid_out) {
  lore_msg *m = msg_new(MSG_SPAWN, payload, len, NULL, 0);
  if (!m) return NULL;
  runtime_t *rt = lrt->rt;
  m->target.sched = id ? runtime_sched_for_name(rt, id) : runtime_sched_next(rt);
  m->ival = (int64_t)runtime_new_aid(rt);
  if (sched_out) *sched_out = m->target.sched;
  if (aid_out) *aid_out = (uint64_t)m->ival;
  return m;
}

int host_spawn_async(lore_runtime *lrt, const void *payload, size_t len, const char *id,
                     lore_reply_cb cb, void *ud, uint32_t *sched_out, uint64_t *aid_out) {
  RUNNING_CHECK(lrt);
  lore_msg *m = spawn_msg(lrt, payload, len, id, sched_out, aid_out);
  if (!m) return UV_ENOMEM;
  sched_t *prev = enter_host(lrt);
  pending_ask *a = ask_register(lrt, -1, cb, ud);
  leave_host(prev);
  if (!a) {
    msg_free(m);
    return UV_ENOMEM;
  }
  m->corr = a->corr;
  lrt->spawned = 1;
  runtime_reserve(lrt->rt); /* alive from now: see runtime_reserve */
  runtime_send(lrt->rt, m);
  return 0;
}

int lore_spawn(lore_runtime *rt, const char *behaviour, const void *opts, size_t opts_len,
               lore_ref **out) {
  if (!rt || !behaviour || !out || (!opts && opts_len)) return UV_EINVAL;
  HOST_THREAD_CHECK(rt);
  RUNNING_CHECK(rt);
  char *id;
  int rc = opts_id(opts, opts_len, &id);
  if (rc) return rc;
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  msgpack_packer pk;
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  size_t blen = strlen(behaviour);
  if (msgpack_pack_array(&pk, 2) || msgpack_pack_str_with_body(&pk, behaviour, blen) ||
      (opts_len ? msgpack_sbuffer_write(&sb, opts, opts_len) : msgpack_pack_nil(&pk))) {
    msgpack_sbuffer_destroy(&sb);
    free(id);
    return UV_ENOMEM;
  }
  uint32_t sched;
  uint64_t aid;
  lore_msg *m = spawn_msg(rt, sb.data, sb.size, id, &sched, &aid);
  msgpack_sbuffer_destroy(&sb);
  lore_ref *ref = m ? ref_alloc(id ? strlen(id) : 0) : NULL;
  if (!ref) {
    if (m) msg_free(m);
    free(id);
    return UV_ENOMEM;
  }
  if (id) {
    memcpy(ref->name, id, ref->name_len);
  } else {
    ref->sched = sched;
    ref->aid = aid;
  }
  free(id);
  spawn_wait w;
  w.status = LORE_ESHUTDOWN;
  snprintf(w.detail, sizeof w.detail, "the runtime is shutting down");
  uv_sem_init(&w.sem, 0);
  m->ptr = &w;
  m->free_ptr = spawn_wait_post;
  rt->spawned = 1;
  runtime_reserve(rt->rt);
  runtime_send(rt->rt, m);
  uv_sem_wait(&w.sem);
  uv_sem_destroy(&w.sem);
  if (w.status) {
    log_warn(&rt->log, "lore_spawn(%s): %s", behaviour, w.detail);
    free(ref);
    return w.status;
  }
  *out = ref;
  return 0;
}

/* Called by the worker that handled a spawn: the outcome for its spawner. */
void host_spawn_answer(runtime_t *rt, lore_msg *m, int status, const char *detail) {
  if (m->free_ptr == spawn_wait_post) {
    spawn_wait *w = m->ptr;
    w->status = status;
    snprintf(w->detail, sizeof w->detail, "%s", detail ? detail : "");
    return; /* posted when the worker frees the message */
  }
  if (!m->corr) return;
  size_t len = detail ? strlen(detail) : 0;
  lore_msg *r = msg_new(MSG_REPLY, detail, len, NULL, 0);
  if (!r) return;
  r->sub = REPLY_CODE;
  r->ival = status;
  r->target.sched = m->sender.sched;
  r->corr = m->corr;
  runtime_send(rt, r);
}

/* --- endpoints: actors on the host scheduler whose messages go to C --- */

typedef struct endpoint {
  lore_message_cb cb;
  void *ud;
} endpoint;

static int endpoint_receive(actor_t *a, lore_msg *m) {
  endpoint *e = a->data;
  if (m->kind == MSG_USER || m->kind == MSG_TIMER) e->cb(e->ud, m->data, m->len);
  return ACTOR_CONSUMED;
}

static void endpoint_stopped(actor_t *a) {
  lore_runtime *lrt = a->sched->rt->data;
  idmap_remove(&lrt->endpoints, a->aid);
  free(a->data);
  a->data = NULL;
}

static const actor_ops endpoint_ops = {.receive = endpoint_receive, .stopped = endpoint_stopped};

int lore_endpoint(lore_runtime *rt, lore_message_cb cb, void *ud, lore_ref **out) {
  if (!rt || !cb || !out) return UV_EINVAL;
  HOST_THREAD_CHECK(rt);
  RUNNING_CHECK(rt);
  endpoint *e = malloc(sizeof *e);
  lore_ref *ref = ref_alloc(0);
  if (!e || !ref) {
    free(e);
    free(ref);
    return UV_ENOMEM;
  }
  e->cb = cb;
  e->ud = ud;
  uint64_t aid = runtime_new_aid(rt->rt);
  sched_t *prev = enter_host(rt);
  actor_t *a;
  int rc = actor_create(runtime_host(rt->rt), aid, NULL, &endpoint_ops, e, &a);
  if (!rc && idmap_put(&rt->endpoints, aid, a)) {
    actor_stop(a); /* frees e */
    e = NULL;
    rc = UV_ENOMEM;
  }
  leave_host(prev);
  if (rc) {
    free(e);
    free(ref);
    return rc;
  }
  ref->sched = 0;
  ref->aid = aid;
  *out = ref;
  return 0;
}

int lore_endpoint_close(lore_runtime *rt, const lore_ref *endpoint) {
  if (!rt || !endpoint || endpoint->name_len || endpoint->sched != 0) return UV_EINVAL;
  HOST_THREAD_CHECK(rt);
  actor_t *a = idmap_get(&rt->endpoints, endpoint->aid);
  if (!a) return UV_ENOENT;
  sched_t *prev = enter_host(rt);
  actor_stop(a); /* not running, no I/O: gone now; what was queued becomes dead letters */
  leave_host(prev);
  return 0;
}

/* --- host timers --- */

typedef struct host_timer {
  void (*cb)(void *ud);
  void (*drop)(void *ud);
  void *ud;
} host_timer;

static void host_timer_fire(void *p) {
  host_timer *t = p;
  t->cb(t->ud);
  free(t);
}

static void host_timer_drop(void *p) {
  host_timer *t = p;
  if (t->drop) t->drop(t->ud);
  free(t);
}

int host_after(lore_runtime *lrt, double seconds, void (*cb)(void *ud), void *ud,
               void (*drop)(void *ud)) {
  RUNNING_CHECK(lrt);
  host_timer *t = malloc(sizeof *t);
  if (!t) return UV_ENOMEM;
  t->cb = cb;
  t->drop = drop;
  t->ud = ud;
  double ms = seconds * 1000.0;
  if (!sched_timer_start(runtime_host(lrt->rt), ms > 1e12 ? (uint64_t)1e12 : (uint64_t)ms,
                         host_timer_fire, t, host_timer_drop)) {
    free(t);
    return LORE_ESHUTDOWN;
  }
  return 0;
}

/* --- what arrives on the host scheduler --- */

int host_sched_message(sched_t *s, lore_msg *m) {
  lore_runtime *lrt = s->rt->data;
  if (m->kind == MSG_SYSTEM) {
    if (m->sub == MSG_HOST_WORKER_STOPPED) runtime_object_worker_stopped(lrt, (uint32_t)m->ival);
    if (m->sub == MSG_HOST_NONE_ALIVE && lrt->on_event)
      lrt->on_event(lrt, LORE_EVENT_NONE_ALIVE, lrt->on_event_ud);
    return ACTOR_CONSUMED;
  }
  if (m->kind != MSG_REPLY) return ACTOR_CONSUMED;
  pending_ask *a = idmap_get(&lrt->asks, m->corr);
  if (!a) return ACTOR_CONSUMED; /* a late answer (after a timeout): dropped */
  int status = 0;
  switch (m->sub) {
    case REPLY_VALUE:
      status = 0;
      break;
    case REPLY_ERROR:
      status = LORE_EFAILED;
      break;
    case REPLY_DEAD:
      status = LORE_EDEADLETTER;
      break;
    case REPLY_RAISED:
      status = LORE_EFAILED;
      break;
    default:
      status = (int)m->ival;
      break;
  }
  if (m->sub == REPLY_RAISED && !a->raw_errors) { /* a C host gets the text */
    const char *text;
    size_t len;
    raised_text(m->data, m->len, &text, &len);
    ask_finish(a, status, text, len);
    return ACTOR_CONSUMED;
  }
  if (m->sub == REPLY_RAISED) status = HOST_ERAISED;
  ask_finish(a, status, m->data, m->len);
  return ACTOR_CONSUMED;
}

/* A message for a closed endpoint: counted; an asker learns it at once. */
void host_dead_letter(sched_t *s, lore_msg *m) {
  if (m->corr && m->kind == MSG_USER) {
    static const char e[] = "dead letter: no endpoint is open at that ref";
    binding_reply(s->rt, m->sender, m->corr, REPLY_DEAD, e, sizeof e - 1);
  }
}

static void collect_value(void *value, void *ud) {
  void ***p = ud;
  *(*p)++ = value;
}

/* Calls fn on a snapshot of the map's values (fn may change the map). */
static void each_of(idmap *map, void (*fn)(void *value)) {
  size_t n = map->count;
  if (!n) return;
  void **list = malloc(n * sizeof *list), **p = list;
  if (!list) return;
  idmap_each(map, collect_value, &p);
  for (size_t i = 0; i < n; i++) fn(list[i]);
  free(list);
}

static void ask_shut(void *value) {
  static const char text[] = "the runtime is shutting down";
  ask_finish(value, LORE_ESHUTDOWN, text, sizeof text - 1);
}

static void endpoint_shut(void *value) { actor_stop(value); }

void host_drop_pending(lore_runtime *lrt) {
  sched_t *prev = enter_host(lrt);
  each_of(&lrt->asks, ask_shut);
  each_of(&lrt->endpoints, endpoint_shut);
  leave_host(prev);
}

void host_init(lore_runtime *lrt) {
  idmap_init(&lrt->asks);
  idmap_init(&lrt->endpoints);
}

void host_free(lore_runtime *lrt) {
  each_of(&lrt->asks, ask_free);
  idmap_free(&lrt->asks);
  idmap_free(&lrt->endpoints);
}

void host_get_stats(lore_runtime *lrt, host_stats *out) {
  runtime_t *rt = lrt->rt;
  out->alive = runtime_alive(rt);
  out->dead_letters = (long long)__atomic_load_n(&rt->dead_letters, __ATOMIC_RELAXED);
  out->workers = rt->workers;
  uint64_t batches = 0, writes = 0;
  if (lrt->journal) journal_writer_stats(lrt->journal, &batches, &writes);
  out->journal_batches = (long long)batches;
  out->journal_writes = (long long)writes;
  uint64_t trips = 0;
  if (lrt->journal) journal_breaker_stats(lrt->journal, &out->breaker_state, &trips);
  out->breaker_trips = (long long)trips;
  uint64_t waits = 0, timeouts = 0;
  if (lrt->journal) journal_cohort_stats(lrt->journal, &waits, &timeouts);
  out->cohort_waits = (long long)waits;
  out->cohort_timeouts = (long long)timeouts;
  uv_mutex_lock(&lrt->permit_lock);
  out->recoveries = lrt->permits_used;
  out->recoveries_peak = lrt->permits_peak;
  uv_mutex_unlock(&lrt->permit_lock);
  out->lua_memory = out->io_spins = out->io_spin_hits = 0;
  for (int i = 1; i <= rt->workers; i++) {
    out->lua_memory += (long long)__atomic_load_n(&lrt->lua_memory[i], __ATOMIC_RELAXED);
    out->io_spins += (long long)__atomic_load_n(&rt->scheds[i]->spins, __ATOMIC_RELAXED);
    out->io_spin_hits += (long long)__atomic_load_n(&rt->scheds[i]->spin_hits, __ATOMIC_RELAXED);
  }
}

long long host_alive(lore_runtime *lrt) { return runtime_alive(lrt->rt); }
