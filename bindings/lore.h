/* lore.h: embedding Lore, a persistent-actor runtime, in a C program (the one public header). */
#ifndef LORE_H
#define LORE_H

#include <lua.h>
#include <stddef.h>
#include <uv.h>

#include "lore_version.h" /* LORE_VERSION, LORE_VERSION_MAJOR/MINOR/PATCH */

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define LORE_EXTERN __attribute__((visibility("default")))
#else
#define LORE_EXTERN
#endif

/*
 * Lore runs actors whose behaviours are Lua 5.4 scripts on worker threads
 * (each with its own libuv loop and Lua state), journals their events
 * (SQLite, PostgreSQL or memory) and recovers them after a restart. A host
 * program talks to it from ONE thread, the one that runs the host loop:
 * either the host's own uv_loop_t (cfg.loop) or a private loop that
 * lore_run() drives. Every function below is called from that thread, and
 * every callback Lore makes (replies, endpoint messages, shutdown) runs on it,
 * except cfg.log, which any of Lore's threads may call (see lore_config).
 *
 * Ownership: strings and buffers passed in are copied before the call
 * returns; buffers passed to callbacks are valid only during the callback.
 * A lore_ref is the caller's (free it with lore_ref_free).
 *
 * Errors: every call returns 0 or a negative code; lore_strerror() says what
 * it means. Nothing aborts the host, installs signal handlers (unless
 * cfg.handle_signals) or writes to stderr (when cfg.log is set). When a call
 * that takes a callback fails, that callback never runs.
 *
 * Messages cross this boundary as MessagePack bytes (one value), the same
 * encoding as events: maps, arrays, strings, integers, floats, booleans, nil,
 * and refs (extension type 1, see lore_ref_pack).
 */

/* Error codes besides libuv's (UV_E*, e.g. UV_EINVAL, UV_ENOMEM, UV_ETIMEDOUT)
 * and the journal's and snapshot stores' (-5001 .. -5199). */
enum {
  LORE_OK = 0,
  LORE_ENOBEHAVIOUR = -5201, /* no such behaviour script on cfg.scripts */
  LORE_ESCRIPT = -5202,      /* the behaviour failed to load or init (see the log) */
  LORE_EFAILED = -5203,      /* the actor raised while handling the ask */
  LORE_EDEADLETTER = -5204,  /* no actor is running at that ref */
  LORE_ELIVE = -5205,        /* an actor with that persistence id is already live */
  LORE_ESHUTDOWN = -5206,    /* the runtime is shutting down (or shut down) */
  LORE_ETHREAD = -5207,      /* called from a thread that is not the host loop's */
  LORE_ECONFIG = -5208,      /* a configuration value is out of range (see the log) */
  LORE_EBADMSG = -5209,      /* bytes that are not one MessagePack value */
  LORE_ETIMEDOUT = UV_ETIMEDOUT,
};

/* Log levels of cfg.log and cfg.log_level. */
enum {
  LORE_LOG_DEBUG = 0,
  LORE_LOG_INFO = 1,
  LORE_LOG_WARN = 2,
  LORE_LOG_ERROR = 3,
  LORE_LOG_OFF = 4
};

typedef struct lore_runtime lore_runtime; /* opaque */
typedef struct lore_ref lore_ref;         /* opaque, owned by the caller */

typedef struct lore_config {
  const char *journal;   /* NULL: "memory:"; "sqlite:PATH", "postgres:CONNINFO" */
  const char *snapshots; /* NULL: the journal's store */
  const char *scripts;   /* directories separated by ';'; NULL: "." */
  int workers;           /* 0: one per core */
  int hot_reload;        /* 1: watch `scripts`, reload changed behaviours */
  uv_loop_t *loop;       /* the host's loop: replies and messages to host
                            endpoints are delivered on it; NULL: lore_run() */
  int handle_signals;    /* 1: SIGINT/SIGTERM shut Lore down (lore run does) */
  /* NULL: stderr. NOT called on the host thread only: any of Lore's threads
   * calls it, at the same time as others, with no lock taken by Lore: the
   * host thread, every worker, the journal writer (and the SQLite
   * checkpointer, the PostgreSQL listener and lease threads), libuv's thread
   * pool (snapshot stores, recovery reads). So it must be
   * thread-safe, should return quickly (the thread that logged waits for it,
   * the journal writer too) and must not call any lore_ function. `line` is
   * valid during the call only. */
  void (*log)(void *ud, int level, const char *line);
  void *log_ud;
  /* Added after the fixed fields above; lore_config_init sets every one. */
  int log_level;                 /* LORE_LOG_*; default: $LORE_LOG or warn */
  long long max_instructions;    /* per handler call (0: unlimited); default 100 M */
  long long memory_limit;        /* bytes per worker Lua state (0: none); default 1 GiB */
  int synchronous_full;          /* sqlite: 1 (default) fsync every commit; 0: NORMAL */
  int max_concurrent_recoveries; /* in the whole runtime; default 1024 */
  double recovery_timeout;       /* seconds without progress; default 30 */
  double shutdown_timeout;       /* seconds before stuck actors are stopped by force; 5 */
  /* The journal's circuit breaker: after this many failed commits in a row,
   * persists fail fast (refused before storage) for breaker_reset_timeout
   * seconds, then one write tries again. 0 turns it off; default 5. */
  int breaker_max_failures;
  double breaker_reset_timeout; /* seconds; default 10 */
  /* Microseconds a worker whose only I/O in flight is one journal write (a
   * persist waiting for its commit), with nothing else to run, polls for its
   * completion before it sleeps: a lone actor's persist round trip is then
   * not slowed by waking a sleeping thread. 0: never; at most 100000;
   * default 1000. It costs up to that much CPU per such wait; polls that
   * keep missing (commits slower than this) back off. */
  int io_spin_us;
} lore_config;

/* Sets every field of *cfg to its default. */
LORE_EXTERN void lore_config_init(lore_config *cfg);

/*
 * Creates a runtime: checks the configuration, opens the journal and the
 * snapshot store, starts the worker threads. On success *out owns all of it
 * (end with lore_shutdown, then lore_close). On failure returns a negative
 * code (the reason is also logged), *out is untouched and nothing is left
 * running. The calling thread becomes the host thread.
 */
LORE_EXTERN int lore_open(const lore_config *cfg, lore_runtime **out);

/* Before the first spawn: behaviour scripts on every worker may then
 * `require(name)`; `open` runs once per worker Lua state (it is trusted: the
 * sandbox lets it through). UV_EEXIST if the name is taken; UV_EBUSY after
 * the first spawn. */
LORE_EXTERN int lore_preload(lore_runtime *rt, const char *name, lua_CFunction open);

/* Spawns; returns once a worker has loaded the behaviour (a missing behaviour
 * or a script error is an error code here, with the detail in the log).
 * `opts` is a MessagePack map (e.g. {id = "cart-42"}), or NULL with len 0.
 * On success *out is a new ref (the caller frees it). Blocks the host thread
 * for the time a worker takes to load the script (not for recovery). */
LORE_EXTERN int lore_spawn(lore_runtime *rt, const char *behaviour, const void *opts,
                           size_t opts_len, lore_ref **out);

/* A ref to the actor (or entity) with persistence id `id`, valid across its
 * restarts; the id need not be live. UV_EINVAL for an empty, blank or too
 * long id. */
LORE_EXTERN int lore_ref_from_id(lore_runtime *rt, const char *id, lore_ref **out);
LORE_EXTERN void lore_ref_free(lore_ref *ref);
/* The ref as one MessagePack value, to put inside a message's bytes. Writes
 * at most `cap` bytes to buf and their number to *len; UV_ENOBUFS if cap is
 * too small (*len then says how much is needed). */
LORE_EXTERN int lore_ref_pack(const lore_ref *ref, void *buf, size_t cap, size_t *len);

/* Fire and forget; the bytes (exactly one MessagePack value, else
 * LORE_EBADMSG) are copied. A message to no live actor is a dead letter
 * (counted, logged at debug). */
LORE_EXTERN int lore_tell(lore_runtime *rt, const lore_ref *to, const void *msg, size_t len);

/* `cb` runs on the host loop exactly once: status 0 and the reply's bytes,
 * or a negative code (LORE_ETIMEDOUT, LORE_EFAILED with the actor's error
 * text as the bytes, LORE_EDEADLETTER, LORE_ESHUTDOWN). Many asks may be in
 * flight at once. A negative timeout_s waits for ever. An endpoint never
 * answers an ask (its callback has no way to): ask actors. On an error
 * return (LORE_EBADMSG as for lore_tell), cb never runs. */
typedef void (*lore_reply_cb)(void *ud, int status, const void *reply, size_t len);
LORE_EXTERN int lore_ask(lore_runtime *rt, const lore_ref *to, const void *msg, size_t len,
                         double timeout_s, lore_reply_cb cb, void *ud);

/* A host endpoint: a ref whose messages reach `cb` on the host loop, e.g. one
 * per client connection, handed to actors inside a message (lore_ref_pack).
 * It lives until lore_endpoint_close or the shutdown. */
typedef void (*lore_message_cb)(void *ud, const void *msg, size_t len);
LORE_EXTERN int lore_endpoint(lore_runtime *rt, lore_message_cb cb, void *ud, lore_ref **out);
/* After this returns, `cb` of that endpoint never runs again; messages to it
 * become dead letters (an ask to it gets LORE_EDEADLETTER). UV_ENOENT if it
 * is not open. The ref itself stays the caller's. */
LORE_EXTERN int lore_endpoint_close(lore_runtime *rt, const lore_ref *endpoint);

/* Runs the private loop until the runtime has shut down (cfg.loop == NULL
 * only; UV_EINVAL otherwise). */
LORE_EXTERN int lore_run(lore_runtime *rt);

/* Stops every actor safely and flushes the journal; `done` runs on the host
 * loop when all is finished, after which Lore holds no active handle on that
 * loop (the host's uv_run can return); then lore_close frees everything.
 * Bounded in time: actors still running after cfg.shutdown_timeout are
 * stopped by force (a runaway handler is interrupted); a worker stuck in C
 * code after that is abandoned (lore_shutdown_status then says so). Calling
 * it again while it runs is harmless (the first `done` given is the one that
 * runs); once the runtime is down, `done` runs at once, inside the call. */
LORE_EXTERN int lore_shutdown(lore_runtime *rt, void (*done)(void *ud), void *ud);
/* After `done`: 0 for a clean shutdown, LORE_ETIMEDOUT if actors had to be
 * stopped by force, UV_EBUSY if a worker thread had to be abandoned. */
LORE_EXTERN int lore_shutdown_status(const lore_runtime *rt);
/* Frees the runtime (after lore_shutdown's `done`, or shuts down first,
 * waiting, if that was not done). */
LORE_EXTERN void lore_close(lore_runtime *rt);

/* What a code returned by any lore_ call (or given to a callback) means. */
LORE_EXTERN const char *lore_strerror(int code);

/* The library's version, e.g. "0.2.0". */
LORE_EXTERN const char *lore_version(void);

/* The `lore` Lua module (require "lore"): what `lore run` scripts use. */
LORE_EXTERN int luaopen_lore(lua_State *L);

#ifdef __cplusplus
}
#endif

#endif
