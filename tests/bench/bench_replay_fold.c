/* bench_replay_fold.c: a cart's whole replay done by hand, the second baseline of
 * persist_bench.lua's replay rows (figures only, never pass/fail).
 *
 * bench_sqlite_baseline's replay only steps the rows; this is what a user who
 * skipped Lore would write to get the same result Lore's replay gives: the same
 * prepared SELECT on a file `bench_sqlite_baseline fill` wrote, each payload
 * decoded with msgpack-c (one zone, cleared per event) into a fresh Lua table,
 * and folded by cart.lua's own M.apply in a bare Lua 5.4 state (no sandbox, no
 * memory accounting, no actor, no mailbox, no thread hand-off).
 *
 *   bench_replay_fold PATH ID EVENTS CART_LUA
 *       Prints: BASE replayfold rows=N seconds=S
 *
 * The timed stretch runs from loading CART_LUA to the folded state checked
 * (state.count == EVENTS, as Lore's round checks its cart's answer): Lore's
 * clock, too, starts before the cart's behaviour is loaded. It excludes opening
 * the file, preparing the statement and creating the Lua state, as Lore's
 * excludes starting the runtime (its workers' Lua states) and opening its
 * journal. The items' totals are then checked against cart.lua's formula,
 * untimed. Errors go to stderr with exit status 1; bad usage exits 2.
 *
 * Why apply is called from C once per event, in a Lua state with the stock
 * allocator and collector: it is what Lore's own replay loop does, and each
 * alternative tried was within the noise of it (best of 12 runs over 1,000,000
 * events on this VM: 0.53 s; a Lua loop over batches of 256 decoded events
 * 0.52 s, the generational collector 0.51 s, mimalloc 0.51 s; medians all
 * 0.56-0.57 s), so the simplest stays.
 */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <msgpack.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* bench_sqlite_baseline.c's read, byte for byte. */
static const char SELECT_SQL[] = "SELECT seq, payload FROM events WHERE pid = ?1 ORDER BY seq";

/* Deep enough for any event an app would store; deeper payloads fail the run. */
#define MAX_DEPTH 32

typedef struct {
  sqlite3 *db;
  sqlite3_stmt *st;
  const char *id, *cart_lua;
  long events, rows;
  msgpack_zone zone;
} fold_job;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int usage(void) {
  fprintf(stderr, "usage: bench_replay_fold PATH ID EVENTS CART_LUA\n");
  return 2;
}

/* Pushes o as Lua sees MessagePack: maps and arrays as tables, str and bin as
 * strings, integers as integers where they fit. */
static void push_object(lua_State *L, const msgpack_object *o, int depth) {
  if (depth > MAX_DEPTH) luaL_error(L, "payload nested deeper than %d", MAX_DEPTH);
  switch (o->type) {
    case MSGPACK_OBJECT_NIL:
      lua_pushnil(L);
      break;
    case MSGPACK_OBJECT_BOOLEAN:
      lua_pushboolean(L, o->via.boolean);
      break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
      if (o->via.u64 <= (uint64_t)LUA_MAXINTEGER)
        lua_pushinteger(L, (lua_Integer)o->via.u64);
      else
        lua_pushnumber(L, (lua_Number)o->via.u64);
      break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
      lua_pushinteger(L, (lua_Integer)o->via.i64);
      break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
      lua_pushnumber(L, (lua_Number)o->via.f64);
      break;
    case MSGPACK_OBJECT_STR:
      lua_pushlstring(L, o->via.str.ptr, o->via.str.size);
      break;
    case MSGPACK_OBJECT_BIN:
      lua_pushlstring(L, o->via.bin.ptr, o->via.bin.size);
      break;
    case MSGPACK_OBJECT_ARRAY:
      luaL_checkstack(L, 2, "payload");
      lua_createtable(L, (int)o->via.array.size, 0);
      for (uint32_t i = 0; i < o->via.array.size; i++) {
        push_object(L, &o->via.array.ptr[i], depth + 1);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
      }
      break;
    case MSGPACK_OBJECT_MAP:
      luaL_checkstack(L, 3, "payload");
      lua_createtable(L, 0, (int)o->via.map.size);
      for (uint32_t i = 0; i < o->via.map.size; i++) {
        push_object(L, &o->via.map.ptr[i].key, depth + 1);
        if (lua_isnil(L, -1)) luaL_error(L, "a nil map key in a payload");
        push_object(L, &o->via.map.ptr[i].val, depth + 1);
        lua_rawset(L, -3);
      }
      break;
    default:
      luaL_error(L, "a MessagePack type a cart event never holds (%d)", (int)o->type);
  }
}

/* Under lua_pcall: every Lua error (apply's own, out of memory) lands there,
 * and the statement is reset by the caller on every path. Leaves the state. */
static int fold(lua_State *L) {
  fold_job *job = lua_touserdata(L, 1);
  if (luaL_loadfile(L, job->cart_lua) != LUA_OK) return lua_error(L);
  lua_call(L, 0, 1); /* M */
  if (lua_getfield(L, -1, "apply") != LUA_TFUNCTION) luaL_error(L, "cart.lua has no M.apply");
  if (lua_getfield(L, -2, "init") != LUA_TFUNCTION) luaL_error(L, "cart.lua has no M.init");
  lua_call(L, 0, 1); /* stack: job M apply state */
  const int apply = 3, state = 4;

  sqlite3_bind_text(job->st, 1, job->id, -1, SQLITE_STATIC);
  int rc;

  while ((rc = sqlite3_step(job->st)) == SQLITE_ROW) {
    if (sqlite3_column_int64(job->st, 0) != job->rows + 1) luaL_error(L, "a gap in seq");
    const char *p = sqlite3_column_blob(job->st, 1);
    size_t len = (size_t)sqlite3_column_bytes(job->st, 1), off = 0;
    msgpack_object evt;
    msgpack_zone_clear(&job->zone);
    if (msgpack_unpack(p, len, &off, &job->zone, &evt) != MSGPACK_UNPACK_SUCCESS)
      luaL_error(L, "payload %d is not one MessagePack value", (int)job->rows + 1);
    lua_pushvalue(L, apply);
    lua_pushvalue(L, state);
    push_object(L, &evt, 0);
    lua_call(L, 2, 1);
    if (!lua_isnil(L, -1))
      lua_replace(L, state); /* a nil return keeps the state, as Lore does */
    else
      lua_pop(L, 1);
    job->rows++;
  }
  if (rc != SQLITE_DONE) luaL_error(L, "select: %s", sqlite3_errmsg(job->db));
  if (lua_getfield(L, state, "count") != LUA_TNUMBER || lua_tointeger(L, -1) != job->events)
    luaL_error(L, "folded %d events into count %s, expected %d", (int)job->rows,
               luaL_tolstring(L, -1, NULL), (int)job->events);
  lua_pop(L, 1);
  lua_pushvalue(L, state);
  return 1;
}

/* cart.lua's M.item(seq) summed over seq 1..events: the totals a correct fold holds. */
static int check_items(lua_State *L, long events) {
  static const char *const SKUS[] = {"apple", "pear", "banana", "cherry"};
  long long want[4] = {0};
  for (long seq = 1; seq <= events; seq++) want[seq % 4] += seq % 9 + 1;
  if (lua_getfield(L, -1, "items") != LUA_TTABLE) return -1;
  for (int k = 0; k < 4; k++) {
    lua_getfield(L, -1, SKUS[k]);
    long long got = lua_isinteger(L, -1) ? (long long)lua_tointeger(L, -1) : 0;
    lua_pop(L, 1);
    if (got != want[k]) {
      fprintf(stderr, "bench_replay_fold: %s totals %lld, expected %lld\n", SKUS[k], got, want[k]);
      return -1;
    }
  }
  lua_pop(L, 1);
  return 0;
}

int main(int argc, char **argv) {
  sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); /* as bench_sqlite_baseline configures it */
  if (argc != 5) return usage();
  fold_job job = {.id = argv[2], .events = atol(argv[3]), .cart_lua = argv[4]};
  if (job.events < 1) return usage();

  int status = 1;
  lua_State *L = NULL;
  msgpack_zone_init(&job.zone, 4096);
  if (sqlite3_open_v2(argv[1], &job.db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK ||
      sqlite3_exec(job.db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL) != SQLITE_OK ||
      sqlite3_exec(job.db, "PRAGMA synchronous=FULL", NULL, NULL, NULL) != SQLITE_OK ||
      sqlite3_prepare_v2(job.db, SELECT_SQL, -1, &job.st, NULL) != SQLITE_OK) {
    fprintf(stderr, "bench_replay_fold: %s: %s\n", argv[1], sqlite3_errmsg(job.db));
    goto out;
  }
  if (!(L = luaL_newstate())) {
    fprintf(stderr, "bench_replay_fold: no Lua state\n");
    goto out;
  }
  luaL_openlibs(L);

  double t0 = now();
  lua_pushcfunction(L, fold);
  lua_pushlightuserdata(L, &job);
  int rc = lua_pcall(L, 1, 1, 0);
  double secs = now() - t0;
  sqlite3_reset(job.st);
  if (rc != LUA_OK) {
    fprintf(stderr, "bench_replay_fold: %s\n", lua_tostring(L, -1));
    goto out;
  }
  if (check_items(L, job.events) != 0) goto out;
  printf("BASE replayfold rows=%ld seconds=%.6f\n", job.rows, secs);
  status = 0;
out:
  if (L) lua_close(L);
  sqlite3_finalize(job.st);
  sqlite3_close(job.db);
  msgpack_zone_destroy(&job.zone);
  return status;
}
