/* bench_snapshot.c: save/load throughput of each snapshot backend (usage: [bytes] [count]). */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "snapshot_store.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void rm_dir(const char *path) {
  DIR *d = opendir(path);
  if (!d) return;
  struct dirent *de;
  char p[PATH_MAX + 300];
  while ((de = readdir(d)) != NULL) {
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
    snprintf(p, sizeof p, "%s/%s", path, de->d_name);
    unlink(p);
  }
  closedir(d);
  rmdir(path);
}

/* Returns 0 or the first failing snapshot_store_* code. */
static int run(const char *uri, const void *buf, size_t size, int count) {
  snapshot_store_t *s = NULL;
  int rc = snapshot_store_open(uri, NULL, &s);
  if (rc != 0) return rc;
  double t0 = now_s();
  for (int i = 1; i <= count && rc == 0; i++) {
    snapshot_meta m = {.seq = i, .timestamp_ms = i};
    rc = snapshot_store_save(s, "bench", &m, buf, size);
  }
  double t1 = now_s();
  for (int i = 0; i < count && rc == 0; i++) {
    snapshot_meta m;
    void *data = NULL;
    size_t len = 0;
    rc = snapshot_store_load(s, "bench", NULL, 0, &m, &data, &len);
    if (rc == 0 && (len != size || m.seq != count)) rc = SNAPSHOT_EIO;
    free(data);
  }
  double t2 = now_s();
  if (rc == 0) {
    int scheme_len = (int)strcspn(uri, ":");
    printf("%-8.*s %8zu B x %5d: save %8.1f/s (%7.1f MB/s)  load %8.1f/s (%7.1f MB/s)\n",
           scheme_len, uri, size, count, count / (t1 - t0), (double)size * count / (t1 - t0) / 1e6,
           count / (t2 - t1), (double)size * count / (t2 - t1) / 1e6);
  }
  snapshot_store_close(s);
  return rc;
}

int main(int argc, char **argv) {
  size_t size = argc > 1 ? strtoul(argv[1], NULL, 10) : 64 * 1024;
  int count = argc > 2 ? atoi(argv[2]) : 200;
  if (count <= 0) count = 1;
  const char *base = getenv("LORE_TEST_TMP");
  if (!base || !*base) base = "/tmp";
  char dir[PATH_MAX / 2];
  snprintf(dir, sizeof dir, "%s/lore-bench-snap-XXXXXX", base);
  if (!mkdtemp(dir)) {
    fprintf(stderr, "mkdtemp %s: %s\n", dir, strerror(errno));
    return 1;
  }
  unsigned char *buf = malloc(size ? size : 1);
  if (!buf) return 1;
  for (size_t i = 0; i < size; i++) buf[i] = (unsigned char)(i * 131 + 7);
  char uris[3][PATH_MAX];
  snprintf(uris[0], sizeof uris[0], "memory:");
  snprintf(uris[1], sizeof uris[1], "sqlite:%s/bench.db", dir);
  snprintf(uris[2], sizeof uris[2], "dir:%s/snaps", dir);
  int failed = 0;
  for (int i = 0; i < 3; i++) {
    int rc = run(uris[i], buf, size, count);
    if (rc != 0) {
      fprintf(stderr, "%s: %s\n", uris[i], snapshot_strerror(rc));
      failed = 1;
    }
  }
  char p[PATH_MAX];
  const char *files[] = {"bench.db", "bench.db-wal", "bench.db-shm"};
  for (int i = 0; i < 3; i++) {
    snprintf(p, sizeof p, "%s/%s", dir, files[i]);
    unlink(p);
  }
  snprintf(p, sizeof p, "%s/snaps", dir);
  rm_dir(p);
  rmdir(dir);
  free(buf);
  return failed;
}
