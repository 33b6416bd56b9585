/* journal_access.c: `--db` as a URI or a plain path, and the read-only open every `lore journal`
 * command does. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "journal_cli.h"

static int has_scheme(const char *db) {
  static const char *const schemes[] = {"sqlite:", "memory:", "postgres:"};
  for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++)
    if (strncmp(db, schemes[i], strlen(schemes[i])) == 0) return 1;
  return 0;
}

char *jcli_db_uri(const char *db) {
  if (has_scheme(db)) return strdup(db);
  size_t n = strlen(db);
  char *uri = malloc(n + 8);
  if (uri) {
    memcpy(uri, "sqlite:", 7);
    memcpy(uri + 7, db, n + 1);
  }
  return uri;
}

char *jcli_sqlite_path(const char *uri) {
  if (strncmp(uri, "sqlite:", 7) != 0) return NULL;
  const char *path = uri + 7;
  return strndup(path, strcspn(path, "?"));
}

/* The journal's own log lines would repeat what the command says; LORE_LOG
 * (debug|info|warn|error) brings them back. */
static const log_sink *quiet_log(void) {
  static log_sink off = {LOG_OFF, NULL, NULL};
  return getenv("LORE_LOG") ? log_default() : &off;
}

int jcli_open(const char *cmd, const char *db, journal_t **out) {
  char *uri = jcli_db_uri(db);
  if (!uri) return cli_fail(cmd, "out of memory");
  /* read_only: no schema, no WAL switch, no writer thread; the app that owns
   * the file may keep writing it meanwhile. */
  journal_options opt = {.read_only = 1, .log = quiet_log()};
  int r = journal_open(uri, &opt, out);
  int status = CLI_OK;
  const char *name = strncmp(uri, "sqlite:", 7) == 0 ? uri + 7 : uri;
  switch (r) {
    case 0:
      break;
    case JOURNAL_ENOENT:
      status =
          strncmp(uri, "memory:", 7) == 0
              ? cli_fail(cmd, "%s: a memory journal lives only inside the process using it", uri)
              : cli_fail(cmd, "no such journal: %s", name);
      break;
    case JOURNAL_ENOTDB:
      status = cli_fail(cmd, "%s is not a Lore journal (not an SQLite database)", name);
      break;
    case JOURNAL_ENOTLORE:
      status = cli_fail(cmd,
                        "%s is not a Lore journal (no journal tables; or a journal of an older "
                        "Lore, which an app's `lore run` migrates first)",
                        name);
      break;
    case JOURNAL_EISDIR:
      status = cli_fail(cmd, "%s is a directory, not a Lore journal", name);
      break;
    case JOURNAL_EURI:
      status = cli_usage_error(cmd, "--db: not a journal URI or path: '%s'", db);
      break;
    default:
      status = cli_fail(cmd, "cannot open %s: %s", name, journal_strerror(r));
      break;
  }
  free(uri);
  return status;
}
