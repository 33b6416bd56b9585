/* adapters_lua.c: a worker's side of event adapters: adapter files, lore.adapter bindings, query
 * pages. */
#include <dirent.h>
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "codec.h"
#include "host.h"
#include "lua_actor.h"
#include "query_page.h"
#include "worker.h"

/*
 * Adapters live in each worker's Lua state (lua/lore/adapters.lua), in the
 * sandbox, under the handler's instruction budget, like behaviours. The
 * host reaches them with two scheduler requests: WORKER_ADAPTER_BIND (an
 * adapter the application bound with lore.adapter) and WORKER_ADAPT_PAGE (a
 * page a query read: its events through from_journal). adapters.lua hands
 * its two entry points to C (core.adapters_entry); they are kept in the
 * registry under ENTRY_KEY.
 */

#define ENTRY_KEY "lore.adapters_entry"
#define MAX_ADAPTER_FILES 256

/* --- the core calls adapters.lua uses --- */

static int cmp_names(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* core.adapter_files() -> { {module =, path =}, ... }: the *.lua files of
 * the `adapters` folder of every scripts directory, sorted by name within a
 * directory, directories in their configured order; a name found in an
 * earlier directory hides the same name in a later one (as require does). */
static int core_adapter_files(lua_State *L) {
  binding_state *bs = worker_bs(L);
  lore_settings *c = &bs->lrt->cfg;
  lua_newtable(L);
  int list = lua_gettop(L);
  lua_newtable(L); /* names seen */
  int seen = list + 1;
  lua_Integer n = 0;
  for (int d = 0; d < c->nscripts; d++) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/adapters", c->scripts[d]);
    DIR *dh = opendir(dir);
    if (!dh) continue;
    char *names[MAX_ADAPTER_FILES];
    int count = 0;
    struct dirent *e;
    while ((e = readdir(dh)) && count < MAX_ADAPTER_FILES) {
      size_t len = strlen(e->d_name);
      if (e->d_name[0] == '.' || len < 5 || strcmp(e->d_name + len - 4, ".lua") != 0) continue;
      if (!(names[count] = strndup(e->d_name, len - 4))) break;
      count++;
    }
    closedir(dh);
    qsort(names, (size_t)count, sizeof names[0], cmp_names);
    for (int i = 0; i < count; i++) {
      char path[4200];
      snprintf(path, sizeof path, "%s/%s.lua", dir, names[i]);
      struct stat st;
      int plain = stat(path, &st) == 0 && S_ISREG(st.st_mode);
      if (plain && lua_getfield(L, seen, names[i]) == LUA_TNIL) {
        lua_pushboolean(L, 1);
        lua_setfield(L, seen, names[i]);
        lua_createtable(L, 0, 2);
        lua_pushfstring(L, "adapters.%s", names[i]);
        lua_setfield(L, -2, "module");
        lua_pushstring(L, path);
        lua_setfield(L, -2, "path");
        lua_rawseti(L, list, ++n);
      }
      if (plain) lua_pop(L, 1);
      free(names[i]);
    }
  }
  lua_settop(L, list);
  return 1;
}

/* core.adapters_entry(bind, adapt_page): the functions the host's requests call */
static int core_adapters_entry(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_createtable(L, 2, 0);
  lua_pushvalue(L, 1);
  lua_rawseti(L, -2, 1);
  lua_pushvalue(L, 2);
  lua_rawseti(L, -2, 2);
  lua_setfield(L, LUA_REGISTRYINDEX, ENTRY_KEY);
  return 0;
}

static const lore_msg *check_page(lua_State *L) {
  const lore_msg *m = lua_touserdata(L, 1);
  luaL_argcheck(L, m != NULL, 1, "not a query page");
  return m;
}

/* core.qpage_manifests(mptr) -> { manifest, ... }: one per event of the page */
static int core_qpage_manifests(lua_State *L) {
  const lore_msg *m = check_page(L);
  lua_newtable(L);
  size_t off = 0;
  qrec_view r;
  lua_Integer n = 0;
  while (qpage_next(m->data, m->len, &off, &r) == 1) {
    lua_pushlstring(L, r.manifest, r.manifest_len);
    lua_rawseti(L, -2, ++n);
  }
  return 1;
}

/* core.qpage_each(mptr, fn): fn(evt, meta) for each event of the page. An
 * event that does not decode raises naming its id and seq. */
static int core_qpage_each(lua_State *L) {
  const lore_msg *m = check_page(L);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  size_t off = 0;
  qrec_view r;
  char err[CODEC_ERR_MAX];
  int got;
  while ((got = qpage_next(m->data, m->len, &off, &r)) == 1) {
    lua_pushvalue(L, 2);
    if (codec_decode(L, r.payload, r.payload_len, err, sizeof err))
      return luaL_error(L, "event %s seq %I does not decode: %s",
                        lua_pushlstring(L, r.id, r.id_len), (lua_Integer)r.seq, err);
    qpage_push_meta(L, &r);
    lua_call(L, 2, 0);
  }
  if (got < 0) return luaL_error(L, "a query page is truncated");
  return 0;
}

void luaopen_lore_core_adapters(lua_State *L) {
  static const luaL_Reg fns[] = {{"adapter_files", core_adapter_files},
                                 {"adapters_entry", core_adapters_entry},
                                 {"qpage_manifests", core_qpage_manifests},
                                 {"qpage_each", core_qpage_each},
                                 {NULL, NULL}};
  luaL_setfuncs(L, fns, 0);
}

/* --- the host's requests --- */

static void answer_error(sched_t *s, lore_msg *m, const char *err) {
  binding_reply(s->rt, m->sender, m->corr, REPLY_ERROR, err, strlen(err));
}

int adapters_worker_message(sched_t *s, lore_msg *m) {
  binding_state *bs = s->data;
  lua_State *L = bs->L;
  int top = lua_gettop(L);
  bs->cur_actor = NULL;
  bs->cur_corr = 0;
  char err[CODEC_ERR_MAX];
  if (lua_getfield(L, LUA_REGISTRYINDEX, ENTRY_KEY) != LUA_TTABLE) {
    lua_settop(L, top);
    answer_error(s, m, "adapters are not loaded on this worker");
    return ACTOR_CONSUMED;
  }
  lua_rawgeti(L, -1, m->sub == WORKER_ADAPTER_BIND ? 1 : 2);
  if (m->sub == WORKER_ADAPTER_BIND) {
    if (codec_decode(L, m->data, m->len, err, sizeof err)) {
      lua_settop(L, top);
      answer_error(s, m, err);
      return ACTOR_CONSUMED;
    }
  } else {
    lua_pushlightuserdata(L, m);
  }
  if (binding_pcall(bs, 1, 1) != LUA_OK) {
    const char *e = lua_tostring(L, -1);
    answer_error(s, m, e ? e : "an adapter raised an error that is not a string");
  } else if (m->sub == WORKER_ADAPT_PAGE && lua_type(L, -1) == LUA_TTABLE) {
    bs->buf.size = 0;
    if (codec_encode(L, -1, "adapted events", &bs->buf, err, sizeof err))
      answer_error(s, m, err);
    else
      binding_reply(s->rt, m->sender, m->corr, REPLY_VALUE, bs->buf.data, bs->buf.size);
    bs->buf.size = 0;
  } else {
    binding_reply(s->rt, m->sender, m->corr, REPLY_VALUE, NULL, 0);
  }
  lua_settop(L, top);
  return ACTOR_CONSUMED;
}
