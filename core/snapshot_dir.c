/* snapshot_dir.c: snapshot backend keeping one checksummed file per snapshot in a directory. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "snapshot_store.h"

/*
 * File name: <key>-<seq>-<ts>.snap. The key is the id hex-escaped, so any byte of an id is safe
 * in a file name and '-' separates the fields unambiguously; seq and ts are canonical decimals.
 * An id whose escape would not fit NAME_MAX is keyed by the escape of its first KEY_PREFIX bytes,
 * '_' and a 64-bit FNV-1a hash of the whole id; the file holds the full id, checked on load.
 *
 * File content, little endian:
 *   0 magic "LORESNP1" | 8 u32 version | 12 u32 id_len | 16 i64 seq | 24 i64 ts | 32 u64 data_len
 *   40 u32 CRC-32C of bytes [0, 40) + id + data | 44 id bytes, then data bytes
 * A file whose size, header or checksum disagree is SNAPSHOT_ECORRUPT (torn or damaged).
 *
 * Save writes a temporary file, fsyncs it, renames it over the final name, removes files of the
 * same (id, seq) under another timestamp (an earlier save), then fsyncs the directory. A crash
 * between the rename and that removal leaves two files for one seq; readers take the one with
 * the higher timestamp and the next save or delete of that seq removes both.
 */

#define MAGIC "LORESNP1"
#define VERSION 1u
#define HDR_LEN 44
#define KEY_PLAIN_MAX 80 /* ids up to this many bytes are escaped in full */
#define KEY_PREFIX 64    /* longer ids: escape of this many bytes + '_' + hash */
#define KEY_CAP (2 * KEY_PLAIN_MAX + 1)
#define NAME_CAP (KEY_CAP + 64)
#define TMP_PREFIX ".tmp-snap-"
#define TMP_STALE_SECONDS 3600 /* temp files this old are leftovers of a crash */
#define LOAD_ATTEMPTS 5
#define RETRY 1 /* internal: the chosen file vanished (another process deleted it), rescan */

typedef struct dir_state {
  pthread_rwlock_t lock; /* save/delete exclusive, load/list shared, within this process */
  int dfd;               /* the directory: every file op is relative to it, and it gets fsynced */
  char *path;            /* for messages */
  const log_sink *log;
} dir_state;

typedef struct dent {
  int64_t seq, ts;
} dent;

static unsigned long tmp_counter;

static int io_err(const dir_state *d, const char *what, const char *name) {
  int e = errno;
  log_error(d->log, "snapshot dir %s: %s %s: %s", d->path, what, name ? name : "", strerror(e));
  return e == ENOMEM ? SNAPSHOT_ENOMEM : SNAPSHOT_EIO;
}

static void put32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static void put64(unsigned char *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get32(const unsigned char *p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

static uint64_t get64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

static void make_key(const char *id, char key[KEY_CAP]) {
  static const char hex[] = "0123456789abcdef";
  size_t n = strlen(id);
  size_t take = n <= KEY_PLAIN_MAX ? n : KEY_PREFIX;
  char *p = key;
  for (size_t i = 0; i < take; i++) {
    unsigned char c = (unsigned char)id[i];
    *p++ = hex[c >> 4];
    *p++ = hex[c & 15];
  }
  *p = '\0';
  if (n > KEY_PLAIN_MAX) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)id[i]) * 1099511628211ull;
    snprintf(p, (size_t)(key + KEY_CAP - p), "_%016" PRIx64, h);
  }
}

static void snap_name(char name[NAME_CAP], const char *key, int64_t seq, int64_t ts) {
  snprintf(name, NAME_CAP, "%s-%" PRId64 "-%" PRId64 ".snap", key, seq, ts);
}

/* Parses a canonical non-negative decimal (no sign, no leading zero) that ends at `end`, so
 * that snap_name() of the parsed values gives back exactly the same name. */
static const char *parse_num(const char *p, char end, int64_t *out) {
  if (*p < '0' || *p > '9' || (*p == '0' && p[1] != end)) return NULL;
  int64_t v = 0;
  for (; *p >= '0' && *p <= '9'; p++) {
    int digit = *p - '0';
    if (v > (INT64_MAX - digit) / 10) return NULL;
    v = v * 10 + digit;
  }
  if (*p != end) return NULL;
  *out = v;
  return p + 1;
}

static int parse_name(const char *name, const char *key, size_t keylen, dent *e) {
  if (strncmp(name, key, keylen) != 0 || name[keylen] != '-') return 0;
  const char *p = parse_num(name + keylen + 1, '-', &e->seq);
  if (p) p = parse_num(p, '.', &e->ts);
  return p && strcmp(p, "snap") == 0;
}

static int matches(const dent *e, const snapshot_criteria *c) {
  return e->seq >= c->min_seq && e->seq <= c->max_seq && e->ts >= c->min_ts && e->ts <= c->max_ts;
}

/* Youngest first; for a duplicated seq the higher timestamp first (see the top comment). */
static int cmp_desc(const void *a, const void *b) {
  const dent *x = a, *y = b;
  if (x->seq != y->seq) return x->seq < y->seq ? 1 : -1;
  if (x->ts != y->ts) return x->ts < y->ts ? 1 : -1;
  return 0;
}

/* Collects every snapshot file of `key`, sorted by cmp_desc. *out is malloc'ed (may be NULL). */
static int scan(dir_state *d, const char *key, dent **out, size_t *n) {
  *out = NULL;
  *n = 0;
  /* A fresh descriptor per scan: a shared DIR stream would need its own lock. */
  int fd = openat(d->dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return io_err(d, "open", ".");
  DIR *dir = fdopendir(fd);
  if (!dir) {
    int rc = io_err(d, "fdopendir", ".");
    close(fd);
    return rc;
  }
  size_t keylen = strlen(key), cap = 0, k = 0;
  dent *v = NULL;
  int rc = 0;
  for (;;) {
    errno = 0;
    struct dirent *de = readdir(dir);
    if (!de) {
      if (errno) rc = io_err(d, "readdir", ".");
      break;
    }
    dent e;
    if (!parse_name(de->d_name, key, keylen, &e)) continue;
    if (k == cap) {
      size_t ncap = cap ? cap * 2 : 16;
      dent *nv = ncap <= SIZE_MAX / sizeof *nv ? realloc(v, ncap * sizeof *nv) : NULL;
      if (!nv) {
        rc = SNAPSHOT_ENOMEM;
        break;
      }
      v = nv;
      cap = ncap;
    }
    v[k++] = e;
  }
  closedir(dir);
  if (rc != 0) {
    free(v);
    return rc;
  }
  if (k > 1) qsort(v, k, sizeof *v, cmp_desc);
  *out = v;
  *n = k;
  return 0;
}

static int write_all(int fd, const void *buf, size_t len) {
  const char *p = buf;
  while (len > 0) {
    ssize_t w = write(fd, p, len);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += w;
    len -= (size_t)w;
  }
  return 0;
}

/* Reads up to len bytes; returns how many (fewer only at end of file) or -1. */
static ssize_t read_all(int fd, void *buf, size_t len) {
  char *p = buf;
  size_t got = 0;
  while (got < len) {
    ssize_t r = read(fd, p + got, len - got);
    if (r < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (r == 0) break;
    got += (size_t)r;
  }
  return (ssize_t)got;
}

static int mkdir_p(const char *path) {
  char *p = strdup(path);
  if (!p) return -1;
  for (char *s = p + 1; *s; s++) {
    if (*s != '/') continue;
    *s = '\0';
    if (mkdir(p, 0755) != 0 && errno != EEXIST) {
      free(p);
      return -1;
    }
    *s = '/';
  }
  int rc = mkdir(p, 0755) != 0 && errno != EEXIST ? -1 : 0;
  free(p);
  return rc;
}

/* Removes temporary files a crashed save left behind. Only old ones: a young one may belong to
 * a save in progress in another process sharing the directory. */
static void sweep_temps(dir_state *d) {
  int fd = openat(d->dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
  if (!dir) {
    if (fd >= 0) close(fd);
    return;
  }
  time_t now = time(NULL);
  struct dirent *de;
  while ((de = readdir(dir)) != NULL) {
    struct stat st;
    if (strncmp(de->d_name, TMP_PREFIX, strlen(TMP_PREFIX)) != 0) continue;
    if (fstatat(d->dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    if (now - st.st_mtime < TMP_STALE_SECONDS) continue;
    if (unlinkat(d->dfd, de->d_name, 0) == 0)
      log_info(d->log, "snapshot dir %s: removed stale %s", d->path, de->d_name);
  }
  closedir(dir);
}

static int dir_open(const char *path, const log_sink *log, void **state) {
  if (*path == '\0') return SNAPSHOT_EURI;
  dir_state *d = calloc(1, sizeof *d);
  if (!d) return SNAPSHOT_ENOMEM;
  d->dfd = -1;
  d->log = log;
  d->path = strdup(path);
  if (!d->path || pthread_rwlock_init(&d->lock, NULL) != 0) {
    free(d->path);
    free(d);
    return SNAPSHOT_ENOMEM;
  }
  int rc = 0;
  if (mkdir_p(path) != 0) {
    rc = io_err(d, "mkdir", path);
  } else if ((d->dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
    rc = io_err(d, "open", path);
  }
  if (rc != 0) {
    pthread_rwlock_destroy(&d->lock);
    free(d->path);
    free(d);
    return rc;
  }
  sweep_temps(d);
  *state = d;
  return 0;
}

static void dir_close(void *state) {
  dir_state *d = state;
  close(d->dfd);
  pthread_rwlock_destroy(&d->lock);
  free(d->path);
  free(d);
}

static int dir_save(void *state, const char *id, const snapshot_meta *meta, const void *data,
                    size_t len) {
  dir_state *d = state;
  size_t idlen = strlen(id);
  if (idlen > UINT32_MAX) return SNAPSHOT_EINVAL;
  char key[KEY_CAP], name[NAME_CAP], tmp[64], stale[NAME_CAP];
  make_key(id, key);
  snap_name(name, key, meta->seq, meta->timestamp_ms);
  snprintf(tmp, sizeof tmp, TMP_PREFIX "%ld-%lu", (long)getpid(),
           __atomic_fetch_add(&tmp_counter, 1, __ATOMIC_RELAXED));

  /* Header and checksum outside the lock: hashing 10 MB should not block readers. */
  unsigned char hdr[HDR_LEN];
  memcpy(hdr, MAGIC, 8);
  put32(hdr + 8, VERSION);
  put32(hdr + 12, (uint32_t)idlen);
  put64(hdr + 16, (uint64_t)meta->seq);
  put64(hdr + 24, (uint64_t)meta->timestamp_ms);
  put64(hdr + 32, (uint64_t)len);
  uint32_t crc = crc32c(0, hdr, 40);
  crc = crc32c(crc, id, idlen);
  crc = crc32c(crc, data, len);
  put32(hdr + 40, crc);

  pthread_rwlock_wrlock(&d->lock);
  int rc = 0;
  int fd = openat(d->dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    rc = io_err(d, "create", tmp);
    goto out;
  }
  if (write_all(fd, hdr, HDR_LEN) != 0 || write_all(fd, id, idlen) != 0 ||
      write_all(fd, data, len) != 0 || fsync(fd) != 0) {
    rc = io_err(d, "write", tmp);
    close(fd);
    unlinkat(d->dfd, tmp, 0);
    goto out;
  }
  if (close(fd) != 0) {
    rc = io_err(d, "close", tmp);
    unlinkat(d->dfd, tmp, 0);
    goto out;
  }
  if (renameat(d->dfd, tmp, d->dfd, name) != 0) {
    rc = io_err(d, "rename to", name);
    unlinkat(d->dfd, tmp, 0);
    goto out;
  }
  /* Replace semantics: an earlier save of this seq under another timestamp must go. */
  dent *v;
  size_t n;
  rc = scan(d, key, &v, &n);
  for (size_t i = 0; rc == 0 && i < n; i++) {
    if (v[i].seq != meta->seq || v[i].ts == meta->timestamp_ms) continue;
    snap_name(stale, key, v[i].seq, v[i].ts);
    if (unlinkat(d->dfd, stale, 0) != 0 && errno != ENOENT) rc = io_err(d, "unlink", stale);
  }
  free(v);
  if (fsync(d->dfd) != 0 && rc == 0) rc = io_err(d, "fsync", ".");
out:
  pthread_rwlock_unlock(&d->lock);
  return rc;
}

/* Reads and verifies one snapshot file. RETRY if it no longer exists. */
static int read_snapshot(dir_state *d, const char *name, const char *id, const dent *e, void **data,
                         size_t *len) {
  int fd = openat(d->dfd, name, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT ? RETRY : io_err(d, "open", name);
  unsigned char hdr[HDR_LEN];
  char *fid = NULL;
  void *buf = NULL;
  uint64_t idlen = 0, dlen = 0;
  struct stat st;
  ssize_t r = 0;
  int rc = 0;
  if (fstat(fd, &st) != 0 || (r = read_all(fd, hdr, HDR_LEN)) < 0) {
    rc = io_err(d, "read", name);
    goto out;
  }
  if (r < HDR_LEN || memcmp(hdr, MAGIC, 8) != 0 || get32(hdr + 8) != VERSION) goto corrupt;
  idlen = get32(hdr + 12);
  dlen = get64(hdr + 32);
  if (get64(hdr + 16) != (uint64_t)e->seq || get64(hdr + 24) != (uint64_t)e->ts ||
      idlen != strlen(id))
    goto corrupt;
  /* The size must be exact: shorter is a torn write, longer is not a file we wrote. */
  if (st.st_size < HDR_LEN || (uint64_t)st.st_size - HDR_LEN < idlen ||
      (uint64_t)st.st_size - HDR_LEN - idlen != dlen)
    goto corrupt;
  if (dlen >= SIZE_MAX) {
    rc = SNAPSHOT_ENOMEM;
    goto out;
  }
  fid = malloc(idlen + 1);
  buf = malloc(dlen ? (size_t)dlen : 1);
  if (!fid || !buf) {
    rc = SNAPSHOT_ENOMEM;
    goto out;
  }
  ssize_t rid = read_all(fd, fid, idlen);
  ssize_t rdata = rid >= 0 && (uint64_t)rid == idlen ? read_all(fd, buf, dlen) : 0;
  if (rid < 0 || rdata < 0) {
    rc = io_err(d, "read", name);
    goto out;
  }
  if ((uint64_t)rid != idlen || (uint64_t)rdata != dlen) goto corrupt; /* shrank since fstat */
  uint32_t crc = crc32c(0, hdr, 40);
  crc = crc32c(crc, fid, idlen);
  crc = crc32c(crc, buf, dlen);
  if (crc != get32(hdr + 40) || memcmp(fid, id, idlen) != 0) goto corrupt;
  *data = buf;
  *len = (size_t)dlen;
  buf = NULL;
  goto out;
corrupt:
  log_warn(d->log, "snapshot dir %s: %s is corrupt (size, header or checksum mismatch)", d->path,
           name);
  rc = SNAPSHOT_ECORRUPT;
out:
  close(fd);
  free(fid);
  free(buf);
  return rc;
}

static int dir_load(void *state, const char *id, const snapshot_criteria *crit, int skip,
                    snapshot_meta *meta, void **data, size_t *len) {
  dir_state *d = state;
  char key[KEY_CAP], name[NAME_CAP];
  make_key(id, key);
  int rc = RETRY;
  pthread_rwlock_rdlock(&d->lock);
  for (int attempt = 0; attempt < LOAD_ATTEMPTS && rc == RETRY; attempt++) {
    dent *v;
    size_t n;
    if ((rc = scan(d, key, &v, &n)) != 0) break;
    const dent *pick = NULL;
    int left = skip;
    for (size_t i = 0; i < n && !pick; i++) {
      if (i > 0 && v[i].seq == v[i - 1].seq) continue; /* shadowed duplicate */
      if (matches(&v[i], crit) && left-- == 0) pick = &v[i];
    }
    if (!pick) {
      rc = SNAPSHOT_ENOTFOUND;
    } else {
      meta->seq = pick->seq;
      meta->timestamp_ms = pick->ts;
      snap_name(name, key, pick->seq, pick->ts);
      rc = read_snapshot(d, name, id, pick, data, len);
    }
    free(v);
  }
  pthread_rwlock_unlock(&d->lock);
  return rc == RETRY ? SNAPSHOT_EIO : rc;
}

static int dir_delete(void *state, const char *id, const snapshot_criteria *crit) {
  dir_state *d = state;
  char key[KEY_CAP], name[NAME_CAP];
  make_key(id, key);
  pthread_rwlock_wrlock(&d->lock);
  dent *v;
  size_t n;
  int rc = scan(d, key, &v, &n);
  int removed = 0;
  /* Judge each seq by its visible file (the first of its group); remove the whole group. */
  for (size_t i = 0, group = 0; rc == 0 && i < n; i++) {
    if (i == 0 || v[i].seq != v[i - 1].seq) group = i;
    if (!matches(&v[group], crit)) continue;
    snap_name(name, key, v[i].seq, v[i].ts);
    if (unlinkat(d->dfd, name, 0) == 0)
      removed = 1;
    else if (errno != ENOENT)
      rc = io_err(d, "unlink", name);
  }
  if (removed && fsync(d->dfd) != 0 && rc == 0) rc = io_err(d, "fsync", ".");
  pthread_rwlock_unlock(&d->lock);
  free(v);
  return rc;
}

static int dir_list(void *state, const char *id, const snapshot_criteria *crit, snapshot_meta *out,
                    size_t cap, size_t *n) {
  dir_state *d = state;
  char key[KEY_CAP];
  make_key(id, key);
  pthread_rwlock_rdlock(&d->lock);
  dent *v;
  size_t nv, k = 0;
  int rc = scan(d, key, &v, &nv);
  pthread_rwlock_unlock(&d->lock);
  if (rc != 0) return rc;
  for (size_t i = 0; i < nv && k < cap; i++) {
    if (i > 0 && v[i].seq == v[i - 1].seq) continue;
    if (!matches(&v[i], crit)) continue;
    out[k].seq = v[i].seq;
    out[k].timestamp_ms = v[i].ts;
    k++;
  }
  free(v);
  *n = k;
  return 0;
}

const snapshot_backend snapshot_dir_backend = {
    .scheme = "dir",
    .open = dir_open,
    .save = dir_save,
    .load = dir_load,
    .delete_matching = dir_delete,
    .list = dir_list,
    .close = dir_close,
};
