/* journal_uri.c: the "PATH?name=value&..." parameters of journal URIs. */
#include "journal_uri.h"

#include <stdlib.h>
#include <string.h>

int journal_uri_params(const char *path, char **base,
                       int (*fn)(const char *name, const char *value, void *ud), void *ud) {
  const char *q = strchr(path, '?');
  size_t len = q ? (size_t)(q - path) : strlen(path);
  *base = strndup(path, len);
  if (!*base) return JOURNAL_ENOMEM;
  if (!q) return 0;
  char *params = strdup(q + 1);
  if (!params) {
    free(*base);
    *base = NULL;
    return JOURNAL_ENOMEM;
  }
  int rc = 0;
  char *save = NULL;
  /* "a.db?" and "a.db?x=1&" are allowed: empty pieces are skipped. */
  for (char *p = strtok_r(params, "&", &save); p && rc == 0; p = strtok_r(NULL, "&", &save)) {
    char *eq = strchr(p, '=');
    if (!eq || eq == p) {
      rc = JOURNAL_EURI;
      break;
    }
    *eq = '\0';
    rc = fn(p, eq + 1, ud);
  }
  free(params);
  if (rc < 0) {
    free(*base);
    *base = NULL;
  }
  return rc;
}

int journal_uri_common_param(const char *name, const char *value, journal_options *opt) {
  if (strcmp(name, "mode") != 0) return 0;
  if (strcmp(value, "ro") == 0)
    opt->read_only = 1;
  else if (strcmp(value, "rw") == 0)
    opt->read_only = 0;
  else
    return JOURNAL_EURI;
  return 1;
}
