/* journal_postgres_schema.c: the PostgreSQL tables of the journal and the snapshot store, their
 * versions and migrations. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "journal_postgres_internal.h"

/*
 * Every table is prefixed `lore_`, so a journal can share a database (and a
 * schema) with the application's own tables. `lore_schema` holds one row per
 * component with the version of its tables. Migration N takes a component
 * from version N - 1 to N; a new Lore appends to these lists and never edits
 * an entry (a database made by it may already have run it).
 *
 * Journal, version 1:
 * - lore_events: one row per event. "offset" is the global offset (given by
 *   the writer from lore_journal_info's last_offset, in the committing
 *   transaction: see journal_postgres_write.c); UNIQUE (id, seq) is the
 *   replay index and the last guard against duplicates. Ids, manifests and
 *   tags are text (UTF-8), ids with the C collation so they sort bytewise;
 *   payloads are bytea with their CRC32C.
 * - lore_event_tags: one row per tag of a tagged event, for replay_tag.
 * - lore_deletions: per id that had events deleted, its highest seq then
 *   and how far its events were deleted.
 * - lore_journal_info: last_offset, the highest offset ever given (never
 *   goes down, so deleting the newest events reuses no offset).
 * - lore_projection_offsets: each projection's offset.
 * Snapshots, version 1: lore_snapshots, keyed by (id, seq), with the CRC32C
 * of the data.
 */
static const char *const journal_migrations[] = {
    "CREATE TABLE lore_journal_info(key text PRIMARY KEY, value bigint NOT NULL);"
    "INSERT INTO lore_journal_info(key, value) VALUES ('last_offset', 0);"
    "CREATE TABLE lore_events("
    " \"offset\" bigint PRIMARY KEY,"
    " id text COLLATE \"C\" NOT NULL, seq bigint NOT NULL, manifest text NOT NULL,"
    " version integer NOT NULL, tags text NOT NULL, writer bigint NOT NULL, ts bigint NOT NULL,"
    " payload bytea NOT NULL, crc bigint NOT NULL, UNIQUE (id, seq));"
    "CREATE TABLE lore_event_tags(tag text COLLATE \"C\" NOT NULL, \"offset\" bigint NOT NULL,"
    " PRIMARY KEY (tag, \"offset\"));"
    "CREATE TABLE lore_deletions(id text COLLATE \"C\" PRIMARY KEY, highest bigint NOT NULL,"
    " deleted_to bigint NOT NULL);"
    "CREATE TABLE lore_projection_offsets(name text PRIMARY KEY, \"offset\" bigint NOT NULL);",
};

static const char *const snapshot_migrations[] = {
    "CREATE TABLE lore_snapshots(id text COLLATE \"C\" NOT NULL, seq bigint NOT NULL,"
    " ts bigint NOT NULL, data bytea NOT NULL, crc bigint NOT NULL, PRIMARY KEY (id, seq));",
};

typedef struct component {
  const char *name;       /* lore_schema.component */
  const char *main_table; /* present without a version row: another program's table */
  const char *const *migrations;
  int latest;
} component;

static const component components[] = {
    {"journal", "lore_events", journal_migrations,
     (int)(sizeof journal_migrations / sizeof journal_migrations[0])},
    {"snapshots", "lore_snapshots", snapshot_migrations,
     (int)(sizeof snapshot_migrations / sizeof snapshot_migrations[0])},
};

/* 1 if the relation exists on the search path, 0 if not, or a negative code. */
static int relation_exists(PGconn *c, const log_sink *log, const char *name) {
  const char *v[] = {name};
  int err = 0;
  PGresult *r = pg_run(c, log, "SELECT to_regclass($1) IS NOT NULL", 0, 1, v, NULL, NULL, &err);
  if (!r) return err;
  int out = PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] == 1;
  PQclear(r);
  return out;
}

/* The component's version (0: no row), or a negative code. */
static int read_version(PGconn *c, const log_sink *log, const char *component_name) {
  const char *v[] = {component_name};
  int err = 0;
  PGresult *r = pg_run(c, log, "SELECT version FROM lore_schema WHERE component = $1", 0, 1, v,
                       NULL, NULL, &err);
  if (!r) return err;
  int out = PQntuples(r) == 1 ? (int)pg_get_int(r, 0, 0) : 0;
  PQclear(r);
  return out;
}

/* Where the tables stand: the version (>= 0), or JOURNAL_ENOTLORE for a
 * foreign table of the same name, or another negative code. Read without the
 * schema lock (the common case: the tables are there), so the main table is
 * looked for first: another process making the tables does so in one
 * transaction, so once its main table is visible its lore_schema row is too.
 * (In the other order, a look at lore_schema just before that commit and at
 * the main table just after it would take Lore's new tables for foreign.) */
static int current_version(PGconn *c, const log_sink *log, const component *comp) {
  int exists = relation_exists(c, log, comp->main_table);
  if (exists <= 0) return exists; /* 0: not made yet */
  int has_schema_table = relation_exists(c, log, "lore_schema");
  if (has_schema_table < 0) return has_schema_table;
  int version = has_schema_table ? read_version(c, log, comp->name) : 0;
  if (version != 0) return version;
  log_error(log, "postgres: a table %s exists that Lore did not make (use schema=NAME)",
            comp->main_table);
  return JOURNAL_ENOTLORE;
}

static int check_version(const log_sink *log, const component *comp, int version) {
  if (version > comp->latest) {
    log_error(log,
              "postgres: the %s tables have version %d, made by a newer Lore (this one knows %d)",
              comp->name, version, comp->latest);
    return JOURNAL_ENOTSUP;
  }
  return 0;
}

static int schema_exists(PGconn *c, const log_sink *log, const char *schema) {
  const char *v[] = {schema};
  int err = 0;
  PGresult *r =
      pg_run(c, log, "SELECT 1 FROM pg_namespace WHERE nspname = $1", 0, 1, v, NULL, NULL, &err);
  if (!r) return err;
  int out = PQntuples(r) == 1;
  PQclear(r);
  return out;
}

/* Inside the transaction, under the lock: from `version` to the latest. */
static int migrate(PGconn *c, const log_sink *log, const component *comp, int version) {
  if (version > 0)
    log_info(log, "postgres: migrating the %s tables from version %d to %d", comp->name, version,
             comp->latest);
  for (int v = version; v < comp->latest; v++) {
    int rc = pg_exec(c, log, comp->migrations[v]);
    if (rc < 0) return rc;
  }
  char latest[16];
  snprintf(latest, sizeof latest, "%d", comp->latest);
  const char *vals[] = {comp->name, latest};
  int err = 0;
  PGresult *r = pg_run(c, log,
                       "INSERT INTO lore_schema(component, version) VALUES ($1, $2::integer)"
                       " ON CONFLICT (component) DO UPDATE SET version = excluded.version",
                       0, 2, vals, NULL, NULL, &err);
  PQclear(r);
  return err;
}

static int create_or_migrate(PGconn *c, const log_sink *log, const char *schema,
                             const component *comp) {
  int rc = pg_exec(c, log, "BEGIN");
  if (rc < 0) return rc;
  /* Two processes opening a new database at once: one creates, the other
   * then finds the tables made. */
  char sql[200];
  snprintf(sql, sizeof sql, "SELECT pg_advisory_xact_lock(%lld)",
           (long long)pg_lock_key(schema, "lore schema"));
  rc = pg_exec(c, log, sql);
  if (rc == 0 && schema) {
    int exists = schema_exists(c, log, schema);
    if (exists < 0) rc = exists;
    if (exists == 0) {
      char *q = PQescapeIdentifier(c, schema, strlen(schema));
      if (!q) {
        rc = JOURNAL_ENOMEM;
      } else {
        snprintf(sql, sizeof sql, "CREATE SCHEMA %s", q);
        PQfreemem(q);
        rc = pg_exec(c, log, sql);
      }
    }
  }
  if (rc == 0)
    rc = pg_exec(c, log,
                 "CREATE TABLE IF NOT EXISTS lore_schema(component text PRIMARY KEY,"
                 " version integer NOT NULL)");
  int version = rc == 0 ? current_version(c, log, comp) : rc;
  if (version >= 0) {
    rc = check_version(log, comp, version);
    if (rc == 0 && version < comp->latest) rc = migrate(c, log, comp, version);
  } else {
    rc = version;
  }
  if (rc == 0) rc = pg_exec(c, log, "COMMIT");
  if (rc < 0) {
    PGresult *r = PQexec(c, "ROLLBACK");
    PQclear(r);
  }
  return rc;
}

int pg_schema_prepare(PGconn *c, const log_sink *log, const char *schema, int which,
                      int read_only) {
  const component *comp = &components[which];
  int version = current_version(c, log, comp);
  if (version < 0) return version;
  int rc = check_version(log, comp, version);
  if (rc < 0) return rc;
  if (version == comp->latest) return 0;
  if (read_only) {
    if (version == 0) return JOURNAL_ENOENT;
    log_error(log,
              "postgres: the %s tables were made by an older Lore: open them once for writing"
              " to migrate them",
              comp->name);
    return JOURNAL_ENOTLORE;
  }
  return create_or_migrate(c, log, schema, comp);
}
