/* journal_cli.h: what the `lore journal` subcommands share: opening the journal, printing events.
 */
#ifndef LORE_JOURNAL_CLI_H
#define LORE_JOURNAL_CLI_H

#include <getopt.h>
#include <stdio.h>

#include "journal.h"

#define JCLI_DEFAULT_DB "sqlite:lore.db"

/* The URI `--db` means: a URI as it is ("sqlite:", "memory:", "postgres:"),
 * anything else a path to an SQLite file ("sqlite:" + it). Malloc'd; NULL
 * when out of memory. */
char *jcli_db_uri(const char *db);

/* The file behind an "sqlite:PATH[?params]" URI (malloc'd), or NULL for
 * another scheme (or out of memory). */
char *jcli_sqlite_path(const char *uri);

/* The options every `lore journal` subcommand knows: --db, --json, --help. */
typedef struct jcli_common {
  const char *db;
  int json;
} jcli_common;

/* Takes one of a subcommand's own options: returns -1 to go on, or an exit
 * status to stop with (after a message). */
typedef int (*jcli_option_fn)(int c, const char *arg, void *ud);

/* Parses argv (argv[0] the subcommand) with the common options plus `extra`
 * ones (given to on_extra). Returns -1 to go on, or an exit status (help was
 * printed, or a usage error). *first gets the index of the first operand. */
int jcli_parse(const char *cmd, int argc, char **argv, const struct option *extra, size_t nextra,
               jcli_option_fn on_extra, void *ud, int (*help)(void), jcli_common *co, int *first);

/* -1 when argv has no operand from `first` on, else CLI_USAGE (after saying so). */
int jcli_no_operands(const char *cmd, int argc, char **argv, int first);

/* Opens the journal `db` (as given to --db) read-only: the file is never
 * changed, and a file that is not a Lore journal is refused. Returns CLI_OK,
 * or CLI_FAIL / CLI_USAGE after a message naming `cmd` and the database. */
int jcli_open(const char *cmd, const char *db, journal_t **out);

/* Prints one event: a JSON line (docs/cli.md) or a line of text;
 * `with_id` adds its persistence id and offset to the text form (tail).
 * Returns 0, or -1 when stdout failed. */
int jcli_print_event(const journal_event *ev, int json, int with_id);

/* Writes an ISO-8601 UTC time with milliseconds ("-" for 0) into buf. */
void jcli_format_time(int64_t ms, char *buf, size_t cap);

int cli_journal_snapshots(int argc, char **argv); /* journal_snapshots.c */
int cli_journal_tail(int argc, char **argv);      /* journal_tail.c */

#endif
