/* query.h: the host side of queries and projections: reads on libuv's thread pool, live readers. */
#ifndef LORE_QUERY_H
#define LORE_QUERY_H

#include <lua.h>
#include <stdint.h>

#include "journal.h"
#include "runtime_object.h"

/*
 * Queries (lore.query.*) and projections (lore.projection) are the
 * application's: they run on the host loop, and every journal read or
 * projection transaction is a job on libuv's thread pool, so neither the
 * schedulers nor the host loop ever wait on the database. One query_state
 * per runtime (lore_runtime.queries), made on first use, on the host thread.
 *
 * Live readers: one journal subscription for the whole runtime, taken when
 * the first live reader reaches the end of what is stored. The journal's
 * writer thread stores the highest committed offset and wakes the host loop
 * (a uv_async); every reader waiting with an older offset reads again.
 * Nothing polls.
 *
 * Shutdown (query_shutdown, from the runtime's finish, before the journal
 * closes): no job starts any more; the jobs already inside the journal are
 * waited for (a page read or one transaction); projection sessions close;
 * the completions still due run on the host loop before the runtime is down,
 * without calling into Lua.
 */
typedef struct query_state query_state;
typedef struct qjob qjob;

struct qjob {
  uv_work_t work;
  query_state *qs;
  int status;                        /* the job's result, set by run */
  void (*run)(qjob *j);              /* on the thread pool: may use the journal */
  void (*done)(qjob *j, int status); /* on the host loop; frees the job. status is
                                        JOURNAL_ECLOSED when the runtime closed first */
};

/* The runtime's query state, made on first use (host thread); NULL when out
 * of memory. */
query_state *query_state_of(lore_runtime *lrt);
lore_runtime *query_runtime(query_state *qs);
/* Whether the runtime is shutting down: completions must not call Lua. */
int query_closing(query_state *qs);
/* Queues a job: 0, or a negative code (then `done` never runs). */
int qjob_start(query_state *qs, qjob *j);

/* Live readers: the highest offset the journal told of (0: none yet), and
 * a subscription taken on first need: 1 if it was taken just now (the
 * caller reads once more: a commit between its last read and now was not
 * told), 0 if it was there already, or a negative code. */
int64_t query_latest(query_state *qs);
int query_subscribe(query_state *qs);
/* Called for every change of `latest` on the host loop. */
typedef struct query_waiter {
  void (*wake)(struct query_waiter *w, int64_t latest);
  struct query_waiter *next;
  int listed;
} query_waiter;
void query_wait_add(query_state *qs, query_waiter *w);
void query_wait_remove(query_state *qs, query_waiter *w);

/* Something that must be released before the journal closes (a projection
 * session): close(item) runs at shutdown after the last job. */
typedef struct query_closer {
  void (*close)(struct query_closer *c);
  struct query_closer *prev, *next;
  int listed;
} query_closer;
void query_closer_add(query_state *qs, query_closer *c);
void query_closer_remove(query_state *qs, query_closer *c);

/* lore.adapter was called: pages of queries go through a worker's
 * from_journal adapters. */
void query_set_app_adapters(query_state *qs);
/* Whether query pages must be passed through adapters (lore.adapter was
 * called, or a scripts directory has an `adapters` folder). */
int query_adapting(query_state *qs);
/* The worker the next adaptation goes to (round robin). */
uint32_t query_next_worker(query_state *qs);

/* runtime_object.c: before the journal closes. Returns 1 if something is
 * still closing on the host loop (then `closed` runs when it is done), 0
 * if not. */
int query_shutdown(lore_runtime *lrt, void (*closed)(lore_runtime *lrt));
void query_free(lore_runtime *lrt);

/* lore_module.c: adds query, adapter, projection and projection_reset to the
 * `lore` table on top of the stack. */
void query_module_open(lua_State *L);

#endif
