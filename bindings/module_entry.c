/* module_entry.c: the entry point of lore.so, for `require "lore"` from a stock lua5.4. */
#include "binding.h"

__attribute__((visibility("default"))) int luaopen_lore(lua_State *L) {
  return lore_open_module(L);
}
