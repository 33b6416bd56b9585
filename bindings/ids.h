/* ids.h: what a persistence id may be. */
#ifndef LORE_IDS_H
#define LORE_IDS_H

#include <stddef.h>

/* Why s[0..len) cannot be a persistence id (NULL if it can): empty, blank,
 * a NUL byte, or too long. */
const char *id_problem(const char *s, size_t len);

#endif
