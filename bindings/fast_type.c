/* fast_type.c: the `type` function behaviours get, without interning its answer per call. */
#include <lauxlib.h>

#include "binding.h"

/* Lua's own type() pushes the type's name with lua_pushstring, which looks the C string up
 * in the string cache (a strcmp) on every call; behaviours call type() on most messages.
 * This one keeps the nine names as upvalues and pushes one: the same strings. */
static int fast_type(lua_State *L) {
  int t = lua_type(L, 1);
  if (t == LUA_TNONE) {
    /* The same error as Lua's: named by the call site when it has a name; otherwise
     * (pcall(type)) Lua's type raises it, so that it is named as a global function. */
    lua_Debug ar;
    if (lua_getstack(L, 0, &ar) && lua_getinfo(L, "n", &ar) && ar.name)
      return luaL_argerror(L, 1, "value expected");
    lua_pushvalue(L, lua_upvalueindex(LUA_NUMTYPES + 1));
    lua_call(L, 0, 1);
    return 1;
  }
  lua_pushvalue(L, lua_upvalueindex(t + 1));
  return 1;
}

void binding_push_type(lua_State *L) {
  for (int t = 0; t < LUA_NUMTYPES; t++) lua_pushstring(L, lua_typename(L, t));
  lua_getglobal(L, "type"); /* Lua's own, from the base library */
  lua_pushcclosure(L, fast_type, LUA_NUMTYPES + 1);
}
