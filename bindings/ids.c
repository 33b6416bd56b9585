/* ids.c: what a persistence id may be. */
#include "ids.h"

#include <string.h>

#include "ref.h"

/* An id names a stream for good, so one that is easy to get wrong by
 * accident is refused: empty, blank, or cut short by a NUL byte (two ids
 * would share a stream). */
const char *id_problem(const char *s, size_t len) {
  if (len == 0) return "must not be empty";
  if (len >= REF_SERIALIZED_MAX - 1) return "must be shorter than 4094 bytes";
  if (memchr(s, '\0', len)) return "must not contain a NUL byte";
  size_t blank = 0;
  while (blank < len && (s[blank] == ' ' || (s[blank] >= '\t' && s[blank] <= '\r'))) blank++;
  if (blank == len) return "must not be blank";
  return NULL;
}
