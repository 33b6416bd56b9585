/* msg.c: message allocation. */
#include "msg.h"

#include <stdlib.h>
#include <string.h>

lore_msg *msg_new(uint32_t kind, const void *payload, size_t len, const char *name,
                  size_t name_len) {
  size_t extra = name ? name_len + 1 : 0;
  lore_msg *m = malloc(sizeof *m + len + extra);
  if (!m) return NULL;
  memset(m, 0, sizeof *m);
  m->kind = kind;
  m->len = len;
  if (payload && len) memcpy(m->data, payload, len);
  if (name) {
    m->name = m->data + len;
    memcpy(m->name, name, name_len);
    m->name[name_len] = '\0';
  }
  return m;
}

void msg_free(lore_msg *m) {
  if (m->free_ptr) m->free_ptr(m->ptr);
  free(m);
}
