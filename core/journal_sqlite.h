/* journal_sqlite.h: the sqlite journal's tables, for tools and benchmarks (not for the runtime). */
#ifndef LORE_JOURNAL_SQLITE_H
#define LORE_JOURNAL_SQLITE_H

/* The statements that create the current schema (version 2, recorded in
 * journal_info), so a benchmark or tool can make a file the journal opens and
 * measure exactly the rows it writes. See journal_sqlite_schema.c. */
extern const char journal_sqlite_schema[];

/* The journal's INSERT of one event: ?1 offset (NULL lets SQLite pick the
 * next one), ?2 id, ?3 seq, ?4 manifest, ?5 version, ?6 tags, ?7 writer,
 * ?8 ts, ?9 payload, ?10 crc. */
extern const char journal_sqlite_insert_event[];

#endif
