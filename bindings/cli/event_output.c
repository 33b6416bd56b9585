/* event_output.c: one journal event as a JSON line or a line of text, for `lore journal
 * events|tail`. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "journal_cli.h"
#include "msgpack_json.h"

void jcli_format_time(int64_t ms, char *buf, size_t cap) {
  if (ms <= 0) {
    snprintf(buf, cap, "-");
    return;
  }
  time_t t = (time_t)(ms / 1000);
  struct tm tm;
  char day[32];
  if (!gmtime_r(&t, &tm) || !strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm)) {
    snprintf(buf, cap, "%" PRId64, ms);
    return;
  }
  snprintf(buf, cap, "%s.%03dZ", day, (int)(ms % 1000));
}

static json_t *tag_list(const char *tags) {
  json_t *list = json_array();
  for (const char *t = tags; list && *t;) {
    size_t n = strcspn(t, "\n");
    if (json_array_append_new(list, mpj_bytes(t, n))) {
      json_decref(list);
      return NULL;
    }
    t += n + (t[n] == '\n');
  }
  return list;
}

/* The event's line object; *precision gets the digits its floats need. */
static json_t *event_object(const journal_event *ev, int *precision) {
  mpj_ctx ctx;
  mpj_ctx_init(&ctx);
  json_t *event = mpj_decode(ev->payload, ev->payload_len, &ctx);
  json_t *o = json_object();
  int bad = !o;
  bad = bad || json_object_set_new(o, "id", mpj_bytes(ev->id, strlen(ev->id)));
  bad = bad || json_object_set_new(o, "seq", json_integer(ev->seq));
  bad = bad || json_object_set_new(o, "offset", json_integer(ev->offset));
  bad = bad || json_object_set_new(o, "ts", json_integer(ev->timestamp_ms));
  bad = bad || json_object_set_new(o, "version", json_integer(ev->version));
  bad = bad || json_object_set_new(o, "tags", tag_list(ev->tags ? ev->tags : ""));
  if (ev->manifest && ev->manifest[0])
    bad = bad || json_object_set_new(o, "manifest", mpj_bytes(ev->manifest, strlen(ev->manifest)));
  if (event) {
    bad = bad || json_object_set_new(o, "event", event);
  } else {
    /* Still one valid line: the reason, and the bytes for whoever can use them. */
    bad = bad || json_object_set_new(o, "event", json_null());
    bad = bad || json_object_set_new(o, "undecodable", json_string(ctx.err));
    bad = bad || json_object_set_new(o, "payload", mpj_bin(ev->payload, ev->payload_len));
  }
  if (bad) {
    json_decref(o);
    return NULL;
  }
  *precision = ctx.precision;
  return o;
}

/* The event alone, as the text form shows it (the reason when undecodable). */
static int print_event_value(const journal_event *ev) {
  mpj_ctx ctx;
  mpj_ctx_init(&ctx);
  json_t *event = mpj_decode(ev->payload, ev->payload_len, &ctx);
  if (!event) return printf("<undecodable: %s>\n", ctx.err) < 0 ? -1 : 0;
  int r = mpj_print_line(stdout, event, ctx.precision);
  json_decref(event);
  return r;
}

int jcli_print_event(const journal_event *ev, int json, int with_id) {
  if (json) {
    int precision = 15;
    json_t *o = event_object(ev, &precision);
    if (!o) {
      fprintf(stderr, "lore journal: out of memory rendering %s #%" PRId64 "\n", ev->id, ev->seq);
      return -1;
    }
    int r = mpj_print_line(stdout, o, precision);
    json_decref(o);
    return r;
  }
  char when[48];
  jcli_format_time(ev->timestamp_ms, when, sizeof when);
  if (with_id && printf("%8" PRId64 "  %s  ", ev->offset, ev->id) < 0) return -1;
  if (printf("%6" PRId64 "  %s  %-14s v%-2d ", ev->seq, when, ev->manifest[0] ? ev->manifest : "-",
             ev->version) < 0)
    return -1;
  if (ev->tags && ev->tags[0]) {
    fputc('[', stdout);
    for (const char *t = ev->tags; *t; t++) fputc(*t == '\n' ? ',' : *t, stdout);
    fputs("]  ", stdout);
  }
  return print_event_value(ev);
}
