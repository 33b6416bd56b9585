/* sandbox_patterns.h: string.find/match/gmatch/gsub whose pattern matching is counted and can be
 * stopped, for untrusted scripts that a count hook alone cannot bound. */
#ifndef LORE_SANDBOX_PATTERNS_H
#define LORE_SANDBOX_PATTERNS_H

#include <lua.h>
#include <stddef.h>

/* Steps are handed to the charge function in batches of at least this many, so the callback
 * stays off the matcher's hot path; one batch is the most a match can overshoot a budget by,
 * plus one linear scan of the subject (see "steps" below). */
#define SANDBOX_PATTERN_CHUNK 1000

/*
 * Called once SANDBOX_PATTERN_CHUNK or more steps are pending (and once at the end of every call
 * with the remainder; every call costs at least one step) with the number of steps taken since
 * the last charge. It may raise a Lua error (lua_error / luaL_error) to stop the match: the
 * matcher allocates nothing and keeps its state on the C stack or in collectable userdata, so the
 * longjmp leaks nothing. It must leave the Lua stack as it found it and must not yield.
 *
 * A step is one unit of the matcher's work: one pattern item tried at one subject position (so
 * every start position that find/match/gmatch/gsub try costs one at least), one subject
 * character tested by a repetition (*, +, -) or by %b, one candidate of a plain find; a bracket
 * set charges one more step per 8 characters of its text; memcmp/memchr and copies of n bytes
 * charge n / 64. On a 1 MB subject a one-item pattern costs about 1M steps, a step a few ns.
 */
typedef void (*sandbox_pattern_charge)(lua_State *L, void *ud, size_t steps);

/*
 * Pushes a table with find, match, gmatch and gsub that behave exactly like Lua 5.4's string
 * functions of the same names (same results, same errors, same limits), except that they charge
 * their work to `charge`, which receives `ud`. Raises only on memory exhaustion.
 */
void sandbox_patterns_push(lua_State *L, sandbox_pattern_charge charge, void *ud);

#endif
