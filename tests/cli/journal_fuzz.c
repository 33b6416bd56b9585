/* journal_fuzz.c: random journals, and the check that `lore journal events --json` renders them by
 * the documented rules.
 *
 *   journal_fuzz write DB SEED N          N events of random MessagePack payloads over ids()
 *   journal_fuzz ids                      those ids, one per line (raw bytes)
 *   journal_fuzz check SEED N             reads JSON lines (every id's events, any order) on
 *                                         stdin; each must read back as the payload, manifest,
 *                                         tags and id that SEED gives it (docs/cli.md's rules)
 *   journal_fuzz append DB ID TAG N MS    appends N small events tagged TAG to ID, one commit
 *                                         every MS milliseconds (a writer in another process)
 *
 * The rules are implemented here a second time, independently of bindings/cli/msgpack_json.c:
 * a value is generated as a tree, packed with libmsgpack, and the tree is compared with what
 * jansson parses from the command's output.
 */
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <msgpack.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "journal.h"

#define MAX_DEPTH 64 /* containers, as the runtime's codec */

static const char *const ids[] = {"alpha", "beta-\xce\xb2", "gam\xffma", "$delta"};
#define NIDS 4

static void die(const char *what) {
  fprintf(stderr, "journal_fuzz: %s\n", what);
  exit(2);
}

/* ---- random numbers: splitmix64, seeded per (seed, id, seq) ---- */

static uint64_t next(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
static unsigned pick(uint64_t *s, unsigned n) { return (unsigned)(next(s) % n); }

/* ---- generated values ---- */

enum { GV_NIL, GV_BOOL, GV_INT, GV_UINT, GV_F32, GV_F64, GV_STR, GV_BIN, GV_ARR, GV_MAP, GV_EXT };

typedef struct gv {
  int kind;
  int64_t i;
  uint64_t u;
  double f;
  float f32;
  char *s; /* STR, BIN, EXT bytes */
  size_t n;
  int8_t ext;
  struct gv *items; /* ARR: n items; MAP: 2n (key, value) */
} gv;

static void gv_free(gv *v) {
  if (v->kind == GV_ARR || v->kind == GV_MAP)
    for (size_t i = 0; i < (v->kind == GV_MAP ? 2 * v->n : v->n); i++) gv_free(&v->items[i]);
  free(v->items);
  free(v->s);
}

static char *dup_bytes(const char *s, size_t n) {
  char *d = malloc(n + 1);
  if (!d) die("out of memory");
  memcpy(d, s, n);
  d[n] = '\0';
  return d;
}

static void gen_string(uint64_t *r, gv *v) {
  static const char *const samples[] = {"",
                                        "a",
                                        "hello world",
                                        "caf\xc3\xa9",
                                        "\xe2\x82\xac",
                                        "\xf0\x9f\x98\x80",
                                        "\xff",
                                        "\xc0\x80" /* overlong NUL */,
                                        "\xed\xa0\x80" /* a surrogate */,
                                        "\x80",
                                        "ok\xfe",
                                        "$base64",
                                        "$float",
                                        "b64:aGk=",
                                        "nan",
                                        "1",
                                        "\"quoted\"\\",
                                        "tab\tnl\n",
                                        "\xf4\x90\x80\x80" /* above U+10FFFF */,
                                        "\xe2\x82" /* truncated */};
  size_t k = pick(r, sizeof samples / sizeof samples[0] + 3);
  if (k < sizeof samples / sizeof samples[0]) {
    v->n = strlen(samples[k]);
    v->s = dup_bytes(samples[k], v->n);
    if (pick(r, 8) == 0) { /* an embedded NUL */
      v->s = realloc(v->s, v->n + 3);
      if (!v->s) die("out of memory");
      memcpy(v->s + v->n, "\0x", 3);
      v->n += 2;
    }
    return;
  }
  v->n = pick(r, 24);
  v->s = malloc(v->n + 1);
  if (!v->s) die("out of memory");
  int binary = k == sizeof samples / sizeof samples[0]; /* any bytes at all */
  for (size_t i = 0; i < v->n; i++) v->s[i] = (char)(binary ? next(r) & 0xff : 32 + pick(r, 95));
  v->s[v->n] = '\0';
}

static void gen_ref(uint64_t *r, gv *v) {
  v->kind = GV_EXT;
  v->ext = 1;
  char buf[64];
  size_t n;
  switch (pick(r, 4)) {
    case 0: /* by address */
      buf[0] = 1;
      for (int i = 1; i < 13; i++) buf[i] = (char)(next(r) & 0xff);
      n = 13;
      break;
    case 1: /* by id */
      n = (size_t)snprintf(buf, sizeof buf, "%cplayer-%u", 2, pick(r, 1000));
      break;
    case 2: /* an entity */
      n = (size_t)snprintf(buf, sizeof buf, "%c%cshopscart-%u", 3, 5, pick(r, 1000));
      break;
    default: /* malformed: an $ext */
      buf[0] = 9;
      n = 1 + pick(r, 5);
      for (size_t i = 1; i < n; i++) buf[i] = (char)(next(r) & 0xff);
  }
  v->s = dup_bytes(buf, n);
  v->n = n;
}

static void gen(uint64_t *r, gv *v, int depth);

static void gen_scalar(uint64_t *r, gv *v) {
  static const double doubles[] = {
      0.0, -0.0, 0.1, 1.0, -1.5, 1e300, 5e-324, 123456789.125, 0.30000000000000004, 2.5e-8, 1e21};
  memset(v, 0, sizeof *v);
  switch (pick(r, 16)) {
    case 0:
      v->kind = GV_NIL;
      break;
    case 1:
      v->kind = GV_BOOL;
      v->i = pick(r, 2);
      break;
    case 2:
      v->kind = GV_INT;
      v->i = (int64_t)pick(r, 300) - 150;
      break;
    case 3:
      v->kind = GV_INT;
      v->i = pick(r, 2) ? INT64_MAX : INT64_MIN;
      break;
    case 4:
      v->kind = GV_INT;
      v->i = (int64_t)next(r);
      break;
    case 5:
      v->kind = GV_UINT;
      v->u = (uint64_t)INT64_MAX + 1 + pick(r, 1000);
      break;
    case 6:
      v->kind = GV_F64;
      v->f = doubles[pick(r, sizeof doubles / sizeof doubles[0])];
      break;
    case 7: {
      v->kind = GV_F64;
      unsigned k = pick(r, 3);
      v->f = k == 0 ? NAN : k == 1 ? INFINITY : -INFINITY;
      break;
    }
    case 8: {
      v->kind = GV_F64;
      uint64_t bits = next(r);
      memcpy(&v->f, &bits, sizeof v->f); /* any double, NaN payloads included */
      break;
    }
    case 9:
      v->kind = GV_F32;
      v->f32 = (float)(pick(r, 2) ? 0.1 : -3.25);
      break;
    case 10:
      v->kind = GV_BIN;
      gen_string(r, v);
      break;
    case 11:
      gen_ref(r, v);
      break;
    default:
      v->kind = GV_STR;
      gen_string(r, v);
  }
}

static void gen_key(uint64_t *r, gv *k, int depth) {
  memset(k, 0, sizeof *k);
  switch (pick(r, 12)) {
    case 0:
      k->kind = GV_INT;
      k->i = pick(r, 3);
      break; /* collides with "0".."2" */
    case 1:
      k->kind = GV_INT;
      k->i = -(int64_t)pick(r, 3);
      break;
    case 2:
      k->kind = GV_STR;
      k->s = dup_bytes("1", 1);
      k->n = 1;
      break;
    case 3:
      k->kind = GV_STR;
      k->s = dup_bytes("$x", 2);
      k->n = 2;
      break;
    case 4:
      k->kind = GV_F64;
      k->f = 1.5;
      break;
    case 5:
      k->kind = GV_BOOL;
      k->i = 1;
      break;
    case 6:
      k->kind = GV_BIN;
      k->s = dup_bytes("k", 1);
      k->n = 1;
      break;
    case 7:
      k->kind = GV_STR;
      k->s = dup_bytes("k\xff", 2);
      k->n = 2;
      break;
    case 8:
      if (depth + 1 < MAX_DEPTH) {
        gen(r, k, depth + 1); /* any value as a key */
        break;
      }
      /* fall through */
    default: {
      static const char *const names[] = {"type", "sku", "qty", "name", "items", "x"};
      const char *s = names[pick(r, 6)];
      k->kind = GV_STR;
      k->n = strlen(s);
      k->s = dup_bytes(s, k->n);
    }
  }
}

/* depth: containers around v. */
static void gen(uint64_t *r, gv *v, int depth) {
  unsigned k = pick(r, depth < 5 ? 10 : 30);
  if (k >= 3 || depth + 1 >= MAX_DEPTH) {
    gen_scalar(r, v);
    return;
  }
  memset(v, 0, sizeof *v);
  v->kind = k == 0 ? GV_ARR : GV_MAP;
  v->n = pick(r, 6);
  v->items = calloc(2 * v->n + 1, sizeof *v->items);
  if (!v->items) die("out of memory");
  for (size_t i = 0; i < v->n; i++) {
    if (v->kind == GV_ARR) {
      gen(r, &v->items[i], depth + 1);
    } else {
      gen_key(r, &v->items[2 * i], depth);
      gen(r, &v->items[2 * i + 1], depth + 1);
    }
  }
}

/* A chain of `levels` containers around a scalar; maps keyed "$k" (pairs form). */
static void gen_chain(uint64_t *r, gv *v, int levels, int maps) {
  if (levels == 0) {
    gen_scalar(r, v);
    return;
  }
  memset(v, 0, sizeof *v);
  v->kind = maps ? GV_MAP : GV_ARR;
  v->n = 1;
  v->items = calloc(3, sizeof *v->items);
  if (!v->items) die("out of memory");
  if (maps) {
    v->items[0] = (gv){.kind = GV_STR, .s = dup_bytes("$k", 2), .n = 2};
    gen_chain(r, &v->items[1], levels - 1, maps);
  } else {
    gen_chain(r, &v->items[0], levels - 1, maps);
  }
}

static void pack(msgpack_packer *pk, const gv *v) {
  switch (v->kind) {
    case GV_NIL:
      msgpack_pack_nil(pk);
      break;
    case GV_BOOL:
      v->i ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
      break;
    case GV_INT:
      msgpack_pack_int64(pk, v->i);
      break;
    case GV_UINT:
      msgpack_pack_uint64(pk, v->u);
      break;
    case GV_F32:
      msgpack_pack_float(pk, v->f32);
      break;
    case GV_F64:
      msgpack_pack_double(pk, v->f);
      break;
    case GV_STR:
      msgpack_pack_str(pk, v->n);
      msgpack_pack_str_body(pk, v->s, v->n);
      break;
    case GV_BIN:
      msgpack_pack_bin(pk, v->n);
      msgpack_pack_bin_body(pk, v->s, v->n);
      break;
    case GV_EXT:
      msgpack_pack_ext(pk, v->n, v->ext);
      msgpack_pack_ext_body(pk, v->s, v->n);
      break;
    case GV_ARR:
      msgpack_pack_array(pk, v->n);
      for (size_t i = 0; i < v->n; i++) pack(pk, &v->items[i]);
      break;
    case GV_MAP:
      msgpack_pack_map(pk, v->n);
      for (size_t i = 0; i < 2 * v->n; i++) pack(pk, &v->items[i]);
      break;
  }
}

/* ---- one event, all from (seed, id, seq) ---- */

enum { BAD_NONE, BAD_TRUNCATED, BAD_TRAILING, BAD_C1, BAD_TOO_DEEP };

typedef struct fuzz_event {
  gv value;
  int bad;
  msgpack_sbuffer payload;
  char manifest[16];
  char tags[64];
} fuzz_event;

static void make_event(uint64_t seed, int id, int64_t seq, fuzz_event *e) {
  uint64_t r = seed * 1000003u + (uint64_t)id * 7919u + (uint64_t)seq * 104729u;
  memset(e, 0, sizeof *e);
  unsigned kind = pick(&r, 40);
  e->bad = kind == 0   ? BAD_TRUNCATED
           : kind == 1 ? BAD_TRAILING
           : kind == 2 ? BAD_C1
           : kind == 3 ? BAD_TOO_DEEP
                       : BAD_NONE;
  if (kind == 3)
    gen_chain(&r, &e->value, MAX_DEPTH + 1, 0);
  else if (kind == 4)
    gen_chain(&r, &e->value, MAX_DEPTH, 0);
  else if (kind == 5)
    gen_chain(&r, &e->value, MAX_DEPTH, 1);
  else if (kind < 9)
    gen_scalar(&r, &e->value); /* an event need not be a table */
  else
    gen(&r, &e->value, 0);
  msgpack_sbuffer_init(&e->payload);
  msgpack_packer pk;
  msgpack_packer_init(&pk, &e->payload, msgpack_sbuffer_write);
  if (e->bad == BAD_C1) {
    msgpack_sbuffer_write(&e->payload, "\xc1", 1);
  } else {
    pack(&pk, &e->value);
    if (e->bad == BAD_TRAILING) msgpack_pack_nil(&pk);
    if (e->bad == BAD_TRUNCATED) {
      if (e->payload.size > 1)
        e->payload.size--;
      else
        e->bad = BAD_NONE; /* one byte cannot be cut */
    }
  }
  static const char *const manifests[] = {"", "added", "removed", "typ\xfe"};
  snprintf(e->manifest, sizeof e->manifest, "%s", manifests[pick(&r, 4)]);
  static const char *const tags[] = {"", "red", "red\nblue", "gr\xffy", "blue\n$tag"};
  snprintf(e->tags, sizeof e->tags, "%s", tags[pick(&r, 5)]);
}

static void event_free(fuzz_event *e) {
  gv_free(&e->value);
  msgpack_sbuffer_destroy(&e->payload);
}

/* ---- writing ---- */

typedef struct waiter {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int pending, failed;
} waiter;

static void write_done(journal_write *w, int status) {
  waiter *wt = w->data;
  pthread_mutex_lock(&wt->mu);
  if (status) wt->failed = status;
  wt->pending--;
  pthread_cond_signal(&wt->cv);
  pthread_mutex_unlock(&wt->mu);
}

static void wait_all(waiter *wt) {
  pthread_mutex_lock(&wt->mu);
  while (wt->pending > 0) pthread_cond_wait(&wt->cv, &wt->mu);
  pthread_mutex_unlock(&wt->mu);
  if (wt->failed) die(journal_strerror(wt->failed));
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static journal_t *open_rw(const char *db) {
  char uri[4096];
  snprintf(uri, sizeof uri, "sqlite:%s", db);
  journal_options opt = {.synchronous_full = 0};
  journal_t *j;
  int r = journal_open(uri, &opt, &j);
  if (r) die(journal_strerror(r));
  return j;
}

static int cmd_write(const char *db, uint64_t seed, long n) {
  journal_t *j = open_rw(db);
  waiter wt = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
  journal_write writes[NIDS];
  journal_event *evs[NIDS];
  fuzz_event *fes[NIDS];
  for (int k = 0; k < NIDS; k++) {
    long count = n / NIDS + (k < n % NIDS);
    evs[k] = calloc((size_t)count + 1, sizeof **evs);
    fes[k] = calloc((size_t)count + 1, sizeof **fes);
    if (!evs[k] || !fes[k]) die("out of memory");
    for (long s = 0; s < count; s++) {
      make_event(seed, k, s + 1, &fes[k][s]);
      evs[k][s] = (journal_event){.id = ids[k],
                                  .seq = s + 1,
                                  .manifest = fes[k][s].manifest,
                                  .version = 1,
                                  .tags = fes[k][s].tags,
                                  .writer = 42,
                                  .timestamp_ms = now_ms(),
                                  .payload = fes[k][s].payload.data,
                                  .payload_len = fes[k][s].payload.size};
      journal_event_seal(&evs[k][s]);
    }
    writes[k] = (journal_write){.kind = JOURNAL_WRITE_EVENTS,
                                .events = evs[k],
                                .count = (size_t)count,
                                .done = write_done,
                                .data = &wt};
    pthread_mutex_lock(&wt.mu);
    wt.pending++;
    pthread_mutex_unlock(&wt.mu);
    if (journal_submit(j, &writes[k])) die("submit refused");
  }
  wait_all(&wt);
  journal_close(j);
  for (int k = 0; k < NIDS; k++) {
    for (long s = 0; s < n / NIDS + (k < n % NIDS); s++) event_free(&fes[k][s]);
    free(evs[k]);
    free(fes[k]);
  }
  return 0;
}

static int cmd_append(const char *db, const char *id, const char *tag, long n, long delay_ms) {
  journal_t *j = open_rw(db);
  journal_bounds b;
  if (journal_bounds_of(j, id, &b)) die("bounds");
  for (long i = 0; i < n; i++) {
    char payload[64];
    msgpack_sbuffer sb = {0};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str(&pk, 1);
    msgpack_pack_str_body(&pk, "n", 1);
    msgpack_pack_int64(&pk, i + 1);
    memcpy(payload, sb.data, sb.size);
    journal_event ev = {.id = id,
                        .seq = b.highest + i + 1,
                        .manifest = "tick",
                        .version = 1,
                        .tags = tag,
                        .writer = 7,
                        .timestamp_ms = now_ms(),
                        .payload = payload,
                        .payload_len = sb.size};
    journal_event_seal(&ev);
    waiter wt = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 1, 0};
    journal_write w = {
        .kind = JOURNAL_WRITE_EVENTS, .events = &ev, .count = 1, .done = write_done, .data = &wt};
    if (journal_submit(j, &w)) die("submit refused");
    wait_all(&wt);
    msgpack_sbuffer_destroy(&sb);
    if (delay_ms > 0) usleep((useconds_t)delay_ms * 1000);
  }
  journal_close(j);
  return 0;
}

/* ---- checking: the rules of docs/cli.md, written again ---- */

static char *b64(const unsigned char *s, size_t n) {
  static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  char *out = malloc(4 * ((n + 2) / 3) + 1), *o = out;
  if (!out) die("out of memory");
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

/* RFC 3629 UTF-8: no overlongs, no surrogates, nothing above U+10FFFF. */
static int utf8_valid(const unsigned char *s, size_t n) {
  for (size_t i = 0; i < n;) {
    unsigned c = s[i];
    size_t len = c < 0x80             ? 1
                 : (c & 0xe0) == 0xc0 ? 2
                 : (c & 0xf0) == 0xe0 ? 3
                 : (c & 0xf8) == 0xf0 ? 4
                                      : 0;
    if (!len || i + len > n) return 0;
    uint32_t cp = len == 1 ? c : c & (0x7f >> len);
    for (size_t k = 1; k < len; k++) {
      if ((s[i + k] & 0xc0) != 0x80) return 0;
      cp = cp << 6 | (s[i + k] & 0x3f);
    }
    static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    i += len;
  }
  return 1;
}

static int quiet;
static char where[256];

static int mismatch(const char *what, const json_t *got) {
  if (!quiet) {
    char *text = got ? json_dumps(got, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    fprintf(stderr, "journal_fuzz: %s: %s; got %s\n", where, what, text ? text : "(nothing)");
    free(text);
  }
  return -1;
}

/* The member of a tagged value {"name": x}, or NULL. */
static json_t *tag_of(const json_t *j, const char *name) {
  if (!json_is_object(j) || json_object_size(j) != 1) return NULL;
  return json_object_get(j, name);
}

static int same_string(const json_t *j, const char *s, size_t n) {
  return json_is_string(j) && json_string_length(j) == n && memcmp(json_string_value(j), s, n) == 0;
}

static int check_bytes(const char *s, size_t n, int is_bin, const json_t *j) {
  if (!is_bin && utf8_valid((const unsigned char *)s, n))
    return same_string(j, s, n) ? 0 : mismatch("expected this UTF-8 string", j);
  char *want = b64((const unsigned char *)s, n);
  json_t *t = tag_of(j, "$base64");
  int ok = t && json_is_string(t) && strcmp(json_string_value(t), want) == 0;
  free(want);
  return ok ? 0 : mismatch("expected {\"$base64\": ...}", j);
}

static int check(const gv *v, const json_t *j);

static int check_real(double d, const json_t *j) {
  if (isnan(d) || isinf(d)) {
    const char *want = isnan(d) ? "nan" : d > 0 ? "inf" : "-inf";
    json_t *t = tag_of(j, "$float");
    return t && json_is_string(t) && strcmp(json_string_value(t), want) == 0
               ? 0
               : mismatch("expected a $float tag", j);
  }
  if (!json_is_real(j)) return mismatch("expected a JSON real (with '.' or an exponent)", j);
  double got = json_real_value(j);
  return memcmp(&got, &d, sizeof d) == 0 ? 0 : mismatch("a different double", j);
}

static int check_ext(const gv *v, const json_t *j) {
  const unsigned char *b = (const unsigned char *)v->s;
  json_t *ref = v->ext == 1 ? tag_of(j, "$ref") : NULL;
  if (v->ext == 1 && v->n == 13 && b[0] == 1) {
    uint32_t sched = (uint32_t)b[1] << 24 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 8 | b[4];
    uint64_t aid = 0;
    for (int i = 5; i < 13; i++) aid = aid << 8 | b[i];
    json_t *a = json_object_get(ref, "actor");
    int aid_ok = aid <= INT64_MAX ? json_is_integer(a) && (uint64_t)json_integer_value(a) == aid
                                  : tag_of(a, "$uint64") != NULL;
    return ref && json_object_size(ref) == 2 &&
                   json_integer_value(json_object_get(ref, "scheduler")) == sched && aid_ok
               ? 0
               : mismatch("expected an address $ref", j);
  }
  if (v->ext == 1 && v->n >= 2 && b[0] == 2)
    return ref && json_object_size(ref) == 1
               ? check_bytes(v->s + 1, v->n - 1, 0, json_object_get(ref, "id"))
               : mismatch("expected an id $ref", j);
  if (v->ext == 1 && v->n >= 4 && b[0] == 3 && b[1] && v->n >= 3u + b[1])
    return ref && json_object_size(ref) == 2 &&
                   !check_bytes(v->s + 2, b[1], 0, json_object_get(ref, "entities")) &&
                   !check_bytes(v->s + 2 + b[1], v->n - 2 - b[1], 0, json_object_get(ref, "id"))
               ? 0
               : mismatch("expected an entity $ref", j);
  json_t *e = tag_of(j, "$ext");
  char *want = b64(b, v->n);
  int ok = e && json_object_size(e) == 2 &&
           json_integer_value(json_object_get(e, "type")) == v->ext &&
           json_is_integer(json_object_get(e, "type")) &&
           strcmp(json_string_value(json_object_get(e, "base64")) ?: "", want) == 0;
  free(want);
  return ok ? 0 : mismatch("expected an $ext tag", j);
}

/* A key's name in a JSON object, or 0 if it cannot have one. */
static int key_name(const gv *k, char *buf, size_t cap, const char **name, size_t *len) {
  if (k->kind == GV_STR && utf8_valid((const unsigned char *)k->s, k->n) &&
      !memchr(k->s, 0, k->n)) {
    *name = k->s;
    *len = k->n;
    return 1;
  }
  if (k->kind != GV_INT) return 0;
  *len = (size_t)snprintf(buf, cap, "%" PRId64, k->i);
  *name = buf;
  return 1;
}

static int check_map(const gv *v, const json_t *j) {
  int object = 1;
  char(*bufs)[24] = calloc(v->n + 1, sizeof *bufs);
  const char **names = calloc(v->n + 1, sizeof *names);
  size_t *lens = calloc(v->n + 1, sizeof *lens);
  if (!bufs || !names || !lens) die("out of memory");
  for (size_t i = 0; object && i < v->n; i++) {
    object = key_name(&v->items[2 * i], bufs[i], 24, &names[i], &lens[i]);
    for (size_t k = 0; object && k < i; k++)
      if (lens[k] == lens[i] && memcmp(names[k], names[i], lens[i]) == 0) object = 0;
  }
  if (object && v->n == 1 && lens[0] > 0 && names[0][0] == '$') object = 0;
  int r = 0;
  if (object) {
    if (!json_is_object(j) || json_object_size(j) != v->n) r = mismatch("expected an object", j);
    for (size_t i = 0; !r && i < v->n; i++) {
      json_t *m = json_object_getn(j, names[i], lens[i]);
      r = m ? check(&v->items[2 * i + 1], m) : mismatch("a member is missing", j);
    }
  } else {
    json_t *flat = tag_of(j, "$map");
    if (!json_is_array(flat) || json_array_size(flat) != 2 * v->n)
      r = mismatch("expected {\"$map\": [k1, v1, ...]}", j);
    for (size_t i = 0; !r && i < 2 * v->n; i++) r = check(&v->items[i], json_array_get(flat, i));
  }
  free(bufs);
  free(names);
  free(lens);
  return r;
}

static int check(const gv *v, const json_t *j) {
  switch (v->kind) {
    case GV_NIL:
      return json_is_null(j) ? 0 : mismatch("expected null", j);
    case GV_BOOL:
      return json_is_boolean(j) && json_is_true(j) == (v->i != 0)
                 ? 0
                 : mismatch("expected a boolean", j);
    case GV_INT:
      return json_is_integer(j) && json_integer_value(j) == v->i
                 ? 0
                 : mismatch("expected an integer", j);
    case GV_UINT: {
      char want[24];
      snprintf(want, sizeof want, "%" PRIu64, v->u);
      json_t *t = tag_of(j, "$uint64");
      return t && json_is_string(t) && strcmp(json_string_value(t), want) == 0
                 ? 0
                 : mismatch("expected $uint64", j);
    }
    case GV_F32:
      return check_real((double)v->f32, j);
    case GV_F64:
      return check_real(v->f, j);
    case GV_STR:
      return check_bytes(v->s, v->n, 0, j);
    case GV_BIN:
      return check_bytes(v->s, v->n, 1, j);
    case GV_EXT:
      return check_ext(v, j);
    case GV_ARR:
      if (!json_is_array(j) || json_array_size(j) != v->n) return mismatch("expected an array", j);
      for (size_t i = 0; i < v->n; i++)
        if (check(&v->items[i], json_array_get(j, i))) return -1;
      return 0;
    case GV_MAP:
      return check_map(v, j);
  }
  return mismatch("unknown kind", j);
}

static int check_tags(const char *tags, const json_t *j) {
  if (!json_is_array(j)) return mismatch("tags: expected an array", j);
  size_t i = 0;
  for (const char *t = tags; *t; i++) {
    size_t n = strcspn(t, "\n");
    if (i >= json_array_size(j) || check_bytes(t, n, 0, json_array_get(j, i)))
      return mismatch("tags differ", j);
    t += n + (t[n] == '\n');
  }
  return i == json_array_size(j) ? 0 : mismatch("tags: too many", j);
}

static int check_line(uint64_t seed, const json_t *line, unsigned char *seen, long n) {
  if (!json_is_object(line)) return mismatch("a line that is not an object", line);
  int k = -1;
  quiet = 1;
  for (int i = 0; i < NIDS && k < 0; i++)
    if (!check_bytes(ids[i], strlen(ids[i]), 0, json_object_get(line, "id"))) k = i;
  quiet = 0;
  if (k < 0) return mismatch("an unknown id", json_object_get(line, "id"));
  json_t *seq = json_object_get(line, "seq");
  int64_t s = json_integer_value(seq);
  long index = (long)(s - 1) * NIDS + k;
  snprintf(where, sizeof where, "id %d seq %" PRId64, k, s);
  if (!json_is_integer(seq) || s < 1 || index >= n) return mismatch("a seq out of range", seq);
  if (seen[index]++) return mismatch("printed twice", line);
  fuzz_event e;
  make_event(seed, k, s, &e);
  int r = 0;
  static const char *const ints[] = {"offset", "ts", "version"};
  for (int i = 0; !r && i < 3; i++) {
    json_t *v = json_object_get(line, ints[i]);
    if (!json_is_integer(v) || json_integer_value(v) < 1) r = mismatch(ints[i], v);
  }
  if (!r) r = check_tags(e.tags, json_object_get(line, "tags"));
  json_t *manifest = json_object_get(line, "manifest");
  if (!r && e.manifest[0]) r = check_bytes(e.manifest, strlen(e.manifest), 0, manifest);
  if (!r && !e.manifest[0] && manifest) r = mismatch("a manifest where there is none", manifest);
  json_t *event = json_object_get(line, "event");
  if (!r && e.bad) {
    json_t *payload = json_object_get(line, "payload");
    if (!json_is_null(event) || !json_is_string(json_object_get(line, "undecodable")))
      r = mismatch("expected event null and a reason", line);
    if (!r) r = check_bytes(e.payload.data, e.payload.size, 1, payload);
  } else if (!r) {
    r = event ? check(&e.value, event) : mismatch("no event", line);
  }
  event_free(&e);
  return r;
}

static int cmd_check(uint64_t seed, long n) {
  unsigned char *seen = calloc((size_t)n + 1, 1);
  if (!seen) die("out of memory");
  char *text = NULL;
  size_t cap = 0;
  ssize_t len;
  long lines = 0, failed = 0;
  while ((len = getline(&text, &cap, stdin)) > 0) {
    lines++;
    json_error_t err;
    json_t *line = json_loadb(text, (size_t)len, JSON_ALLOW_NUL, &err);
    snprintf(where, sizeof where, "line %ld", lines);
    if (!line) {
      fprintf(stderr, "journal_fuzz: line %ld is not JSON: %s\n", lines, err.text);
      failed++;
      continue;
    }
    if (check_line(seed, line, seen, n)) failed++;
    json_decref(line);
  }
  free(text);
  for (long i = 0; i < n; i++)
    if (!seen[i]) {
      fprintf(stderr, "journal_fuzz: id %ld seq %ld was not printed\n", i % NIDS, i / NIDS + 1);
      failed++;
    }
  free(seen);
  printf("journal_fuzz: %ld lines, %ld events expected, %ld problems\n", lines, n, failed);
  return failed ? 1 : 0;
}

int main(int argc, char **argv) {
  if (argc == 5 && strcmp(argv[1], "write") == 0)
    return cmd_write(argv[2], strtoull(argv[3], NULL, 10), strtol(argv[4], NULL, 10));
  if (argc == 2 && strcmp(argv[1], "ids") == 0) {
    for (int i = 0; i < NIDS; i++) printf("%s\n", ids[i]);
    return 0;
  }
  if (argc == 4 && strcmp(argv[1], "check") == 0)
    return cmd_check(strtoull(argv[2], NULL, 10), strtol(argv[3], NULL, 10));
  if (argc == 7 && strcmp(argv[1], "append") == 0)
    return cmd_append(argv[2], argv[3], argv[4], strtol(argv[5], NULL, 10),
                      strtol(argv[6], NULL, 10));
  fprintf(
      stderr,
      "usage: journal_fuzz write DB SEED N | ids | check SEED N | append DB ID TAG N DELAY_MS\n");
  return 2;
}
