/* embed_support.h: what the embedding tests share: temp dirs, scripts, MessagePack, the loop. */
#ifndef LORE_EMBED_SUPPORT_H
#define LORE_EMBED_SUPPORT_H

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "lore.h"

/*
 * These tests are hosts: they see Lore only through lore.h. Everything here
 * is what a host would write for itself (building messages with msgpack-c,
 * running its own loop), kept in one place so each test reads as a scenario.
 */

/* --- files --- */

/* A new empty directory under $LORE_TEST_TMP (or /tmp); its path in buf.
 * Returns 0 or -1. */
int tmpdir_make(char *buf, size_t cap, const char *tag);
/* Writes `text` to dir/name; returns 0 or -1. */
int file_write(const char *dir, const char *name, const char *text);
/* Removes dir and everything below it (best effort). */
void tmpdir_remove(const char *dir);

/* --- MessagePack: building messages --- */

/* A growing buffer and a packer on it. */
typedef struct mp_out {
  msgpack_sbuffer sb;
  msgpack_packer pk;
} mp_out;

void mp_out_init(mp_out *o);
void mp_out_free(mp_out *o);
void mp_str(mp_out *o, const char *s);
void mp_int(mp_out *o, int64_t v);
void mp_map(mp_out *o, uint32_t pairs);
/* The ref's MessagePack value (lore_ref_pack), appended. Returns 0 or a Lore code. */
int mp_ref(mp_out *o, const lore_ref *ref);

/* {op = OP} and {op = OP, n = N}: the commands most test behaviours take. */
void mp_op(mp_out *o, const char *op);
void mp_op_n(mp_out *o, const char *op, int64_t n);

/* --- MessagePack: reading replies --- */

/* One decoded value; free with mp_in_free. */
typedef struct mp_in {
  msgpack_unpacked u;
  int ok; /* 1 when the bytes were exactly one value */
} mp_in;

void mp_in_parse(mp_in *in, const void *bytes, size_t len);
void mp_in_free(mp_in *in);
/* The value at `key` of a map, or NULL. */
const msgpack_object *mp_get(const msgpack_object *map, const char *key);
/* 1 when o is an integer equal to v. */
int mp_is_int(const msgpack_object *o, int64_t v);
/* 1 when o is a string equal to s. */
int mp_is_str(const msgpack_object *o, const char *s);
/* The bytes as one integer: 1 and *v, or 0 (not exactly one integer). */
int mp_read_int(const void *bytes, size_t len, int64_t *v);

/* --- the host loop --- */

/* Runs `loop` until *flag is non-zero or `seconds` pass; returns *flag != 0.
 * A timer keeps the loop from blocking forever; it is closed before return. */
int run_until(uv_loop_t *loop, const int *flag, double seconds);
/* Runs `loop` until *count >= target or `seconds` pass; returns *count >= target. */
int run_until_count(uv_loop_t *loop, const int *count, int target, double seconds);
/* Runs `loop` for `seconds` (to let anything that should not happen happen). */
void run_for(uv_loop_t *loop, double seconds);
/* Seconds on a monotonic clock. */
double now_s(void);

/* --- lore --- */

/* Log lines kept by a cfg.log callback (thread-safe: workers log too). */
typedef struct log_capture {
  uv_mutex_t lock;
  int count[LORE_LOG_OFF]; /* lines by level */
  char text[16384];        /* every line, '\n' after each, truncated at the end */
  size_t len;
} log_capture;

void log_capture_init(log_capture *c);
void log_capture_free(log_capture *c);
void log_capture_line(void *ud, int level, const char *line);
/* 1 when some captured line contains `needle`. */
int log_capture_has(log_capture *c, const char *needle);

/* An ask's outcome, filled by ask_recorder. */
typedef struct ask_result {
  int calls;  /* how many times the callback ran (must end at 1) */
  int status; /* its status */
  char bytes[512];
  size_t len; /* the reply's length (bytes may hold fewer) */
  double at;  /* now_s() when it ran */
} ask_result;

/* A lore_reply_cb whose ud is an ask_result. */
void ask_recorder(void *ud, int status, const void *reply, size_t len);
/* The reply bytes as a string (for error texts). */
const char *ask_text(const ask_result *r);

/* lore_ask with msg from `o`, then runs `loop` until the callback runs
 * (or `wait_s` pass); returns the lore_ask code. */
int ask_and_wait(lore_runtime *rt, uv_loop_t *loop, const lore_ref *to, mp_out *o, double timeout_s,
                 double wait_s, ask_result *res);

/* lore_shutdown, then runs `loop` until `done` has run; returns 1 if it did. */
int shutdown_and_wait(lore_runtime *rt, uv_loop_t *loop, double seconds);

/* A test file's host: makes a temp dir named after `tag` holding `scripts`
 * (file name, text, ..., NULL), initialises `loop`, and fills cfg for a
 * runtime on that loop with those scripts and 2 workers (the caller adjusts
 * it, then calls lore_open). Returns 0 or -1. */
int host_prepare(char *dir, size_t cap, const char *tag, const char *const *scripts,
                 uv_loop_t *loop, lore_config *cfg);
/* Shuts rt down on `loop` (10 s at most), closes it and the loop, removes
 * dir. Returns 0, or -1 if the shutdown did not finish or Lore left
 * something on the loop. */
int host_finish(lore_runtime *rt, uv_loop_t *loop, const char *dir);

#endif
