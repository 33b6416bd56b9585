/* codec_page.h: decoding the many events of one replay page (codec_page.c). */
#ifndef LORE_CODEC_PAGE_H
#define LORE_CODEC_PAGE_H

#include <lua.h>
#include <stddef.h>
#include <stdint.h>

#include "codec.h"

/*
 * A page's decoder keeps the string cache's strings in Lua stack slots of its own while the
 * page is decoded: pushing a slot costs a fraction of fetching the string from the cache's
 * anchor table, and a replay pushes a few cached strings (keys above all) for every event.
 * The page's slots are handed out in the order its strings first come (pos[i]: the slot,
 * plus one, of the cache's slot i; 0: none yet), up to `window` of them: a page of a few
 * events (a waking actor's) makes a few slots instead of one per cache slot, which cost
 * more to make than its events save. ptr[s] is the string in the page's slot s; it is used
 * only while it is still the cache's string for that cache slot, so whatever else decodes
 * meanwhile with the same cache can never make the page push a wrong string.
 */
typedef struct codec_page {
  codec_strings *strings; /* NULL: decoding without the cache */
  int anchor;             /* stack index of the cache's anchor table */
  int slots;              /* stack index of the first of the page's `window` slots */
  int window;             /* slots made on the stack */
  int used;               /* slots handed out so far */
  int flat_failures;      /* events the flat path gave back to codec_decode_anchored */
  uint16_t pos[CODEC_STRINGS];
  const char *ptr[CODEC_STRINGS];
  /* The slots the keys and string values of the last flat map were in, by their place in
   * it (a flat map has at most 15 entries): a guess, checked before it is used. */
  uint8_t key_hint[16], value_hint[16];
} codec_page;

/* Room codec_page_open makes above the slots, which stays for the calling C function's
 * frame: its own values around each decode (a function to call, its arguments) plus the
 * three a flat map needs (the table, a key, a value). */
#define CODEC_PAGE_ROOM 16

/* Pushes what pg keeps on the stack for the page (the cache's anchor and the slots): they
 * must stay where they are until the page's last codec_page_decode. c may be NULL (no
 * cache: nothing pushed). Returns 0, or -1 (nothing pushed) when the stack cannot grow that
 * far. */
int codec_page_open(lua_State *L, codec_page *pg, codec_strings *c);

/* codec_page_open for a page of `events` events: a short page gets fewer slots (what it
 * pushes is the same; strings past its slots come from the cache's anchor table). */
int codec_page_open_for(lua_State *L, codec_page *pg, codec_strings *c, int64_t events);

/* Decodes data[0..len) and pushes it, exactly as codec_decode_anchored would with the same
 * cache: the same value, table sizes, cached strings and errors. Returns 0, or -1 with a
 * message in err and nothing pushed. */
int codec_page_decode(lua_State *L, codec_page *pg, const char *data, size_t len, char *err,
                      size_t errlen);

#endif
