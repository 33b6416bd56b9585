/* query_page.c: pages of journal events for queries and projections, and their Lua form. */
#include "query_page.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "lua_actor.h" /* manifest_is_internal */

void qpage_init(qpage *p) { memset(p, 0, sizeof *p); }

void qpage_free(qpage *p) {
  free(p->buf);
  free(p->last_id);
  qpage_init(p);
}

static void put(qpage *p, const void *data, size_t n) {
  if (p->oom || n == 0) return;
  if (p->len + n > p->cap) {
    size_t cap = p->cap ? p->cap * 2 : 16384;
    while (cap < p->len + n) cap *= 2;
    char *b = realloc(p->buf, cap);
    if (!b) {
      p->oom = 1;
      return;
    }
    p->buf = b;
    p->cap = cap;
  }
  memcpy(p->buf + p->len, data, n);
  p->len += n;
}

static void remember_id(qpage *p, const char *id) {
  size_t n = strlen(id);
  char *copy = realloc(p->last_id, n + 1);
  if (!copy) {
    p->oom = 1;
    return;
  }
  memcpy(copy, id, n + 1);
  p->last_id = copy;
}

void qpage_add(qpage *p, const journal_event *ev, const char *id) {
  if (!id) id = ev->id ? ev->id : "";
  const char *manifest = ev->manifest ? ev->manifest : "";
  const char *tags = ev->tags ? ev->tags : "";
  qrec h = {ev->seq,
            ev->timestamp_ms,
            ev->offset,
            ev->version,
            (uint32_t)strlen(id),
            (uint32_t)strlen(manifest),
            (uint32_t)strlen(tags),
            (uint32_t)ev->payload_len};
  put(p, &h, sizeof h);
  put(p, id, h.id_len);
  put(p, manifest, h.manifest_len);
  put(p, tags, h.tags_len);
  put(p, ev->payload, h.payload_len);
  p->kept++;
}

void qpage_add_id(qpage *p, const char *id, int64_t highest) {
  qrec h = {.seq = highest, .id_len = (uint32_t)strlen(id)};
  put(p, &h, sizeof h);
  put(p, id, h.id_len);
  p->kept++;
  remember_id(p, id);
}

int qpage_full(const qpage *p) { return p->oom || p->len >= QPAGE_BYTES; }

int qpage_next(const char *buf, size_t len, size_t *off, qrec_view *out) {
  if (*off >= len) return 0;
  qrec h;
  if (len - *off < sizeof h) return -1;
  memcpy(&h, buf + *off, sizeof h);
  size_t body = (size_t)h.id_len + h.manifest_len + h.tags_len + h.payload_len;
  if (len - *off - sizeof h < body) return -1;
  const char *p = buf + *off + sizeof h;
  out->seq = h.seq;
  out->ts = h.ts;
  out->offset = h.offset;
  out->version = h.version;
  out->id = p;
  out->id_len = h.id_len;
  out->manifest = p + h.id_len;
  out->manifest_len = h.manifest_len;
  out->tags = out->manifest + h.manifest_len;
  out->tags_len = h.tags_len;
  out->payload = out->tags + h.tags_len;
  out->payload_len = h.payload_len;
  *off += sizeof h + body;
  return 1;
}

int qpage_internal(const char *manifest, size_t len) { return manifest_is_internal(manifest, len); }

/* tags: '\n'-joined (no tag is empty) -> a list */
static void push_tags(lua_State *L, const char *tags, size_t len) {
  lua_newtable(L);
  lua_Integer n = 0;
  size_t start = 0;
  for (size_t i = 0; i <= len; i++) {
    if (i == len || tags[i] == '\n') {
      if (i > start) {
        lua_pushlstring(L, tags + start, i - start);
        lua_rawseti(L, -2, ++n);
      }
      start = i + 1;
    }
  }
}

static void set_int(lua_State *L, const char *k, int64_t v) {
  lua_pushinteger(L, (lua_Integer)v);
  lua_setfield(L, -2, k);
}

void qpage_push_meta(lua_State *L, const qrec_view *r) {
  lua_createtable(L, 0, 7);
  set_int(L, "seq", r->seq);
  set_int(L, "ts", r->ts);
  set_int(L, "offset", r->offset);
  set_int(L, "version", r->version);
  lua_pushlstring(L, r->id, r->id_len);
  lua_setfield(L, -2, "id");
  lua_pushlstring(L, r->manifest, r->manifest_len);
  lua_setfield(L, -2, "manifest");
  push_tags(L, r->tags, r->tags_len);
  lua_setfield(L, -2, "tags");
}

int qpage_push_items(lua_State *L, const char *buf, size_t len, char *err, size_t errlen) {
  lua_checkstack(L, 8);
  int top = lua_gettop(L);
  lua_newtable(L);
  size_t off = 0;
  qrec_view r;
  lua_Integer n = 0;
  int got;
  while ((got = qpage_next(buf, len, &off, &r)) == 1) {
    lua_createtable(L, 2, 0);
    if (codec_decode(L, r.payload, r.payload_len, err, errlen)) {
      char why[CODEC_ERR_MAX];
      snprintf(why, sizeof why, "%s", err);
      snprintf(err, errlen, "event %.*s seq %lld does not decode: %s", (int)r.id_len, r.id,
               (long long)r.seq, why);
      lua_settop(L, top);
      return -1;
    }
    lua_rawseti(L, -2, 1);
    qpage_push_meta(L, &r);
    lua_rawseti(L, -2, 2);
    lua_rawseti(L, -2, ++n);
  }
  if (got < 0) {
    snprintf(err, errlen, "a query page is truncated");
    lua_settop(L, top);
    return -1;
  }
  return 0;
}

void qpage_push_ids(lua_State *L, const char *buf, size_t len) {
  lua_newtable(L);
  size_t off = 0;
  qrec_view r;
  lua_Integer n = 0;
  while (qpage_next(buf, len, &off, &r) == 1) {
    lua_createtable(L, 2, 0);
    lua_pushlstring(L, r.id, r.id_len);
    lua_rawseti(L, -2, 1);
    lua_pushinteger(L, (lua_Integer)r.seq);
    lua_rawseti(L, -2, 2);
    lua_rawseti(L, -2, ++n);
  }
}
