/* dice.h: the `dice` native module behaviour scripts require (lore_preload). */
#ifndef EMBED_SERVER_DICE_H
#define EMBED_SERVER_DICE_H

#include <lua.h>

/* dice.roll([sides = 6]) -> 1..sides, from the system's random source.
 * Runs on Lore's worker threads, once per worker Lua state. */
int luaopen_dice(lua_State *L);

#endif
