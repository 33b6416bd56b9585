/* msgpack_json.c: MessagePack values as JSON (jansson), by the rules of msgpack_json.h. */
#include "msgpack_json.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Extension type of Lore's refs (bindings/ref.h) and its three layouts. */
#define REF_EXT 1
#define REF_BY_ADDRESS 1
#define REF_BY_ID 2
#define REF_BY_ENTITY 3

void mpj_ctx_init(mpj_ctx *ctx) {
  ctx->precision = 15;
  ctx->values = 0;
  ctx->err[0] = '\0';
}

void mpj_note_real(mpj_ctx *ctx, double d) {
  if (!isfinite(d)) return;
  char buf[40];
  for (int p = ctx->precision; p < 17; p++) {
    snprintf(buf, sizeof buf, "%.*g", p, d);
    if (strtod(buf, NULL) == d) return;
    ctx->precision = p + 1;
  }
}

int mpj_print_line(FILE *out, const json_t *v, int precision) {
  char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(precision));
  if (!text) return -1;
  int r = fputs(text, out) < 0 || fputc('\n', out) == EOF ? -1 : 0;
  free(text);
  return r;
}

static char *base64(const unsigned char *s, size_t n) {
  static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  char *out = malloc(4 * ((n + 2) / 3) + 1), *o = out;
  if (!out) return NULL;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)s[i] << 16 | (i + 1 < n ? (uint32_t)s[i + 1] << 8 : 0) |
                 (i + 2 < n ? s[i + 2] : 0);
    *o++ = abc[v >> 18 & 63];
    *o++ = abc[v >> 12 & 63];
    *o++ = i + 1 < n ? abc[v >> 6 & 63] : '=';
    *o++ = i + 2 < n ? abc[v & 63] : '=';
  }
  *o = '\0';
  return out;
}

/* {name: value}, stealing value; NULL (value released) when out of memory. */
static json_t *tagged(const char *name, json_t *value) {
  json_t *o = value ? json_object() : NULL;
  if (!o || json_object_set_new(o, name, value)) {
    json_decref(o);
    if (!o) json_decref(value);
    return NULL;
  }
  return o;
}

static json_t *base64_string(const char *s, size_t n) {
  char *b = base64((const unsigned char *)s, n);
  json_t *v = b ? json_string(b) : NULL;
  free(b);
  return v;
}

json_t *mpj_bin(const void *data, size_t n) { return tagged("$base64", base64_string(data, n)); }

json_t *mpj_bytes(const char *s, size_t n) {
  json_t *v = json_stringn(s, n); /* NULL when not valid UTF-8 */
  return v ? v : mpj_bin(s, n);
}

static json_t *uint64_value(uint64_t u) {
  if (u <= INT64_MAX) return json_integer((json_int_t)u);
  char buf[24];
  snprintf(buf, sizeof buf, "%" PRIu64, u);
  return tagged("$uint64", json_string(buf));
}

static json_t *real(mpj_ctx *ctx, double d) {
  if (isnan(d)) return tagged("$float", json_string("nan"));
  if (isinf(d)) return tagged("$float", json_string(d > 0 ? "inf" : "-inf"));
  mpj_note_real(ctx, d);
  return json_real(d);
}

/* A ref's bytes (ref_serialize's layouts); NULL if they are not a valid ref. */
static json_t *ref(const unsigned char *b, size_t n) {
  json_t *o = json_object();
  if (!o) return NULL;
  int ok = 0;
  if (n == 13 && b[0] == REF_BY_ADDRESS) {
    uint32_t sched = (uint32_t)b[1] << 24 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 8 | b[4];
    uint64_t aid = 0;
    for (int i = 5; i < 13; i++) aid = aid << 8 | b[i];
    ok = !json_object_set_new(o, "scheduler", json_integer(sched)) &&
         !json_object_set_new(o, "actor", uint64_value(aid));
  } else if (n >= 2 && b[0] == REF_BY_ID) {
    ok = !json_object_set_new(o, "id", mpj_bytes((const char *)b + 1, n - 1));
  } else if (n >= 4 && b[0] == REF_BY_ENTITY && b[1] != 0 && n >= 3u + b[1]) {
    size_t mlen = b[1];
    ok = !json_object_set_new(o, "entities", mpj_bytes((const char *)b + 2, mlen)) &&
         !json_object_set_new(o, "id", mpj_bytes((const char *)b + 2 + mlen, n - 2 - mlen));
  }
  if (!ok) {
    json_decref(o);
    return NULL;
  }
  return tagged("$ref", o);
}

static json_t *ext(int8_t type, const char *data, size_t n) {
  if (type == REF_EXT) {
    json_t *r = ref((const unsigned char *)data, n);
    if (r) return r;
  }
  json_t *o = json_object();
  if (!o || json_object_set_new(o, "type", json_integer(type)) ||
      json_object_set_new(o, "base64", base64_string(data, n))) {
    json_decref(o);
    return NULL;
  }
  return tagged("$ext", o);
}

/* ---- the decoder ---- */

typedef struct reader {
  const unsigned char *p, *end;
  mpj_ctx *ctx;
} reader;

static json_t *fail(reader *r, const char *what) {
  if (!r->ctx->err[0]) snprintf(r->ctx->err, sizeof r->ctx->err, "%s", what);
  return NULL;
}

static int take(reader *r, size_t n, const unsigned char **out) {
  if ((size_t)(r->end - r->p) < n) return -1;
  *out = r->p;
  r->p += n;
  return 0;
}

static int be(reader *r, size_t n, uint64_t *out) {
  const unsigned char *b;
  if (take(r, n, &b)) return -1;
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) v = v << 8 | b[i];
  *out = v;
  return 0;
}

static json_t *value(reader *r, int depth);

/* The member name a key has in an object: a UTF-8 string key is itself (a
 * bin or non-UTF-8 key decoded to a tagged object), an integer key its
 * decimal digits; 0 for any other key, and for a name with a NUL byte (valid
 * JSON, but several parsers, jansson's among them, refuse it in a name). */
static int member_name(const json_t *k, char digits[24], const char **name, size_t *len) {
  if (json_is_string(k)) {
    *name = json_string_value(k);
    *len = json_string_length(k);
    return memchr(*name, '\0', *len) == NULL;
  }
  if (!json_is_integer(k)) return 0;
  *len = (size_t)snprintf(digits, 24, "%" JSON_INTEGER_FORMAT, json_integer_value(k));
  *name = digits;
  return 1;
}

/* {"$map": [k1, v1, k2, v2, ...]}: flat, so that even 64 maps inside each
 * other stay within what common parsers nest (jq reads 256 levels). */
static json_t *pairs(json_t **kv, size_t n) {
  json_t *list = json_array();
  for (size_t i = 0; list && i < 2 * n; i++) {
    if (json_array_append(list, kv[i])) {
      json_decref(list);
      return NULL;
    }
  }
  return tagged("$map", list);
}

/* An object when the keys allow one (see msgpack_json.h), else pairs. */
static json_t *map_of(json_t **kv, size_t n) {
  json_t *obj = json_object();
  if (!obj) return NULL;
  const char *name = NULL;
  size_t len = 0;
  char digits[24];
  for (size_t i = 0; i < n; i++) {
    if (!member_name(kv[2 * i], digits, &name, &len) || json_object_getn(obj, name, len)) {
      json_decref(obj);
      return pairs(kv, n);
    }
    if (json_object_setn(obj, name, len, kv[2 * i + 1])) {
      json_decref(obj);
      return NULL;
    }
  }
  if (n == 1 && len > 0 && name[0] == '$') { /* it would read as a tagged value */
    json_decref(obj);
    return pairs(kv, n);
  }
  return obj;
}

static json_t *map(reader *r, uint64_t n, int depth) {
  if (depth >= MPJ_MAX_DEPTH) return fail(r, "nesting deeper than 64 levels");
  /* Every item takes at least one byte: a count beyond the bytes left is a lie. */
  if (n > (uint64_t)(r->end - r->p) / 2) return fail(r, "truncated payload (map)");
  json_t **kv = calloc(2 * n + 1, sizeof *kv);
  if (!kv) return fail(r, "out of memory");
  json_t *out = NULL;
  size_t got = 0;
  while (got < 2 * n && (kv[got] = value(r, depth + 1)) != NULL) got++;
  if (got == 2 * n && !(out = map_of(kv, n))) fail(r, "out of memory");
  for (size_t i = 0; i < got; i++) json_decref(kv[i]);
  free(kv);
  return out;
}

static json_t *array(reader *r, uint64_t n, int depth) {
  if (depth >= MPJ_MAX_DEPTH) return fail(r, "nesting deeper than 64 levels");
  if (n > (uint64_t)(r->end - r->p)) return fail(r, "truncated payload (array)");
  json_t *a = json_array();
  if (!a) return fail(r, "out of memory");
  for (uint64_t i = 0; i < n; i++) {
    json_t *v = value(r, depth + 1);
    if (!v || json_array_append_new(a, v)) {
      json_decref(a);
      return v ? fail(r, "out of memory") : NULL;
    }
  }
  return a;
}

static json_t *string_of(reader *r, uint64_t n, int is_bin) {
  const unsigned char *b;
  if (take(r, n, &b)) return fail(r, "truncated payload (string)");
  json_t *v = is_bin ? mpj_bin(b, n) : mpj_bytes((const char *)b, n);
  return v ? v : fail(r, "out of memory");
}

static json_t *ext_of(reader *r, uint64_t n) {
  const unsigned char *b;
  if (take(r, 1 + n, &b)) return fail(r, "truncated payload (extension)");
  json_t *v = ext((int8_t)b[0], (const char *)b + 1, n);
  return v ? v : fail(r, "out of memory");
}

/* depth: how many containers enclose the value. */
static json_t *value(reader *r, int depth) {
  if (++r->ctx->values > MPJ_MAX_VALUES) return fail(r, "more than 4194304 values");
  const unsigned char *b;
  if (take(r, 1, &b)) return fail(r, "truncated payload");
  unsigned c = *b;
  uint64_t u;
  json_t *v;
  if (c <= 0x7f) return json_integer(c);
  if (c >= 0xe0) return json_integer((int8_t)c);
  if (c <= 0x8f) return map(r, c & 0x0f, depth);
  if (c <= 0x9f) return array(r, c & 0x0f, depth);
  if (c <= 0xbf) return string_of(r, c & 0x1f, 0);
  switch (c) {
    case 0xc0:
      return json_null();
    case 0xc2:
      return json_false();
    case 0xc3:
      return json_true();
    case 0xc4:
    case 0xc5:
    case 0xc6:
      if (be(r, (size_t)1 << (c - 0xc4), &u)) break;
      return string_of(r, u, 1);
    case 0xc7:
    case 0xc8:
    case 0xc9:
      if (be(r, (size_t)1 << (c - 0xc7), &u)) break;
      return ext_of(r, u);
    case 0xca: {
      if (be(r, 4, &u)) break;
      uint32_t bits = (uint32_t)u;
      float f;
      memcpy(&f, &bits, sizeof f);
      v = real(r->ctx, f);
      return v ? v : fail(r, "out of memory");
    }
    case 0xcb: {
      if (be(r, 8, &u)) break;
      double d;
      memcpy(&d, &u, sizeof d);
      v = real(r->ctx, d);
      return v ? v : fail(r, "out of memory");
    }
    case 0xcc:
    case 0xcd:
    case 0xce:
    case 0xcf:
      if (be(r, (size_t)1 << (c - 0xcc), &u)) break;
      v = uint64_value(u);
      return v ? v : fail(r, "out of memory");
    case 0xd0:
    case 0xd1:
    case 0xd2:
    case 0xd3: {
      size_t n = (size_t)1 << (c - 0xd0);
      if (be(r, n, &u)) break;
      /* sign-extend the n-byte two's complement value */
      int64_t i = n == 8 ? (int64_t)u : (int64_t)(u ^ (1ull << (8 * n - 1))) - (1ll << (8 * n - 1));
      return json_integer(i);
    }
    case 0xd4:
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8:
      return ext_of(r, (uint64_t)1 << (c - 0xd4));
    case 0xd9:
    case 0xda:
    case 0xdb:
      if (be(r, (size_t)1 << (c - 0xd9), &u)) break;
      return string_of(r, u, 0);
    case 0xdc:
    case 0xdd:
      if (be(r, c == 0xdc ? 2 : 4, &u)) break;
      return array(r, u, depth);
    case 0xde:
    case 0xdf:
      if (be(r, c == 0xde ? 2 : 4, &u)) break;
      return map(r, u, depth);
    default:
      return fail(r, "malformed payload (byte 0xc1)");
  }
  return fail(r, "truncated payload");
}

json_t *mpj_decode(const void *data, size_t len, mpj_ctx *ctx) {
  reader r = {data, (const unsigned char *)data + len, ctx};
  if (len == 0) {
    snprintf(ctx->err, sizeof ctx->err, "empty payload");
    return NULL;
  }
  json_t *v = value(&r, 0);
  if (!v && !ctx->err[0]) snprintf(ctx->err, sizeof ctx->err, "out of memory");
  if (v && r.p != r.end) {
    snprintf(ctx->err, sizeof ctx->err, "%zu bytes after the value", (size_t)(r.end - r.p));
    json_decref(v);
    return NULL;
  }
  return v;
}
