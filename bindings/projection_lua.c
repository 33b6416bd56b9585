/* projection_lua.c: a projection's session: its SQL and its stored offset, one transaction per
 * batch. */
#include <lauxlib.h>
#include <msgpack.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "query.h"
#include "query_module.h"

/*
 * A session is the projection's own connection to the journal's database
 * (journal_session_*). Every use of it is a job on libuv's thread pool, one
 * at a time (projection.lua never starts a second before the first is done):
 * read the stored offset; commit a batch (the statements the handler gave
 * through ctx:exec, then the new offset, in one transaction: all or
 * nothing); run a read for the application (p:query). A job holds a
 * reference to the session's userdata, so the session outlives its jobs;
 * at shutdown the runtime closes it after the last job (query_shutdown).
 */

#define SESSION_MT "lore.projection_session"

typedef struct psession {
  query_closer closer;
  qmod *m;
  query_state *qs;
  journal_session *s; /* NULL once closed */
  char *name;
  int busy;
} psession;

/* One statement of a batch: its SQL and bound values, in one allocation. */
typedef struct pstmt {
  void *block; /* params, their texts, then the SQL */
  const char *sql;
  journal_value *params;
  size_t n;
} pstmt;

enum { PJ_OFFSET, PJ_COMMIT, PJ_QUERY, PJ_MAX_OFFSET };

typedef struct pjob {
  qjob job;
  qmod *m;
  psession *ps; /* NULL for PJ_MAX_OFFSET */
  int kind;
  int ps_ref, fn_ref;
  pstmt *stmts;
  size_t nstmts;
  int set_offset;
  int64_t offset;
  size_t failed; /* the statement that failed (1-based), 0: none */
  char *errmsg;
  msgpack_sbuffer rows;
  uint32_t nrows;
} pjob;

/* --- on the thread pool --- */

static void set_error(pjob *p, const char *fmt_prefix, const char *detail) {
  size_t n = strlen(fmt_prefix) + strlen(detail) + 3;
  free(p->errmsg);
  p->errmsg = malloc(n);
  if (p->errmsg) snprintf(p->errmsg, n, "%s%s", fmt_prefix, detail);
}

static int pack_row(void *ud, int n, const char *const *names, const journal_value *values) {
  pjob *p = ud;
  msgpack_packer pk;
  msgpack_packer_init(&pk, &p->rows, msgpack_sbuffer_write);
  int present = 0;
  for (int i = 0; i < n; i++) present += values[i].type != JV_NULL;
  msgpack_pack_map(&pk, (size_t)present);
  for (int i = 0; i < n; i++) {
    const journal_value *v = &values[i];
    if (v->type == JV_NULL) continue;
    msgpack_pack_str_with_body(&pk, names[i], strlen(names[i]));
    switch (v->type) {
      case JV_INT:
        msgpack_pack_int64(&pk, v->i);
        break;
      case JV_FLOAT:
        msgpack_pack_double(&pk, v->f);
        break;
      default:
        msgpack_pack_str_with_body(&pk, v->s ? v->s : "", v->len);
        break;
    }
  }
  p->nrows++;
  return 0;
}

static void pjob_run(qjob *j) {
  pjob *p = (pjob *)j;
  journal_t *jn = query_runtime(j->qs)->journal;
  journal_session *s = p->ps ? p->ps->s : NULL;
  int st = 0;
  switch (p->kind) {
    case PJ_MAX_OFFSET:
      st = journal_max_offset(jn, &p->offset);
      break;
    case PJ_OFFSET:
      st = journal_session_get_offset(s, p->ps->name, &p->offset);
      break;
    case PJ_QUERY:
      /* rows go out as one MessagePack array: its header is patched at the end */
      msgpack_sbuffer_write(&p->rows, "\xdd\0\0\0\0", 5);
      st = journal_session_exec(s, p->stmts[0].sql, p->stmts[0].params, p->stmts[0].n, pack_row, p);
      if (st == JOURNAL_ESQL) set_error(p, "", journal_session_errmsg(s));
      if (st == 0 && p->rows.data) {
        unsigned char *h = (unsigned char *)p->rows.data + 1;
        h[0] = (unsigned char)(p->nrows >> 24);
        h[1] = (unsigned char)(p->nrows >> 16);
        h[2] = (unsigned char)(p->nrows >> 8);
        h[3] = (unsigned char)p->nrows;
      }
      break;
    default: {
      st = journal_session_begin(s);
      for (size_t i = 0; st == 0 && i < p->nstmts; i++) {
        st =
            journal_session_exec(s, p->stmts[i].sql, p->stmts[i].params, p->stmts[i].n, NULL, NULL);
        if (st) {
          p->failed = i + 1;
          if (st == JOURNAL_ESQL) set_error(p, "", journal_session_errmsg(s));
        }
      }
      if (st == 0 && p->set_offset) st = journal_session_set_offset(s, p->ps->name, p->offset);
      if (st == 0) st = journal_session_commit(s);
      if (st) journal_session_rollback(s);
      break;
    }
  }
  j->status = st;
}

/* --- back on the host loop --- */

static void stmts_free(pstmt *stmts, size_t n) {
  if (!stmts) return;
  for (size_t i = 0; i < n; i++) free(stmts[i].block);
  free(stmts);
}

static void pjob_free(pjob *p) {
  lua_State *T = p->m->T;
  if (p->fn_ref != LUA_NOREF) luaL_unref(T, LUA_REGISTRYINDEX, p->fn_ref);
  if (p->ps_ref != LUA_NOREF) luaL_unref(T, LUA_REGISTRYINDEX, p->ps_ref);
  stmts_free(p->stmts, p->nstmts);
  free(p->errmsg);
  msgpack_sbuffer_destroy(&p->rows);
  free(p);
}

static void pjob_done(qjob *j, int status) {
  pjob *p = (pjob *)j;
  if (p->ps) p->ps->busy = 0;
  lore_runtime *lrt = query_runtime(j->qs);
  if (query_closing(j->qs) || p->fn_ref == LUA_NOREF) {
    pjob_free(p);
    return;
  }
  lua_State *T = p->m->T;
  lua_rawgeti(T, LUA_REGISTRYINDEX, p->fn_ref);
  int nargs = 1;
  if (status) {
    lua_pushnil(T);
    if (status == JOURNAL_ENOTSUP)
      lua_pushfstring(T, "the journal %s runs no SQL (projections with tables need sqlite:)",
                      lrt->cfg.journal);
    else if (p->errmsg)
      lua_pushstring(T, p->errmsg);
    else
      lua_pushstring(T, lore_strerror(status));
    lua_pushinteger(T, (lua_Integer)p->failed);
    nargs = 3;
  } else if (p->kind == PJ_QUERY) {
    char err[CODEC_ERR_MAX];
    if (codec_decode(T, p->rows.data, p->rows.size, err, sizeof err)) {
      lua_pushnil(T);
      lua_pushstring(T, err);
      nargs = 2;
    }
  } else if (p->kind == PJ_COMMIT) {
    lua_pushboolean(T, 1);
  } else {
    lua_pushinteger(T, (lua_Integer)p->offset);
  }
  qmod *m = p->m;
  pjob_free(p);
  qmod_call(m, lrt, nargs);
}

/* --- statements from Lua: { {sql, params, n}, ... } --- */

/* Why statement `idx` cannot be run (NULL if it can): checked before anything
 * is allocated, so a refusal leaks nothing. */
static const char *stmt_problem(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  if (lua_type(L, idx) != LUA_TTABLE) return "a statement is {sql, params, n}";
  int t = lua_rawgeti(L, idx, 1);
  lua_pop(L, 1);
  if (t != LUA_TSTRING) return "the SQL must be a string";
  lua_rawgeti(L, idx, 3);
  lua_Integer n = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : 0;
  lua_pop(L, 1);
  if (n < 0 || n > 999) return "at most 999 parameters";
  if (n == 0) return NULL;
  if (lua_rawgeti(L, idx, 2) != LUA_TTABLE) {
    lua_pop(L, 1);
    return "the parameters must be a table";
  }
  for (lua_Integer i = 1; i <= n; i++) {
    t = lua_rawgeti(L, -1, i);
    lua_pop(L, 1);
    if (t != LUA_TNIL && t != LUA_TBOOLEAN && t != LUA_TNUMBER && t != LUA_TSTRING)
      return lua_pushfstring(L, "parameter %d is a %s: bind nil, booleans, numbers or strings",
                             (int)i, lua_typename(L, t)); /* left on the stack: the caller raises */
  }
  lua_pop(L, 1);
  return NULL;
}

/* Copies statement `idx` (checked) into out, in one block: 0, or -1 when out
 * of memory. */
static int stmt_copy(lua_State *L, int idx, pstmt *out) {
  idx = lua_absindex(L, idx);
  lua_rawgeti(L, idx, 1);
  size_t sql_len;
  const char *sql = lua_tolstring(L, -1, &sql_len);
  lua_rawgeti(L, idx, 3);
  size_t n = lua_isinteger(L, -1) ? (size_t)lua_tointeger(L, -1) : 0;
  lua_pop(L, 1);
  lua_rawgeti(L, idx, 2);
  int params = lua_gettop(L);
  size_t bytes = n * sizeof(journal_value) + sql_len + 1;
  for (size_t i = 1; i <= n; i++) {
    if (lua_rawgeti(L, params, (lua_Integer)i) == LUA_TSTRING) bytes += lua_rawlen(L, -1) + 1;
    lua_pop(L, 1);
  }
  char *block = malloc(bytes);
  if (!block) {
    lua_pop(L, 2);
    return -1;
  }
  journal_value *vals = (journal_value *)block;
  char *text = block + n * sizeof(journal_value);
  for (size_t i = 1; i <= n; i++) {
    journal_value *v = &vals[i - 1];
    memset(v, 0, sizeof *v);
    int t = lua_rawgeti(L, params, (lua_Integer)i);
    if (t == LUA_TBOOLEAN) {
      v->type = JV_INT;
      v->i = lua_toboolean(L, -1);
    } else if (t == LUA_TNUMBER && lua_isinteger(L, -1)) {
      v->type = JV_INT;
      v->i = (int64_t)lua_tointeger(L, -1);
    } else if (t == LUA_TNUMBER) {
      v->type = JV_FLOAT;
      v->f = (double)lua_tonumber(L, -1);
    } else if (t == LUA_TSTRING) {
      size_t len;
      const char *str = lua_tolstring(L, -1, &len);
      memcpy(text, str, len);
      text[len] = '\0';
      v->type = JV_TEXT;
      v->s = text;
      v->len = len;
      text += len + 1;
    } else {
      v->type = JV_NULL;
    }
    lua_pop(L, 1);
  }
  memcpy(text, sql, sql_len + 1);
  out->block = block;
  out->sql = text;
  out->params = n ? vals : NULL;
  out->n = n;
  lua_pop(L, 2);
  return 0;
}

/* --- the session userdata --- */

static psession *check_session(lua_State *L) {
  psession *ps = luaL_checkudata(L, 1, SESSION_MT);
  if (!ps->s || !ps->qs) luaL_error(L, "projection '%s': its session is closed", ps->name);
  return ps;
}

static void session_close(psession *ps) {
  if (ps->s) journal_session_close(ps->s);
  ps->s = NULL;
  if (ps->qs) query_closer_remove(ps->qs, &ps->closer);
  ps->qs = NULL;
}

static void session_closed_by_runtime(query_closer *cl) {
  psession *ps = (psession *)((char *)cl - offsetof(psession, closer));
  ps->qs = NULL; /* already off the list */
  if (ps->s) journal_session_close(ps->s);
  ps->s = NULL;
}

static int session_gc(lua_State *L) {
  psession *ps = luaL_checkudata(L, 1, SESSION_MT);
  session_close(ps); /* no job is in flight: each holds a reference to ps */
  free(ps->name);
  ps->name = NULL;
  return 0;
}

/* qcore.session(name) -> a session: the projection's own connection to the
 * journal's database. Raises when it cannot be opened. */
static int l_session(lua_State *L) {
  qmod *m = qmod_of(L);
  const char *name = luaL_checkstring(L, 1);
  lore_runtime *lrt = app_runtime(L, m->h);
  query_state *qs = query_state_of(lrt);
  if (!qs) return luaL_error(L, "out of memory");
  if (query_closing(qs)) return luaL_error(L, "%s", lore_strerror(LORE_ESHUTDOWN));
  psession *ps = lua_newuserdatauv(L, sizeof *ps, 0);
  memset(ps, 0, sizeof *ps);
  luaL_setmetatable(L, SESSION_MT);
  if (!(ps->name = strdup(name))) return luaL_error(L, "out of memory");
  int rc = journal_session_open(lrt->journal, &ps->s);
  if (rc) {
    ps->s = NULL;
    return luaL_error(L, "projection '%s': cannot open a session on %s: %s", name, lrt->cfg.journal,
                      lore_strerror(rc));
  }
  ps->m = m;
  ps->qs = qs;
  ps->closer.close = session_closed_by_runtime;
  query_closer_add(qs, &ps->closer);
  return 1;
}

static pjob *pjob_new(lua_State *L, qmod *m, int kind) {
  pjob *p = calloc(1, sizeof *p);
  if (!p) luaL_error(L, "out of memory");
  p->m = m;
  p->kind = kind;
  p->ps_ref = p->fn_ref = LUA_NOREF;
  msgpack_sbuffer_init(&p->rows);
  p->job.run = pjob_run;
  p->job.done = pjob_done;
  return p;
}

/* Starts p for session ps (at 1; NULL: none) with callback fn (at fn_idx). */
static int pjob_go(lua_State *L, query_state *qs, psession *ps, pjob *p, int fn_idx) {
  if (ps && ps->busy) {
    pjob_free(p);
    return luaL_error(L, "projection '%s': its session is busy (one job at a time)", ps->name);
  }
  p->ps = ps;
  p->fn_ref = qmod_ref_fn(p->m, L, fn_idx);
  if (ps) p->ps_ref = qmod_ref_fn(p->m, L, 1);
  int rc = qjob_start(qs, &p->job);
  if (rc) {
    pjob_free(p);
    return luaL_error(L, "%s", lore_strerror(rc));
  }
  if (ps) ps->busy = 1;
  return 0;
}

/* qcore.session_offset(s, fn): fn(offset) or fn(nil, err) */
static int l_session_offset(lua_State *L) {
  psession *ps = check_session(L);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  return pjob_go(L, ps->qs, ps, pjob_new(L, ps->m, PJ_OFFSET), 2);
}

/* qcore.session_commit(s, stmts, offset|nil, fn): one transaction: the
 * statements, then (unless nil) the projection's offset. fn(true), or
 * fn(nil, err, index of the failing statement or 0). */
static int l_session_commit(lua_State *L) {
  psession *ps = check_session(L);
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checktype(L, 4, LUA_TFUNCTION);
  size_t n = (size_t)lua_rawlen(L, 2);
  for (size_t i = 1; i <= n; i++) {
    lua_rawgeti(L, 2, (lua_Integer)i);
    const char *why = stmt_problem(L, -1);
    if (why) return luaL_error(L, "statement %d: %s", (int)i, why);
    lua_pop(L, 1);
  }
  pjob *p = pjob_new(L, ps->m, PJ_COMMIT);
  if (!lua_isnil(L, 3)) {
    p->set_offset = 1;
    p->offset = (int64_t)luaL_checkinteger(L, 3);
  }
  if (n && !(p->stmts = calloc(n, sizeof *p->stmts))) {
    pjob_free(p);
    return luaL_error(L, "out of memory");
  }
  for (size_t i = 1; i <= n; i++) {
    lua_rawgeti(L, 2, (lua_Integer)i);
    int oom = stmt_copy(L, -1, &p->stmts[i - 1]);
    lua_pop(L, 1);
    if (oom) {
      pjob_free(p);
      return luaL_error(L, "out of memory");
    }
    p->nstmts = i;
  }
  return pjob_go(L, ps->qs, ps, p, 4);
}

/* qcore.session_query(s, {sql, params, n}, fn): fn(rows) or fn(nil, err);
 * rows: a list of {column = value} (NULL columns absent). */
static int l_session_query(lua_State *L) {
  psession *ps = check_session(L);
  luaL_checktype(L, 3, LUA_TFUNCTION);
  const char *why = stmt_problem(L, 2);
  if (why) return luaL_error(L, "%s", why);
  pjob *p = pjob_new(L, ps->m, PJ_QUERY);
  if (!(p->stmts = calloc(1, sizeof *p->stmts)) || stmt_copy(L, 2, &p->stmts[0])) {
    pjob_free(p);
    return luaL_error(L, "out of memory");
  }
  p->nstmts = 1;
  return pjob_go(L, ps->qs, ps, p, 3);
}

/* qcore.session_close(s) */
static int l_session_close(lua_State *L) {
  psession *ps = luaL_checkudata(L, 1, SESSION_MT);
  if (ps->busy) return luaL_error(L, "projection '%s': its session is busy", ps->name);
  session_close(ps);
  return 0;
}

/* qcore.session_alive(s) -> whether it is open (its runtime still runs) */
static int l_session_alive(lua_State *L) {
  psession *ps = luaL_checkudata(L, 1, SESSION_MT);
  lua_pushboolean(L, ps->s != NULL && ps->qs != NULL && !query_closing(ps->qs));
  return 1;
}

/* qcore.max_offset(fn): fn(the journal's highest offset) or fn(nil, err) */
static int l_max_offset(lua_State *L) {
  qmod *m = qmod_of(L);
  luaL_checktype(L, 1, LUA_TFUNCTION);
  query_state *qs = query_state_of(app_runtime(L, m->h));
  if (!qs) return luaL_error(L, "out of memory");
  return pjob_go(L, qs, NULL, pjob_new(L, m, PJ_MAX_OFFSET), 1);
}

/* qcore.has_sql() -> whether the journal's sessions run SQL (not "memory:") */
static int l_has_sql(lua_State *L) {
  qmod *m = qmod_of(L);
  lore_runtime *lrt = app_runtime(L, m->h);
  lua_pushboolean(L, strcmp(journal_scheme(lrt->journal), "memory") != 0);
  return 1;
}

void projection_register(lua_State *L) {
  if (luaL_newmetatable(L, SESSION_MT)) {
    lua_pushcfunction(L, session_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushliteral(L, "lore.projection_session");
    lua_setfield(L, -2, "__name");
  }
  lua_pop(L, 1);
}

void projection_push_calls(lua_State *L) {
  static const luaL_Reg fns[] = {{"session", l_session},
                                 {"session_offset", l_session_offset},
                                 {"session_commit", l_session_commit},
                                 {"session_query", l_session_query},
                                 {"session_close", l_session_close},
                                 {"session_alive", l_session_alive},
                                 {"max_offset", l_max_offset},
                                 {"has_sql", l_has_sql},
                                 {NULL, NULL}};
  lua_pushvalue(L, -2);
  luaL_setfuncs(L, fns, 1);
}
