/* server.c: a line-based TCP game server on its own libuv loop, with rooms as Lore actors. */
#include <msgpack.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "dice.h"
#include "lore.h"

/*
 * One loop runs everything: the listener, the connections, the signals and
 * Lore's host side (cfg.loop). Each connection gets a host endpoint; its
 * lines become MessagePack commands to a room actor ("room:NAME", behaviour
 * scripts/room.lua, persisted in the sqlite journal), and what the room
 * pushes to the endpoint becomes lines on that connection.
 */

#define MAX_LINE 512
#define MAX_JOINED 16

typedef struct room {
  char name[40];
  lore_ref *ref;
  struct room *next;
} room;

typedef struct conn conn;

typedef struct server {
  uv_loop_t loop;
  uv_tcp_t listener;
  uv_signal_t sigint, sigterm;
  lore_runtime *rt;
  room *rooms;
  conn *conns;
  int64_t next_cid;
  int stopping;
} server;

struct conn {
  uv_tcp_t tcp;
  server *srv;
  int64_t cid;
  lore_ref *endpoint;
  room *joined[MAX_JOINED];
  int njoined;
  char buf[MAX_LINE];
  size_t len;
  int closing;
  conn *next;
};

/* --- writing lines --- */

typedef struct write_req {
  uv_write_t req;
  char text[];
} write_req;

static void written(uv_write_t *req, int status) {
  (void)status; /* a client that went away: its read side notices */
  free(req);
}

static void send_line(conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void send_line(conn *c, const char *fmt, ...) {
  if (c->closing) return;
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line - 1, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n > sizeof line - 2) n = sizeof line - 2;
  line[n++] = '\n';
  write_req *w = malloc(sizeof *w + (size_t)n);
  if (!w) return;
  memcpy(w->text, line, (size_t)n);
  uv_buf_t b = uv_buf_init(w->text, (unsigned)n);
  if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, written)) free(w);
}

/* --- MessagePack: what rooms push, read back into text --- */

static const msgpack_object *field(const msgpack_object *map, const char *key) {
  if (map->type != MSGPACK_OBJECT_MAP) return NULL;
  size_t n = strlen(key);
  for (uint32_t i = 0; i < map->via.map.size; i++) {
    const msgpack_object *k = &map->via.map.ptr[i].key;
    if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == n && !memcmp(k->via.str.ptr, key, n))
      return &map->via.map.ptr[i].val;
  }
  return NULL;
}

/* The string at map[key] (empty if absent), as printf's "%.*s" arguments. */
static int str_len(const msgpack_object *map, const char *key) {
  const msgpack_object *v = field(map, key);
  return v && v->type == MSGPACK_OBJECT_STR ? (int)v->via.str.size : 0;
}
static const char *str_ptr(const msgpack_object *map, const char *key) {
  const msgpack_object *v = field(map, key);
  return v && v->type == MSGPACK_OBJECT_STR ? v->via.str.ptr : "";
}
#define STR(map, key) str_len(map, key), str_ptr(map, key)

static long long int_at(const msgpack_object *map, const char *key) {
  const msgpack_object *v = field(map, key);
  return v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? (long long)v->via.u64 : 0;
}

/* A room told this connection's endpoint something (on the loop's thread). */
static void on_room_event(void *ud, const void *msg, size_t len) {
  conn *c = ud;
  msgpack_unpacked u;
  msgpack_unpacked_init(&u);
  if (msgpack_unpack_next(&u, msg, len, NULL) == MSGPACK_UNPACK_SUCCESS) {
    const msgpack_object *e = &u.data;
    const msgpack_object *kind = field(e, "event");
    const char *k = kind && kind->type == MSGPACK_OBJECT_STR ? kind->via.str.ptr : "";
    size_t kl = kind && kind->type == MSGPACK_OBJECT_STR ? kind->via.str.size : 0;
    if (kl == 6 && !memcmp(k, "joined", 6))
      send_line(c, "[%.*s] %.*s joined", STR(e, "room"), STR(e, "name"));
    else if (kl == 5 && !memcmp(k, "moved", 5))
      send_line(c, "[%.*s] %.*s: %.*s", STR(e, "room"), STR(e, "name"), STR(e, "text"));
    else if (kl == 6 && !memcmp(k, "rolled", 6))
      send_line(c, "[%.*s] %.*s rolled %lld (d%lld)", STR(e, "room"), STR(e, "name"),
                int_at(e, "value"), int_at(e, "sides"));
    else if (kl == 4 && !memcmp(k, "left", 4))
      send_line(c, "[%.*s] %.*s left", STR(e, "room"), STR(e, "name"));
    else if (kl == 5 && !memcmp(k, "error", 5))
      send_line(c, "error: %.*s", STR(e, "text"));
  }
  msgpack_unpacked_destroy(&u);
}

/* --- rooms --- */

static int valid_token(const char *s, size_t max) {
  size_t n = strlen(s);
  if (n == 0 || n > max) return 0;
  for (; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
          *s == '-' || *s == '_'))
      return 0;
  return 1;
}

/* The room's actor, spawned (and so recovered from the journal) on first use
 * in this run of the server. NULL with *err set if it cannot start. */
static room *room_get(server *srv, const char *name, int *err) {
  for (room *r = srv->rooms; r; r = r->next)
    if (!strcmp(r->name, name)) return r;
  room *r = calloc(1, sizeof *r);
  if (!r) {
    *err = UV_ENOMEM;
    return NULL;
  }
  snprintf(r->name, sizeof r->name, "%s", name);
  char id[64];
  snprintf(id, sizeof id, "room:%s", name);
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  msgpack_packer pk;
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, 1);
  msgpack_pack_str_with_body(&pk, "id", 2);
  msgpack_pack_str_with_body(&pk, id, strlen(id));
  *err = lore_spawn(srv->rt, "room", sb.data, sb.size, &r->ref);
  msgpack_sbuffer_destroy(&sb);
  if (*err) {
    free(r);
    return NULL;
  }
  r->next = srv->rooms;
  srv->rooms = r;
  return r;
}

/* A command for a room: {cmd =, cid =, conn = <endpoint>, extra...}. The
 * caller adds `extra` key/value pairs after this returns the packer. */
typedef struct command {
  msgpack_sbuffer sb;
  msgpack_packer pk;
} command;

static int command_begin(command *m, conn *c, const char *cmd, uint32_t extra) {
  msgpack_sbuffer_init(&m->sb);
  msgpack_packer_init(&m->pk, &m->sb, msgpack_sbuffer_write);
  msgpack_pack_map(&m->pk, 3 + extra);
  msgpack_pack_str_with_body(&m->pk, "cmd", 3);
  msgpack_pack_str_with_body(&m->pk, cmd, strlen(cmd));
  msgpack_pack_str_with_body(&m->pk, "cid", 3);
  msgpack_pack_int64(&m->pk, c->cid);
  msgpack_pack_str_with_body(&m->pk, "conn", 4);
  char ref[64];
  size_t len;
  int rc = lore_ref_pack(c->endpoint, ref, sizeof ref, &len);
  if (rc) {
    msgpack_sbuffer_destroy(&m->sb);
    return rc;
  }
  msgpack_sbuffer_write(&m->sb, ref, len);
  return 0;
}

static void pack_str(command *m, const char *key, const char *value) {
  msgpack_pack_str_with_body(&m->pk, key, strlen(key));
  msgpack_pack_str_with_body(&m->pk, value, strlen(value));
}

static void command_send(command *m, conn *c, room *r) {
  int rc = lore_tell(c->srv->rt, r->ref, m->sb.data, m->sb.size);
  if (rc) send_line(c, "error: %s", lore_strerror(rc));
  msgpack_sbuffer_destroy(&m->sb);
}

static int has_joined(conn *c, room *r) {
  for (int i = 0; i < c->njoined; i++)
    if (c->joined[i] == r) return 1;
  return 0;
}

/* --- look: an ask, answered on the loop --- */

typedef struct look {
  server *srv;
  int64_t cid; /* the connection may be gone when the answer comes */
} look;

static conn *conn_by_cid(server *srv, int64_t cid) {
  for (conn *c = srv->conns; c; c = c->next)
    if (c->cid == cid) return c;
  return NULL;
}

/* "[room] players: a, b | moves: a: e4; b: e5" */
static void format_look(const msgpack_object *st, char *out, size_t cap) {
  size_t n = (size_t)snprintf(out, cap, "[%.*s] players:", STR(st, "room"));
  const msgpack_object *players = field(st, "players"), *moves = field(st, "moves");
  if (players && players->type == MSGPACK_OBJECT_ARRAY)
    for (uint32_t i = 0; i < players->via.array.size && n < cap; i++) {
      const msgpack_object *p = &players->via.array.ptr[i];
      if (p->type == MSGPACK_OBJECT_STR)
        n += (size_t)snprintf(out + n, cap - n, "%s %.*s", i ? "," : "", (int)p->via.str.size,
                              p->via.str.ptr);
    }
  if (n < cap) n += (size_t)snprintf(out + n, cap - n, " | moves:");
  if (moves && moves->type == MSGPACK_OBJECT_ARRAY)
    for (uint32_t i = 0; i < moves->via.array.size && n < cap; i++)
      n += (size_t)snprintf(out + n, cap - n, "%s %.*s: %.*s", i ? ";" : "",
                            STR(&moves->via.array.ptr[i], "name"),
                            STR(&moves->via.array.ptr[i], "text"));
}

static void on_look(void *ud, int status, const void *reply, size_t len) {
  look *l = ud;
  conn *c = conn_by_cid(l->srv, l->cid);
  free(l);
  if (!c) return;
  if (status) {
    send_line(c, "error: %s", lore_strerror(status));
    return;
  }
  msgpack_unpacked u;
  msgpack_unpacked_init(&u);
  char text[1024] = "error: a reply that is not MessagePack";
  if (msgpack_unpack_next(&u, reply, len, NULL) == MSGPACK_UNPACK_SUCCESS)
    format_look(&u.data, text, sizeof text);
  msgpack_unpacked_destroy(&u);
  send_line(c, "%s", text);
}

static void do_look(conn *c, room *r) {
  look *l = malloc(sizeof *l);
  if (!l) return;
  *l = (look){c->srv, c->cid};
  static const char msg[] =
      "\x81\xa3"
      "cmd\xa4"
      "look"; /* {cmd = "look"} */
  int rc = lore_ask(c->srv->rt, r->ref, msg, sizeof msg - 1, 5.0, on_look, l);
  if (rc) {
    free(l);
    send_line(c, "error: %s", lore_strerror(rc));
  }
}

/* --- the protocol --- */

static const char usage[] =
    "commands: join ROOM NAME | move ROOM TEXT | roll ROOM [SIDES] | look ROOM | quit";

static void conn_close(conn *c);

/* What a "join", "move" or "roll" line asks of room r, packed in m;
 * 0, or -1 after telling the client what is wrong. */
static int build_command(conn *c, room *r, const char *verb, char *rest, command *m) {
  if (!strcmp(verb, "join")) {
    char *save = NULL, *name = rest ? strtok_r(rest, " ", &save) : NULL;
    if (!name || !valid_token(name, 24)) {
      send_line(c, "error: a player name is 1-24 letters, digits, '-' or '_'");
      return -1;
    }
    if (!has_joined(c, r)) {
      if (c->njoined == MAX_JOINED) {
        send_line(c, "error: too many rooms");
        return -1;
      }
      c->joined[c->njoined++] = r;
    }
    if (command_begin(m, c, "join", 1)) return -1;
    pack_str(m, "name", name);
  } else if (!strcmp(verb, "move")) {
    if (!rest || !*rest) {
      send_line(c, "error: move ROOM TEXT");
      return -1;
    }
    if (command_begin(m, c, "move", 1)) return -1;
    pack_str(m, "text", rest);
  } else {
    long sides = rest && *rest ? strtol(rest, NULL, 10) : 6;
    if (sides < 2 || sides > 1000) {
      send_line(c, "error: a die has 2 to 1000 sides");
      return -1;
    }
    if (command_begin(m, c, "roll", 1)) return -1;
    msgpack_pack_str_with_body(&m->pk, "sides", 5);
    msgpack_pack_int64(&m->pk, sides);
  }
  return 0;
}

static void handle_line(conn *c, char *line) {
  char *save = NULL, *verb = strtok_r(line, " ", &save);
  if (!verb) return;
  if (!strcmp(verb, "quit")) {
    conn_close(c);
    return;
  }
  if (!strcmp(verb, "help")) {
    send_line(c, "%s", usage);
    return;
  }
  if (strcmp(verb, "join") && strcmp(verb, "move") && strcmp(verb, "roll") &&
      strcmp(verb, "look")) {
    send_line(c, "error: unknown command '%s'; %s", verb, usage);
    return;
  }
  char *room_name = strtok_r(NULL, " ", &save);
  char *rest = save ? save + strspn(save, " ") : NULL;
  if (!room_name || !valid_token(room_name, 32)) {
    send_line(c, "error: a room name is 1-32 letters, digits, '-' or '_'");
    return;
  }
  int err = 0;
  room *r = room_get(c->srv, room_name, &err);
  if (!r) {
    send_line(c, "error: room %s is unavailable: %s", room_name, lore_strerror(err));
    return;
  }
  if (!strcmp(verb, "look")) {
    do_look(c, r);
    return;
  }
  command m;
  if (build_command(c, r, verb, rest, &m) == 0) command_send(&m, c, r);
}

/* --- connections --- */

static void conn_free(uv_handle_t *h) { free(h->data); }

/* Leaves its rooms, closes its endpoint (no callback for it after this),
 * then the socket. */
static void conn_close(conn *c) {
  if (c->closing) return;
  for (int i = 0; i < c->njoined; i++) {
    command m;
    msgpack_sbuffer_init(&m.sb);
    msgpack_packer_init(&m.pk, &m.sb, msgpack_sbuffer_write);
    msgpack_pack_map(&m.pk, 2);
    msgpack_pack_str_with_body(&m.pk, "cmd", 3);
    msgpack_pack_str_with_body(&m.pk, "leave", 5);
    msgpack_pack_str_with_body(&m.pk, "cid", 3);
    msgpack_pack_int64(&m.pk, c->cid);
    command_send(&m, c, c->joined[i]);
  }
  c->closing = 1;
  lore_endpoint_close(c->srv->rt, c->endpoint);
  lore_ref_free(c->endpoint);
  c->endpoint = NULL;
  for (conn **p = &c->srv->conns; *p; p = &(*p)->next)
    if (*p == c) {
      *p = c->next;
      break;
    }
  uv_close((uv_handle_t *)&c->tcp, conn_free);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  conn *c = h->data;
  buf->base = c->buf + c->len;
  buf->len = sizeof c->buf - c->len;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  (void)buf;
  conn *c = s->data;
  if (n < 0) {
    conn_close(c);
    return;
  }
  c->len += (size_t)n;
  char *start = c->buf, *nl;
  while (!c->closing && (nl = memchr(start, '\n', c->len - (size_t)(start - c->buf)))) {
    *nl = '\0';
    if (nl > start && nl[-1] == '\r') nl[-1] = '\0';
    handle_line(c, start);
    start = nl + 1;
  }
  if (c->closing) return;
  c->len -= (size_t)(start - c->buf);
  memmove(c->buf, start, c->len);
  if (c->len == sizeof c->buf) { /* a line too long to be a command */
    send_line(c, "error: line too long");
    c->len = 0;
  }
}

static void on_connection(uv_stream_t *listener, int status) {
  server *srv = listener->data;
  if (status < 0 || srv->stopping) return;
  conn *c = calloc(1, sizeof *c);
  if (!c) return;
  c->srv = srv;
  c->cid = ++srv->next_cid;
  uv_tcp_init(&srv->loop, &c->tcp);
  c->tcp.data = c;
  if (uv_accept(listener, (uv_stream_t *)&c->tcp) ||
      lore_endpoint(srv->rt, on_room_event, c, &c->endpoint)) {
    uv_close((uv_handle_t *)&c->tcp, conn_free);
    return;
  }
  c->next = srv->conns;
  srv->conns = c;
  send_line(c, "welcome; %s", usage);
  uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, on_read);
}

/* --- shutdown --- */

static void lore_down(void *ud) {
  server *srv = ud;
  printf("embed-server: Lore is down (journal flushed and closed)\n");
  fflush(stdout);
  (void)srv;
}

/* SIGINT/SIGTERM: stop listening, drop the connections, stop Lore; uv_run
 * returns when the last handle is closed. */
static void on_signal(uv_signal_t *sig, int signum) {
  server *srv = sig->data;
  if (srv->stopping) return;
  srv->stopping = 1;
  printf("embed-server: signal %d, shutting down\n", signum);
  fflush(stdout);
  uv_close((uv_handle_t *)&srv->listener, NULL);
  while (srv->conns) conn_close(srv->conns);
  uv_close((uv_handle_t *)&srv->sigint, NULL);
  uv_close((uv_handle_t *)&srv->sigterm, NULL);
  lore_shutdown(srv->rt, lore_down, srv);
}

/* --- main --- */

static void log_line_to_stderr(void *ud, int level, const char *line) {
  (void)ud;
  static const char *const names[] = {"debug", "info", "warn", "error"};
  fprintf(stderr, "embed-server: lore %s: %s\n", level >= 0 && level < 4 ? names[level] : "?",
          line);
}

static int usage_error(const char *prog) {
  fprintf(stderr, "usage: %s --journal PATH [--port N] [--scripts DIR] [--workers N]\n", prog);
  return 2;
}

int main(int argc, char **argv) {
  const char *journal_path = NULL, *scripts = "scripts";
  int port = 4000, workers = 2;
  for (int i = 1; i < argc; i++) {
    if (i + 1 >= argc) return usage_error(argv[0]);
    if (!strcmp(argv[i], "--journal"))
      journal_path = argv[++i];
    else if (!strcmp(argv[i], "--port"))
      port = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--scripts"))
      scripts = argv[++i];
    else if (!strcmp(argv[i], "--workers"))
      workers = atoi(argv[++i]);
    else
      return usage_error(argv[0]);
  }
  if (!journal_path || port < 0 || port > 65535) return usage_error(argv[0]);
  signal(SIGPIPE, SIG_IGN); /* a client gone mid-write is an error code, not a death */

  static server srv;
  uv_loop_init(&srv.loop);
  char journal[1024];
  snprintf(journal, sizeof journal, "sqlite:%s", journal_path);
  lore_config cfg;
  lore_config_init(&cfg);
  cfg.loop = &srv.loop; /* Lore's replies and endpoint messages arrive on this loop */
  cfg.journal = journal;
  cfg.scripts = scripts;
  cfg.workers = workers;
  cfg.log = log_line_to_stderr;
  int rc = lore_open(&cfg, &srv.rt);
  if (rc) {
    fprintf(stderr, "embed-server: cannot start Lore: %s\n", lore_strerror(rc));
    return 1;
  }
  rc = lore_preload(srv.rt, "dice", luaopen_dice); /* before the first spawn */
  if (rc) fprintf(stderr, "embed-server: cannot preload dice: %s\n", lore_strerror(rc));

  struct sockaddr_in addr;
  uv_ip4_addr("127.0.0.1", port, &addr);
  uv_tcp_init(&srv.loop, &srv.listener);
  srv.listener.data = &srv;
  if (!rc) rc = uv_tcp_bind(&srv.listener, (const struct sockaddr *)&addr, 0);
  if (!rc) rc = uv_listen((uv_stream_t *)&srv.listener, 64, on_connection);
  if (rc) {
    fprintf(stderr, "embed-server: cannot serve on 127.0.0.1:%d: %s\n", port, lore_strerror(rc));
    uv_close((uv_handle_t *)&srv.listener, NULL);
    lore_close(srv.rt); /* shuts down, running the loop until it is done */
    uv_run(&srv.loop, UV_RUN_DEFAULT);
    uv_loop_close(&srv.loop);
    return 1;
  }
  struct sockaddr_storage bound;
  int len = sizeof bound;
  uv_tcp_getsockname(&srv.listener, (struct sockaddr *)&bound, &len);
  printf("embed-server: listening on 127.0.0.1:%d\n",
         ntohs(((struct sockaddr_in *)&bound)->sin_port));
  fflush(stdout);

  uv_signal_init(&srv.loop, &srv.sigint);
  uv_signal_init(&srv.loop, &srv.sigterm);
  srv.sigint.data = srv.sigterm.data = &srv;
  uv_signal_start(&srv.sigint, on_signal, SIGINT);
  uv_signal_start(&srv.sigterm, on_signal, SIGTERM);

  uv_run(&srv.loop, UV_RUN_DEFAULT); /* until the signal's shutdown has finished */

  int status = lore_shutdown_status(srv.rt);
  lore_close(srv.rt);
  while (srv.rooms) {
    room *r = srv.rooms;
    srv.rooms = r->next;
    lore_ref_free(r->ref);
    free(r);
  }
  uv_loop_close(&srv.loop);
  printf("embed-server: bye\n");
  return status == 0 ? 0 : 1;
}
