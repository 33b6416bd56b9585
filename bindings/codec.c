/* codec.c: Lua values <-> MessagePack via libmsgpack (packer to encode, its parser to decode). */
#include "codec.h"

#include <lauxlib.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "codec_fast.h"
#include "codec_strings.h"
#include "ref.h"

/*
 * Decoding uses libmsgpack's own parser, msgpack/unpack_template.h, the state machine that
 * libmsgpack compiles into msgpack_unpack. We instantiate it here instead of calling
 * msgpack_unpack because the compiled one has a fixed nesting limit of 32 containers
 * (MSGPACK_EMBED_STACK_SIZE), below our CODEC_MAX_DEPTH of 64; the template takes that limit
 * as a macro. Our callbacks also build Lua values directly, so there is no intermediate
 * msgpack_object tree and no zone: decoding allocates nothing but the Lua values themselves.
 */
#undef MSGPACK_EMBED_STACK_SIZE
#define MSGPACK_EMBED_STACK_SIZE CODEC_MAX_DEPTH
#include <msgpack/unpack_define.h>

/* Lua stack slots a decode may use: per open container its table and maybe a map key, plus
 * the value being built and what ref_push_serialized needs. */
#define DEC_STACK (2 * CODEC_MAX_DEPTH + 8)
/* Same for encoding: per open table the table, the lua_next key and the value. */
#define ENC_STACK (3 * CODEC_MAX_DEPTH + 8)

/* The key path in an error message stops growing past this many bytes (then "..."), so the
 * whole message fits in CODEC_ERR_MAX. */
#define PATH_MAX_LEN 160
/* Longest string key rendered in full inside a path. */
#define PATH_KEY_MAX 40

/* ---------------------------------------------------------------- encoding */

enum { KEY_INT, KEY_STACK, KEY_OTHER };

/* The key under which the value at one nesting level is being encoded, kept so an error can
 * name the path: a store or two per value, while the path text is only built on error. */
typedef struct {
  int kind; /* KEY_INT: array index `i`; KEY_STACK: the key at Lua stack index `idx`; */
  int idx;  /* KEY_OTHER: we are inside a map key itself, rendered "[?]" */
  lua_Integer i;
} enc_key;

typedef struct {
  lua_State *L;
  msgpack_packer pk;
  msgpack_sbuffer *buf;
  const char *root;
  char *err;
  size_t errlen;
  int depth;                         /* tables open on the current path */
  size_t values;                     /* encoded so far (CODEC_MAX_VALUES) */
  const void *open[CODEC_MAX_DEPTH]; /* those tables, for cycle detection */
  enc_key key[CODEC_MAX_DEPTH];      /* key[d]: where we are inside open[d] */
} enc;

/* A bounded string builder: once full it ends in "..." and ignores further appends. */
typedef struct {
  char buf[PATH_MAX_LEN + 4];
  size_t len;
  int full;
} pathbuf;

static void pb_add(pathbuf *pb, const char *s, size_t n) {
  if (pb->full) return;
  if (pb->len + n > PATH_MAX_LEN) {
    n = PATH_MAX_LEN - pb->len;
    pb->full = 1;
  }
  memcpy(pb->buf + pb->len, s, n);
  pb->len += n;
  if (pb->full) {
    memcpy(pb->buf + pb->len, "...", 3);
    pb->len += 3;
  }
  pb->buf[pb->len] = '\0';
}

static void pb_str(pathbuf *pb, const char *s) { pb_add(pb, s, strlen(s)); }

static int is_identifier(const char *s, size_t n) {
  static const char *const keywords[] = {"and",   "break", "do",       "else", "elseif", "end",
                                         "false", "for",   "function", "goto", "if",     "in",
                                         "local", "nil",   "not",      "or",   "repeat", "return",
                                         "then",  "true",  "until",    "while"};
  if (n == 0 || n > PATH_KEY_MAX) return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    int alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return 0;
  }
  for (size_t k = 0; k < sizeof keywords / sizeof keywords[0]; k++)
    if (strlen(keywords[k]) == n && memcmp(keywords[k], s, n) == 0) return 0;
  return 1;
}

/* ["odd key"]: printable ASCII as is, anything else escaped so the message stays one line. */
static void pb_quoted(pathbuf *pb, const char *s, size_t n) {
  pb_add(pb, "[\"", 2);
  for (size_t i = 0; i < n && i < PATH_KEY_MAX; i++) {
    unsigned char c = (unsigned char)s[i];
    char tmp[8];
    if (c == '"' || c == '\\') {
      tmp[0] = '\\';
      tmp[1] = (char)c;
      pb_add(pb, tmp, 2);
    } else if (c >= 0x20 && c < 0x7f) {
      pb_add(pb, (const char *)&c, 1);
    } else {
      snprintf(tmp, sizeof tmp, "\\x%02x", c);
      pb_add(pb, tmp, 4);
    }
  }
  if (n > PATH_KEY_MAX) pb_add(pb, "...", 3);
  pb_add(pb, "\"]", 2);
}

/* Renders root plus the keys of the first `levels` open tables. */
static void render_path(enc *e, int levels, pathbuf *pb) {
  lua_State *L = e->L;
  pb->len = 0;
  pb->full = 0;
  pb->buf[0] = '\0';
  pb_str(pb, e->root ? e->root : "value");
  for (int d = 0; d < levels && !pb->full; d++) {
    const enc_key *k = &e->key[d];
    char tmp[32];
    if (k->kind == KEY_INT) {
      snprintf(tmp, sizeof tmp, "[%lld]", (long long)k->i);
      pb_str(pb, tmp);
    } else if (k->kind == KEY_STACK && lua_isinteger(L, k->idx)) {
      snprintf(tmp, sizeof tmp, "[%lld]", (long long)lua_tointeger(L, k->idx));
      pb_str(pb, tmp);
    } else if (k->kind == KEY_STACK && lua_type(L, k->idx) == LUA_TSTRING) {
      size_t n;
      const char *s = lua_tolstring(L, k->idx, &n); /* a real string: no in-place conversion */
      if (is_identifier(s, n)) {
        pb_add(pb, ".", 1);
        pb_add(pb, s, n);
      } else {
        pb_quoted(pb, s, n);
      }
    } else {
      pb_str(pb, "[?]");
    }
  }
}

static int enc_fail(enc *e, const char *what, const char *why) {
  pathbuf pb;
  render_path(e, e->depth, &pb);
  snprintf(e->err, e->errlen, "%s at %s%s", what, pb.buf, why ? why : "");
  return -1;
}

static int enc_oom(enc *e) {
  snprintf(e->err, e->errlen, "out of memory encoding %s", e->root ? e->root : "value");
  return -1;
}

static int enc_value(enc *e, int idx);

/* Kept out of enc_value so the REF_SERIALIZED_MAX buffer is not in every recursive frame. */
static __attribute__((noinline)) int enc_ref(enc *e, const lore_ref *r) {
  char bytes[REF_SERIALIZED_MAX];
  size_t n = ref_serialize(r, bytes, sizeof bytes);
  if (n == 0) {
    char what[64];
    snprintf(what, sizeof what, "cannot encode a ref named by more than %d bytes",
             REF_SERIALIZED_MAX - 1);
    return enc_fail(e, what, NULL);
  }
  if (msgpack_pack_ext(&e->pk, n, REF_EXT_TYPE) || msgpack_pack_ext_body(&e->pk, bytes, n))
    return enc_oom(e);
  return 0;
}

/* A packer that writes into a small array: it captures the header libmsgpack produces for a
 * map whose size was unknown when its place in the buffer was reserved. */
typedef struct {
  char bytes[8];
  size_t len;
} hdr_buf;

static int hdr_write(void *data, const char *buf, size_t len) {
  hdr_buf *h = data;
  if (h->len + len > sizeof h->bytes) return -1;
  memcpy(h->bytes + h->len, buf, len);
  h->len += len;
  return 0;
}

static int enc_entry(enc *e, int d) {
  int top = lua_gettop(e->L);
  e->key[d].kind = KEY_OTHER; /* an error inside the key itself renders as [?] */
  if (enc_value(e, top - 1)) return -1;
  e->key[d].kind = KEY_STACK;
  e->key[d].idx = top - 1;
  if (enc_value(e, top)) return -1;
  lua_pop(e->L, 1);
  return 0;
}

/*
 * A table with no t[1] is a map, and most messages are such maps. Counting its entries first
 * would cost a second lua_next pass, so instead we reserve the one byte of a fixmap header,
 * encode the entries while counting, and then put libmsgpack's header for the real count in
 * place; only maps of more than 15 entries (3- or 5-byte headers) need their bytes moved.
 */
static int enc_map_onepass(enc *e, int idx, int d) {
  lua_State *L = e->L;
  msgpack_sbuffer *sb = e->buf;
  size_t start = sb->size, count = 0;
  if (msgpack_pack_map(&e->pk, 0)) return enc_oom(e);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    count++;
    if (enc_entry(e, d)) return -1;
  }
  if (count == 0) return 0; /* the placeholder is the empty map */
  hdr_buf h = {.len = 0};
  msgpack_packer hp;
  msgpack_packer_init(&hp, &h, hdr_write);
  if (msgpack_pack_map(&hp, count)) return enc_oom(e);
  if (h.len > 1) {
    size_t end = sb->size;
    if (msgpack_sbuffer_write(sb, h.bytes, h.len - 1)) return enc_oom(e); /* grow only */
    memmove(sb->data + start + h.len, sb->data + start + 1, end - start - 1);
  }
  memcpy(sb->data + start, h.bytes, h.len);
  return 0;
}

static int enc_table(enc *e, int idx) {
  lua_State *L = e->L;
  const void *self = lua_topointer(L, idx);
  /* A table already open on this path means the value contains itself; a table seen before on
   * another branch (a DAG) is not on the path and is simply encoded again. */
  for (int d = 0; d < e->depth; d++)
    if (e->open[d] == self) return enc_fail(e, "cycle", " (table refers to itself)");
  if (e->depth >= CODEC_MAX_DEPTH) {
    char what[48];
    snprintf(what, sizeof what, "nesting deeper than %d", CODEC_MAX_DEPTH);
    return enc_fail(e, what, NULL);
  }
  int d = e->depth++;
  e->open[d] = self;

  /* Keys exactly 1..n (n >= 1) always give a border of n; a border of 0 means a map. */
  lua_Unsigned n = lua_rawlen(L, idx);
  if (n == 0) {
    if (enc_map_onepass(e, idx, d)) return -1;
    e->depth--;
    return 0;
  }

  /* Maybe an array: it is one if it has exactly n keys, all integers in 1..n (n distinct keys
   * from 1..n can only be 1..n). Otherwise a map, whose header needs this count anyway. */
  size_t count = 0;
  int array = 1;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    count++;
    if (array) {
      if (!lua_isinteger(L, -2)) {
        array = 0;
      } else {
        lua_Integer k = lua_tointeger(L, -2);
        if (k < 1 || (lua_Unsigned)k > n) array = 0;
      }
    }
    lua_pop(L, 1);
  }

  if (array && count == n) {
    if (msgpack_pack_array(&e->pk, count)) return enc_oom(e);
    e->key[d].kind = KEY_INT;
    for (lua_Integer i = 1; (lua_Unsigned)i <= n; i++) {
      e->key[d].i = i;
      lua_rawgeti(L, idx, i);
      if (enc_value(e, lua_gettop(L))) return -1;
      lua_pop(L, 1);
    }
  } else {
    if (msgpack_pack_map(&e->pk, count)) return enc_oom(e);
    lua_pushnil(L);
    while (lua_next(L, idx))
      if (enc_entry(e, d)) return -1;
  }
  e->depth--;
  return 0;
}

static int enc_type_error(enc *e, int idx) {
  char what[48];
  snprintf(what, sizeof what, "cannot encode a %s", luaL_typename(e->L, idx));
  return enc_fail(e, what, NULL);
}

static __attribute__((noinline)) int enc_too_big(enc *e) {
  char what[96];
  if (e->values > CODEC_MAX_VALUES)
    snprintf(what, sizeof what, "too many values (more than %zu; shared subtables count each time)",
             CODEC_MAX_VALUES);
  else
    snprintf(what, sizeof what, "too large (more than %zu MiB encoded)", CODEC_MAX_BYTES >> 20);
  return enc_fail(e, what, NULL);
}

static int enc_value(enc *e, int idx) {
  lua_State *L = e->L;
  msgpack_packer *pk = &e->pk;
  int rc;
  if (++e->values > CODEC_MAX_VALUES || e->buf->size > CODEC_MAX_BYTES) return enc_too_big(e);
  switch (lua_type(L, idx)) {
    case LUA_TNIL:
      rc = msgpack_pack_nil(pk);
      break;
    case LUA_TBOOLEAN:
      rc = lua_toboolean(L, idx) ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
      break;
    case LUA_TNUMBER:
      /* Floats are always float64, even integral ones, so 1.0 comes back a float and -0.0,
       * inf and nan survive; integers take libmsgpack's smallest int form. */
      if (lua_isinteger(L, idx))
        rc = msgpack_pack_int64(pk, (int64_t)lua_tointeger(L, idx));
      else
        rc = msgpack_pack_double(pk, (double)lua_tonumber(L, idx));
      break;
    case LUA_TSTRING: {
      size_t n;
      const char *s = lua_tolstring(L, idx, &n);
      rc = msgpack_pack_str(pk, n);
      if (rc == 0 && n > 0) rc = msgpack_pack_str_body(pk, s, n);
      break;
    }
    case LUA_TTABLE:
      return enc_table(e, idx);
    case LUA_TUSERDATA: {
      const lore_ref *r = ref_test(L, idx);
      return r ? enc_ref(e, r) : enc_type_error(e, idx); /* other userdata are not values */
    }
    default:
      return enc_type_error(e, idx);
  }
  return rc ? enc_oom(e) : 0;
}

int codec_encode(lua_State *L, int idx, const char *root, msgpack_sbuffer *buf, char *err,
                 size_t errlen) {
  enc e;
  int base = lua_gettop(L);
  idx = lua_absindex(L, idx);
  e.L = L;
  e.root = root;
  e.err = err;
  e.errlen = errlen;
  e.depth = 0;
  e.values = 0;
  e.buf = buf;
  msgpack_packer_init(&e.pk, buf, msgpack_sbuffer_write);
  if (!lua_checkstack(L, ENC_STACK)) {
    snprintf(err, errlen, "Lua stack overflow encoding %s", root ? root : "value");
    return -1;
  }
  if (enc_value(&e, idx) == 0) {
    if (buf->size <= CODEC_MAX_BYTES) return 0;
    e.values = 0;
    enc_too_big(&e);
  }
  lua_settop(L, base); /* an error returns from the middle of a traversal */
  return -1;
}

/* ---------------------------------------------------------------- decoding */

enum { DEC_OK, DEC_EXT_TYPE, DEC_BAD_REF, DEC_NIL_KEY, DEC_NAN_KEY };

/* Callbacks return this so their failures are told apart from the template's own codes. */
#define DEC_CALLBACK_ERROR (-10)

typedef struct {
  lua_State *L;
  size_t budget; /* table slots we may still pre-size (see dec_presize) */
  int why;       /* DEC_* once a callback fails */
  int ext_type;
  codec_strings *strings; /* or NULL */
  int anchor;             /* stack index of strings' anchor table */
} dec_user;

/* The parser's per-value object. Values live on the Lua stack, so the only thing to remember
 * is, for an open array, the index its next item goes to. */
typedef struct {
  lua_Integer next;
} dec_obj;

/*
 * Container counts come from the input and may be lies (an array32 header claims 4 billion
 * items in 5 bytes). Every real element takes at least one input byte, so the sizes of all
 * tables in one message add up to at most its length: pre-sizing from a budget of `len` slots
 * is exact for honest input and bounds what a hostile header can make us allocate.
 */
static int dec_presize(dec_user *u, uint32_t n) {
  size_t want = n < u->budget ? n : u->budget;
  if (want > INT32_MAX) want = INT32_MAX;
  u->budget -= want;
  return (int)want;
}

static inline dec_obj dec_cb_root(dec_user *u) {
  (void)u;
  dec_obj o = {0};
  return o;
}

#define DEC_PUSH_INT(name, type)                                    \
  static inline int dec_cb##name(dec_user *u, type d, dec_obj *o) { \
    o->next = 0;                                                    \
    lua_pushinteger(u->L, (lua_Integer)d);                          \
    return 0;                                                       \
  }
DEC_PUSH_INT(_uint8, uint8_t)
DEC_PUSH_INT(_uint16, uint16_t)
DEC_PUSH_INT(_uint32, uint32_t)
DEC_PUSH_INT(_int8, int8_t)
DEC_PUSH_INT(_int16, int16_t)
DEC_PUSH_INT(_int32, int32_t)
DEC_PUSH_INT(_int64, int64_t)

/* Lua integers are signed 64-bit: a uint64 above math.maxinteger becomes the nearest float
 * rather than an error (only other encoders can produce one; ours never does). */
static inline int dec_cb_uint64(dec_user *u, uint64_t d, dec_obj *o) {
  o->next = 0;
  if (d <= (uint64_t)LUA_MAXINTEGER)
    lua_pushinteger(u->L, (lua_Integer)d);
  else
    lua_pushnumber(u->L, (lua_Number)d);
  return 0;
}

static inline int dec_cb_float(dec_user *u, float d, dec_obj *o) {
  o->next = 0;
  lua_pushnumber(u->L, (lua_Number)d);
  return 0;
}

static inline int dec_cb_double(dec_user *u, double d, dec_obj *o) {
  o->next = 0;
  lua_pushnumber(u->L, (lua_Number)d);
  return 0;
}

static inline int dec_cb_nil(dec_user *u, dec_obj *o) {
  o->next = 0;
  lua_pushnil(u->L);
  return 0;
}

static inline int dec_cb_true(dec_user *u, dec_obj *o) {
  o->next = 0;
  lua_pushboolean(u->L, 1);
  return 0;
}

static inline int dec_cb_false(dec_user *u, dec_obj *o) {
  o->next = 0;
  lua_pushboolean(u->L, 0);
  return 0;
}

static inline int dec_cb_array(dec_user *u, uint32_t n, dec_obj *o) {
  lua_createtable(u->L, dec_presize(u, n), 0);
  o->next = 1;
  return 0;
}

/* The item was just pushed above its array. */
static inline int dec_cb_array_item(dec_user *u, dec_obj *c, dec_obj o) {
  (void)o;
  lua_rawseti(u->L, -2, c->next++);
  return 0;
}

static inline int dec_cb_map(dec_user *u, uint32_t n, dec_obj *o) {
  o->next = 0;
  lua_createtable(u->L, 0, dec_presize(u, n));
  return 0;
}

/* Key and value were just pushed above their map. nil and NaN cannot be table keys (lua_rawset
 * would raise), so they are refused as malformed messages. */
static inline int dec_cb_map_item(dec_user *u, dec_obj *c, dec_obj k, dec_obj v) {
  lua_State *L = u->L;
  (void)c;
  (void)k;
  (void)v;
  if (lua_isnil(L, -2)) {
    u->why = DEC_NIL_KEY;
    return DEC_CALLBACK_ERROR;
  }
  if (lua_type(L, -2) == LUA_TNUMBER && !lua_isinteger(L, -2)) {
    lua_Number x = lua_tonumber(L, -2);
    if (x != x) {
      u->why = DEC_NAN_KEY;
      return DEC_CALLBACK_ERROR;
    }
  }
  lua_rawset(L, -3);
  return 0;
}

static inline int dec_cb_str(dec_user *u, const char *b, const char *p, uint32_t l, dec_obj *o) {
  (void)b;
  o->next = 0;
  codec_strings *c = u->strings;
  if (!c || l > CODEC_STRING_MAX) {
    lua_pushlstring(u->L, p, l);
    return 0;
  }
  size_t i = codec_string_slot(p, l);
  if (c->slot[i].p && c->slot[i].len == l && codec_same(c->slot[i].p, p, l)) {
    lua_rawgeti(u->L, u->anchor, (lua_Integer)i + 1);
    return 0;
  }
  c->slot[i].p = lua_pushlstring(u->L, p, l);
  c->slot[i].len = l;
  lua_pushvalue(u->L, -1);
  lua_rawseti(u->L, u->anchor, (lua_Integer)i + 1);
  return 0;
}

/* Lua has one string type, so bin decodes exactly like str. */
static inline int dec_cb_bin(dec_user *u, const char *b, const char *p, uint32_t l, dec_obj *o) {
  return dec_cb_str(u, b, p, l, o);
}

/* p[0] is the extension type, p[1..l) its bytes. l == 0 only when an ext32 length of
 * 0xffffffff wrapped around in the parser: malformed. */
static inline int dec_cb_ext(dec_user *u, const char *b, const char *p, uint32_t l, dec_obj *o) {
  (void)b;
  o->next = 0;
  if (l == 0) {
    u->why = DEC_BAD_REF;
    return DEC_CALLBACK_ERROR;
  }
  if ((int8_t)p[0] != REF_EXT_TYPE) {
    u->why = DEC_EXT_TYPE;
    u->ext_type = (int8_t)p[0];
    return DEC_CALLBACK_ERROR;
  }
  if (ref_push_serialized(u->L, p + 1, l - 1) != 0) {
    u->why = DEC_BAD_REF;
    return DEC_CALLBACK_ERROR;
  }
  return 0;
}

#define msgpack_unpack_func(ret, name) static inline ret dec_unpack##name
#define msgpack_unpack_callback(name) dec_cb##name
#define msgpack_unpack_struct(name) struct dec_unpack##name
#define msgpack_unpack_object dec_obj
#define msgpack_unpack_user dec_user
#include <msgpack/unpack_template.h>

/* ---------------------------------------------------------------- checking */

/*
 * codec_check runs the same parser again (the template is meant to be
 * instantiated more than once) with callbacks that build nothing and refuse
 * exactly what decoding refuses: the nesting limit, unknown extensions,
 * malformed refs, nil and NaN map keys. So bytes the host accepts are bytes an
 * actor can decode, without a Lua state on the host's thread.
 */

enum { CHK_OTHER, CHK_NIL, CHK_NAN, CHK_STR };

typedef struct {
  const char *key; /* codec_root.key */
  size_t key_len;
  int why;
  int ext_type;
} chk_user;

/* One parsed value: what a map key must not be, and a string's bytes; a
 * container also keeps what codec_root reports about it. */
typedef struct {
  unsigned char kind;
  unsigned char found; /* array: its first item seen; map: codec_root.key seen */
  unsigned char found_str;
  uint32_t items;
  const char *p; /* CHK_STR: the bytes; container: the reported string */
  uint32_t l;
} chk_obj;

static inline chk_obj chk_cb_root(chk_user *u) {
  (void)u;
  chk_obj o = {0};
  return o;
}

static inline int chk_plain(chk_obj *o, unsigned char kind) {
  chk_obj z = {0};
  *o = z;
  o->kind = kind;
  return 0;
}

#define CHK_INT(name, type)                                         \
  static inline int chk_cb##name(chk_user *u, type d, chk_obj *o) { \
    (void)u;                                                        \
    (void)d;                                                        \
    return chk_plain(o, CHK_OTHER);                                 \
  }
CHK_INT(_uint8, uint8_t)
CHK_INT(_uint16, uint16_t)
CHK_INT(_uint32, uint32_t)
CHK_INT(_uint64, uint64_t)
CHK_INT(_int8, int8_t)
CHK_INT(_int16, int16_t)
CHK_INT(_int32, int32_t)
CHK_INT(_int64, int64_t)

static inline int chk_cb_float(chk_user *u, float d, chk_obj *o) {
  (void)u;
  return chk_plain(o, d != d ? CHK_NAN : CHK_OTHER);
}

static inline int chk_cb_double(chk_user *u, double d, chk_obj *o) {
  (void)u;
  return chk_plain(o, d != d ? CHK_NAN : CHK_OTHER);
}

static inline int chk_cb_nil(chk_user *u, chk_obj *o) {
  (void)u;
  return chk_plain(o, CHK_NIL);
}

static inline int chk_cb_true(chk_user *u, chk_obj *o) {
  (void)u;
  return chk_plain(o, CHK_OTHER);
}

static inline int chk_cb_false(chk_user *u, chk_obj *o) {
  (void)u;
  return chk_plain(o, CHK_OTHER);
}

static inline int chk_cb_array(chk_user *u, uint32_t n, chk_obj *o) {
  (void)u;
  (void)n;
  return chk_plain(o, CHK_OTHER);
}

static inline int chk_cb_array_item(chk_user *u, chk_obj *c, chk_obj o) {
  (void)u;
  if (c->items++ == 0) {
    c->found = 1;
    c->found_str = o.kind == CHK_STR;
    c->p = o.kind == CHK_STR ? o.p : NULL;
    c->l = o.kind == CHK_STR ? o.l : 0;
  }
  return 0;
}

static inline int chk_cb_map(chk_user *u, uint32_t n, chk_obj *o) {
  (void)u;
  (void)n;
  return chk_plain(o, CHK_OTHER);
}

static inline int chk_cb_map_item(chk_user *u, chk_obj *c, chk_obj k, chk_obj v) {
  if (k.kind == CHK_NIL) {
    u->why = DEC_NIL_KEY;
    return DEC_CALLBACK_ERROR;
  }
  if (k.kind == CHK_NAN) {
    u->why = DEC_NAN_KEY;
    return DEC_CALLBACK_ERROR;
  }
  c->items++;
  if (u->key && k.kind == CHK_STR && k.l == u->key_len && memcmp(k.p, u->key, k.l) == 0) {
    c->found = 1;
    c->found_str = v.kind == CHK_STR;
    c->p = v.kind == CHK_STR ? v.p : NULL;
    c->l = v.kind == CHK_STR ? v.l : 0;
  }
  return 0;
}

static inline int chk_cb_str(chk_user *u, const char *b, const char *p, uint32_t l, chk_obj *o) {
  (void)u;
  (void)b;
  chk_plain(o, CHK_STR);
  o->p = p;
  o->l = l;
  return 0;
}

static inline int chk_cb_bin(chk_user *u, const char *b, const char *p, uint32_t l, chk_obj *o) {
  return chk_cb_str(u, b, p, l, o);
}

static inline int chk_cb_ext(chk_user *u, const char *b, const char *p, uint32_t l, chk_obj *o) {
  (void)b;
  chk_plain(o, CHK_OTHER);
  if (l == 0) {
    u->why = DEC_BAD_REF;
    return DEC_CALLBACK_ERROR;
  }
  if ((int8_t)p[0] != REF_EXT_TYPE) {
    u->why = DEC_EXT_TYPE;
    u->ext_type = (int8_t)p[0];
    return DEC_CALLBACK_ERROR;
  }
  if (!ref_serialized_valid(p + 1, l - 1)) {
    u->why = DEC_BAD_REF;
    return DEC_CALLBACK_ERROR;
  }
  return 0;
}

#define msgpack_unpack_func(ret, name) static inline ret chk_unpack##name
#define msgpack_unpack_callback(name) chk_cb##name
#define msgpack_unpack_struct(name) struct chk_unpack##name
#define msgpack_unpack_object chk_obj
#define msgpack_unpack_user chk_user
#include <msgpack/unpack_template.h>

/* The message for a failed parse: the same words for decoding and checking. */
static void parse_error(int ret, size_t off, size_t len, int why, int ext_type, char *err,
                        size_t errlen) {
  if (!err || !errlen) return;
  if (ret == 1) {
    snprintf(err, errlen, "trailing bytes after the MessagePack value (%zu of %zu bytes used)", off,
             len);
  } else if (ret == 0) {
    snprintf(err, errlen, "truncated MessagePack data (%zu bytes)", len);
  } else if (ret == MSGPACK_UNPACK_NOMEM_ERROR) {
    /* the template's only use of NOMEM is a container opened CODEC_MAX_DEPTH deep */
    snprintf(err, errlen, "MessagePack nesting deeper than %d at byte %zu", CODEC_MAX_DEPTH, off);
  } else if (ret == DEC_CALLBACK_ERROR && why == DEC_EXT_TYPE) {
    snprintf(err, errlen, "unknown MessagePack extension type %d at byte %zu", ext_type, off);
  } else if (ret == DEC_CALLBACK_ERROR && why == DEC_BAD_REF) {
    snprintf(err, errlen, "malformed ref (extension type %d) at byte %zu", REF_EXT_TYPE, off);
  } else if (ret == DEC_CALLBACK_ERROR && why == DEC_NIL_KEY) {
    snprintf(err, errlen, "nil map key in MessagePack data at byte %zu", off);
  } else if (ret == DEC_CALLBACK_ERROR && why == DEC_NAN_KEY) {
    snprintf(err, errlen, "NaN map key in MessagePack data at byte %zu", off);
  } else {
    snprintf(err, errlen, "malformed MessagePack data at byte %zu", off);
  }
}

int codec_check(const char *data, size_t len, codec_root *root, char *err, size_t errlen) {
  struct chk_unpack_context ctx;
  size_t off = 0;
  chk_unpack_init(&ctx);
  ctx.user.key = root ? root->key : NULL;
  ctx.user.key_len = ctx.user.key ? strlen(ctx.user.key) : 0;
  ctx.user.why = DEC_OK;
  ctx.user.ext_type = 0;
  if (root) {
    root->type = CODEC_ROOT_OTHER;
    root->found = root->found_str = 0;
    root->str = NULL;
    root->str_len = 0;
  }
  int ret = data && len > 0 ? chk_unpack_execute(&ctx, data, len, &off) : 0;
  if (ret != 1 || off != len) {
    parse_error(ret, off, len, ctx.user.why, ctx.user.ext_type, err, errlen);
    return -1;
  }
  if (root) {
    unsigned char head = (unsigned char)data[0];
    int is_array = (head >= 0x90 && head <= 0x9f) || head == 0xdc || head == 0xdd;
    int is_map = (head >= 0x80 && head <= 0x8f) || head == 0xde || head == 0xdf;
    chk_obj o = chk_unpack_data(&ctx);
    root->type = is_array ? CODEC_ROOT_ARRAY : is_map ? CODEC_ROOT_MAP : CODEC_ROOT_OTHER;
    if (is_array || is_map) {
      root->found = o.found;
      root->found_str = o.found_str;
      root->str = o.p;
      root->str_len = o.l;
    }
  }
  return 0;
}

int codec_strings_init(lua_State *L, codec_strings *c) {
  memset(c, 0, sizeof *c);
  c->ref = LUA_NOREF;
  lua_createtable(L, CODEC_STRINGS, 0);
  for (int i = 1; i <= CODEC_STRINGS; i++) { /* the array part, sized once */
    lua_pushboolean(L, 0);
    lua_rawseti(L, -2, i);
  }
  c->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return c->ref == LUA_REFNIL || c->ref == LUA_NOREF ? -1 : 0;
}

void codec_strings_free(lua_State *L, codec_strings *c) {
  if (c->ref != LUA_NOREF && c->ref != LUA_REFNIL) luaL_unref(L, LUA_REGISTRYINDEX, c->ref);
  memset(c, 0, sizeof *c);
  c->ref = LUA_NOREF;
}

int codec_decode(lua_State *L, const char *data, size_t len, char *err, size_t errlen) {
  return codec_decode_cached(L, NULL, data, len, err, errlen);
}

int codec_decode_parser(lua_State *L, codec_strings *c, const char *data, size_t len, char *err,
                        size_t errlen) {
  int base = lua_gettop(L);
  if (!lua_checkstack(L, DEC_STACK + 1)) {
    snprintf(err, errlen, "Lua stack overflow decoding");
    return -1;
  }
  struct dec_unpack_context ctx;
  size_t off = 0;
  dec_unpack_init(&ctx);
  ctx.user.L = L;
  ctx.user.budget = len;
  ctx.user.why = DEC_OK;
  ctx.user.ext_type = 0;
  ctx.user.strings = NULL;
  if (c && c->ref != LUA_NOREF && c->ref != LUA_REFNIL) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->ref);
    ctx.user.strings = c;
    ctx.user.anchor = lua_gettop(L);
  }
  int ret = len > 0 ? dec_unpack_execute(&ctx, data, len, &off) : 0;
  if (ret == 1 && off == len) {
    if (ctx.user.strings) lua_remove(L, ctx.user.anchor);
    return 0;
  }

  lua_settop(L, base); /* drop the partly built value */
  parse_error(ret, off, len, ctx.user.why, ctx.user.ext_type, err, errlen);
  return -1;
}

int codec_decode_cached(lua_State *L, codec_strings *c, const char *data, size_t len, char *err,
                        size_t errlen) {
  if (codec_decode_scalar(L, data, len) == 0) return 0;
  int base = lua_gettop(L);
  int anchor = codec_strings_push(L, c);
  if (codec_decode_fast(L, anchor ? c : NULL, anchor, data, len) == 0) {
    if (anchor) lua_remove(L, anchor);
    return 0;
  }
  lua_settop(L, base); /* the fast path gave up: the parser decides */
  return codec_decode_parser(L, c, data, len, err, errlen);
}

int codec_strings_push(lua_State *L, codec_strings *c) {
  if (!c || c->ref == LUA_NOREF || c->ref == LUA_REFNIL) return 0;
  lua_rawgeti(L, LUA_REGISTRYINDEX, c->ref);
  return lua_gettop(L);
}

int codec_decode_anchored(lua_State *L, codec_strings *c, int anchor, const char *data, size_t len,
                          char *err, size_t errlen) {
  int base = lua_gettop(L);
  if (codec_decode_fast(L, anchor ? c : NULL, anchor, data, len) == 0) return 0;
  lua_settop(L, base);
  return codec_decode_parser(L, anchor ? c : NULL, data, len, err, errlen);
}
