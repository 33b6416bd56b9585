/* ref.c: actor references as Lua values and as bytes. */
#include "ref.h"

#include <lauxlib.h>
#include <string.h>

static int ref_eq(lua_State *L) {
  lore_ref *a = ref_test(L, 1), *b = ref_test(L, 2);
  int eq = a && b && a->sched == b->sched && a->aid == b->aid && a->name_len == b->name_len &&
           a->manager_len == b->manager_len &&
           memcmp(a->name, b->name, a->name_len + 1 + a->manager_len) == 0;
  lua_pushboolean(L, eq);
  return 1;
}

static int ref_tostring(lua_State *L) {
  lore_ref *r = ref_check(L, 1);
  if (r->manager_len)
    lua_pushfstring(L, "ref(%s/%s)", ref_manager(r), r->name);
  else if (r->name_len)
    lua_pushfstring(L, "ref(%s)", r->name);
  else
    lua_pushfstring(L, "ref(%d:%I)", (int)r->sched, (lua_Integer)r->aid);
  return 1;
}

/* The metatable is also kept under a pointer key: looking it up by its name
 * costs a string comparison per send (luaS_new checks its cache with strcmp). */
static const char ref_mt_key = 0;
/* ...and carries a mark in its slot 1: the address of ref_mark, which no
 * other code has. A ref is told apart by an integer lookup in its own
 * metatable instead of a pointer-key lookup in the registry (only C sets a
 * userdata's metatable). */
static const char ref_mark = 0;

void ref_init(lua_State *L) {
  if (luaL_newmetatable(L, REF_METATABLE)) {
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &ref_mt_key);
    lua_pushcfunction(L, ref_eq);
    lua_setfield(L, -2, "__eq");
    lua_pushcfunction(L, ref_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushliteral(L, "lore.ref");
    lua_setfield(L, -2, "__name");
    /* A script gets this string from getmetatable(ref), never the table: its
     * methods are shared by every actor of the worker. */
    lua_pushliteral(L, "lore.ref");
    lua_setfield(L, -2, "__metatable");
    lua_pushlightuserdata(L, (void *)&ref_mark);
    lua_rawseti(L, -2, 1);
  }
  lua_pop(L, 1);
}

_Static_assert(sizeof(lore_ref) == 16, "a ref's header is 16 bytes");

static lore_ref *ref_new(lua_State *L, size_t name_len, size_t manager_len) {
  /* Ids, manager names and serialized refs are checked far shorter before
   * they get here; a longer name must not wrap the 16-bit field. (A name of
   * REF_SERIALIZED_MAX bytes or more makes a ref the encoder refuses.) */
  if (name_len > UINT16_MAX || manager_len > REF_MANAGER_MAX)
    luaL_error(L, "a ref's name is too long");
  size_t extra = name_len + 1 + (manager_len ? manager_len + 1 : 0);
  lore_ref *r = lua_newuserdatauv(L, REF_SIZE(extra), 0);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &ref_mt_key);
  lua_setmetatable(L, -2);
  r->name_len = (uint16_t)name_len;
  r->manager_len = (uint8_t)manager_len;
  r->name[name_len] = '\0';
  return r;
}

lore_ref *ref_push_addr(lua_State *L, uint32_t sched, uint64_t aid) {
  lore_ref *r = ref_new(L, 0, 0);
  r->sched = sched;
  r->aid = aid;
  return r;
}

lore_ref *ref_push_name(lua_State *L, const char *name, size_t len) {
  lore_ref *r = ref_new(L, len, 0);
  r->sched = 0;
  r->aid = 0;
  memcpy(r->name, name, len);
  return r;
}

lore_ref *ref_push_entity(lua_State *L, const char *manager, size_t mlen, const char *id,
                          size_t len) {
  lore_ref *r = ref_new(L, len, mlen);
  r->sched = 0;
  r->aid = 0;
  memcpy(r->name, id, len);
  memcpy(r->name + len + 1, manager, mlen);
  r->name[len + 1 + mlen] = '\0';
  return r;
}

lore_ref *ref_test(lua_State *L, int idx) {
  void *p = lua_touserdata(L, idx);
  if (!p || !lua_getmetatable(L, idx)) return NULL;
  lua_rawgeti(L, -1, 1);
  int is_ref = lua_touserdata(L, -1) == &ref_mark;
  lua_pop(L, 2);
  return is_ref ? p : NULL;
}

lore_ref *ref_check(lua_State *L, int idx) {
  lore_ref *r = ref_test(L, idx);
  if (!r) luaL_typeerror(L, idx, REF_METATABLE);
  return r;
}

static void put_be(char *p, uint64_t v, int n) {
  for (int i = n - 1; i >= 0; i--, v >>= 8) p[i] = (char)(v & 0xff);
}

static uint64_t get_be(const char *p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; i++) v = (v << 8) | (unsigned char)p[i];
  return v;
}

size_t ref_serialize(const lore_ref *r, char *buf, size_t cap) {
  if (r->manager_len) { /* 3, manager length, manager, id */
    size_t n = 2 + r->manager_len + r->name_len;
    if (cap < n) return 0;
    buf[0] = 3;
    buf[1] = (char)r->manager_len;
    memcpy(buf + 2, ref_manager(r), r->manager_len);
    memcpy(buf + 2 + r->manager_len, r->name, r->name_len);
    return n;
  }
  if (r->name_len) {
    if (cap < (size_t)r->name_len + 1) return 0;
    buf[0] = 2;
    memcpy(buf + 1, r->name, r->name_len);
    return (size_t)r->name_len + 1;
  }
  if (cap < 13) return 0;
  buf[0] = 1;
  put_be(buf + 1, r->sched, 4);
  put_be(buf + 5, r->aid, 8);
  return 13;
}

int ref_serialized_valid(const char *buf, size_t len) {
  if (len == 13 && buf[0] == 1) return 1;
  if (len >= 2 && len <= REF_SERIALIZED_MAX && buf[0] == 2) return 1;
  if (len >= 4 && len <= REF_SERIALIZED_MAX && buf[0] == 3) {
    size_t mlen = (unsigned char)buf[1];
    return mlen != 0 && len >= 3 + mlen;
  }
  return 0;
}

int ref_push_serialized(lua_State *L, const char *buf, size_t len) {
  if (!ref_serialized_valid(buf, len)) return -1;
  if (buf[0] == 1) {
    ref_push_addr(L, (uint32_t)get_be(buf + 1, 4), get_be(buf + 5, 8));
  } else if (buf[0] == 2) {
    ref_push_name(L, buf + 1, len - 1);
  } else {
    size_t mlen = (unsigned char)buf[1];
    ref_push_entity(L, buf + 2, mlen, buf + 2 + mlen, len - 2 - mlen);
  }
  return 0;
}
