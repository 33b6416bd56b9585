/* journal_cli.c: `lore journal ls|events|stats`: inspect a journal from the command line. */
#include <inttypes.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "journal.h"

static int usage(void) {
  fprintf(stderr,
          "usage: lore journal ls     [--db URI]\n"
          "       lore journal events [--db URI] ID [--from N] [--to N] [--json]\n"
          "       lore journal stats  [--db URI]\n"
          "  URI: sqlite:PATH (default sqlite:lore.db)\n");
  return 2;
}

static void print_json_string(const char *s, size_t n) {
  putchar('"');
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\')
      printf("\\%c", c);
    else if (c == '\n')
      fputs("\\n", stdout);
    else if (c < 0x20 || c == 0x7f)
      printf("\\u%04x", c);
    else
      putchar(c);
  }
  putchar('"');
}

/* MessagePack -> JSON. Map keys that are not strings are printed as strings. */
static void print_json(const msgpack_object *o) {
  switch (o->type) {
    case MSGPACK_OBJECT_NIL: fputs("null", stdout); break;
    case MSGPACK_OBJECT_BOOLEAN: fputs(o->via.boolean ? "true" : "false", stdout); break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER: printf("%" PRIu64, o->via.u64); break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: printf("%" PRId64, o->via.i64); break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: printf("%.17g", o->via.f64); break;
    case MSGPACK_OBJECT_STR: print_json_string(o->via.str.ptr, o->via.str.size); break;
    case MSGPACK_OBJECT_BIN: print_json_string(o->via.bin.ptr, o->via.bin.size); break;
    case MSGPACK_OBJECT_ARRAY:
      putchar('[');
      for (uint32_t i = 0; i < o->via.array.size; i++) {
        if (i) putchar(',');
        print_json(&o->via.array.ptr[i]);
      }
      putchar(']');
      break;
    case MSGPACK_OBJECT_MAP:
      putchar('{');
      for (uint32_t i = 0; i < o->via.map.size; i++) {
        if (i) putchar(',');
        const msgpack_object *k = &o->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR) {
          print_json(k);
        } else {
          putchar('"');
          if (k->type == MSGPACK_OBJECT_POSITIVE_INTEGER) printf("%" PRIu64, k->via.u64);
          else if (k->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) printf("%" PRId64, k->via.i64);
          else fputs("?", stdout);
          putchar('"');
        }
        putchar(':');
        print_json(&o->via.map.ptr[i].val);
      }
      putchar('}');
      break;
    case MSGPACK_OBJECT_EXT: fputs("\"<ref>\"", stdout); break;
    default: fputs("null", stdout); break;
  }
}

typedef struct events_opts {
  int json;
  int64_t count;
} events_opts;

static int print_event(const journal_event *ev, void *ud) {
  events_opts *o = ud;
  msgpack_zone zone;
  msgpack_zone_init(&zone, 2048);
  msgpack_object obj;
  size_t off = 0;
  int ok = msgpack_unpack(ev->payload, ev->payload_len, &off, &zone, &obj) == MSGPACK_UNPACK_SUCCESS;
  if (o->json) {
    printf("{\"seq\":%" PRId64 ",\"type\":", ev->seq);
    print_json_string(ev->manifest, strlen(ev->manifest));
    printf(",\"version\":%d,\"timestamp_ms\":%" PRId64 ",\"writer\":\"%" PRId64 "\"", ev->version,
           ev->timestamp_ms, ev->writer);
    fputs(",\"event\":", stdout);
    if (ok) print_json(&obj); else fputs("null", stdout);
    fputs("}\n", stdout);
  } else {
    printf("%8" PRId64 "  %-16s v%d  ", ev->seq, ev->manifest[0] ? ev->manifest : "-", ev->version);
    if (ok) print_json(&obj); else fputs("<undecodable payload>", stdout);
    putchar('\n');
  }
  msgpack_zone_destroy(&zone);
  o->count++;
  return 0;
}

static void print_id(const char *id, int64_t highest, void *ud) {
  (void)ud;
  printf("%-40s %" PRId64 "\n", id, highest);
}

static void print_time(const char *label, int64_t ms) {
  char buf[64] = "-";
  if (ms) {
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  }
  printf("%-10s %s\n", label, buf);
}

int lore_journal_command(int argc, char **argv) {
  if (argc < 3) return usage();
  const char *cmd = argv[2], *db = "sqlite:lore.db", *id = NULL;
  int64_t from = 1, to = INT64_MAX;
  events_opts eo = {0, 0};
  for (int i = 3; i < argc; i++) {
    if (strcmp(argv[i], "--db") == 0 && i + 1 < argc) db = argv[++i];
    else if (strcmp(argv[i], "--from") == 0 && i + 1 < argc) from = strtoll(argv[++i], NULL, 10);
    else if (strcmp(argv[i], "--to") == 0 && i + 1 < argc) to = strtoll(argv[++i], NULL, 10);
    else if (strcmp(argv[i], "--json") == 0) eo.json = 1;
    else if (argv[i][0] == '-') return usage();
    else if (!id) id = argv[i];
    else return usage();
  }
  if (strcmp(cmd, "ls") && strcmp(cmd, "events") && strcmp(cmd, "stats")) return usage();
  if (strcmp(cmd, "events") == 0 && !id) return usage();
  if (strncmp(db, "sqlite:", 7) == 0) {
    struct stat st;
    if (stat(db + 7, &st) != 0) {
      fprintf(stderr, "lore journal: %s: no such database\n", db + 7);
      return 1;
    }
  }
  /* Read-only: never modifies the file, and works while an app writes it. */
  journal_options opt = {.synchronous_full = 1, .read_only = 1};
  journal_t *j;
  int r = journal_open(db, &opt, &j);
  if (r) {
    fprintf(stderr, "lore journal: cannot open %s: %s\n", db, journal_strerror(r));
    return 1;
  }
  int status = 0;
  if (strcmp(cmd, "ls") == 0) {
    r = journal_list_ids(j, print_id, NULL);
  } else if (strcmp(cmd, "events") == 0) {
    r = journal_replay(j, id, from, to, -1, print_event, &eo);
  } else {
    journal_stats_t s = {0};
    r = journal_stats_of(j, &s);
    printf("%-10s %" PRId64 "\n%-10s %" PRId64 "\n", "ids", s.ids, "events", s.events);
    struct stat st;
    if (strncmp(db, "sqlite:", 7) == 0 && stat(db + 7, &st) == 0)
      printf("%-10s %lld bytes\n", "size", (long long)st.st_size);
    print_time("oldest", s.oldest_ms);
    print_time("newest", s.newest_ms);
  }
  if (r) {
    fprintf(stderr, "lore journal %s: %s\n", cmd, journal_strerror(r));
    status = 1;
  }
  journal_close(j);
  return status;
}
