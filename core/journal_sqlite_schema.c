/* journal_sqlite_schema.c: the sqlite journal's tables, their version, and migration from older
 * Lore. */
#include <stdlib.h>
#include <string.h>

#include "journal_sqlite.h"
#include "journal_sqlite_internal.h"

/*
 * Version 2.
 * - events: `offset` is the rowid, given explicitly by the writer (no
 *   AUTOINCREMENT: its sqlite_sequence update cost 29% per row). Appends
 *   touch the last pages only; the offset is the commit order replay_all and
 *   replay_tag read in. UNIQUE(id, seq) is the replay index and the last
 *   guard against duplicates. `writer` is the incarnation's random int64.
 * - event_tags: one row per tag of a tagged event (untagged events cost
 *   nothing here), for replay_tag in offset order.
 * - deletions: per id that had events deleted, its highest seq at that time
 *   (kept when every event is gone) and how far the events were deleted.
 *   Written by deletes only: a write costs no metadata row.
 * - journal_info: schema_version, and offset_high_water (the largest offset
 *   given, stored when a delete removes the newest rows, so offsets are not
 *   reused after a reopen).
 * - projection_offsets: each projection's offset, written in its own
 *   transaction with its tables.
 */
const char journal_sqlite_schema[] =
    "CREATE TABLE IF NOT EXISTS events("
    " \"offset\" INTEGER PRIMARY KEY,"
    " id TEXT NOT NULL, seq INTEGER NOT NULL, manifest TEXT NOT NULL, version INTEGER NOT NULL,"
    " tags TEXT NOT NULL, writer INTEGER NOT NULL, ts INTEGER NOT NULL, payload BLOB NOT NULL,"
    " crc INTEGER NOT NULL, UNIQUE(id, seq));"
    "CREATE TABLE IF NOT EXISTS event_tags("
    " tag TEXT NOT NULL, \"offset\" INTEGER NOT NULL, PRIMARY KEY(tag, \"offset\")) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS deletions("
    " id TEXT PRIMARY KEY, highest INTEGER NOT NULL, deleted_to INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS journal_info(key TEXT PRIMARY KEY, value) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS projection_offsets("
    " name TEXT PRIMARY KEY, \"offset\" INTEGER NOT NULL) WITHOUT ROWID;"
    "INSERT OR IGNORE INTO journal_info(key, value) VALUES ('schema_version', 2);";

const char journal_sqlite_insert_event[] =
    "INSERT INTO events(\"offset\", id, seq, manifest, version, tags, writer, ts, payload, crc)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";

/* Returns 1 if `table` exists, 0 if not, or a negative code. */
static int table_exists(sq_state *s, sqlite3 *db, const char *table) {
  sqlite3_stmt *st;
  int rc = sqlite3_prepare_v2(db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
                              -1, &st, NULL);
  if (rc != SQLITE_OK) {
    if ((rc & 0xff) != SQLITE_NOTADB)
      log_error(s->log, "journal sqlite: %s: %s", s->path, sqlite3_errmsg(db));
    return sq_map_err(rc);
  }
  sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
  rc = sqlite3_step(st);
  int out = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : sq_map_err(rc);
  if (out < 0 && (rc & 0xff) != SQLITE_NOTADB)
    log_error(s->log, "journal sqlite: %s: %s", s->path, sqlite3_errmsg(db));
  sqlite3_finalize(st);
  return out;
}

/* journal_info's schema_version; 0 when the row is missing. */
static int read_version(sq_state *s, sqlite3 *db, int64_t *version) {
  sqlite3_stmt *st;
  int rc =
      sq_prepare(s->log, db, "SELECT value FROM journal_info WHERE key = 'schema_version'", &st);
  if (rc != SQLITE_OK) return sq_map_err(rc);
  rc = sqlite3_step(st);
  *version = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
  int out = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : sq_map_err(rc);
  sqlite3_finalize(st);
  return out;
}

/* The old writer column held the incarnation's UUID as text; its first 64
 * bits become the new integer writer id (0 when it is not a UUID). */
static void uuid_to_writer(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void)argc;
  const unsigned char *t = sqlite3_value_text(argv[0]);
  uint64_t v = 0;
  int digits = 0;
  for (; t && *t && digits < 16; t++) {
    int d;
    if (*t >= '0' && *t <= '9')
      d = *t - '0';
    else if (*t >= 'a' && *t <= 'f')
      d = *t - 'a' + 10;
    else if (*t >= 'A' && *t <= 'F')
      d = *t - 'A' + 10;
    else if (*t == '-')
      continue;
    else
      break;
    v = v << 4 | (uint64_t)d;
    digits++;
  }
  sqlite3_result_int64(ctx, digits == 16 ? (sqlite3_int64)v : 0);
}

/* Inserts the event_tags rows of every tagged event (the old schema kept tags
 * only in the events row). */
static int migrate_tags(sq_state *s, sqlite3 *db) {
  sqlite3_stmt *sel = NULL, *ins = NULL;
  int rc = sq_prepare(s->log, db, "SELECT \"offset\", tags FROM events WHERE tags <> ''", &sel);
  if (rc == SQLITE_OK)
    rc = sq_prepare(s->log, db, "INSERT OR IGNORE INTO event_tags(tag, \"offset\") VALUES (?1, ?2)",
                    &ins);
  while (rc == SQLITE_OK && (rc = sqlite3_step(sel)) == SQLITE_ROW) {
    sqlite3_int64 off = sqlite3_column_int64(sel, 0);
    const char *tags = (const char *)sqlite3_column_text(sel, 1);
    rc = SQLITE_OK;
    for (const char *p = tags; rc == SQLITE_OK && p && *p;) {
      const char *end = strchr(p, '\n');
      int len = end ? (int)(end - p) : (int)strlen(p);
      if (len > 0) {
        sqlite3_bind_text(ins, 1, p, len, SQLITE_STATIC);
        sqlite3_bind_int64(ins, 2, off);
        rc = sqlite3_step(ins) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(db);
        sqlite3_reset(ins);
      }
      p = end ? end + 1 : NULL;
    }
  }
  if (rc == SQLITE_DONE) rc = SQLITE_OK;
  sqlite3_finalize(sel);
  sqlite3_finalize(ins);
  return rc;
}

/*
 * Version 1 (before journal_info): events with an AUTOINCREMENT offset and a
 * TEXT writer, journal_meta(id, highest_seq). Everything moves in one
 * transaction: every event with its offset, each id's highest seq (through
 * deletions for the ids whose stream does not reach it), and the largest
 * offset ever given (from sqlite_sequence). Version 1 deleted from the start
 * of a stream only, so an id whose first stored seq is m > 1 had 1..m-1
 * deleted, and one with no events left had all of them deleted.
 */
static int migrate_v1(sq_state *s, sqlite3 *db) {
  log_info(s->log, "journal sqlite: %s: migrating the schema of an older Lore to version %d",
           s->path, SQ_SCHEMA_VERSION);
  int rc = sqlite3_create_function(db, "lore_uuid_to_writer", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC,
                                   NULL, uuid_to_writer, NULL, NULL);
  if (rc == SQLITE_OK) rc = sq_exec(s->log, db, "BEGIN IMMEDIATE");
  if (rc != SQLITE_OK) return sq_map_err(rc);
  rc = sq_exec(s->log, db, "ALTER TABLE events RENAME TO events_v1");
  if (rc == SQLITE_OK) rc = sq_exec(s->log, db, journal_sqlite_schema);
  if (rc == SQLITE_OK)
    rc =
        sq_exec(s->log, db,
                "INSERT INTO events(\"offset\", id, seq, manifest, version, tags, writer, ts,"
                " payload, crc)"
                " SELECT \"offset\", id, seq, manifest, version, tags,"
                " lore_uuid_to_writer(writer), ts, payload, crc FROM events_v1 ORDER BY \"offset\";"
                "INSERT INTO deletions(id, highest, deleted_to)"
                " SELECT m.id, m.highest_seq, CASE WHEN e.lo IS NULL THEN m.highest_seq"
                "   ELSE e.lo - 1 END"
                " FROM journal_meta m LEFT JOIN"
                "   (SELECT id, min(seq) AS lo, max(seq) AS hi FROM events GROUP BY id) e"
                "   ON e.id = m.id"
                " WHERE m.highest_seq > 0 AND (e.lo IS NULL OR e.lo > 1 OR e.hi < m.highest_seq);"
                "INSERT INTO journal_info(key, value)"
                " SELECT 'offset_high_water', seq FROM sqlite_sequence"
                " WHERE name = 'events_v1' AND seq > 0;");
  if (rc == SQLITE_OK) rc = migrate_tags(s, db);
  if (rc == SQLITE_OK) rc = sq_exec(s->log, db, "DROP TABLE events_v1; DROP TABLE journal_meta;");
  if (rc == SQLITE_OK) rc = sq_exec(s->log, db, "COMMIT");
  if (rc != SQLITE_OK) {
    log_error(s->log, "journal sqlite: %s: migration failed, nothing changed", s->path);
    if (!sqlite3_get_autocommit(db)) sq_exec(s->log, db, "ROLLBACK");
    return sq_map_err(rc);
  }
  return 0;
}

int sq_schema_prepare(sq_state *s, sqlite3 *db, int read_only) {
  int info = table_exists(s, db, "journal_info");
  if (info < 0) return info;
  if (info) {
    int64_t version = 0;
    int rc = read_version(s, db, &version);
    if (rc < 0) return rc;
    if (version > SQ_SCHEMA_VERSION) {
      log_error(s->log, "journal sqlite: %s has schema version %lld, made by a newer Lore", s->path,
                (long long)version);
      return JOURNAL_ENOTSUP;
    }
    if (version < SQ_SCHEMA_VERSION) {
      log_error(s->log, "journal sqlite: %s has journal_info without a known schema version",
                s->path);
      return JOURNAL_ENOTLORE;
    }
    return 0;
  }
  int events = table_exists(s, db, "events");
  if (events < 0) return events;
  int meta = events ? table_exists(s, db, "journal_meta") : 0;
  if (meta < 0) return meta;
  if (read_only) {
    if (meta)
      log_error(s->log,
                "journal sqlite: %s was made by an older Lore: open it once for writing"
                " to migrate it",
                s->path);
    return JOURNAL_ENOTLORE;
  }
  if (events && !meta) {
    log_error(s->log, "journal sqlite: %s has an `events` table that is not Lore's", s->path);
    return JOURNAL_ENOTLORE;
  }
  if (meta) return migrate_v1(s, db);
  /* One transaction, so a crash never leaves tables without their version. */
  int rc = sq_exec(s->log, db, "BEGIN IMMEDIATE");
  if (rc == SQLITE_OK) rc = sq_exec(s->log, db, journal_sqlite_schema);
  if (rc == SQLITE_OK) rc = sq_exec(s->log, db, "COMMIT");
  if (rc != SQLITE_OK) {
    if (!sqlite3_get_autocommit(db)) sq_exec(s->log, db, "ROLLBACK");
    return sq_map_err(rc);
  }
  return 0;
}
