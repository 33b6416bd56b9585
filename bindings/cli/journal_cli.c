/* journal_cli.c: `lore journal ls|events|stats` and the dispatch to snapshots and tail. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "journal_cli.h"
#include "msgpack_json.h"

static const char journal_usage[] =
    "usage: lore journal ls        [--db URI] [--json]\n"
    "       lore journal events    [--db URI] ID [--from N] [--to N] [--json]\n"
    "       lore journal stats     [--db URI] [--json]\n"
    "       lore journal snapshots [--db URI] ID [--snapshots URI] [--json]\n"
    "       lore journal tail      [--db URI] [--tag T] [--from OFFSET] [--json]\n"
    "\n"
    "Reads a journal without ever changing it (also while an app writes it).\n"
    "--db is a URI (sqlite:PATH, postgres:CONNINFO) or a plain path to an SQLite\n"
    "file; the default is sqlite:lore.db. --json prints one JSON object per line.\n"
    "'lore journal COMMAND --help' tells more.\n";

enum { OPT_FROM = 256, OPT_TO };

static int ls_help(void) {
  printf(
      "usage: lore journal ls [--db URI] [--json]\n"
      "\n"
      "Lists every persistence id the journal has seen, sorted, with its highest\n"
      "sequence number (kept after its events are deleted).\n"
      "  --db URI   the journal (default sqlite:lore.db; a plain path means an SQLite file)\n"
      "  --json     one {\"id\": ..., \"highest_seq\": N} per line\n");
  return CLI_OK;
}

static int events_help(void) {
  printf(
      "usage: lore journal events [--db URI] ID [--from N] [--to N] [--json]\n"
      "\n"
      "Prints the events of one persistence id in sequence order: seq, time (UTC),\n"
      "type, adapter version, tags and the event.\n"
      "  --db URI   the journal (default sqlite:lore.db; a plain path means an SQLite file)\n"
      "  --from N   first sequence number (default 1)\n"
      "  --to N     last sequence number (default: the highest)\n"
      "  --json     one JSON object per event: id, seq, offset, ts, version, tags,\n"
      "             manifest (if any), event (see docs/cli.md for the value rules)\n"
      "An id the journal has never seen is an error (exit status 1).\n");
  return CLI_OK;
}

static int stats_help(void) {
  printf(
      "usage: lore journal stats [--db URI] [--json]\n"
      "\n"
      "Counts ids and stored events, the database's size, the oldest and newest\n"
      "event times and the highest offset, all by the database's own aggregates.\n"
      "  --db URI   the journal (default sqlite:lore.db; a plain path means an SQLite file)\n"
      "  --json     one object: ids, events, bytes, oldest_ts, newest_ts, max_offset\n");
  return CLI_OK;
}

int jcli_parse(const char *cmd, int argc, char **argv, const struct option *extra, size_t nextra,
               jcli_option_fn on_extra, void *ud, int (*help)(void), jcli_common *co, int *first) {
  struct option opts[16] = {{"db", required_argument, NULL, 'd'},
                            {"json", no_argument, NULL, 'j'},
                            {"help", no_argument, NULL, 'h'}};
  size_t n = 3;
  for (size_t i = 0; i < nextra && n < 15; i++) opts[n++] = extra[i];
  opts[n] = (struct option){NULL, 0, NULL, 0};
  co->db = JCLI_DEFAULT_DB;
  co->json = 0;
  cli_getopt_reset();
  int c;
  while ((c = getopt_long(argc, argv, ":d:jh", opts, NULL)) != -1) {
    switch (c) {
      case 'd':
        if (!*optarg) return cli_usage_error(cmd, "--db needs a URI or a path");
        co->db = optarg;
        break;
      case 'j':
        co->json = 1;
        break;
      case 'h':
        return help();
      case '?':
      case ':':
        return cli_option_error(cmd, c, argv);
      default: {
        int r = on_extra ? on_extra(c, optarg, ud) : -1;
        if (r >= 0) return r;
      }
    }
  }
  *first = optind;
  return -1;
}

int jcli_no_operands(const char *cmd, int argc, char **argv, int first) {
  if (first < argc) return cli_usage_error(cmd, "unexpected argument '%s'", argv[first]);
  return -1;
}

/* ---- ls ---- */

typedef struct ls_state {
  int json, failed;
} ls_state;

static void print_id(const char *id, int64_t highest, void *ud) {
  ls_state *st = ud;
  if (st->failed) return;
  if (!st->json) {
    if (printf("%-40s %" PRId64 "\n", id, highest) < 0) st->failed = 1;
    return;
  }
  json_t *o =
      json_pack("{s:o,s:I}", "id", mpj_bytes(id, strlen(id)), "highest_seq", (json_int_t)highest);
  if (!o || mpj_print_line(stdout, o, 17)) st->failed = 1;
  json_decref(o);
}

static int ls_command(int argc, char **argv) {
  const char *cmd = "lore journal ls";
  jcli_common co;
  int first = 0, r = jcli_parse(cmd, argc, argv, NULL, 0, NULL, NULL, ls_help, &co, &first);
  if (r >= 0 || (r = jcli_no_operands(cmd, argc, argv, first)) >= 0) return r;
  journal_t *j;
  if ((r = jcli_open(cmd, co.db, &j))) return r;
  ls_state st = {co.json, 0};
  int err = journal_list_ids(j, print_id, &st);
  journal_close(j);
  if (err) return cli_fail(cmd, "%s", journal_strerror(err));
  return cli_finish_output(cmd, st.failed ? CLI_FAIL : CLI_OK);
}

/* ---- events ---- */

typedef struct range {
  const char *cmd;
  int64_t from, to;
  int to_given;
} range;

static int events_option(int c, const char *arg, void *ud) {
  range *rg = ud;
  if (c == OPT_FROM && cli_parse_int64(rg->cmd, "--from", arg, 0, &rg->from)) return CLI_USAGE;
  if (c == OPT_TO && cli_parse_int64(rg->cmd, "--to", arg, 0, &rg->to)) return CLI_USAGE;
  if (c == OPT_TO) rg->to_given = 1;
  return -1;
}

typedef struct printing {
  int json, failed;
  int64_t last_seq;
} printing;

static int print_one(const journal_event *ev, void *ud) {
  printing *p = ud;
  if (jcli_print_event(ev, p->json, 0)) {
    p->failed = 1;
    return 1;
  }
  p->last_seq = ev->seq;
  return 0;
}

static int events_command(int argc, char **argv) {
  const char *cmd = "lore journal events";
  static const struct option extra[] = {{"from", required_argument, NULL, OPT_FROM},
                                        {"to", required_argument, NULL, OPT_TO}};
  range rg = {cmd, 1, INT64_MAX, 0};
  jcli_common co;
  int first = 0,
      r = jcli_parse(cmd, argc, argv, extra, 2, events_option, &rg, events_help, &co, &first);
  if (r >= 0) return r;
  if (first >= argc) return cli_usage_error(cmd, "missing the persistence ID");
  if (first + 1 < argc) return cli_usage_error(cmd, "unexpected argument '%s'", argv[first + 1]);
  if (rg.to_given && rg.to < rg.from)
    return cli_usage_error(cmd, "--to %" PRId64 " is below --from %" PRId64, rg.to, rg.from);
  const char *id = argv[first];
  journal_t *j;
  if ((r = jcli_open(cmd, co.db, &j))) return r;
  journal_bounds b = {0, 0};
  int err = journal_bounds_of(j, id, &b);
  if (!err && b.highest == 0) {
    journal_close(j);
    return cli_fail(cmd, "no such id in %s: '%s' (`lore journal ls` lists them)", co.db, id);
  }
  printing p = {co.json, 0, 0};
  if (!err) err = journal_replay(j, id, rg.from, rg.to, -1, print_one, &p);
  journal_close(j);
  if (err == JOURNAL_ECORRUPT)
    return cli_fail(cmd, "'%s': the event after seq %" PRId64 " fails its checksum", id,
                    p.last_seq);
  if (err) return cli_fail(cmd, "'%s': %s", id, journal_strerror(err));
  return cli_finish_output(cmd, p.failed ? CLI_FAIL : CLI_OK);
}

/* ---- stats ---- */

static int stats_command(int argc, char **argv) {
  const char *cmd = "lore journal stats";
  jcli_common co;
  int first = 0, r = jcli_parse(cmd, argc, argv, NULL, 0, NULL, NULL, stats_help, &co, &first);
  if (r >= 0 || (r = jcli_no_operands(cmd, argc, argv, first)) >= 0) return r;
  journal_t *j;
  if ((r = jcli_open(cmd, co.db, &j))) return r;
  journal_stats_t s;
  int err = journal_stats_of(j, &s);
  journal_close(j);
  if (err) return cli_fail(cmd, "%s", journal_strerror(err));
  if (co.json) {
    json_t *o = json_pack(
        "{s:I,s:I,s:o,s:o,s:o,s:I}", "ids", (json_int_t)s.ids, "events", (json_int_t)s.events,
        "bytes", s.bytes >= 0 ? json_integer(s.bytes) : json_null(), "oldest_ts",
        s.events ? json_integer(s.oldest_ms) : json_null(), "newest_ts",
        s.events ? json_integer(s.newest_ms) : json_null(), "max_offset", (json_int_t)s.max_offset);
    int failed = !o || mpj_print_line(stdout, o, 17);
    json_decref(o);
    return cli_finish_output(cmd, failed ? CLI_FAIL : CLI_OK);
  }
  char oldest[48], newest[48], size[32] = "-";
  jcli_format_time(s.events ? s.oldest_ms : 0, oldest, sizeof oldest);
  jcli_format_time(s.events ? s.newest_ms : 0, newest, sizeof newest);
  if (s.bytes >= 0) snprintf(size, sizeof size, "%" PRId64 " bytes", s.bytes);
  printf("ids         %" PRId64 "\nevents      %" PRId64
         "\nsize        %s\noldest      %s\nnewest      %s\nmax offset  %" PRId64 "\n",
         s.ids, s.events, size, oldest, newest, s.max_offset);
  return cli_finish_output(cmd, CLI_OK);
}

/* ---- lore journal ---- */

int cli_journal(int argc, char **argv) {
  static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
  cli_getopt_reset();
  int c;
  while ((c = getopt_long(argc, argv, "+:h", opts, NULL)) != -1) {
    if (c != 'h') return cli_option_error("lore journal", c, argv);
    fputs(journal_usage, stdout);
    return cli_finish_output("lore journal", CLI_OK);
  }
  if (optind >= argc)
    return cli_usage_error("lore journal",
                           "missing what to do: ls, events, stats, snapshots or tail");
  static const struct {
    const char *name;
    int (*run)(int, char **);
  } subs[] = {{"ls", ls_command},
              {"events", events_command},
              {"stats", stats_command},
              {"snapshots", cli_journal_snapshots},
              {"tail", cli_journal_tail}};
  const char *sub = argv[optind];
  for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++)
    if (strcmp(subs[i].name, sub) == 0) return subs[i].run(argc - optind, argv + optind);
  return cli_usage_error("lore journal",
                         "unknown command '%s' (ls, events, stats, snapshots, tail)", sub);
}
