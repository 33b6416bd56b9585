/* entities.c: entity managers: the registry, waking an entity on a message, passivating idle ones.
 */
#include "entities.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"
#include "lua_actor.h"
#include "worker.h"

/* --- the registry (host thread writes, any thread reads) --- */

int entities_register(lore_runtime *lrt, const char *name, const char *behaviour,
                      double passivate_after) {
  if (!name || !*name || strlen(name) > 255 || !behaviour || !*behaviour ||
      !(passivate_after > 0) || passivate_after > 1e7)
    return UV_EINVAL;
  int n = lrt->nmanagers;
  for (int i = 0; i < n; i++) {
    entity_manager *em = lrt->managers[i];
    if (strcmp(em->name, name) != 0) continue;
    if (strcmp(em->behaviour, behaviour) != 0) return UV_EEXIST;
    return i; /* the same manager asked for again */
  }
  if (n == LORE_MAX_MANAGERS) return UV_ENOSPC;
  entity_manager *em = calloc(1, sizeof *em);
  if (!em || !(em->name = strdup(name)) || !(em->behaviour = strdup(behaviour))) {
    if (em) free(em->name);
    free(em);
    return UV_ENOMEM;
  }
  em->passivate_after_ms = (uint64_t)(passivate_after * 1000.0);
  lrt->managers[n] = em;
  __atomic_store_n(&lrt->nmanagers, n + 1, __ATOMIC_RELEASE);
  return n;
}

int entities_count(lore_runtime *lrt) { return __atomic_load_n(&lrt->nmanagers, __ATOMIC_ACQUIRE); }

entity_manager *entities_manager(lore_runtime *lrt, int index) {
  return index >= 0 && index < entities_count(lrt) ? lrt->managers[index] : NULL;
}

int64_t entities_tag(lore_runtime *lrt, const char *manager) {
  if (!manager) return 0;
  int n = entities_count(lrt);
  for (int i = 0; i < n; i++)
    if (strcmp(lrt->managers[i]->name, manager) == 0) return i + 1;
  return 0;
}

void entities_free(lore_runtime *lrt) {
  for (int i = 0; i < lrt->nmanagers; i++) {
    free(lrt->managers[i]->name);
    free(lrt->managers[i]->behaviour);
    free(lrt->managers[i]);
  }
  lrt->nmanagers = 0;
}

static void add(int64_t *counter, int64_t n) { __atomic_add_fetch(counter, n, __ATOMIC_RELAXED); }

/* --- a worker's entities: idle order and passivation --- */

/* Per worker and manager, the entities in the order they last got a command
 * (oldest first): passivation only ever looks at the head. */
typedef struct idle_list {
  lua_actor_extra *head, *tail;
} idle_list;

typedef struct worker_entities {
  idle_list lists[LORE_MAX_MANAGERS];
  sched_timer *sweep;
  uint64_t sweep_ms;
} worker_entities;

static worker_entities *entities_of(binding_state *bs) {
  if (!bs->entities) bs->entities = calloc(1, sizeof(worker_entities));
  return bs->entities;
}

/* The runtime's handles are all closed when this runs (the worker's loop has
 * ended): the sweep timer is gone with them. */
void entities_worker_close(binding_state *bs) {
  free(bs->entities);
  bs->entities = NULL;
}

static void unlink_idle(worker_entities *we, lua_actor_extra *e) {
  idle_list *l = &we->lists[e->manager - 1];
  if (e->prev)
    e->prev->next = e->next;
  else if (l->head == e)
    l->head = e->next;
  if (e->next)
    e->next->prev = e->prev;
  else if (l->tail == e)
    l->tail = e->prev;
  e->prev = e->next = NULL;
}

static void append_idle(worker_entities *we, lua_actor_extra *e) {
  idle_list *l = &we->lists[e->manager - 1];
  e->prev = l->tail;
  e->next = NULL;
  if (l->tail)
    l->tail->next = e;
  else
    l->head = e;
  l->tail = e;
}

static void sweep(void *ud);

/* The sweep runs a quarter of the shortest passivation time apart (at most
 * once a second, at least every 10 ms), while the worker has entities. */
static void arm_sweep(binding_state *bs, worker_entities *we) {
  if (we->sweep || bs->sched->shutting_down) return;
  uint64_t ms = 1000;
  int n = entities_count(bs->lrt);
  for (int i = 0; i < n; i++) {
    uint64_t q = bs->lrt->managers[i]->passivate_after_ms / 4;
    if (q < ms) ms = q;
  }
  if (ms < 10) ms = 10;
  we->sweep_ms = ms;
  we->sweep = sched_timer_start(bs->sched, ms, sweep, bs, NULL);
}

/* Stops every entity idle for its manager's passivate_after: a safe stop,
 * behind what it has already queued; it leaves the idle list at once. */
static void sweep(void *ud) {
  binding_state *bs = ud;
  worker_entities *we = bs->entities;
  we->sweep = NULL;
  if (bs->sched->shutting_down) return;
  uint64_t now = uv_now(bs->sched->loop);
  int n = entities_count(bs->lrt), any = 0;
  for (int i = 0; i < n; i++) {
    idle_list *l = &we->lists[i];
    uint64_t after = bs->lrt->managers[i]->passivate_after_ms;
    while (l->head && now - l->head->last_active >= after) {
      lua_actor_extra *e = l->head;
      lua_actor *la = actor_lua(e->actor);
      unlink_idle(we, e);
      la->passivating = 1;
      lore_msg *m = msg_new(MSG_STOP, NULL, 0, NULL, 0);
      if (!m) {
        la->passivating = 0; /* out of memory: it stays awake */
        continue;
      }
      m->target.sched = bs->sched->index;
      m->target.aid = e->actor->aid;
      actor_enqueue(e->actor, m);
    }
    any |= l->head != NULL;
  }
  if (any) arm_sweep(bs, we);
}

void entities_touch(actor_t *a) {
  lua_actor *la = actor_lua(a);
  binding_state *bs = a->sched->data;
  if (!lua_actor_manager(la) || la->passivating) return;
  worker_entities *we = bs->entities;
  if (!we) return;
  lua_actor_extra *e = la->extra;
  e->last_active = uv_now(a->sched->loop);
  if (we->lists[e->manager - 1].tail == e) return;
  unlink_idle(we, e);
  append_idle(we, e);
}

void entities_stopped(actor_t *a) {
  lua_actor *la = actor_lua(a);
  binding_state *bs = a->sched->data;
  if (!lua_actor_manager(la)) return;
  entity_manager *em = entities_manager(bs->lrt, (int)la->extra->manager - 1);
  if (!la->passivating && bs->entities) unlink_idle(bs->entities, la->extra);
  add(&em->live, -1);
  if (la->passivating) add(&em->passivated, 1);
}

/* A command by name for an entity nobody holds here: spawn the manager's
 * behaviour with {id = name} (runtime.lua's spawn, which starts recovery for
 * a persistent one), then queue m to it; or queue it to the incarnation an
 * earlier one of the same batch woke. */
int entities_route_missing(sched_t *s, lore_msg *m) {
  binding_state *bs = s->data;
  lore_runtime *lrt = bs->lrt;
  if ((m->kind != MSG_USER && m->kind != MSG_TIMER) || m->ival <= 0 || s->shutting_down)
    return ACTOR_CONSUMED;
  entity_manager *em = entities_manager(lrt, (int)m->ival - 1);
  if (!em) return ACTOR_CONSUMED;
  /* A passivated entity's leftover commands come here one by one: the first
   * woke its next incarnation, which takes the rest behind it, in order. */
  actor_t *woken = sched_find_name(s, m->name);
  if (woken) {
    actor_enqueue(woken, m);
    return ACTOR_KEPT;
  }
  lua_State *L = bs->L;
  int top = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, bs->ref_spawn);
  lua_pushinteger(L, (lua_Integer)runtime_new_aid(s->rt));
  lua_createtable(L, 3, 0);
  lua_pushstring(L, em->behaviour);
  lua_rawseti(L, -2, 1);
  lua_createtable(L, 0, 1);
  lua_pushstring(L, m->name);
  lua_setfield(L, -2, "id");
  lua_rawseti(L, -2, 2);
  lua_pushstring(L, em->name);
  lua_rawseti(L, -2, 3);
  int ok = binding_pcall(bs, 2, 2) == LUA_OK && lua_toboolean(L, -2);
  if (!ok) {
    log_warn(&lrt->log, "entity %s/%s cannot wake up: %s", em->name, m->name,
             lua_tostring(L, -1) ? lua_tostring(L, -1) : "?");
    lua_settop(L, top);
    return ACTOR_CONSUMED;
  }
  lua_settop(L, top);
  actor_t *a = sched_find_name(s, m->name);
  lua_actor *la = a ? actor_lua(a) : NULL;
  if (!la) return ACTOR_CONSUMED;
  worker_entities *we = entities_of(bs);
  lua_actor_extra *e = we ? lua_actor_extra_of(la, a) : NULL;
  if (!e) return ACTOR_CONSUMED;
  e->manager = m->ival;
  e->last_active = uv_now(s->loop);
  append_idle(we, e);
  arm_sweep(bs, we);
  add(&em->live, 1);
  add(&em->woken, 1);
  actor_enqueue(a, m);
  return ACTOR_KEPT;
}

/* Entity ids are one namespace with every other persistence id (an entity's
 * persistence id is its id). A command for entity (manager, id) that finds
 * the id held by another manager's entity, or by an actor that is no entity,
 * would otherwise run that actor's behaviour on it: it is refused instead
 * (a dead letter; an asker gets an error naming both), and the holder never
 * sees it. */
int entities_refuse_holder(actor_t *a, const lore_msg *m) {
  if (m->kind != MSG_USER || m->ival <= 0) return 0;
  int64_t held_by = lua_actor_manager(actor_lua(a));
  if (held_by == m->ival) return 0;
  binding_state *bs = a->sched->data;
  entity_manager *want = entities_manager(bs->lrt, (int)m->ival - 1);
  entity_manager *have = held_by > 0 ? entities_manager(bs->lrt, (int)held_by - 1) : NULL;
  char text[600];
  int n = snprintf(text, sizeof text,
                   "entity id collision: '%s' of entity manager '%s' is held by %s%s%s "
                   "(entity ids share one namespace with every persistence id)",
                   m->name ? m->name : "?", want ? want->name : "?",
                   have ? "an entity of manager '" : "an actor that is not an entity",
                   have ? have->name : "", have ? "'" : "");
  size_t len = n < 0 ? 0 : (size_t)n < sizeof text ? (size_t)n : sizeof text - 1;
  /* counted and logged as a dead letter is (a script could send many) */
  __atomic_add_fetch(&a->sched->rt->dead_letters, 1, __ATOMIC_RELAXED);
  log_debug(&bs->lrt->log, "dead letter: %s", text);
  if (m->corr) binding_reply(a->sched->rt, m->sender, m->corr, REPLY_ERROR, text, len);
  return 1;
}
