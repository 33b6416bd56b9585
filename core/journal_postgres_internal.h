/* journal_postgres_internal.h: what the PostgreSQL backend's files share (not for callers). */
#ifndef LORE_JOURNAL_POSTGRES_INTERNAL_H
#define LORE_JOURNAL_POSTGRES_INTERNAL_H

#include <libpq-fe.h>
#include <pthread.h>
#include <stdint.h>

#include "idmap.h"
#include "journal.h"
#include "journal_seqmap.h"
#include "log.h"

/* Type oids of the binary parameters Lore sends (pg_type.h, stable across versions). */
enum {
  PG_OID_BOOL = 16,
  PG_OID_BYTEA = 17,
  PG_OID_INT8 = 20,
  PG_OID_INT4 = 23,
  PG_OID_TEXT = 25,
  PG_OID_FLOAT8 = 701,
  PG_OID_INT4_ARRAY = 1007,
  PG_OID_TEXT_ARRAY = 1009,
  PG_OID_BYTEA_ARRAY = 1001,
  PG_OID_INT8_ARRAY = 1016,
};

#define PG_DEFAULT_POOL 4
#define PG_MAX_POOL 256

/* ---- journal_postgres_conn.c: URIs, connections, errors, binary parameters ---- */

/* What a "postgres:" URI names. */
typedef struct pg_target {
  char *conninfo; /* what libpq gets */
  char *schema;   /* `schema=`: tables go there (created on first use); NULL: search_path's */
  int pool_size;  /* `pool=`: read connections */
  int read_only;  /* `mode=ro` */
} pg_target;

/* Splits "CONNINFO?params": Lore's parameters go into t, the others are handed to
 * libpq, which must accept the result (else JOURNAL_EURI, with libpq's reason
 * logged). With `opt` (journals), `mode=ro|rw` is accepted too, and opt gets
 * the read_only and pool_size applied. */
int pg_target_parse(const char *path, journal_options *opt, int pool_default, const log_sink *log,
                    pg_target *t);
void pg_target_free(pg_target *t);

/* Connects and points search_path at the target's schema. *out is NULL on
 * error (JOURNAL_EIO, the reason logged with `what`). */
int pg_connect(const pg_target *t, const log_sink *log, const char *what, PGconn **out);

/* The JOURNAL_E* code of a failed result (by SQLSTATE); 0 for a success. */
int pg_result_code(const PGresult *r);
/* Runs SQL without parameters (several statements allowed); logs a failure.
 * Returns 0 or a JOURNAL_E* code. */
int pg_exec(PGconn *c, const log_sink *log, const char *sql);
/* Runs a prepared or plain statement with binary parameters and returns its
 * result (the caller PQclear's it), or NULL with *err set (logged). */
PGresult *pg_run(PGconn *c, const log_sink *log, const char *stmt_or_sql, int prepared, int n,
                 const char *const *values, const int *lengths, const int *formats, int *err);
/* Prepares a statement on c; 0 or a JOURNAL_E* code. */
int pg_prepare(PGconn *c, const log_sink *log, const char *name, const char *sql, int n,
               const Oid *types);

/* Whether s (len bytes) is valid UTF-8 without NUL: PostgreSQL's text takes nothing else. */
int pg_utf8_valid(const char *s, size_t len);

/* Big-endian readers for binary results. */
int64_t pg_get_i64(const char *p);
int32_t pg_get_i32(const char *p);
/* An int8 (or int4) column of a binary result, by its length. */
int64_t pg_get_int(const PGresult *r, int row, int col);

/* A growable byte buffer, for binary parameters (arrays of many rows). */
typedef struct pg_buf {
  char *data;
  size_t len, cap;
  int32_t elems; /* array element count (pg_array_*) */
  int oom;
} pg_buf;

void pg_buf_reset(pg_buf *b);
void pg_buf_free(pg_buf *b);
void pg_buf_put(pg_buf *b, const void *p, size_t n);
void pg_buf_put_i32(pg_buf *b, int32_t v);
void pg_buf_put_i64(pg_buf *b, int64_t v);
/* A one-dimensional array of elem_oid in PostgreSQL's binary format: begin,
 * one add per element, end (writes the count). */
void pg_array_begin(pg_buf *b, Oid elem_oid);
void pg_array_bytes(pg_buf *b, const void *p, size_t n);
void pg_array_i64(pg_buf *b, int64_t v);
void pg_array_i32(pg_buf *b, int32_t v);
void pg_array_end(pg_buf *b);

/* A 64-bit key for an advisory lock, from the schema and a name. */
int64_t pg_lock_key(const char *schema, const char *name);

/* ---- journal_postgres_schema.c ---- */

enum { PG_COMPONENT_JOURNAL = 0, PG_COMPONENT_SNAPSHOTS = 1 };

/* Creates the schema (if `schema=` named one) and the component's tables, or
 * migrates them from an older Lore, under an advisory lock (two processes may
 * open a new database at once). Read-only: checks only (JOURNAL_ENOENT when
 * nothing is there, JOURNAL_ENOTLORE for foreign tables or an older schema).
 * A newer Lore's schema is JOURNAL_ENOTSUP. */
int pg_schema_prepare(PGconn *c, const log_sink *log, const char *schema, int component,
                      int read_only);

/* ---- the journal's state ---- */

typedef struct pg_reader {
  PGconn *conn;
  /* The last page read, freed when the next one has arrived: freeing each
   * result before the next is allocated makes malloc give the memory back
   * and take it again every page (brk/munmap and a TLB flush each time). */
  PGresult *last;
  struct pg_reader *next;
} pg_reader;

/* This process's lease on one id, taken on the writer's connection. */
typedef struct pg_lease {
  char *id;
  int64_t key;         /* the advisory lock */
  int count;           /* LEASEs minus UNLEASEs (a stop and a restart may overlap) */
  uint64_t generation; /* the writer connection it was taken on */
} pg_lease;

/* A LEASE that waits (seq 1) for another process to let go. */
typedef struct pg_lease_waiter {
  journal_write *w; /* the caller's: completed by the lease thread */
  struct pg_lease_waiter *next;
} pg_lease_waiter;

typedef struct pg_listener pg_listener;

typedef struct pg_state {
  pg_target target;
  const log_sink *log;
  char *channel;     /* LISTEN/NOTIFY channel: one per schema */
  uint64_t instance; /* in this journal's notifications, so it ignores its own */

  /* Read connections: at most target.pool_size, made when needed. */
  pthread_mutex_t pool_mu;
  pthread_cond_t pool_cv;
  pg_reader *idle;
  int readers; /* open (idle or in use) */
  int sessions;

  /* The writer's connection and everything below: the writer thread's, and
   * the lease thread's between batches, under wmu. */
  pthread_mutex_t wmu;
  PGconn *wconn;
  uint64_t generation; /* bumped at every (re)connect: older leases are lost */
  seqmap highest;      /* id -> highest seq (-1: read it again) */
  idmap leases;        /* id -> pg_lease */
  pg_buf arrays[12];   /* a batch's parameters */
  pg_lease_waiter *waiters;
  /* Stands in the journal's batch for a waiting LEASE (see add_waiter). */
  journal_write parked;
  int lease_thread_started, lease_stop;
  pthread_t lease_thread;
  pthread_cond_t lease_cv;

  pg_listener *listener;
  pthread_mutex_t notify_mu;
  void (*notify_fn)(void *ud, int64_t max_offset);
  void *notify_ud;
} pg_state;

/* journal_postgres_write.c */
int pg_writer_open(pg_state *s);
void pg_writer_close(pg_state *s);
int pg_write_batch(void *state, journal_write **writes, size_t n);
/* (Re)connects the writer when its connection is gone; 0 or JOURNAL_EIO. wmu held. */
int pg_writer_connection(pg_state *s);

/* journal_postgres_lease.c (wmu held unless said otherwise) */
/* Before the batch's transaction: its LEASEs. A waiting one is taken out of
 * `writes` (its slot then points to s->parked). */
void pg_leases_take(pg_state *s, journal_write **writes, size_t n);
/* After it: its UNLEASEs. */
void pg_leases_give(pg_state *s, journal_write **writes, size_t n);
/* JOURNAL_EFENCED if this process held a lease on id and lost it. */
int pg_lease_check(pg_state *s, const char *id);
/* Closing (wmu not held): waiting LEASEs fail with JOURNAL_ECLOSED; the
 * lease records are freed (the locks go with the writer's connection). */
void pg_leases_close(pg_state *s);

/* journal_postgres_notify.c */
void pg_set_notify(void *state, void (*fn)(void *ud, int64_t max_offset), void *ud);
void pg_subscribers_changed(void *state, int delta);
void pg_notify_stop(pg_state *s);

/* journal_postgres.c: the reader pool */
pg_reader *pg_reader_get(pg_state *s, int *err);
void pg_reader_put(pg_state *s, pg_reader *r);

/* journal_postgres_session.c */
int pg_session_open(void *state, void **session);
int pg_session_begin(void *session);
int pg_session_exec(void *session, const char *sql, const journal_value *params, size_t n,
                    journal_row_cb cb, void *ud);
const char *pg_session_errmsg(void *session);
int pg_session_get_offset(void *session, const char *name, int64_t *offset);
int pg_session_set_offset(void *session, const char *name, int64_t offset);
int pg_session_commit(void *session);
int pg_session_rollback(void *session);
void pg_session_close(void *session);

#endif
