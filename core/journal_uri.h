/* journal_uri.h: the "PATH?name=value&..." parameters of journal URIs, for backends. */
#ifndef LORE_JOURNAL_URI_H
#define LORE_JOURNAL_URI_H

#include "journal.h"

/*
 * Splits `path` at its first '?': *base gets a malloc'd copy of what comes
 * before it (the caller frees it), and fn(name, value, ud) runs for each
 * "name=value" after it, in order, with NUL-terminated copies that live only
 * during the call. fn returns 0 or a negative code, which stops the walk and
 * is returned (JOURNAL_EURI for an unknown name or a bad value). A parameter
 * without '=' or with an empty name is JOURNAL_EURI. No percent-decoding:
 * names and values are plain words and numbers.
 */
int journal_uri_params(const char *path, char **base,
                       int (*fn)(const char *name, const char *value, void *ud), void *ud);

/* The parameters every backend accepts: "mode=ro|rw". Returns 1 if `name`
 * was one (applied to opt), 0 if not, JOURNAL_EURI for a bad value. */
int journal_uri_common_param(const char *name, const char *value, journal_options *opt);

#endif
