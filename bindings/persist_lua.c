/* persist_lua.c: the journal calls runtime.lua uses for persistent actors. */
#include <lauxlib.h>

#include "binding.h"

int luaopen_lore_core_persist(lua_State *L) {
  (void)L;
  return 0;
}
