/* query_page.h: a page of journal events read for a query or a projection, and its Lua form. */
#ifndef LORE_QUERY_PAGE_H
#define LORE_QUERY_PAGE_H

#include <lua.h>
#include <stddef.h>
#include <stdint.h>

#include "journal.h"

/*
 * A page is one allocation: records, each a qrec header followed by the
 * id, manifest, tags and payload bytes. It is filled on libuv's thread pool
 * (no Lua there), then read on the host loop, or on a worker that passes
 * its events through from_journal adapters. The bounds keep a reader's
 * memory to one page whatever the size of the journal.
 */
#define QPAGE_EVENTS 1000
#define QPAGE_BYTES ((size_t)1 << 20)

typedef struct qrec {
  int64_t seq, ts, offset;
  int32_t version;
  uint32_t id_len, manifest_len, tags_len, payload_len;
} qrec;

typedef struct qpage {
  char *buf;
  size_t len, cap;
  int oom;
  int64_t kept;        /* records in buf */
  int64_t read;        /* events read, kept or skipped */
  int64_t last_seq;    /* of the last event read */
  int64_t last_offset; /* of the last event read */
  char *last_id;       /* of the last event read or id listed (malloc'd) */
} qpage;

/* One record as read back; the pointers point into the page. */
typedef struct qrec_view {
  int64_t seq, ts, offset;
  int32_t version;
  const char *id, *manifest, *tags;
  size_t id_len, manifest_len, tags_len;
  const char *payload;
  size_t payload_len;
} qrec_view;

void qpage_init(qpage *p);
void qpage_free(qpage *p);
/* Appends an event (id may be NULL: ev->id). Sets oom on failure. */
void qpage_add(qpage *p, const journal_event *ev, const char *id);
/* Appends a listed id (seq carries its highest seq). */
void qpage_add_id(qpage *p, const char *id, int64_t highest);
/* Whether a page holds what a reader may stop at: past QPAGE_BYTES. */
int qpage_full(const qpage *p);

/* Reads the record at *off of buf[0..len) and moves *off past it: 1, or 0
 * at the end, or -1 when the bytes are truncated. */
int qpage_next(const char *buf, size_t len, size_t *off, qrec_view *out);

/* Whether a manifest names an event the runtime keeps for itself (durable
 * timers, deliveries): "lore.". Queries hide them unless asked. */
int qpage_internal(const char *manifest, size_t len);

/* Pushes the meta table of a record: { seq, ts, id, version, tags = {...},
 * offset, manifest }. */
void qpage_push_meta(lua_State *L, const qrec_view *r);
/* Pushes { {evt, meta}, ... } for every record of the page (payloads
 * decoded). Returns 0, or -1 with a message in err and nothing pushed. */
int qpage_push_items(lua_State *L, const char *buf, size_t len, char *err, size_t errlen);
/* Pushes { {id, highest}, ... } for a page of listed ids. */
void qpage_push_ids(lua_State *L, const char *buf, size_t len);

#endif
