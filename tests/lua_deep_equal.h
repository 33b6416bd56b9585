/* lua_deep_equal.h: the Lua source of `deq(a, b)`, a global deep equality for the codec
 * tests, stricter than ==: integers and floats differ (math.type), 0.0 and -0.0 differ
 * (1/x), nan equals nan; tables compare key by key. Keys that are tables or userdata are
 * skipped: two decodes of one map key are two distinct objects, never rawget-equal. Needs
 * the base and math libraries. */
#ifndef LORE_TESTS_LUA_DEEP_EQUAL_H
#define LORE_TESTS_LUA_DEEP_EQUAL_H

#define LUA_DEEP_EQUAL_SRC                                                            \
  "local function same_num(a, b)\n"                                                   \
  "  if math.type(a) ~= math.type(b) then return false end\n"                         \
  "  if a ~= a then return b ~= b end\n"                                              \
  "  if a == 0 and b == 0 then return 1 / a == 1 / b end\n"                           \
  "  return a == b\n"                                                                 \
  "end\n"                                                                             \
  "local function plain(k) return type(k) ~= 'table' and type(k) ~= 'userdata' end\n" \
  "function deq(a, b)\n"                                                              \
  "  local ta, tb = type(a), type(b)\n"                                               \
  "  if ta ~= tb then return false end\n"                                             \
  "  if ta == 'number' then return same_num(a, b) end\n"                              \
  "  if ta ~= 'table' then return a == b end\n"                                       \
  "  for k, v in next, a do\n"                                                        \
  "    if plain(k) then\n"                                                            \
  "      local w = rawget(b, k)\n"                                                    \
  "      if w == nil or not deq(v, w) then return false end\n"                        \
  "    end\n"                                                                         \
  "  end\n"                                                                           \
  "  for k in next, b do\n"                                                           \
  "    if plain(k) and rawget(a, k) == nil then return false end\n"                   \
  "  end\n"                                                                           \
  "  return true\n"                                                                   \
  "end\n"

#endif
