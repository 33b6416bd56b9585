/* journal_sqlite_checkpoint.c: WAL checkpoints on a thread of their own, off the writer's path. */
#include <stdlib.h>

#include "journal_sqlite_internal.h"

/*
 * SQLite checkpoints on the committing connection by default: every 1000 WAL
 * pages one commit also copies the WAL into the database and syncs it, which
 * was 13% of the writer thread's time. Here the write connection only tells
 * this thread (through its WAL hook) how long the WAL is; the thread runs
 * PASSIVE checkpoints, which never block the writer or readers.
 *
 * SQLite starts the WAL over from its beginning only when a write finds it
 * entirely copied into the database. A passive checkpoint copies the WAL
 * while the writer keeps appending, so under steady writes that rarely
 * happens and the WAL keeps growing (and a growing file makes every fsync
 * dearer than one that overwrites). So once a passive checkpoint has copied
 * the WAL, the writer runs a RESTART checkpoint after its next commit
 * (sq_checkpointer_restart): it only copies the frames of the last batch or
 * two and waits, briefly, for readers of old frames; the next write then
 * starts the WAL over. The writer could not write during it anyway: a
 * RESTART holds writers back while it runs. Past RESTART_PAGES (passive
 * checkpoints kept failing) the writer tries it at every commit.
 */
#define CHECKPOINT_PAGES 2000 /* about 8 MB of 4 KB pages */
#define RESTART_PAGES (4 * CHECKPOINT_PAGES)
/* How long a RESTART waits for readers (and a running passive checkpoint). */
#define RESTART_BUSY_MS 1000

struct sq_checkpointer {
  sq_state *s;
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int stop;        /* mu */
  int requested;   /* atomic: a wake-up is pending */
  int pages;       /* atomic: the WAL's length after the last commit */
  int restart_due; /* atomic: a passive checkpoint copied the WAL: restart it */
  sqlite3 *db;     /* the thread's own connection */
};

static int on_wal_commit(void *ud, sqlite3 *db, const char *name, int pages) {
  (void)db, (void)name;
  sq_checkpointer *ck = ud;
  __atomic_store_n(&ck->pages, pages, __ATOMIC_RELEASE);
  /* Nothing to ask while a checkpoint runs or the writer is to restart the WAL. */
  if (pages < CHECKPOINT_PAGES || __atomic_load_n(&ck->requested, __ATOMIC_ACQUIRE) ||
      __atomic_load_n(&ck->restart_due, __ATOMIC_ACQUIRE))
    return SQLITE_OK;
  pthread_mutex_lock(&ck->mu);
  __atomic_store_n(&ck->requested, 1, __ATOMIC_RELEASE);
  pthread_cond_signal(&ck->cv);
  pthread_mutex_unlock(&ck->mu);
  return SQLITE_OK;
}

int sq_checkpointer_frames(sq_checkpointer *ck) {
  return __atomic_load_n(&ck->pages, __ATOMIC_ACQUIRE);
}

void sq_checkpointer_watch(sq_checkpointer *ck, sqlite3 *db) {
  /* Replaces the automatic checkpoint (itself a WAL hook) on this connection. */
  sqlite3_wal_hook(db, on_wal_commit, ck);
}

void sq_checkpointer_restart(sq_checkpointer *ck, sqlite3 *db, int busy_timeout_ms) {
  if (!__atomic_load_n(&ck->restart_due, __ATOMIC_ACQUIRE) &&
      __atomic_load_n(&ck->pages, __ATOMIC_ACQUIRE) < RESTART_PAGES)
    return;
  sq_state *s = ck->s;
  int log_frames = 0, done_frames = 0;
  sqlite3_busy_timeout(db, RESTART_BUSY_MS);
  int rc =
      sqlite3_wal_checkpoint_v2(db, "main", SQLITE_CHECKPOINT_RESTART, &log_frames, &done_frames);
  sqlite3_busy_timeout(db, busy_timeout_ms);
  if (rc == SQLITE_OK) {
    /* Until the next commit says otherwise: no second RESTART before it. */
    __atomic_store_n(&ck->pages, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&ck->restart_due, 0, __ATOMIC_RELEASE);
    log_debug(s->log, "journal sqlite: restart checkpoint: %d of %d WAL frames", done_frames,
              log_frames);
  } else if ((rc & 0xff) != SQLITE_BUSY) {
    /* BUSY: readers held on; the next commit tries again. */
    log_warn(s->log, "journal sqlite: checkpoint of %s: %s", s->path, sqlite3_errmsg(db));
  }
}

static void checkpoint(sq_checkpointer *ck) {
  sq_state *s = ck->s;
  if (!ck->db) {
    if (sq_open_conn(s->log, s->path, SQLITE_OPEN_READWRITE, RESTART_BUSY_MS, &ck->db) != SQLITE_OK)
      return;
    /* A checkpoint syncs the database file as the journal's setting says. */
    sq_exec(s->log, ck->db,
            s->synchronous_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
  }
  /* Passes until one had little to copy (the writer appended it during the
   * pass before): what is left for the writer's RESTART is smaller still. */
  int copied_to = 0;
  for (int pass = 0; pass < 4; pass++) {
    int log_frames = 0, done_frames = 0;
    int rc = sqlite3_wal_checkpoint_v2(ck->db, "main", SQLITE_CHECKPOINT_PASSIVE, &log_frames,
                                       &done_frames);
    if (rc != SQLITE_OK) {
      if ((rc & 0xff) != SQLITE_BUSY) /* BUSY: the writer's RESTART runs */
        log_warn(s->log, "journal sqlite: checkpoint of %s: %s", s->path, sqlite3_errmsg(ck->db));
      return;
    }
    log_debug(s->log, "journal sqlite: passive checkpoint: %d of %d WAL frames", done_frames,
              log_frames);
    if (done_frames < log_frames) return; /* readers of old frames: the next request retries */
    int copied = log_frames - copied_to;
    copied_to = log_frames;
    if (pass > 0 && copied <= CHECKPOINT_PAGES / 8) break;
  }
  __atomic_store_n(&ck->restart_due, 1, __ATOMIC_RELEASE);
}

static void *checkpointer_main(void *arg) {
  sq_checkpointer *ck = arg;
  pthread_mutex_lock(&ck->mu);
  for (;;) {
    while (!ck->stop && !__atomic_load_n(&ck->requested, __ATOMIC_ACQUIRE))
      pthread_cond_wait(&ck->cv, &ck->mu);
    if (ck->stop) break;
    pthread_mutex_unlock(&ck->mu);
    checkpoint(ck);
    pthread_mutex_lock(&ck->mu);
    /* Cleared after the checkpoint: the commits meanwhile need no other. */
    __atomic_store_n(&ck->requested, 0, __ATOMIC_RELEASE);
  }
  pthread_mutex_unlock(&ck->mu);
  return NULL;
}

int sq_checkpointer_start(sq_state *s, sq_checkpointer **out) {
  sq_checkpointer *ck = calloc(1, sizeof *ck);
  if (!ck) return JOURNAL_ENOMEM;
  ck->s = s;
  if (pthread_mutex_init(&ck->mu, NULL) != 0) {
    free(ck);
    return JOURNAL_ENOMEM;
  }
  if (pthread_cond_init(&ck->cv, NULL) != 0) {
    pthread_mutex_destroy(&ck->mu);
    free(ck);
    return JOURNAL_ENOMEM;
  }
  int err = pthread_create(&ck->thread, NULL, checkpointer_main, ck);
  if (err != 0) {
    pthread_cond_destroy(&ck->cv);
    pthread_mutex_destroy(&ck->mu);
    free(ck);
    return JOURNAL_ENOMEM;
  }
  pthread_setname_np(ck->thread, "lore-checkpoint");
  *out = ck;
  return 0;
}

/* Before the write connection closes (its close checkpoints what is left). */
void sq_checkpointer_stop(sq_checkpointer *ck) {
  pthread_mutex_lock(&ck->mu);
  ck->stop = 1;
  pthread_cond_signal(&ck->cv);
  pthread_mutex_unlock(&ck->mu);
  pthread_join(ck->thread, NULL);
  if (ck->db) sqlite3_close(ck->db);
  pthread_cond_destroy(&ck->cv);
  pthread_mutex_destroy(&ck->mu);
  free(ck);
}
