/* journal_sqlite_walspace.c: the WAL file is extended ahead of its frames, so that a commit's
 * fsync flushes data, not the file's new size. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "journal_sqlite_internal.h"

/*
 * SQLite appends each commit's frames to the WAL. While the WAL grows (a new
 * journal, and after every open, since closing deletes it), each commit's
 * fdatasync must also make the file's new length durable: measured on this
 * VM, a one-row commit's fdatasync took 0.73-0.87 ms while it grew and 0.37 ms
 * once SQLite overwrote a WAL it had started over. So the writer keeps the
 * file WAL_AHEAD bytes longer than its frames, in zeros written once: a
 * commit then overwrites blocks the file already has.
 *
 * Zeros after the last frame are what SQLite itself leaves when it starts a
 * WAL over (stale frames): recovery stops at the first frame whose salt does
 * not match the header's, and a zero frame never matches. The zeros are
 * written only while the writer holds the WAL's write lock (inside its
 * transaction), so no other connection (a projection session) is appending
 * frames at the same time, and every frame lies before the file's end.
 */
#define WAL_HEADER 32
#define WAL_FRAME_HEADER 24
#define WAL_CHUNK ((int64_t)1 << 20) /* extended by this much at a time */
#define WAL_AHEAD ((int64_t)256 << 10)

static void give_up(sq_state *s, const char *what) {
  log_debug(s->log, "journal sqlite: WAL space ahead of commits off (%s: %s)", what,
            strerror(errno));
  s->wal_off = 1;
}

static int open_wal(sq_state *s) {
  sqlite3_stmt *st;
  if (sq_prepare(s->log, s->db, "PRAGMA page_size", &st) != SQLITE_OK) return -1;
  if (sqlite3_step(st) == SQLITE_ROW) s->wal_page_size = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  if (s->wal_page_size <= 0) return -1;
  size_t len = strlen(s->path) + sizeof "-wal";
  char *path = malloc(len);
  if (!path) return -1;
  snprintf(path, len, "%s-wal", s->path);
  s->wal_fd = open(path, O_WRONLY | O_CLOEXEC);
  free(path);
  if (s->wal_fd < 0) return -1;
  s->wal_open = 1;
  return 0;
}

static int write_zeros(int fd, int64_t from, int64_t to) {
  static const char zeros[64 << 10];
  while (from < to) {
    size_t n = to - from < (int64_t)sizeof zeros ? (size_t)(to - from) : sizeof zeros;
    ssize_t w = pwrite(fd, zeros, n, (off_t)from);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    from += w;
  }
  return 0;
}

void sq_walspace_reserve(sq_state *s) {
  if (s->wal_off || !s->checkpointer) return;
  if (!s->wal_open && open_wal(s) != 0) return give_up(s, "open");
  int64_t frames = sq_checkpointer_frames(s->checkpointer);
  int64_t used = WAL_HEADER + frames * (WAL_FRAME_HEADER + s->wal_page_size);
  if (used + WAL_AHEAD <= s->wal_size) return;
  struct stat st;
  if (fstat(s->wal_fd, &st) != 0) return give_up(s, "fstat");
  /* A WAL without its header yet: SQLite writes that first. */
  if (st.st_size < WAL_HEADER) {
    s->wal_size = 0;
    return;
  }
  int64_t size = st.st_size, want = (used > size ? used : size) + WAL_CHUNK;
  if (used + WAL_AHEAD <= size) {
    s->wal_size = size;
    return;
  }
  if (write_zeros(s->wal_fd, size, want) != 0) {
    int err = errno;
    if (ftruncate(s->wal_fd, (off_t)size) != 0) { /* the zeros are harmless anyway */
    }
    errno = err;
    return give_up(s, "extend");
  }
  s->wal_size = want;
}

void sq_walspace_close(sq_state *s) {
  if (s->wal_open) close(s->wal_fd);
  s->wal_open = 0;
}
