/* journal_sqlite.h: the sqlite journal's tables, for tools and benchmarks (not for the runtime). */
#ifndef LORE_JOURNAL_SQLITE_H
#define LORE_JOURNAL_SQLITE_H

/* The CREATE statements of the current schema (version 2), so a benchmark can
 * measure exactly the rows the journal writes. The journal itself also stores
 * its version in journal_info and migrates older files; see journal_sqlite_schema.c. */
extern const char journal_sqlite_schema[];

/* The journal's INSERT of one event: ?1 offset (NULL lets SQLite pick the
 * next one), ?2 id, ?3 seq, ?4 manifest, ?5 version, ?6 tags, ?7 writer,
 * ?8 ts, ?9 payload, ?10 crc. */
extern const char journal_sqlite_insert_event[];

#endif
