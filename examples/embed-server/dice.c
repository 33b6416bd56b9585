/* dice.c: the `dice` native module: a C function behaviour scripts call like any Lua one. */
#include "dice.h"

#include <lauxlib.h>
#include <stdint.h>
#include <sys/random.h>

/* getrandom is thread-safe: the workers may roll at the same time. */
static int dice_roll(lua_State *L) {
  lua_Integer sides = luaL_optinteger(L, 1, 6);
  luaL_argcheck(L, sides >= 2 && sides <= 1000, 1, "a die has 2 to 1000 sides");
  uint32_t r;
  if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r) return luaL_error(L, "dice: no randomness");
  lua_pushinteger(L, 1 + (lua_Integer)(r % (uint32_t)sides));
  return 1;
}

int luaopen_dice(lua_State *L) {
  static const luaL_Reg fns[] = {{"roll", dice_roll}, {NULL, NULL}};
  luaL_newlib(L, fns);
  return 1;
}
