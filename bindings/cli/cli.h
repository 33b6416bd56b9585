/* cli.h: what the files of the `lore` command share: its commands and option-parsing helpers. */
#ifndef LORE_CLI_H
#define LORE_CLI_H

#include <stdint.h>

/* Exit statuses (docs/cli.md): success, a runtime error, bad usage. */
enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

/* The commands. argv[0] is the command's own name ("run", "journal", ...),
 * the options and operands follow; each returns an exit status. */
int cli_run(int argc, char **argv);     /* main.c */
int cli_test(int argc, char **argv);    /* test_cli.c */
int cli_journal(int argc, char **argv); /* journal_cli.c */

/* Prepares getopt_long for a fresh argument vector and silences its own
 * messages (cli_option_error words them). */
void cli_getopt_reset(void);

/* Prints "CMD: message" and a pointer to CMD's --help on stderr; returns CLI_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* After getopt_long returned '?' or ':' for argv: names the bad argument.
 * Returns CLI_USAGE. (The option strings start with ':' so that a missing
 * value is ':', told apart from an unknown option.) */
int cli_option_error(const char *cmd, int c, char *const *argv);

/* Parses the value of option `opt` as a whole number >= min into *out;
 * returns 0, or CLI_USAGE after saying what is wrong with it. */
int cli_parse_int64(const char *cmd, const char *opt, const char *text, int64_t min, int64_t *out);

/* Prints "CMD: message" on stderr; returns CLI_FAIL. */
int cli_fail(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Flushes stdout; CLI_FAIL (with a message) if anything written to it was
 * lost (a full disk, a closed pipe), else `status`. */
int cli_finish_output(const char *cmd, int status);

#endif
