/* test_sandbox_patterns.c: the budgeted find/match/gmatch/gsub answer exactly as Lua's string
 * library does, and a charge that raises stops even a catastrophic pattern. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <lauxlib.h>
#include <lualib.h>

#include "sandbox_patterns.h"

#define BUDGET_MESSAGE "pattern budget exceeded"

/* What the charge function saw; `limit` 0 means it never raises. */
typedef struct charge_log {
  size_t total;
  size_t calls;
  size_t limit;
  size_t last_batch;
  size_t small_batches; /* batches under SANDBOX_PATTERN_CHUNK: one per finished call at most */
} charge_log;

static void charge_to_log(lua_State *L, void *ud, size_t steps) {
  charge_log *log = ud;
  int top = lua_gettop(L);
  log->total += steps;
  log->calls++;
  log->last_batch = steps;
  if (steps < SANDBOX_PATTERN_CHUNK) log->small_batches++;
  /* a charge may use the stack as long as it leaves it as it was */
  lua_pushinteger(L, (lua_Integer)steps);
  lua_pop(L, 1);
  assert_int_equal(lua_gettop(L), top);
  if (log->limit && log->total > log->limit) {
    lua_pushliteral(L, BUDGET_MESSAGE); /* exact, where luaL_error would prefix the caller's line */
    lua_error(L);
  }
}

typedef struct fixture {
  lua_State *L;
  charge_log log;
} fixture;

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  assert_non_null(f);
  f->L = luaL_newstate();
  assert_non_null(f->L);
  luaL_openlibs(f->L);
  sandbox_patterns_push(f->L, charge_to_log, &f->log);
  assert_int_equal(lua_gettop(f->L), 1);
  lua_setglobal(f->L, "P");
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  lua_close(f->L);
  free(f);
  return 0;
}

/* Runs a chunk that must succeed and leaves its first result on the stack. */
static void run_lua(lua_State *L, const char *chunk) {
  if (luaL_loadstring(L, chunk) != LUA_OK) fail_msg("load: %s", lua_tostring(L, -1));
  if (lua_pcall(L, 0, 1, 0) != LUA_OK) fail_msg("run: %s", lua_tostring(L, -1));
}

/* Runs a chunk that must fail and returns its error message (valid until the next pop). */
static const char *run_lua_failing(lua_State *L, const char *chunk) {
  if (luaL_loadstring(L, chunk) != LUA_OK) fail_msg("load: %s", lua_tostring(L, -1));
  int status = lua_pcall(L, 0, 1, 0);
  assert_int_equal(status, LUA_ERRRUN);
  assert_true(lua_isstring(L, -1));
  return lua_tostring(L, -1);
}

/* The comparison harness: each case is a function of a library (`string` or `P`); it runs under
 * pcall with both and the packed results, errors included, must be deeply equal. */
static const char *HARNESS_LUA =
    "local function pack(...) return {n = select('#', ...), ...} end\n"
    "local function same(a, b)\n"
    "  if type(a) ~= type(b) then return false end\n"
    "  if type(a) == 'number' then return math.type(a) == math.type(b) and a == b end\n"
    "  if type(a) ~= 'table' then return a == b end\n"
    "  for k, v in pairs(a) do if not same(v, b[k]) then return false end end\n"
    "  for k in pairs(b) do if a[k] == nil then return false end end\n"
    "  return true\n"
    "end\n"
    "function show(v)\n"
    "  if type(v) == 'string' then return string.format('%q', v) end\n"
    "  if type(v) ~= 'table' then return tostring(v) end\n"
    "  local parts = {}\n"
    "  for i = 1, (v.n or #v) do parts[#parts + 1] = show(v[i]) end\n"
    "  for k, x in pairs(v) do\n"
    "    if math.type(k) ~= 'integer' and k ~= 'n' then parts[#parts + 1] = tostring(k) .. '=' .. "
    "show(x) end\n"
    "  end\n"
    "  return '{' .. table.concat(parts, ', ') .. '}'\n"
    "end\n"
    "cases = {}\n"
    "function case(desc, run) cases[#cases + 1] = {desc = desc, run = run} end\n"
    "local function call_desc(name, args)\n"
    "  local shown = {}\n"
    "  for i = 1, args.n do shown[i] = show(args[i]) end\n"
    "  return name .. '(' .. table.concat(shown, ', ') .. ')'\n"
    "end\n"
    "function F(name, ...)\n"
    "  local args = pack(...)\n"
    "  case(call_desc(name, args), function(lib) return lib[name](table.unpack(args, 1, args.n)) "
    "end)\n"
    "end\n"
    "function collect(lib, ...)\n"
    "  local it, out = lib.gmatch(...), {}\n"
    "  while true do\n"
    "    local r = pack(it())\n"
    "    if r[1] == nil then out.after = pack(it()); return out end\n"
    "    out[#out + 1] = r\n"
    "    if #out > 10000 then error('runaway gmatch') end\n"
    "  end\n"
    "end\n"
    "function G(...)\n"
    "  local args = pack(...)\n"
    "  case(call_desc('gmatch', args), function(lib) return collect(lib, table.unpack(args, 1, "
    "args.n)) end)\n"
    "end\n"
    "function compare_all()\n"
    "  local failures = {}\n"
    "  for _, c in ipairs(cases) do\n"
    "    local want = pack(pcall(c.run, string))\n"
    "    local got = pack(pcall(c.run, P))\n"
    "    if not same(want, got) then\n"
    "      failures[#failures + 1] = c.desc .. ': string gives ' .. show(want) .. ', P gives ' .. "
    "show(got)\n"
    "      if #failures >= 20 then break end\n"
    "    end\n"
    "  end\n"
    "  local n = #cases\n"
    "  cases = {}\n"
    "  return n, table.concat(failures, '\\n')\n"
    "end\n";

/* Runs every registered case against both libraries; fails with the differences. */
static void compare_cases(lua_State *L, int at_least) {
  lua_getglobal(L, "compare_all");
  if (lua_pcall(L, 0, 2, 0) != LUA_OK) fail_msg("compare_all: %s", lua_tostring(L, -1));
  int n = (int)lua_tointeger(L, -2);
  const char *failures = lua_tostring(L, -1);
  if (failures[0]) fail_msg("results differ from the string library:\n%s", failures);
  if (n < at_least) fail_msg("only %d cases ran, want at least %d", n, at_least);
  lua_pop(L, 2);
}

static void load_cases(lua_State *L, const char *chunk) {
  if (luaL_dostring(L, HARNESS_LUA) != LUA_OK) fail_msg("harness: %s", lua_tostring(L, -1));
  if (luaL_dostring(L, chunk) != LUA_OK) fail_msg("cases: %s", lua_tostring(L, -1));
}

static const char *FIND_MATCH_CASES =
    "for _, fn in ipairs{'find', 'match'} do\n"
    "  local function T(...) F(fn, ...) end\n"
    "  T('hello world', 'o w'); T('hello world', 'o', 5); T('hello world', 'o', 6)\n"
    "  T('hello', 'l+'); T('hello', '^h'); T('hello', '^e'); T('hello', 'o$'); T('hello', '$')\n"
    "  T('hel$lo', 'l$l'); T('a$', '$$'); T('^a', '^^a'); T('a^', 'a^')\n"
    "  T('hello', '', 10); T('hello', '', 6); T('hello', '', 7); T('hello', 'l', -2)\n"
    "  T('hello', 'l', -100); T('hello', 'h', 0); T('hello', 'o', -1); T('hello', '^l', 3)\n"
    "  T('hello', '^l', -2); T('', ''); T('', 'a*'); T('', '^$'); T('', '.'); T('', '^')\n"
    "  T('a\\0b', '\\0'); T('a\\0b', '%z'); T('a\\0b', '[\\0]'); T('a\\0b', '[%z]+')\n"
    "  T('a\\0b\\0', 'b%z$'); T('abc', '[%a]+'); T('key = value', '(%w+)%s*=%s*(%w+)')\n"
    "  T('hello', '()ll()'); T('hello', '()'); T('hello', '()', 4); T('hello', '(h)(e)()')\n"
    "  T('THE (quick) fox', '%((%a+)%)'); T('f(a(b)c)d', '%b()'); T('f(a(b)c', '%b()')\n"
    "  T('[[x]]', '%b[]'); T('if a then b end end', '%bie'); T('xx', '%bxx'); T('x', '%bxy')\n"
    "  T('THE (quick) fox', '%f[%a]%a+', 5); T('hello world', '%f[%w]%w+$')\n"
    "  T('THE (quick) fox', '%f[%l]%a+'); T('abc', '%f[%z]'); T('abc', '%f[^%z]')\n"
    "  T('abc', '%f[a]'); T('abc', '.%f[%z]')\n"
    "  T('x = [[y]]', '%[(=*)%[(.-)%]%1%]'); T('x = [==[y]=]z]==]', '%[(=*)%[(.-)%]%1%]')\n"
    "  T('say \"hi\" or \\'yo\\'', '([\"\\'])(.-)%1'); T('abab', '(ab)%1'); T('abab', "
    "'^(a)(b)%2')\n"
    "  T('aaa', 'a-b'); T('aaab', 'a-b'); T('aaa', '^a-$'); T('aaa', 'a-'); T('aaa', "
    "'^(a-)(a*)$')\n"
    "  T('  trim  ', '^%s*(.-)%s*$'); T('0x1F', '^0[xX](%x+)$'); T('abc', '[^a]+')\n"
    "  T('a-b', '[a-]+'); T('a-b', '[-a]+'); T('a]b', '[]]'); T('a]b', '[%]]'); T('a^b', '[b^]+')\n"
    "  T('a^b', '[%^]'); T('a-z', '[%-]'); T('hello', '[a-f-z]+'); T('hello', '[h-]+')\n"
    "  T('\\195\\161\\195\\169', '[\\128-\\255]+'); T('abc', '[c-a]'); T('ABCabc', '[A-Z]+')\n"
    "  T('abc123', '%d+'); T('abc123', '%D+'); T('a.b', '%.'); T('a.b', '%p'); T('a.b', '.-%.')\n"
    "  T('color colour', 'colou?r'); T('colour', 'colou?r$'); T('abc', 'a?b?c?d?')\n"
    "  T('abc', 'x?a'); T('aaa', 'a?a?a?a'); T('aaaa', 'a?a?a?a$')\n"
    "  T('abcd', '((a)(b))'); T('abcd', '(a(b(c(d))))'); T('abc', '(a)()(b)'); T('abc', '()a()')\n"
    "  T('aaa', 'a*'); T('aaa', 'a+'); T('aaa', 'a*$'); T('baaa', 'a*'); T('baaa', 'a+')\n"
    "  T('x', '(.)'); T(12345, '3(4)'); T(1.5, '%.'); T('12', 2); T('hello', 'l', 3.0)\n"
    "  T(string.rep('ab', 50), '(ab)+'); T(string.rep('ab', 50), '^(ab)*$')\n"
    "  T('ab', 'a*.-b*'); T('x--y', '%-%-'); T('x--y', '-'); T('x*y', '*'); T('x*y', '%*')\n"
    "  T('x+y', '+'); T('x?y', '?'); T('x?y', '%?'); T('(', '%('); T(')', '%)'); T('%', '%%')\n"
    "  T('hello', 'l', 1, true); T('a.b', '.', 1, true); T('a+b', '+', 1, true); T('a+b', '+b', 2, "
    "true)\n"
    "  T('a.b', '.', 3, true); T('a.b', '', 4, true); T('a.b', '', 5, true); T('aaab', 'aab', 1, "
    "true)\n"
    "  T('a(b', '(', 1, false); T('a(b', '(', 1, nil); T('a(b', '(', 1, 0)\n"
    "  T('hello world', 'wor'); T('hello world', 'xyz'); T('hello', 'hello world')\n"
    "  T('hello', 'lo', -2); T('hello', 'lo', -1); T('a\\0b', 'a\\0b'); T('a\\0b', 'a\\0c')\n"
    "  -- errors, with Lua's own messages\n"
    "  T('a', '%'); T('a', '[a'); T('a', '[a-'); T('a', '[^'); T('a', '[%'); T('a', '(()')\n"
    "  T('a', '%1'); T('a', ')'); T('a', 'a)'); T('a', '%b'); T('a', '%ba'); T('a', '%f')\n"
    "  T('a', '%fa'); T('a', '(a)%2'); T('aa', '(a%1)'); T('abc', '(a'); T('abc', '(a()')\n"
    "  T('a', string.rep('()', 33)); T('a', string.rep('()', 32))\n"
    "  T(string.rep('a', 300), string.rep('a?', 300)); T(string.rep('a', 150), string.rep('a?', "
    "150))\n"
    "  T(nil, 'a'); T('a', nil); T({}, 'a'); T('a', 'a', 1.5); T('a', 'a', 'x'); T('a')\n"
    "end\n"
    "case('find arg error', function(lib) return lib.find() end)\n"
    "case('match arg error', function(lib) return lib.match('x', {}) end)\n";

static void test_find_and_match_agree(void **state) {
  fixture *f = *state;
  load_cases(f->L, FIND_MATCH_CASES);
  compare_cases(f->L, 300);
}

static const char *GMATCH_CASES =
    "G('hello world from lua', '%a+'); G('k1=v1, k2=v2', '(%w+)=(%w+)'); G('abc', '')\n"
    "G('abc', 'x*'); G('abc', '^a'); G('^a^a', '^a'); G('hello', '()l'); G('hello', '()')\n"
    "G('hello world', '%a+', 3); G('hello world', '%a+', -5); G('abc', '', 10); G('abc', '', 4)\n"
    "G('abc', '', -1); G('abc', '', 0); G('abc', '.', -100); G('a,b,,c', '([^,]*)')\n"
    "G('a,b,,c,', '([^,]*)'); G('one two  three', '%s*'); G('aaa', 'a-'); G('aaa', 'a*')\n"
    "G('f(a) g(b(c))', '%b()'); G('THE (quick) fox', '%f[%a]%a+'); G('', ''); G('', 'a')\n"
    "G('abab', '(a)(b)'); G('a1b2c3', '%a(%d)'); G('x=1, y=2', '(%w+)=()'); G('abc', '$')\n"
    "G('a$b', '%$'); G('abc', 'c$'); G('abcabc', 'c$'); G(123123, '3'); G('a\\0b\\0', '%z')\n"
    "G('a', '%'); G('a', '(a'); G('a', '[a'); G(nil, 'a'); G('a', nil); G('a', 'a', 'x')\n"
    "case('gmatch in a for loop', function(lib)\n"
    "  local out = {}\n"
    "  for k, v in lib.gmatch('a=1, b=22, c=333', '(%w+)=(%w+)') do out[#out + 1] = k .. ':' .. v "
    "end\n"
    "  return table.concat(out, ' ')\n"
    "end)\n"
    "case('two live iterators', function(lib)\n"
    "  local a, b, out = lib.gmatch('abc', '.'), lib.gmatch('xyz', '.'), {}\n"
    "  for _ = 1, 4 do out[#out + 1] = tostring(a()) .. tostring(b()) end\n"
    "  return table.concat(out, ',')\n"
    "end)\n"
    "case('iterator resumed in another coroutine', function(lib)\n"
    "  local it = lib.gmatch('one two three', '%a+')\n"
    "  local first = it()\n"
    "  local co = coroutine.wrap(function() local w = it(); coroutine.yield(w); return it() end)\n"
    "  return first, co(), co(), it()\n"
    "end)\n"
    "case('iterator collected subject', function(lib)\n"
    "  local it = lib.gmatch(string.rep('x', 40) .. 'y', '(x+)(y)')\n"
    "  collectgarbage(); collectgarbage()\n"
    "  return it()\n"
    "end)\n";

static void test_gmatch_agrees(void **state) {
  fixture *f = *state;
  load_cases(f->L, GMATCH_CASES);
  compare_cases(f->L, 40);
}

static const char *GSUB_CASES =
    "F('gsub', 'hello world', 'o', '0'); F('gsub', 'hello world', '(o)', '[%1]')\n"
    "F('gsub', 'hello', '', '-'); F('gsub', 'abc', '%w', '%0%0'); F('gsub', 'abc', '%w', '%%')\n"
    "F('gsub', 'hello world', '%w+', '%0 %0', 1); F('gsub', 'hello world', '(%w+) (%w+)', '%2 "
    "%1')\n"
    "F('gsub', 'abc', '()b', '%1'); F('gsub', 'abc', 'b', 5); F('gsub', 'abc', 'b', 1.5)\n"
    "F('gsub', 12345, '3', 'x'); F('gsub', '', '', 'x'); F('gsub', 'abc', 'b*', '-')\n"
    "F('gsub', 'aaa', '^a', 'b'); F('gsub', 'aaa', 'a', 'b', 2); F('gsub', 'aaa', 'a', 'b', 0)\n"
    "F('gsub', 'aaa', 'a', 'b', -1); F('gsub', 'aaa', 'a', 'b', 2.0); F('gsub', 'aaa', 'x', 'b')\n"
    "F('gsub', 'abc', '.', '%1'); F('gsub', 'abc', '(.)', '%1%1'); F('gsub', 'abc', '.', '%2')\n"
    "F('gsub', 'abc', '(.)', '%2'); F('gsub', 'abc', '.', '%x'); F('gsub', 'abc', '.', 'x%')\n"
    "F('gsub', 'abc', '(.)()', '%2'); F('gsub', 'a.b', '%.', '%%.'); F('gsub', 'a\\0b', '%z', "
    "'<%0>')\n"
    "F('gsub', 'hello world', '%f[%w]%w+', '<%0>'); F('gsub', 'f(a) g(b)', '%b()', '')\n"
    "F('gsub', 'abc', '$', '!'); F('gsub', 'abc', '^', '!'); F('gsub', 'abc', '^$', '!')\n"
    "F('gsub', '  x  ', '^%s+', ''); F('gsub', 'abc', '', '', 2); F('gsub', 'abc', '(', 'x')\n"
    "F('gsub', 'abc', '%', 'x'); F('gsub', 'abc', '(a', 'x'); F('gsub', 'abc', 'a', true)\n"
    "F('gsub', 'abc', 'a'); F('gsub', 'abc', 'a', 'x', 'y'); F('gsub', nil, 'a', 'x')\n"
    "F('gsub', 'abc', '(a)', '%0%1%0'); F('gsub', 'abc', '', '%0'); F('gsub', 'ab', '', '%1')\n"
    "local vars = {name = 'bob', age = 3, off = false, f = 1.5}\n"
    "F('gsub', '$name is $age', '%$(%w+)', vars); F('gsub', '$name $none $off', '%$(%w+)', vars)\n"
    "F('gsub', '$f', '%$(%w+)', vars); F('gsub', '$name', '%$%w+', {['$name'] = 'x'})\n"
    "F('gsub', 'ab', '()', {[1] = 'one', [3] = 'three'}); F('gsub', 'ab', '.', {a = {}})\n"
    "F('gsub', 'ab', '.', {a = true})\n"
    "case('gsub with a function, logged', function(lib)\n"
    "  local log = {}\n"
    "  local r = table.pack(lib.gsub('hello world', '(o)()', function(o, pos)\n"
    "    log[#log + 1] = o .. pos\n"
    "    if pos > 6 then return nil end\n"
    "    return o:upper()\n"
    "  end))\n"
    "  return r, log\n"
    "end)\n"
    "case('gsub function results', function(lib)\n"
    "  local n = 0\n"
    "  local rs = {false, 'x', 7, 2.5, nil}\n"
    "  return lib.gsub('abcde', '.', function() n = n + 1; return rs[n] end)\n"
    "end)\n"
    "case('gsub function gets whole match', function(lib)\n"
    "  return lib.gsub('a1b22', '%a%d+', function(...) return select('#', ...) .. (...) end)\n"
    "end)\n"
    "case('gsub function gets all captures', function(lib)\n"
    "  return lib.gsub('k=v;x=y', '(%w)=(%w)()', function(a, b, c) return b .. a .. c end)\n"
    "end)\n"
    "case('gsub function returns a table', function(lib) return lib.gsub('a', '.', function() "
    "return {} end) end)\n"
    "case('gsub function raises', function(lib) return lib.gsub('a', '.', function() error('boom', "
    "0) end) end)\n"
    "case('gsub nested in its replacement', function(lib)\n"
    "  return lib.gsub('ab cd', '%a+', function(w) return (lib.gsub(w, '.', '%0%0')) end)\n"
    "end)\n"
    "case('gsub table with __index', function(lib)\n"
    "  local t = setmetatable({}, {__index = function(_, k) return k:upper() end})\n"
    "  return lib.gsub('abc', '%a', t)\n"
    "end)\n"
    "case('gsub arg error', function(lib) return lib.gsub('a', 'a', nil) end)\n";

static void test_gsub_agrees(void **state) {
  fixture *f = *state;
  load_cases(f->L, GSUB_CASES);
  compare_cases(f->L, 60);
}

/* Every class, escaped punctuation and set form over all 256 bytes. */
static const char *CLASS_CASES =
    "local bytes = {}\n"
    "for i = 0, 255 do bytes[#bytes + 1] = string.char(i) end\n"
    "local ALL = table.concat(bytes)\n"
    "for c in ('acdglpsuwxz'):gmatch('.') do\n"
    "  for _, k in ipairs{c, c:upper()} do\n"
    "    F('gsub', ALL, '%' .. k, '')\n"
    "    F('gsub', ALL, '[%' .. k .. ']+', '<%0>')\n"
    "    F('gsub', ALL, '[^%' .. k .. ']', '')\n"
    "    F('find', ALL, '%' .. k .. '+')\n"
    "    F('find', ALL, '%f[%' .. k .. ']')\n"
    "  end\n"
    "end\n"
    "for c in ('.%()[]*+-?^$,;:!@#&=<>/\\\\'):gmatch('.') do\n"
    "  F('gsub', ALL, '%' .. c, '!'); F('gsub', ALL, '[%' .. c .. ']', '!')\n"
    "end\n"
    "for _, set in ipairs{'[a-z]', '[^a-z]', '[%a_][%w_]*', '[\\0-\\31]', '[%d.-]', '[]]', "
    "'[^]]',\n"
    "                     '[a%-z]', '[%]-]', '[z-a]', '[---]', '[%%]', '[.]', '[^^]'} do\n"
    "  F('gsub', ALL, set, '')\n"
    "end\n";

static void test_classes_agree(void **state) {
  fixture *f = *state;
  load_cases(f->L, CLASS_CASES);
  compare_cases(f->L, 150);
}

/* Random patterns from pattern tokens on short random subjects, with random init arguments:
 * short enough that even their worst backtracking is cheap for the stock library. */
static const char *FUZZ_CASES =
    "math.randomseed(20240611)\n"
    "local tokens = {'a', 'b', '.', '%a', '%d', '%s', '[ab]', '[^a]', '[a-c]', '(', ')', '()',\n"
    "  '*', '+', '-', '?', '^', '$', '%1', '%2', '%b()', '%f[%w]', '%f[%s]', '%', '[', ']', 'x',\n"
    "  '%0', '%%', '%(', ' '}\n"
    "local chars = {'a', 'b', '1', ' ', '(', ')', 'x', '\\0', '%'}\n"
    "local function pick(t) return t[math.random(#t)] end\n"
    "for _ = 1, 4000 do\n"
    "  local p, s = {}, {}\n"
    "  for _ = 1, math.random(1, 6) do p[#p + 1] = pick(tokens) end\n"
    "  for _ = 1, math.random(0, 10) do s[#s + 1] = pick(chars) end\n"
    "  p, s = table.concat(p), table.concat(s)\n"
    "  local init = math.random(-12, 12)\n"
    "  F('find', s, p, init); F('match', s, p, init); G(s, p, init)\n"
    "  F('gsub', s, p, '<%0>'); F('gsub', s, p, '%1', 2)\n"
    "  case(show({'gsub fn', s, p}), function(lib)\n"
    "    local log = {}\n"
    "    local r = table.pack(lib.gsub(s, p, function(...) log[#log + 1] = table.pack(...); return "
    "#log % 2 == 0 and '#' or nil end))\n"
    "    return r, log\n"
    "  end)\n"
    "end\n";

static void test_random_patterns_agree(void **state) {
  fixture *f = *state;
  load_cases(f->L, FUZZ_CASES);
  compare_cases(f->L, 24000);
}

/* The example from the task: tens of seconds or more for the stock string.find. */
#define CATASTROPHE "string.rep('a', 5000), string.rep('a*', 30) .. 'b'"
#define STEP_LIMIT 1000000

static void expect_stop_at(fixture *f, size_t limit, const char *chunk) {
  f->log = (charge_log){.limit = limit};
  const char *msg = run_lua_failing(f->L, chunk);
  assert_string_equal(msg, BUDGET_MESSAGE);
  /* It stopped at the first charge over the limit, which a batch overshoots by under a chunk
   * (single adds are under a chunk for these patterns). */
  assert_true(f->log.total > limit);
  assert_true(f->log.total < limit + 2 * SANDBOX_PATTERN_CHUNK);
  assert_true(f->log.calls >= limit / (2 * SANDBOX_PATTERN_CHUNK));
  lua_pop(f->L, 1);
}

static void expect_budget_stop(fixture *f, const char *chunk) {
  expect_stop_at(f, STEP_LIMIT, chunk);
}

static void test_catastrophic_patterns_stop(void **state) {
  fixture *f = *state;
  expect_budget_stop(f, "return P.find(" CATASTROPHE ")");
  expect_budget_stop(f, "return P.match(" CATASTROPHE ")");
  expect_budget_stop(f, "for m in P.gmatch(" CATASTROPHE ") do end");
  expect_budget_stop(f, "return P.gsub(" CATASTROPHE ", 'x')");
  /* exponential backtracking of optional items */
  expect_budget_stop(f, "return P.find(string.rep('a', 60), string.rep('a?', 60) .. 'c')");
  /* %b rescans the rest of the subject from every start position */
  expect_budget_stop(f, "return P.find(string.rep('(', 200000), '%b()')");
  /* a back reference compares long captures at every split */
  expect_budget_stop(f, "return P.find(string.rep('a', 100000) .. 'b', '(a*)%1b')");
  /* plain finds: every candidate compares a long needle */
  expect_budget_stop(
      f, "return P.find(string.rep('a', 1000000), string.rep('a', 20000) .. 'b', 1, true)");
  /* a long bracket set costs per test */
  expect_budget_stop(f,
                     "local set = '[' .. string.rep('b', 4000) .. 'a]'\n"
                     "return P.find(string.rep('a', 100000), set .. '*' .. set .. '*c')");
  /* a replacement that copies a big capture many times */
  expect_stop_at(f, STEP_LIMIT / 10,
                 "return P.gsub(string.rep('a', 30000), '^(.*)$', string.rep('%1', 5000))");
}

static void test_budget_error_is_catchable(void **state) {
  fixture *f = *state;
  f->log = (charge_log){.limit = STEP_LIMIT};
  run_lua(f->L, "local ok, err = pcall(P.find, " CATASTROPHE
                ")\n"
                "local ok2, err2 = pcall(function() for _ in P.gmatch(" CATASTROPHE
                ") do end end)\n"
                "return table.concat({tostring(ok), err, tostring(ok2), err2}, '|')");
  assert_string_equal(lua_tostring(f->L, -1), "false|" BUDGET_MESSAGE "|false|" BUDGET_MESSAGE);
  lua_pop(f->L, 1);
  /* The state stays usable: the same functions answer correctly afterwards. */
  f->log = (charge_log){0};
  run_lua(f->L, "return table.concat({P.find('hello', 'l+')}, ',') .. P.gsub('abc', 'b', 'x')");
  assert_string_equal(lua_tostring(f->L, -1), "3,4axc");
  lua_pop(f->L, 1);
  assert_int_equal(lua_gettop(f->L), 0);
}

/* A gmatch iterator stopped deep in its recursion must get its full depth back: without the
 * reset its next call would fail with "pattern too complex" where Lua succeeds. */
static void test_gmatch_after_a_stop(void **state) {
  fixture *f = *state;
  run_lua(f->L,
          "S = string.rep('a', 150) .. '(' .. string.rep('x', 5000) .. ')'\n"
          "PAT = string.rep('a?', 150) .. '%b()'\n"
          "IT = P.gmatch(S, PAT)\n"
          "return true");
  lua_pop(f->L, 1);
  f->log = (charge_log){.limit = 10};
  assert_string_equal(run_lua_failing(f->L, "return IT()"), BUDGET_MESSAGE);
  lua_pop(f->L, 1);
  f->log = (charge_log){0};
  run_lua(f->L, "return IT() == string.gmatch(S, PAT)() and IT() == nil");
  assert_true(lua_toboolean(f->L, -1));
  lua_pop(f->L, 1);
}

static void test_long_honest_matches_finish(void **state) {
  fixture *f = *state;
  f->log = (charge_log){0};
  run_lua(
      f->L,
      "local s = string.rep('ab', 512 * 1024) .. 'END'\n"
      "local function same(a, b) return table.concat(a, ',') == table.concat(b, ',') end\n"
      "local checks = {\n"
      "  same({P.find(s, 'E(N)D')}, {string.find(s, 'E(N)D')}),\n"
      "  same({P.find(s, '%u+$')}, {string.find(s, '%u+$')}),\n"
      "  P.match(s, '^(.-)END$') == string.match(s, '^(.-)END$'),\n"
      "  same({P.gsub(s, 'a', 'x')}, {string.gsub(s, 'a', 'x')}),\n"
      "  same({P.find(s, 'baE', 1, true)}, {string.find(s, 'baE', 1, true)}),\n"
      "}\n"
      "local n = 0\n"
      "for _ in P.gmatch(s, 'ab') do n = n + 1 end\n"
      "checks[#checks + 1] = n == 512 * 1024\n"
      "for i, ok in ipairs(checks) do if not ok then return 'check ' .. i .. ' failed' end end\n"
      "return 'ok'");
  assert_string_equal(lua_tostring(f->L, -1), "ok");
  lua_pop(f->L, 1);
  /* The work was counted (each of these scans the megabyte at least once)... */
  assert_true(f->log.total > 4 * 1024 * 1024);
  /* ...in chunks, smaller batches coming only at the ends of calls (6 calls + the iterator's
   * creation and its 512K + 1 calls). */
  assert_true(f->log.small_batches <= 6 + 1 + 512 * 1024 + 1);
  assert_true(f->log.calls < f->log.total / SANDBOX_PATTERN_CHUNK + f->log.small_batches + 1);
}

static void test_every_call_charges(void **state) {
  fixture *f = *state;
  const char *calls[] = {"return P.find('a', 'a')",          "return P.find('a', 'a', 5)",
                         "return P.find('a', 'a', 1, true)", "return P.match('a', '.')",
                         "return P.gmatch('a', '.')",        "return P.gmatch('a', '.')()",
                         "return P.gsub('a', '.', 'b')",     "return P.gsub('a', 'x', 'b')"};
  for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++) {
    f->log = (charge_log){0};
    run_lua(f->L, calls[i]);
    lua_pop(f->L, 1);
    if (f->log.total == 0 || f->log.total > 50) fail_msg("%s charged %zu", calls[i], f->log.total);
  }
  /* gmatch's iterator charges each of its calls */
  f->log = (charge_log){0};
  run_lua(f->L, "local n = 0 for _ in P.gmatch('abc', '.') do n = n + 1 end return n");
  assert_int_equal(lua_tointeger(f->L, -1), 3);
  lua_pop(f->L, 1);
  assert_int_equal(f->log.calls, 1 + 4); /* creation, three matches, the final nil */
}

/* A charge of NULL counts but never charges: the functions still work. */
static void test_null_charge(void **state) {
  (void)state;
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  sandbox_patterns_push(L, NULL, NULL);
  lua_setglobal(L, "Q");
  run_lua(L, "return select(2, Q.gsub(string.rep('ab', 1000), 'b', '%0%0'))");
  assert_int_equal(lua_tointeger(L, -1), 1000);
  lua_close(L);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_find_and_match_agree, setup, teardown),
      cmocka_unit_test_setup_teardown(test_gmatch_agrees, setup, teardown),
      cmocka_unit_test_setup_teardown(test_gsub_agrees, setup, teardown),
      cmocka_unit_test_setup_teardown(test_classes_agree, setup, teardown),
      cmocka_unit_test_setup_teardown(test_random_patterns_agree, setup, teardown),
      cmocka_unit_test_setup_teardown(test_catastrophic_patterns_stop, setup, teardown),
      cmocka_unit_test_setup_teardown(test_budget_error_is_catchable, setup, teardown),
      cmocka_unit_test_setup_teardown(test_gmatch_after_a_stop, setup, teardown),
      cmocka_unit_test_setup_teardown(test_long_honest_matches_finish, setup, teardown),
      cmocka_unit_test_setup_teardown(test_every_call_charges, setup, teardown),
      cmocka_unit_test(test_null_charge),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
