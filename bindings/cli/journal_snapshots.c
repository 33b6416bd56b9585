/* journal_snapshots.c: `lore journal snapshots ID`: one id's snapshots (seq, time, size). */
#include <getopt.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "journal_cli.h"
#include "msgpack_json.h"
#include "snapshot_store.h"

#define CMD "lore journal snapshots"
#define PAGE 256

enum { OPT_SNAPSHOTS = 256 };

static int help(void) {
  printf(
      "usage: lore journal snapshots [--db URI] ID [--snapshots URI] [--json]\n"
      "\n"
      "Lists the snapshots of one persistence id, oldest first: the sequence number\n"
      "each covers, when it was taken (UTC) and its size; a snapshot that fails its\n"
      "checksum is marked corrupt.\n"
      "  --db URI          the journal (default sqlite:lore.db; a plain path means an\n"
      "                    SQLite file); it tells an unknown id from one without snapshots\n"
      "  --snapshots URI   the snapshot store: sqlite:PATH, dir:PATH, postgres:...,\n"
      "                    or a plain path to an SQLite file (default: the --db database)\n"
      "  --json            one {\"seq\", \"ts\", \"size\"} object per line (\"corrupt\": true\n"
      "                    and \"size\": null for a damaged one)\n");
  return CLI_OK;
}

static int take_option(int c, const char *arg, void *ud) {
  if (c == OPT_SNAPSHOTS) {
    if (!*arg) return cli_usage_error(CMD, "--snapshots needs a URI or a path");
    *(const char **)ud = arg;
  }
  return -1;
}

/* The store's URI: --snapshots as given (a plain path is an SQLite file), or
 * the journal's database, as the runtime defaults it. Malloc'd. */
static char *store_uri(const char *given, const char *db) {
  if (given) {
    if (strncmp(given, "dir:", 4) == 0) return strdup(given);
    return jcli_db_uri(given);
  }
  char *uri = jcli_db_uri(db);
  if (uri && strncmp(uri, "sqlite:", 7) == 0) uri[strcspn(uri, "?")] = '\0'; /* journal params */
  return uri;
}

/* Opening a store may create it (a file, a directory, a table): make sure
 * there is one already, so that this command never changes anything. */
static int check_exists(const char *uri) {
  struct stat st;
  if (strncmp(uri, "memory:", 7) == 0)
    return cli_fail(CMD, "%s: a memory store lives only inside the process using it", uri);
  if (strncmp(uri, "dir:", 4) == 0) {
    if (stat(uri + 4, &st) != 0 || !S_ISDIR(st.st_mode))
      return cli_fail(CMD, "no such snapshot directory: %s", uri + 4);
    return CLI_OK;
  }
  if (strncmp(uri, "sqlite:", 7) != 0) return CLI_OK;
  const char *path = uri + 7;
  if (stat(path, &st) != 0) return cli_fail(CMD, "no such snapshot store: %s", path);
  if (S_ISDIR(st.st_mode)) return cli_fail(CMD, "%s is a directory, not a snapshot store", path);
  sqlite3 *db = NULL;
  int found = 0;
  int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL);
  sqlite3_stmt *st_found = NULL;
  if (rc == SQLITE_OK)
    rc = sqlite3_prepare_v2(
        db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'snapshots'", -1,
        &st_found, NULL);
  if (rc == SQLITE_OK) found = sqlite3_step(st_found) == SQLITE_ROW;
  sqlite3_finalize(st_found);
  sqlite3_close(db);
  if (!found) return cli_fail(CMD, "%s is not a Lore snapshot store", path);
  return CLI_OK;
}

/* When the store has no snapshot of id: is that because the journal never
 * heard of it? Only a journal that opens can say so. */
static int unknown_id(const char *db, const char *id) {
  char *uri = jcli_db_uri(db);
  journal_options opt = {.read_only = 1, .log = &(log_sink){LOG_OFF, NULL, NULL}};
  journal_t *j = NULL;
  int unknown = 0;
  if (uri && journal_open(uri, &opt, &j) == 0) {
    journal_bounds b = {0, 0};
    unknown = journal_bounds_of(j, id, &b) == 0 && b.highest == 0;
    journal_close(j);
  }
  free(uri);
  return unknown;
}

static int print_snapshot(const snapshot_meta *m, int64_t size, int json) {
  if (json) {
    json_t *o =
        json_pack("{s:I,s:I,s:o}", "seq", (json_int_t)m->seq, "ts", (json_int_t)m->timestamp_ms,
                  "size", size >= 0 ? json_integer(size) : json_null());
    if (o && size < 0) json_object_set_new(o, "corrupt", json_true());
    int r = !o || mpj_print_line(stdout, o, 17) ? -1 : 0;
    json_decref(o);
    return r;
  }
  char when[48];
  jcli_format_time(m->timestamp_ms, when, sizeof when);
  if (size < 0)
    return printf("%8" PRId64 "  %s  corrupt (fails its checksum)\n", m->seq, when) < 0 ? -1 : 0;
  return printf("%8" PRId64 "  %s  %" PRId64 " bytes\n", m->seq, when, size) < 0 ? -1 : 0;
}

/* Every snapshot of id, youngest first, into a growing array. */
static int list_all(snapshot_store_t *s, const char *id, snapshot_meta **out, size_t *count) {
  snapshot_criteria crit = snapshot_criteria_latest();
  *out = NULL;
  *count = 0;
  for (;;) {
    snapshot_meta *grown = realloc(*out, (*count + PAGE) * sizeof **out);
    if (!grown) return SNAPSHOT_ENOMEM;
    *out = grown;
    size_t n = 0;
    int r = snapshot_store_list(s, id, &crit, *out + *count, PAGE, &n);
    if (r) return r;
    *count += n;
    if (n < PAGE || (*out)[*count - 1].seq <= 0) return 0;
    crit.max_seq = (*out)[*count - 1].seq - 1;
  }
}

int cli_journal_snapshots(int argc, char **argv) {
  static const struct option extra[] = {{"snapshots", required_argument, NULL, OPT_SNAPSHOTS}};
  const char *given = NULL;
  jcli_common co;
  int first = 0, r = jcli_parse(CMD, argc, argv, extra, 1, take_option, &given, help, &co, &first);
  if (r >= 0) return r;
  if (first >= argc) return cli_usage_error(CMD, "missing the persistence ID");
  if (first + 1 < argc) return cli_usage_error(CMD, "unexpected argument '%s'", argv[first + 1]);
  const char *id = argv[first];
  char *uri = store_uri(given, co.db);
  if (!uri) return cli_fail(CMD, "out of memory");
  if ((r = check_exists(uri))) {
    free(uri);
    return r;
  }
  snapshot_store_t *s = NULL;
  int err = snapshot_store_open(uri, &(log_sink){LOG_OFF, NULL, NULL}, &s);
  if (err) {
    r = err == SNAPSHOT_EURI
            ? cli_usage_error(CMD, "--snapshots: not a snapshot store URI: '%s'", uri)
            : cli_fail(CMD, "cannot open %s: %s", uri, snapshot_strerror(err));
    free(uri);
    return r;
  }
  free(uri);
  snapshot_meta *metas = NULL;
  size_t count = 0;
  err = list_all(s, id, &metas, &count);
  int failed = 0;
  for (size_t i = count; !err && !failed && i-- > 0;) { /* oldest first */
    snapshot_criteria exact = {
        .min_seq = metas[i].seq, .max_seq = metas[i].seq, .min_ts = 0, .max_ts = INT64_MAX};
    void *data = NULL;
    size_t len = 0;
    int lr = snapshot_store_load(s, id, &exact, 0, NULL, &data, &len);
    free(data);
    if (lr == SNAPSHOT_ENOTFOUND) continue; /* deleted since the listing (the app runs) */
    if (lr && lr != SNAPSHOT_ECORRUPT) {
      err = lr;
      break;
    }
    failed = print_snapshot(&metas[i], lr ? -1 : (int64_t)len, co.json) != 0;
  }
  free(metas);
  snapshot_store_close(s);
  if (err) return cli_fail(CMD, "'%s': %s", id, snapshot_strerror(err));
  if (count == 0 && unknown_id(co.db, id))
    return cli_fail(CMD, "no such id in %s: '%s' (`lore journal ls` lists them)", co.db, id);
  return cli_finish_output(CMD, failed ? CLI_FAIL : CLI_OK);
}
