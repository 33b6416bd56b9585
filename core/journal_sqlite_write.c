/* journal_sqlite_write.c: the sqlite journal's writer: one transaction per batch, offsets, deletes.
 */
#include <stdlib.h>
#include <string.h>

#include "journal_sqlite.h"
#include "journal_sqlite_internal.h"

int sq_writer_prepare(sq_state *s) {
  struct {
    const char *sql;
    sqlite3_stmt **st;
  } stmts[] = {
      {"BEGIN IMMEDIATE", &s->begin},
      {"COMMIT", &s->commit},
      {"ROLLBACK", &s->rollback},
      {"SAVEPOINT w", &s->savepoint},
      {"RELEASE w", &s->release},
      {"ROLLBACK TO w", &s->rollback_to},
      {journal_sqlite_insert_event, &s->insert_event},
      {"INSERT OR IGNORE INTO event_tags(tag, \"offset\") VALUES (?1, ?2)", &s->insert_tag},
      /* One seek to the last row of the table. */
      {"SELECT max(\"offset\") FROM events", &s->max_rowid},
      /* Index seeks only: the last entry of the id in (id, seq), and its deletions row. */
      {"SELECT coalesce((SELECT max(seq) FROM events WHERE id = ?1), 0),"
       " coalesce((SELECT highest FROM deletions WHERE id = ?1), 0),"
       " coalesce((SELECT deleted_to FROM deletions WHERE id = ?1), 0)",
       &s->load_bounds},
      {"SELECT \"offset\", tags FROM events WHERE id = ?1 AND seq <= ?2 AND tags <> ''",
       &s->tagged_to_delete},
      {"DELETE FROM event_tags WHERE tag = ?1 AND \"offset\" = ?2", &s->delete_tag},
      {"DELETE FROM events WHERE id = ?1 AND seq <= ?2", &s->delete_events},
      {"INSERT INTO deletions(id, highest, deleted_to) VALUES (?1, ?2, ?3)"
       " ON CONFLICT(id) DO UPDATE SET highest = max(highest, excluded.highest),"
       " deleted_to = max(deleted_to, excluded.deleted_to)",
       &s->upsert_deletion},
      {"INSERT INTO journal_info(key, value) VALUES ('offset_high_water', ?1)"
       " ON CONFLICT(key) DO UPDATE SET value = max(value, excluded.value)",
       &s->set_high_water},
  };
  int rc = SQLITE_OK;
  for (size_t i = 0; rc == SQLITE_OK && i < sizeof stmts / sizeof stmts[0]; i++)
    rc = sq_prepare(s->log, s->db, stmts[i].sql, stmts[i].st);
  if (rc != SQLITE_OK) return sq_map_err(rc);

  sqlite3_stmt *st;
  rc = sq_prepare(s->log, s->db, "SELECT value FROM journal_info WHERE key = 'offset_high_water'",
                  &st);
  if (rc != SQLITE_OK) return sq_map_err(rc);
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) s->high_water = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : sq_map_err(rc);
}

void sq_writer_finalize(sq_state *s) {
  sqlite3_stmt *stmts[] = {s->begin,         s->commit,          s->rollback,         s->savepoint,
                           s->release,       s->rollback_to,     s->insert_event,     s->insert_tag,
                           s->max_rowid,     s->load_bounds,     s->tagged_to_delete, s->delete_tag,
                           s->delete_events, s->upsert_deletion, s->set_high_water};
  for (size_t i = 0; i < sizeof stmts / sizeof stmts[0]; i++) sqlite3_finalize(stmts[i]);
}

/* Runs a statement that returns no rows and resets it. Returns the step code. */
static int run(sqlite3_stmt *st) {
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  return rc;
}

static int bind_text(sqlite3_stmt *st, int i, const char *s) {
  return sqlite3_bind_text(st, i, s ? s : "", -1, SQLITE_STATIC);
}

/* The stored bounds of `id` (inside the batch's transaction). Returns
 * SQLITE_ROW or the failing step's code. */
static int load_bounds(sq_state *s, const char *id, int64_t *highest, int64_t *deleted_to) {
  sqlite3_bind_text(s->load_bounds, 1, id, -1, SQLITE_STATIC);
  int rc = sqlite3_step(s->load_bounds);
  if (rc == SQLITE_ROW) {
    int64_t stored = sqlite3_column_int64(s->load_bounds, 0);
    int64_t kept = sqlite3_column_int64(s->load_bounds, 1);
    *highest = stored > kept ? stored : kept;
    *deleted_to = sqlite3_column_int64(s->load_bounds, 2);
  }
  sqlite3_reset(s->load_bounds);
  return rc;
}

/* The map's entry for id, loaded from the database the first time. NULL with
 * *rc set when the query fails or memory runs out. */
static seqmap_entry *highest_of(sq_state *s, const char *id, int *rc) {
  uint64_t hash = seqmap_hash(id);
  seqmap_entry *e = seqmap_find(&s->highest, id, hash);
  if (e) return e;
  int64_t highest = 0, deleted_to = 0;
  *rc = load_bounds(s, id, &highest, &deleted_to);
  if (*rc != SQLITE_ROW) return NULL;
  e = seqmap_add(&s->highest, id, hash, highest);
  if (!e) *rc = SQLITE_NOMEM;
  return e;
}

/* Inserts one event_tags row per tag ('\n'-joined, none empty). */
static int store_tags(sq_state *s, const char *tags, int64_t offset) {
  for (const char *p = tags; *p;) {
    const char *end = strchr(p, '\n');
    int len = end ? (int)(end - p) : (int)strlen(p);
    sqlite3_bind_text(s->insert_tag, 1, p, len, SQLITE_STATIC);
    sqlite3_bind_int64(s->insert_tag, 2, offset);
    int rc = run(s->insert_tag);
    if (rc != SQLITE_DONE) return rc;
    if (!end) break;
    p = end + 1;
  }
  return SQLITE_DONE;
}

/* Stores a write's events, or refuses it with JOURNAL_ECONFLICT (w->status)
 * when its first seq does not continue the id's stream: that is known from
 * the map, without touching the database. Returns SQLITE_DONE or the failing
 * statement's code. */
static int store_events(sq_state *s, journal_write *w) {
  journal_event *first = &w->events[0];
  int rc = SQLITE_DONE;
  seqmap_entry *e = highest_of(s, first->id, &rc);
  if (!e) return rc;
  if (first->seq != e->highest + 1) {
    w->status = JOURNAL_ECONFLICT;
    return SQLITE_DONE;
  }
  sqlite3_stmt *st = s->insert_event;
  for (size_t i = 0; i < w->count; i++) {
    journal_event *ev = &w->events[i];
    ev->offset = s->next_offset++;
    sqlite3_bind_int64(st, 1, ev->offset);
    bind_text(st, 2, ev->id);
    sqlite3_bind_int64(st, 3, ev->seq);
    bind_text(st, 4, ev->manifest);
    sqlite3_bind_int(st, 5, ev->version);
    bind_text(st, 6, ev->tags);
    sqlite3_bind_int64(st, 7, ev->writer);
    sqlite3_bind_int64(st, 8, ev->timestamp_ms);
    /* A NULL pointer would bind SQL NULL; an empty payload is an empty blob. */
    sqlite3_bind_blob(st, 9, ev->payload_len ? ev->payload : "", (int)ev->payload_len,
                      SQLITE_STATIC);
    sqlite3_bind_int64(st, 10, ev->crc32c);
    rc = run(st);
    if (rc != SQLITE_DONE) return rc;
    if (ev->tags && ev->tags[0] && (rc = store_tags(s, ev->tags, ev->offset)) != SQLITE_DONE)
      return rc;
  }
  seqmap_set(&s->highest, e, w->events[w->count - 1].seq);
  return SQLITE_DONE;
}

/* Deletes the events of w->id up to w->seq (clamped to the highest seq) with
 * their tag rows, and records deleted_to. An unknown id records nothing. */
static int store_delete(sq_state *s, journal_write *w) {
  int rc = SQLITE_DONE;
  seqmap_entry *e = highest_of(s, w->id, &rc);
  if (!e) return rc;
  if (e->highest == 0) return SQLITE_DONE;
  int64_t to = w->seq < e->highest ? w->seq : e->highest, stored = 0, deleted_to = 0;
  rc = load_bounds(s, w->id, &stored, &deleted_to);
  if (rc != SQLITE_ROW) return rc;
  if (to <= deleted_to) return SQLITE_DONE;

  sqlite3_stmt *sel = s->tagged_to_delete;
  sqlite3_bind_text(sel, 1, w->id, -1, SQLITE_STATIC);
  sqlite3_bind_int64(sel, 2, to);
  while ((rc = sqlite3_step(sel)) == SQLITE_ROW) {
    int64_t offset = sqlite3_column_int64(sel, 0);
    const char *tags = (const char *)sqlite3_column_text(sel, 1);
    for (const char *p = tags; p && *p && rc == SQLITE_ROW;) {
      const char *end = strchr(p, '\n');
      int len = end ? (int)(end - p) : (int)strlen(p);
      sqlite3_bind_text(s->delete_tag, 1, p, len, SQLITE_STATIC);
      sqlite3_bind_int64(s->delete_tag, 2, offset);
      int drc = run(s->delete_tag);
      if (drc != SQLITE_DONE) rc = drc;
      p = end ? end + 1 : NULL;
    }
    if (rc != SQLITE_ROW) break;
  }
  sqlite3_reset(sel);
  if (rc != SQLITE_DONE) return rc;

  sqlite3_bind_text(s->delete_events, 1, w->id, -1, SQLITE_STATIC);
  sqlite3_bind_int64(s->delete_events, 2, to);
  rc = run(s->delete_events);
  if (rc != SQLITE_DONE) return rc;
  /* If these were the newest rows, max(offset) falls back: the high-water
   * mark, stored with the batch, keeps their offsets from being given again. */
  if (sqlite3_changes(s->db) > 0) s->batch_deleted = 1;
  sqlite3_bind_text(s->upsert_deletion, 1, w->id, -1, SQLITE_STATIC);
  sqlite3_bind_int64(s->upsert_deletion, 2, e->highest);
  sqlite3_bind_int64(s->upsert_deletion, 3, to);
  return run(s->upsert_deletion);
}

/* One request of the batch (validated). Returns SQLITE_DONE or the failing
 * statement's code; a refusal that is the request's own is in w->status. */
static int store_write(sq_state *s, journal_write *w) {
  switch (w->kind) {
    case JOURNAL_WRITE_EVENTS:
      return w->count ? store_events(s, w) : SQLITE_DONE;
    case JOURNAL_WRITE_DELETE:
      return store_delete(s, w);
    default:
      return SQLITE_DONE; /* leases: this process holds the file's lock */
  }
}

/* A failed statement's code as a write status: a clash with stored rows is the
 * write's own fault; anything else fails the transaction (returns 0). */
static int write_error(int rc) {
  if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY)
    return JOURNAL_ECONFLICT;
  if ((rc & 0xff) == SQLITE_CONSTRAINT || (rc & 0xff) == SQLITE_TOOBIG) return JOURNAL_EREJECTED;
  return 0;
}

static int fail_batch(sq_state *s, journal_write **writes, size_t n, int rc, const char *what) {
  log_error(s->log, "journal sqlite: %s failed (%d): %s", what, rc, sqlite3_errmsg(s->db));
  if (!sqlite3_get_autocommit(s->db)) run(s->rollback);
  seqmap_rollback(&s->highest);
  int status = (rc & 0xff) == SQLITE_READONLY ? JOURNAL_EREADONLY : JOURNAL_EIO;
  for (size_t i = 0; i < n; i++) writes[i]->status = status;
  return status;
}

/* BEGIN, and the first offset of the batch: after the last row, and after
 * every offset ever given (the newest rows may have been deleted). */
static int begin_batch(sq_state *s, journal_write **writes, size_t n) {
  seqmap_trim(&s->highest);
  if (seqmap_begin(&s->highest, n) < 0) return fail_batch(s, writes, n, SQLITE_NOMEM, "batch");
  int rc = run(s->begin);
  if (rc != SQLITE_DONE) return fail_batch(s, writes, n, rc, "BEGIN");
  sq_walspace_reserve(s);
  rc = sqlite3_step(s->max_rowid);
  int64_t last = rc == SQLITE_ROW ? sqlite3_column_int64(s->max_rowid, 0) : 0;
  sqlite3_reset(s->max_rowid);
  if (rc != SQLITE_ROW) return fail_batch(s, writes, n, rc, "max(offset)");
  s->next_offset = (last > s->high_water ? last : s->high_water) + 1;
  s->batch_deleted = 0;
  return 0;
}

static int commit_batch(sq_state *s, journal_write **writes, size_t n) {
  int64_t high_water = s->next_offset - 1;
  int rc;
  if (s->batch_deleted) {
    sqlite3_bind_int64(s->set_high_water, 1, high_water);
    rc = run(s->set_high_water);
    if (rc != SQLITE_DONE) return fail_batch(s, writes, n, rc, "offset high-water mark");
  }
  rc = run(s->commit);
  if (rc != SQLITE_DONE) return fail_batch(s, writes, n, rc, "COMMIT");
  seqmap_commit(&s->highest);
  if (s->batch_deleted && high_water > s->high_water) s->high_water = high_water;
  return 0;
}

/* One transaction; each write inside its own savepoint, so a write that clashes
 * with stored rows is undone alone while its neighbours commit. */
static int write_batch_savepoints(sq_state *s, journal_write **writes, size_t n) {
  int err = begin_batch(s, writes, n);
  if (err < 0) return err;
  for (size_t i = 0; i < n; i++) {
    journal_write *w = writes[i];
    w->status = journal_write_validate(w);
    if (w->status < 0) continue;
    int rc = run(s->savepoint);
    if (rc != SQLITE_DONE) return fail_batch(s, writes, n, rc, "SAVEPOINT");
    int64_t next_offset = s->next_offset;
    rc = store_write(s, w);
    if (rc != SQLITE_DONE) {
      w->status = write_error(rc);
      /* Some errors (I/O, full disk, RAISE(ROLLBACK)) end the transaction
       * itself: then nothing of the batch is stored. */
      if (w->status == 0 || sqlite3_get_autocommit(s->db))
        return fail_batch(s, writes, n, rc, "write");
      rc = run(s->rollback_to);
      if (rc != SQLITE_DONE) return fail_batch(s, writes, n, rc, "ROLLBACK TO");
      s->next_offset = next_offset;
    }
    rc = run(s->release);
    if (rc != SQLITE_DONE) return fail_batch(s, writes, n, rc, "RELEASE");
  }
  return commit_batch(s, writes, n);
}

/* The common case first: the whole batch without savepoints (two statements
 * less per write, which is most of the writer's work for small events). If
 * one write clashes with stored rows, that transaction is rolled back and the
 * batch is written again with a savepoint per write, so the clash still fails
 * alone. A write refused by the map never reaches the database, so it costs
 * no second pass. */
static int write_batch(sq_state *s, journal_write **writes, size_t n) {
  int err = begin_batch(s, writes, n);
  if (err < 0) return err;
  for (size_t i = 0; i < n; i++) {
    journal_write *w = writes[i];
    w->status = journal_write_validate(w);
    if (w->status < 0) continue;
    int rc = store_write(s, w);
    if (rc != SQLITE_DONE) {
      if (write_error(rc) == 0 || sqlite3_get_autocommit(s->db))
        return fail_batch(s, writes, n, rc, "write");
      seqmap_rollback(&s->highest);
      rc = run(s->rollback);
      if (rc != SQLITE_DONE) return fail_batch(s, writes, n, rc, "ROLLBACK");
      return write_batch_savepoints(s, writes, n);
    }
  }
  return commit_batch(s, writes, n);
}

int sq_write_batch(void *state, journal_write **writes, size_t n) {
  sq_state *s = state;
  int rc = write_batch(s, writes, n);
  seqmap_trim(&s->highest); /* between batches: the map's bound */
  if (rc == 0 && s->checkpointer)
    sq_checkpointer_restart(s->checkpointer, s->db, s->busy_timeout_ms);
  /* Offsets are only meaningful on stored events. */
  for (size_t i = 0; i < n; i++) {
    journal_write *w = writes[i];
    if (w->kind == JOURNAL_WRITE_EVENTS && w->status != 0 && w->events)
      for (size_t k = 0; k < w->count; k++) w->events[k].offset = 0;
  }
  return rc;
}
