/* journal_postgres.h: the PostgreSQL journal and snapshot store backends (libpq). */
#ifndef LORE_JOURNAL_POSTGRES_H
#define LORE_JOURNAL_POSTGRES_H

#include "journal.h"
#include "snapshot_store.h"

/*
 * "postgres:CONNINFO[?params]": CONNINFO is anything libpq takes (key=value
 * pairs or a postgresql:// URI; empty: libpq's environment defaults). After
 * the first '?' come parameters: Lore's own (`pool`, `schema`, and for the
 * journal `mode`) are taken out, every other one is handed to libpq. See
 * docs/postgres.md.
 */
extern const journal_backend journal_postgres_backend;
extern const snapshot_backend snapshot_postgres_backend;

#endif
