/* journal_cli.c: `lore journal ...`: inspect a journal from the command line. */
#include <stdio.h>

int lore_journal_command(int argc, char **argv) {
  (void)argc;
  (void)argv;
  fprintf(stderr, "lore journal: not implemented yet\n");
  return 2;
}
