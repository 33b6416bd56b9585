/* sandbox_patterns.c: Lua 5.4's pattern matching with every step counted and charged, so that
 * a backtracking pattern in an untrusted script cannot hold a worker inside one C call.
 *
 * The matcher, its error messages and limits follow lstrlib.c of Lua 5.4.4 (the version of
 * Debian 12's liblua5.4-dev) so that scripts see no difference; the step counting, the budget
 * upvalue and the gmatch depth reset are Lore's. Lua's licence:
 *
 * Copyright (C) 1994-2022 Lua.org, PUC-Rio.
 *
 * Permission is hereby granted, free of charge, to any person obtaining a copy of this software
 * and associated documentation files (the "Software"), to deal in the Software without
 * restriction, including without limitation the rights to use, copy, modify, merge, publish,
 * distribute, sublicense, and/or sell copies of the Software, and to permit persons to whom the
 * Software is furnished to do so, subject to the following conditions:
 *
 * The above copyright notice and this permission notice shall be included in all copies or
 * substantial portions of the Software.
 *
 * THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING
 * BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND
 * NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM,
 * DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
 * OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
 */
#include "sandbox_patterns.h"

#include <ctype.h>
#include <lauxlib.h>
#include <stddef.h>
#include <string.h>

/* Lua's own limits, kept so that a pattern that fails there fails here the same way. */
#define MAX_CAPTURES 32     /* LUA_MAXCAPTURES */
#define MAX_MATCH_DEPTH 200 /* MAXCCALLS of lstrlib.c: bounds the C stack, not the time */

#define CAP_UNFINISHED (-1)
#define CAP_POSITION (-2)

#define L_ESC '%'
#define SPECIALS "^$*+?.([%-"

/* memchr/memcmp are vectorised: charging them per byte would price honest plain finds at
 * many times what they cost. */
#define BYTES_PER_STEP 64
/* A bracket set is scanned on every test, so long sets cost in proportion to their text. */
#define SET_CHARS_PER_STEP 8

#define uchar(c) ((unsigned char)(c))

typedef struct pattern_budget {
  sandbox_pattern_charge charge;
  void *ud;
} pattern_budget;

/* Steps taken but not yet charged; charged in batches to keep the callback off the hot path. */
typedef struct step_meter {
  lua_State *L;
  const pattern_budget *budget;
  size_t pending;
} step_meter;

static void meter_flush(step_meter *m) {
  size_t steps = m->pending;
  m->pending = 0; /* before the call: the charge may not return */
  if (m->budget->charge) m->budget->charge(m->L, m->budget->ud, steps);
}

static inline void meter_add(step_meter *m, size_t steps) {
  m->pending += steps;
  if (m->pending >= SANDBOX_PATTERN_CHUNK) meter_flush(m);
}

/* Every call pays one step for its setup, so the closing charge always happens. */
static void meter_finish(step_meter *m) {
  m->pending++;
  meter_flush(m);
}

static void meter_start(step_meter *m, lua_State *L, int budget_upvalue) {
  m->L = L;
  m->budget = lua_touserdata(L, lua_upvalueindex(budget_upvalue));
  m->pending = 0;
}

static size_t bytes_steps(size_t bytes) { return bytes / BYTES_PER_STEP; }

typedef struct match_state {
  const char *src_init; /* the subject */
  const char *src_end;
  const char *p_end; /* end of the pattern */
  lua_State *L;
  int matchdepth;      /* recursion left before "pattern too complex" */
  unsigned char level; /* captures opened so far, finished or not */
  step_meter meter;
  struct {
    const char *init;
    ptrdiff_t len;
  } capture[MAX_CAPTURES];
} match_state;

static const char *match(match_state *ms, const char *s, const char *p);

static int check_capture(match_state *ms, int l) {
  l -= '1';
  if (l < 0 || l >= ms->level || ms->capture[l].len == CAP_UNFINISHED)
    return luaL_error(ms->L, "invalid capture index %%%d", l + 1);
  return l;
}

static int capture_to_close(match_state *ms) {
  int level = ms->level;
  for (level--; level >= 0; level--)
    if (ms->capture[level].len == CAP_UNFINISHED) return level;
  return luaL_error(ms->L, "invalid pattern capture");
}

static const char *classend(match_state *ms, const char *p) {
  switch (*p++) {
    case L_ESC: {
      if (p == ms->p_end) luaL_error(ms->L, "malformed pattern (ends with '%%')");
      return p + 1;
    }
    case '[': {
      if (*p == '^') p++;
      do { /* look for a ']' */
        if (p == ms->p_end) luaL_error(ms->L, "malformed pattern (missing ']')");
        if (*(p++) == L_ESC && p < ms->p_end) p++; /* skip escapes (e.g. '%]') */
      } while (*p != ']');
      return p + 1;
    }
    default: {
      return p;
    }
  }
}

/* The cost of testing one character against the class p..ep. */
static size_t class_steps(const char *p, const char *ep) {
  return 1 + (size_t)(ep - p) / SET_CHARS_PER_STEP;
}

static int match_class(int c, int cl) {
  int res;
  switch (tolower(cl)) {
    case 'a':
      res = isalpha(c);
      break;
    case 'c':
      res = iscntrl(c);
      break;
    case 'd':
      res = isdigit(c);
      break;
    case 'g':
      res = isgraph(c);
      break;
    case 'l':
      res = islower(c);
      break;
    case 'p':
      res = ispunct(c);
      break;
    case 's':
      res = isspace(c);
      break;
    case 'u':
      res = isupper(c);
      break;
    case 'w':
      res = isalnum(c);
      break;
    case 'x':
      res = isxdigit(c);
      break;
    case 'z': /* deprecated in Lua, still accepted there */
      res = (c == 0);
      break;
    default:
      return (cl == c);
  }
  return (islower(cl) ? res : !res);
}

static int matchbracketclass(int c, const char *p, const char *ec) {
  int sig = 1;
  if (*(p + 1) == '^') {
    sig = 0;
    p++; /* skip the '^' */
  }
  while (++p < ec) {
    if (*p == L_ESC) {
      p++;
      if (match_class(c, uchar(*p))) return sig;
    } else if ((*(p + 1) == '-') && (p + 2 < ec)) {
      p += 2;
      if (uchar(*(p - 2)) <= c && c <= uchar(*p)) return sig;
    } else if (uchar(*p) == c)
      return sig;
  }
  return !sig;
}

static int singlematch(match_state *ms, const char *s, const char *p, const char *ep) {
  if (s >= ms->src_end) return 0;
  int c = uchar(*s);
  switch (*p) {
    case '.':
      return 1; /* matches any char */
    case L_ESC:
      return match_class(c, uchar(*(p + 1)));
    case '[':
      return matchbracketclass(c, p, ep - 1);
    default:
      return (uchar(*p) == c);
  }
}

static const char *matchbalance(match_state *ms, const char *s, const char *p) {
  if (p >= ms->p_end - 1) luaL_error(ms->L, "malformed pattern (missing arguments to '%%b')");
  if (*s != *p) return NULL;
  int b = *p;
  int e = *(p + 1);
  int cont = 1;
  while (++s < ms->src_end) {
    meter_add(&ms->meter, 1);
    if (*s == e) {
      if (--cont == 0) return s + 1;
    } else if (*s == b)
      cont++;
  }
  return NULL; /* string ends out of balance */
}

static const char *max_expand(match_state *ms, const char *s, const char *p, const char *ep) {
  size_t steps = class_steps(p, ep);
  ptrdiff_t i = 0; /* the most repetitions the item can take */
  while (singlematch(ms, s + i, p, ep)) {
    i++;
    meter_add(&ms->meter, steps);
  }
  /* backtrack from the longest; each try is a match() call, which charges itself */
  while (i >= 0) {
    const char *res = match(ms, (s + i), ep + 1);
    if (res) return res;
    i--;
  }
  return NULL;
}

static const char *min_expand(match_state *ms, const char *s, const char *p, const char *ep) {
  size_t steps = class_steps(p, ep);
  for (;;) {
    const char *res = match(ms, s, ep + 1);
    if (res != NULL) return res;
    meter_add(&ms->meter, steps);
    if (singlematch(ms, s, p, ep))
      s++; /* try with one more repetition */
    else
      return NULL;
  }
}

static const char *start_capture(match_state *ms, const char *s, const char *p, int what) {
  const char *res;
  int level = ms->level;
  if (level >= MAX_CAPTURES) luaL_error(ms->L, "too many captures");
  ms->capture[level].init = s;
  ms->capture[level].len = what;
  ms->level = level + 1;
  if ((res = match(ms, s, p)) == NULL) /* match failed? */
    ms->level--;                       /* undo capture */
  return res;
}

static const char *end_capture(match_state *ms, const char *s, const char *p) {
  int l = capture_to_close(ms);
  const char *res;
  ms->capture[l].len = s - ms->capture[l].init; /* close capture */
  if ((res = match(ms, s, p)) == NULL)          /* match failed? */
    ms->capture[l].len = CAP_UNFINISHED;        /* undo capture */
  return res;
}

static const char *match_capture(match_state *ms, const char *s, int l) {
  size_t len;
  l = check_capture(ms, l);
  len = (size_t)ms->capture[l].len;
  meter_add(&ms->meter, bytes_steps(len));
  if ((size_t)(ms->src_end - s) >= len && memcmp(ms->capture[l].init, s, len) == 0) return s + len;
  return NULL;
}

static const char *match(match_state *ms, const char *s, const char *p) {
  if (ms->matchdepth-- == 0) luaL_error(ms->L, "pattern too complex");
init: /* goto's stand for tail calls, as in Lua */
  /* Every item tried costs a step; the loops over start positions pay theirs here too. */
  meter_add(&ms->meter, 1);
  if (p != ms->p_end) { /* end of pattern? */
    switch (*p) {
      case '(': {            /* start capture */
        if (*(p + 1) == ')') /* position capture? */
          s = start_capture(ms, s, p + 2, CAP_POSITION);
        else
          s = start_capture(ms, s, p + 1, CAP_UNFINISHED);
        break;
      }
      case ')': { /* end capture */
        s = end_capture(ms, s, p + 1);
        break;
      }
      case '$': {
        if ((p + 1) != ms->p_end)          /* is the '$' the last char in pattern? */
          goto dflt;                       /* no; go to default */
        s = (s == ms->src_end) ? s : NULL; /* check end of string */
        break;
      }
      case L_ESC: { /* escaped sequences not in the format class[*+?-]? */
        switch (*(p + 1)) {
          case 'b': { /* balanced string? */
            s = matchbalance(ms, s, p + 2);
            if (s != NULL) {
              p += 4;
              goto init; /* return match(ms, s, p + 4); */
            }            /* else fail (s == NULL) */
            break;
          }
          case 'f': { /* frontier? */
            const char *ep;
            char previous;
            p += 2;
            if (*p != '[') luaL_error(ms->L, "missing '[' after '%%f' in pattern");
            ep = classend(ms, p); /* points to what is next */
            meter_add(&ms->meter, 2 * class_steps(p, ep));
            previous = (s == ms->src_init) ? '\0' : *(s - 1);
            if (!matchbracketclass(uchar(previous), p, ep - 1) &&
                matchbracketclass(uchar(*s), p, ep - 1)) {
              p = ep;
              goto init; /* return match(ms, s, ep); */
            }
            s = NULL; /* match failed */
            break;
          }
          case '0':
          case '1':
          case '2':
          case '3':
          case '4':
          case '5':
          case '6':
          case '7':
          case '8':
          case '9': { /* capture results (%0-%9)? */
            s = match_capture(ms, s, uchar(*(p + 1)));
            if (s != NULL) {
              p += 2;
              goto init; /* return match(ms, s, p + 2) */
            }
            break;
          }
          default:
            goto dflt;
        }
        break;
      }
      default:
      dflt : {                            /* pattern class plus optional suffix */
        const char *ep = classend(ms, p); /* points to optional suffix */
        /* 1 step was charged at init; only long sets cost more */
        if (ep - p >= SET_CHARS_PER_STEP) meter_add(&ms->meter, class_steps(p, ep) - 1);
        /* does not match at least once? */
        if (!singlematch(ms, s, p, ep)) {
          if (*ep == '*' || *ep == '?' || *ep == '-') { /* accept empty? */
            p = ep + 1;
            goto init;   /* return match(ms, s, ep + 1); */
          } else         /* '+' or no suffix */
            s = NULL;    /* fail */
        } else {         /* matched once */
          switch (*ep) { /* handle optional suffix */
            case '?': {  /* optional */
              const char *res;
              if ((res = match(ms, s + 1, ep + 1)) != NULL)
                s = res;
              else {
                p = ep + 1;
                goto init; /* else return match(ms, s, ep + 1); */
              }
              break;
            }
            case '+': /* 1 or more repetitions */
              s++;    /* 1 match already done */
              /* FALLTHROUGH */
            case '*': /* 0 or more repetitions */
              s = max_expand(ms, s, p, ep);
              break;
            case '-': /* 0 or more repetitions (minimum) */
              s = min_expand(ms, s, p, ep);
              break;
            default: /* no suffix */
              s++;
              p = ep;
              goto init; /* return match(ms, s + 1, ep); */
          }
        }
        break;
      }
    }
  }
  ms->matchdepth++;
  return s;
}

/* Plain substring search; memchr finds candidates, memcmp checks them. */
static const char *lmemfind(step_meter *m, const char *s1, size_t l1, const char *s2, size_t l2) {
  if (l2 == 0) return s1;   /* empty strings are everywhere */
  if (l2 > l1) return NULL; /* avoids a negative 'l1' */
  const char *init;         /* to search for a '*s2' inside 's1' */
  size_t compare_steps = 1 + bytes_steps(l2);
  l2--;         /* 1st char will be checked by 'memchr' */
  l1 = l1 - l2; /* 's2' cannot be found after that */
  while (l1 > 0 && (init = (const char *)memchr(s1, *s2, l1)) != NULL) {
    meter_add(m, compare_steps + bytes_steps((size_t)(init - s1)));
    init++; /* 1st char is already checked */
    if (memcmp(init, s2 + 1, l2) == 0) return init - 1;
    /* correct 'l1' and 's1' to try again */
    l1 -= (size_t)(init - s1);
    s1 = init;
  }
  meter_add(m, bytes_steps(l1));
  return NULL; /* not found */
}

/* The i-th capture: a string (its length, and its address in *cap), or a position (pushed, and
 * CAP_POSITION returned). With no captures, capture 0 is the whole match s..e. */
static ptrdiff_t get_onecapture(match_state *ms, int i, const char *s, const char *e,
                                const char **cap) {
  if (i >= ms->level) {
    if (i != 0) luaL_error(ms->L, "invalid capture index %%%d", i + 1);
    *cap = s;
    return e - s;
  }
  ptrdiff_t capl = ms->capture[i].len;
  *cap = ms->capture[i].init;
  if (capl == CAP_UNFINISHED)
    luaL_error(ms->L, "unfinished capture");
  else if (capl == CAP_POSITION)
    lua_pushinteger(ms->L, (ms->capture[i].init - ms->src_init) + 1);
  return capl;
}

static void push_onecapture(match_state *ms, int i, const char *s, const char *e) {
  const char *cap;
  ptrdiff_t l = get_onecapture(ms, i, s, e, &cap);
  if (l != CAP_POSITION) lua_pushlstring(ms->L, cap, (size_t)l);
  /* else position was already pushed */
}

static int push_captures(match_state *ms, const char *s, const char *e) {
  int nlevels = (ms->level == 0 && s) ? 1 : ms->level;
  luaL_checkstack(ms->L, nlevels, "too many captures");
  for (int i = 0; i < nlevels; i++) push_onecapture(ms, i, s, e);
  return nlevels; /* number of strings pushed */
}

/* Whether the pattern has no special characters (it may hold '\0's). */
static int nospecials(const char *p, size_t l) {
  size_t upto = 0;
  do {
    if (strpbrk(p + upto, SPECIALS)) return 0; /* pattern has a special character */
    upto += strlen(p + upto) + 1;              /* may have more after \0 */
  } while (upto <= l);
  return 1; /* no special chars found */
}

static void prepstate(match_state *ms, lua_State *L, const char *s, size_t ls, const char *p,
                      size_t lp) {
  ms->L = L;
  ms->matchdepth = MAX_MATCH_DEPTH;
  ms->src_init = s;
  ms->src_end = s + ls;
  ms->p_end = p + lp;
}

/* Also resets the depth: a match stopped by the charge (or an error) leaves it spent, and a
 * gmatch iterator outlives such a stop when the script catches it. */
static void reprepstate(match_state *ms) {
  ms->level = 0;
  ms->matchdepth = MAX_MATCH_DEPTH;
}

/* A start position before 1 counts back from the end; the result is clipped to [1, inf). */
static size_t posrelat_init(lua_Integer pos, size_t len) {
  if (pos > 0) return (size_t)pos;
  if (pos == 0) return 1;
  if (pos < -(lua_Integer)len) return 1; /* inverted comparison avoids overflow */
  return len + (size_t)pos + 1;
}

#define BUDGET_UPVALUE 1

static int str_find_aux(lua_State *L, int find) {
  size_t ls, lp;
  const char *s = luaL_checklstring(L, 1, &ls);
  const char *p = luaL_checklstring(L, 2, &lp);
  size_t init = posrelat_init(luaL_optinteger(L, 3, 1), ls) - 1;
  match_state ms;
  meter_start(&ms.meter, L, BUDGET_UPVALUE);
  if (init > ls) { /* start after string's end? */
    meter_finish(&ms.meter);
    luaL_pushfail(L); /* cannot find anything */
    return 1;
  }
  /* explicit request or no special characters? */
  if (find && (lua_toboolean(L, 4) || nospecials(p, lp))) {
    /* do a plain search */
    const char *s2 = lmemfind(&ms.meter, s + init, ls - init, p, lp);
    meter_finish(&ms.meter);
    if (s2) {
      lua_pushinteger(L, (s2 - s) + 1);
      lua_pushinteger(L, (lua_Integer)((size_t)(s2 - s) + lp));
      return 2;
    }
  } else {
    const char *s1 = s + init;
    int anchor = (*p == '^');
    if (anchor) {
      p++;
      lp--; /* skip anchor character */
    }
    prepstate(&ms, L, s, ls, p, lp);
    do {
      const char *res;
      reprepstate(&ms);
      if ((res = match(&ms, s1, p)) != NULL) {
        meter_finish(&ms.meter);
        if (find) {
          lua_pushinteger(L, (s1 - s) + 1); /* start */
          lua_pushinteger(L, res - s);      /* end */
          return push_captures(&ms, NULL, 0) + 2;
        }
        return push_captures(&ms, s1, res);
      }
    } while (s1++ < ms.src_end && !anchor);
    meter_finish(&ms.meter);
  }
  luaL_pushfail(L); /* not found */
  return 1;
}

static int str_find(lua_State *L) { return str_find_aux(L, 1); }

static int str_match(lua_State *L) { return str_find_aux(L, 0); }

/* The iterator's upvalues: the subject and pattern (kept from collection), the state, the
 * budget. */
typedef struct gmatch_state {
  const char *src;       /* current position */
  const char *p;         /* pattern */
  const char *lastmatch; /* end of last match */
  match_state ms;
} gmatch_state;

#define GMATCH_STATE_UPVALUE 3
#define GMATCH_BUDGET_UPVALUE 4

static int gmatch_aux(lua_State *L) {
  gmatch_state *gm = lua_touserdata(L, lua_upvalueindex(GMATCH_STATE_UPVALUE));
  gm->ms.L = L; /* the iterator may run in another coroutine than the one that made it */
  meter_start(&gm->ms.meter, L, GMATCH_BUDGET_UPVALUE);
  for (const char *src = gm->src; src <= gm->ms.src_end; src++) {
    const char *e;
    reprepstate(&gm->ms);
    if ((e = match(&gm->ms, src, gm->p)) != NULL && e != gm->lastmatch) {
      meter_finish(&gm->ms.meter);
      gm->src = gm->lastmatch = e;
      return push_captures(&gm->ms, src, e);
    }
  }
  meter_finish(&gm->ms.meter);
  return 0; /* not found */
}

static int gmatch(lua_State *L) {
  size_t ls, lp;
  const char *s = luaL_checklstring(L, 1, &ls);
  const char *p = luaL_checklstring(L, 2, &lp);
  size_t init = posrelat_init(luaL_optinteger(L, 3, 1), ls) - 1;
  gmatch_state *gm;
  lua_settop(L, 2); /* keep strings on closure to avoid being collected */
  gm = lua_newuserdatauv(L, sizeof(gmatch_state), 0);
  if (init > ls)   /* start after string's end? */
    init = ls + 1; /* avoid overflows in 's + init' */
  prepstate(&gm->ms, L, s, ls, p, lp);
  gm->src = s + init;
  gm->p = p;
  gm->lastmatch = NULL;
  lua_pushvalue(L, lua_upvalueindex(BUDGET_UPVALUE));
  lua_pushcclosure(L, gmatch_aux, 4);
  /* Making the iterator is work a loop of gmatch calls could repeat. */
  step_meter meter;
  meter_start(&meter, L, BUDGET_UPVALUE);
  meter_finish(&meter);
  return 1;
}

/* Appends one piece of a replacement, charging for the copy before making it. */
static void add_charged(match_state *ms, luaL_Buffer *b, const char *s, size_t l) {
  meter_add(&ms->meter, bytes_steps(l));
  luaL_addlstring(b, s, l);
}

static void add_s(match_state *ms, luaL_Buffer *b, const char *s, const char *e) {
  size_t l;
  lua_State *L = ms->L;
  const char *news = lua_tolstring(L, 3, &l);
  const char *p;
  while ((p = (char *)memchr(news, L_ESC, l)) != NULL) {
    meter_add(&ms->meter, 1);
    add_charged(ms, b, news, (size_t)(p - news));
    p++;             /* skip ESC */
    if (*p == L_ESC) /* '%%' */
      luaL_addchar(b, *p);
    else if (*p == '0') /* '%0' */
      add_charged(ms, b, s, (size_t)(e - s));
    else if (isdigit(uchar(*p))) { /* '%n' */
      const char *cap;
      ptrdiff_t resl = get_onecapture(ms, *p - '1', s, e, &cap);
      if (resl == CAP_POSITION)
        luaL_addvalue(b); /* add position to accumulated result */
      else
        add_charged(ms, b, cap, (size_t)resl);
    } else
      luaL_error(L, "invalid use of '%c' in replacement string", L_ESC);
    l -= (size_t)(p + 1 - news);
    news = p + 1;
  }
  add_charged(ms, b, news, l);
}

/* Adds the replacement of the match s..e; returns whether the subject changed (a function or
 * table giving nil or false keeps the original text). */
static int add_value(match_state *ms, luaL_Buffer *b, const char *s, const char *e, int tr) {
  lua_State *L = ms->L;
  switch (tr) {
    case LUA_TFUNCTION: { /* call the function */
      int n;
      lua_pushvalue(L, 3);         /* push the function */
      n = push_captures(ms, s, e); /* all captures as arguments */
      lua_call(L, n, 1);           /* call it */
      break;
    }
    case LUA_TTABLE: {              /* index the table */
      push_onecapture(ms, 0, s, e); /* first capture is the index */
      lua_gettable(L, 3);
      break;
    }
    default: {            /* LUA_TNUMBER or LUA_TSTRING */
      add_s(ms, b, s, e); /* add value to the buffer */
      return 1;           /* something changed */
    }
  }
  if (!lua_toboolean(L, -1)) {              /* nil or false? */
    lua_pop(L, 1);                          /* remove value */
    add_charged(ms, b, s, (size_t)(e - s)); /* keep original text */
    return 0;                               /* no changes */
  } else if (!lua_isstring(L, -1))
    return luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
  else {
    meter_add(&ms->meter, bytes_steps(lua_rawlen(L, -1)));
    luaL_addvalue(b); /* add result to accumulator */
    return 1;         /* something changed */
  }
}

static int str_gsub(lua_State *L) {
  size_t srcl, lp;
  const char *src = luaL_checklstring(L, 1, &srcl);                 /* subject */
  const char *p = luaL_checklstring(L, 2, &lp);                     /* pattern */
  const char *lastmatch = NULL;                                     /* end of last match */
  int tr = lua_type(L, 3);                                          /* replacement type */
  lua_Integer max_s = luaL_optinteger(L, 4, (lua_Integer)srcl + 1); /* max replacements */
  int anchor = (*p == '^');
  lua_Integer n = 0; /* replacement count */
  int changed = 0;   /* change flag */
  match_state ms;
  luaL_Buffer b;
  luaL_argexpected(
      L, tr == LUA_TNUMBER || tr == LUA_TSTRING || tr == LUA_TFUNCTION || tr == LUA_TTABLE, 3,
      "string/function/table");
  meter_start(&ms.meter, L, BUDGET_UPVALUE);
  luaL_buffinit(L, &b);
  if (anchor) {
    p++;
    lp--; /* skip anchor character */
  }
  prepstate(&ms, L, src, srcl, p, lp);
  while (n < max_s) {
    const char *e;
    reprepstate(&ms);                                         /* (re)prepare state for new match */
    if ((e = match(&ms, src, p)) != NULL && e != lastmatch) { /* match? */
      n++;
      changed = add_value(&ms, &b, src, e, tr) | changed;
      src = lastmatch = e;
    } else if (src < ms.src_end) /* otherwise, skip one character */
      luaL_addchar(&b, *src++);
    else
      break; /* end of subject */
    if (anchor) break;
  }
  if (!changed)          /* no changes? */
    lua_pushvalue(L, 1); /* return original string */
  else {                 /* something changed */
    add_charged(&ms, &b, src, (size_t)(ms.src_end - src));
    luaL_pushresult(&b); /* create and return new string */
  }
  meter_finish(&ms.meter);
  lua_pushinteger(L, n); /* number of substitutions */
  return 2;
}

void sandbox_patterns_push(lua_State *L, sandbox_pattern_charge charge, void *ud) {
  static const luaL_Reg functions[] = {{"find", str_find},
                                       {"match", str_match},
                                       {"gmatch", gmatch},
                                       {"gsub", str_gsub},
                                       {NULL, NULL}};
  /* A full userdata rather than light ones: a function pointer does not portably fit a void *. */
  pattern_budget *budget = lua_newuserdatauv(L, sizeof *budget, 0);
  budget->charge = charge;
  budget->ud = ud;
  lua_createtable(L, 0, 4);
  lua_insert(L, -2);
  luaL_setfuncs(L, functions, 1);
}
