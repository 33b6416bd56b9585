/* journal_tail.c: `lore journal tail`: prints events as they are committed, by any process, until a
 * signal. */
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "cli.h"
#include "journal_cli.h"

#define CMD "lore journal tail"
#define PAGE 512
/* After a change to the database's files, a commit may become visible only a
 * little later (SQLite writes the WAL, syncs it, and only then publishes the
 * commit in shared memory, which no file watch sees): look again after these
 * delays, each FACTOR times the last, up to SETTLE_LAST_MS. */
#define SETTLE_FIRST_MS 10
#define SETTLE_FACTOR 4
#define SETTLE_LAST_MS 2560
/* A look every HEARTBEAT_MS whatever happens: a file system without change
 * notification (some network ones) or a sync slower than the settle delays
 * still gets its events shown within this time. */
#define HEARTBEAT_MS 1000

enum { OPT_TAG = 256, OPT_FROM };

typedef struct tail {
  uv_loop_t loop;
  uv_signal_t sigint, sigterm;
  uv_fs_event_t watch;
  uv_timer_t settle, heartbeat;
  uv_async_t wake;
  int watching; /* the fs event handle was started */
  journal_t *j;
  journal_sub *sub;
  const char *tag;
  int json;
  int64_t after; /* events with an offset above it are still to print */
  char *dir, *base;
  uint64_t settle_ms;
  int status;
} tail;

typedef struct options {
  const char *tag;
  int64_t from;
  int from_given;
} options;

static int help(void) {
  printf(
      "usage: lore journal tail [--db URI] [--tag T] [--from OFFSET] [--json]\n"
      "\n"
      "Prints events as they are committed, by this or any other process, in offset\n"
      "order (the journal-wide order of commits), until SIGINT or SIGTERM (exit 0).\n"
      "  --db URI       the journal (default sqlite:lore.db; a plain path means an SQLite file)\n"
      "  --tag T        only the events tagged T\n"
      "  --from OFFSET  start at this offset (1 = the first event); by default only events\n"
      "                 committed after the start are printed\n"
      "  --json         one JSON object per event (as `lore journal events --json`)\n"
      "Text lines: offset, id, seq, time (UTC), type, version, tags, event.\n");
  return CLI_OK;
}

static int take_option(int c, const char *arg, void *ud) {
  options *o = ud;
  if (c == OPT_TAG) {
    if (!*arg || strchr(arg, '\n')) return cli_usage_error(CMD, "--tag needs a tag (no newline)");
    o->tag = arg;
  } else if (c == OPT_FROM) {
    if (cli_parse_int64(CMD, "--from", arg, 0, &o->from)) return CLI_USAGE;
    o->from_given = 1;
  }
  return -1;
}

static int print_one(const journal_event *ev, void *ud) {
  tail *t = ud;
  if (jcli_print_event(ev, t->json, 1)) {
    t->status = cli_fail(CMD, "cannot write the output");
    return 1;
  }
  if (ev->offset > t->after) t->after = ev->offset;
  return 0;
}

typedef struct counting {
  tail *t;
  int64_t n;
} counting;

static int count_one(const journal_event *ev, void *ud) {
  counting *c = ud;
  c->n++;
  return print_one(ev, c->t);
}

/* Prints every committed event above t->after (page by page). */
static void catch_up(tail *t) {
  if (t->status != CLI_OK) return;
  counting c = {t, PAGE};
  while (c.n == PAGE && t->status == CLI_OK) {
    c.n = 0;
    int err = t->tag ? journal_replay_tag(t->j, t->tag, t->after, PAGE, count_one, &c)
                     : journal_replay_all(t->j, t->after, PAGE, count_one, &c);
    if (err && t->status == CLI_OK)
      t->status =
          cli_fail(CMD, "reading after offset %" PRId64 ": %s", t->after, journal_strerror(err));
  }
  if (t->status == CLI_OK && fflush(stdout) != 0)
    t->status = cli_fail(CMD, "cannot write the output");
  if (t->status != CLI_OK) uv_stop(&t->loop);
}

static void on_settle(uv_timer_t *timer) {
  tail *t = timer->data;
  catch_up(t);
  t->settle_ms *= SETTLE_FACTOR;
  if (t->settle_ms <= SETTLE_LAST_MS) uv_timer_start(&t->settle, on_settle, t->settle_ms, 0);
}

static void on_file_change(uv_fs_event_t *h, const char *name, int events, int status) {
  (void)events;
  tail *t = h->data;
  if (status < 0 || !name) return;
  size_t n = strlen(t->base);
  /* The database itself or its WAL; not the -shm (readers touch it) nor others. */
  if (strncmp(name, t->base, n) != 0 || (name[n] && strcmp(name + n, "-wal") != 0)) return;
  catch_up(t);
  t->settle_ms = SETTLE_FIRST_MS;
  uv_timer_start(&t->settle, on_settle, t->settle_ms, 0);
}

static void on_heartbeat(uv_timer_t *timer) { catch_up(timer->data); }

static void on_wake(uv_async_t *a) { catch_up(a->data); }

/* The journal's own news of a commit (this process, or a backend that hears
 * of other processes' commits): any thread, so only a wake-up. */
static void on_commit(void *ud, int64_t max_offset) {
  (void)max_offset;
  tail *t = ud;
  uv_async_send(&t->wake);
}

static void on_signal(uv_signal_t *s, int signum) {
  (void)signum;
  uv_stop(s->loop);
}

/* Watches the directory of an SQLite journal: its file and WAL change there. */
static int watch_sqlite_files(tail *t, const char *db) {
  char *uri = jcli_db_uri(db);
  char *path = uri ? jcli_sqlite_path(uri) : NULL;
  free(uri);
  if (!path) return 0; /* not SQLite: the journal's notifications, and the heartbeat */
  char *slash = strrchr(path, '/');
  t->base = strdup(slash ? slash + 1 : path);
  t->dir = slash ? strndup(path, (size_t)(slash - path) + (slash == path)) : strdup(".");
  free(path);
  if (!t->base || !t->dir) return UV_ENOMEM;
  int r = uv_fs_event_init(&t->loop, &t->watch);
  if (r) return r;
  t->watch.data = t;
  t->watching = 1;
  r = uv_fs_event_start(&t->watch, on_file_change, t->dir, 0);
  /* Without a watch the heartbeat still finds every event, only later. */
  if (r)
    fprintf(stderr, "%s: cannot watch %s (%s): checking once a second\n", CMD, t->dir,
            uv_strerror(r));
  return 0;
}

static void close_handle(uv_handle_t *h) {
  if (!uv_is_closing(h)) uv_close(h, NULL);
}

static int follow(tail *t, const char *db) {
  int r = uv_loop_init(&t->loop);
  if (r) return cli_fail(CMD, "cannot start an event loop: %s", uv_strerror(r));
  uv_signal_init(&t->loop, &t->sigint);
  uv_signal_init(&t->loop, &t->sigterm);
  uv_timer_init(&t->loop, &t->settle);
  uv_timer_init(&t->loop, &t->heartbeat);
  uv_async_init(&t->loop, &t->wake, on_wake);
  t->settle.data = t->heartbeat.data = t->wake.data = t;
  uv_signal_start(&t->sigint, on_signal, SIGINT);
  uv_signal_start(&t->sigterm, on_signal, SIGTERM);
  r = watch_sqlite_files(t, db);
  if (!r && !(t->sub = journal_subscribe(t->j, on_commit, t))) r = UV_ENOMEM;
  if (r) {
    t->status = cli_fail(CMD, "cannot follow %s: %s", db, uv_strerror(r));
  } else {
    /* Subscribed and watching before the first read: nothing committed from
     * here on can slip between that read and the first wake-up. */
    catch_up(t);
    uv_timer_start(&t->heartbeat, on_heartbeat, HEARTBEAT_MS, HEARTBEAT_MS);
    if (t->status == CLI_OK) uv_run(&t->loop, UV_RUN_DEFAULT);
  }
  if (t->sub) journal_unsubscribe(t->j, t->sub);
  uv_handle_t *handles[] = {(uv_handle_t *)&t->sigint, (uv_handle_t *)&t->sigterm,
                            (uv_handle_t *)&t->settle, (uv_handle_t *)&t->heartbeat,
                            (uv_handle_t *)&t->wake};
  for (size_t i = 0; i < sizeof handles / sizeof handles[0]; i++) close_handle(handles[i]);
  if (t->watching) close_handle((uv_handle_t *)&t->watch);
  uv_run(&t->loop, UV_RUN_DEFAULT);
  uv_loop_close(&t->loop);
  return t->status;
}

int cli_journal_tail(int argc, char **argv) {
  static const struct option extra[] = {{"tag", required_argument, NULL, OPT_TAG},
                                        {"from", required_argument, NULL, OPT_FROM}};
  options o = {NULL, 0, 0};
  jcli_common co;
  int first = 0, r = jcli_parse(CMD, argc, argv, extra, 2, take_option, &o, help, &co, &first);
  if (r >= 0 || (r = jcli_no_operands(CMD, argc, argv, first)) >= 0) return r;
  tail t;
  memset(&t, 0, sizeof t);
  t.tag = o.tag;
  t.json = co.json;
  if ((r = jcli_open(CMD, co.db, &t.j))) return r;
  int err = 0;
  if (o.from_given)
    t.after = o.from > 0 ? o.from - 1 : 0;
  else
    err = journal_max_offset(t.j, &t.after);
  int status = err ? cli_fail(CMD, "%s", journal_strerror(err)) : follow(&t, co.db);
  journal_close(t.j);
  free(t.dir);
  free(t.base);
  return cli_finish_output(CMD, status);
}
