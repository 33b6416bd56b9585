/* reload.c: hot reload of behaviour scripts: a two-phase switch on every worker, and the file
 * watcher. */
#include "reload.h"

#include <dirent.h>
#include <errno.h>
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "binding.h"
#include "host.h"

/*
 * A reload of module M runs in two phases over every worker. Prepare: each
 * worker loads every behaviour it has that is M or requires M into a new
 * sandbox realm, checks it (syntax, load errors, a table with receive) and
 * keeps it aside. Only if every worker could, commit: each switches those
 * behaviours (one table per behaviour: the time does not depend on the
 * number of actors) between two actors' turns, and its actors move to the new
 * version at their next message. Otherwise abort: the old code stays, and
 * the error (file and line) is what the reload reports. Reloads run one at a
 * time, in the order asked.
 *
 * Workers never read a script file on their own: they compile the text the
 * runtime keeps for it (the first read of a file fixes it for everyone), so
 * a file edited on disk changes nothing until its reload commits, and a
 * worker loading a behaviour for the first time gets the same version as
 * the others. A reload reads the changed file once (staged), every worker
 * prepares from that text, and the commit makes it the runtime's text.
 */

/* --- the runtime's text of each script file --- */

typedef struct source_entry {
  char *path;
  char *text; /* NULL until read */
  size_t len;
  char *staged; /* the text a reload in progress prepares, or NULL */
  size_t staged_len;
  struct source_entry *next;
} source_entry;

/* Set while this worker prepares a reload (runtime.lua, R.reload_prepare):
 * then it reads the staged text. Each worker runs on its own thread. */
static _Thread_local int staging;

/* Workers may need the state before the host ever did: made by whichever
 * thread comes first, published with a compare-and-swap. */
static reload_state *state_of(lore_runtime *lrt) {
  reload_state *rs = __atomic_load_n(&lrt->reload, __ATOMIC_ACQUIRE);
  if (rs) return rs;
  reload_state *fresh = calloc(1, sizeof *fresh);
  if (!fresh) return NULL;
  if (uv_mutex_init(&fresh->lock)) {
    free(fresh);
    return NULL;
  }
  if (__atomic_compare_exchange_n(&lrt->reload, &rs, fresh, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
    return fresh;
  uv_mutex_destroy(&fresh->lock); /* another thread was first: rs is its state */
  free(fresh);
  return rs;
}

static source_entry *find_source(reload_state *rs, const char *path) {
  for (source_entry *e = rs->sources; e; e = e->next)
    if (strcmp(e->path, path) == 0) return e;
  return NULL;
}

/* The entry for path, made if missing; under rs->lock. */
static source_entry *source_entry_for(reload_state *rs, const char *path) {
  source_entry *e = find_source(rs, path);
  if (e) return e;
  if (!(e = calloc(1, sizeof *e)) || !(e->path = strdup(path))) {
    free(e);
    return NULL;
  }
  e->next = rs->sources;
  rs->sources = e;
  return e;
}

/* The whole file, or NULL with errno set. */
static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap);
  while (buf) {
    n += fread(buf + n, 1, cap - n, f);
    if (n < cap) break;
    char *grown = cap < ((size_t)1 << 30) ? realloc(buf, cap * 2) : NULL;
    if (!grown) {
      free(buf);
      buf = NULL;
      errno = ENOMEM;
      break;
    }
    buf = grown;
    cap *= 2;
  }
  if (buf && ferror(f)) {
    free(buf);
    buf = NULL;
    errno = EIO;
  }
  fclose(f);
  *len = n;
  return buf;
}

static char *copy_bytes(const char *p, size_t len) {
  char *c = malloc(len ? len : 1);
  if (c) memcpy(c, p, len);
  return c;
}

/* A malloc'ed copy of the runtime's text of `path` (read and kept on first
 * use), or NULL with errno set. */
static char *source_copy(lore_runtime *lrt, const char *path, size_t *len) {
  reload_state *rs = state_of(lrt);
  if (!rs) {
    errno = ENOMEM;
    return NULL;
  }
  char *copy = NULL;
  uv_mutex_lock(&rs->lock);
  source_entry *e = find_source(rs, path);
  if (e && staging && e->staged) {
    copy = copy_bytes(e->staged, *len = e->staged_len);
  } else if (e && e->text) {
    copy = copy_bytes(e->text, *len = e->len);
  }
  uv_mutex_unlock(&rs->lock);
  if (copy || (e && (e->text || (staging && e->staged)))) {
    if (!copy) errno = ENOMEM;
    return copy;
  }
  /* Read outside the lock; whoever stores a text first fixes it. */
  size_t n;
  char *text = read_file(path, &n);
  if (!text) return NULL;
  uv_mutex_lock(&rs->lock);
  e = source_entry_for(rs, path);
  if (e && !e->text) {
    e->text = text;
    e->len = n;
    text = NULL;
  }
  if (e) copy = copy_bytes(e->text, *len = e->len);
  uv_mutex_unlock(&rs->lock);
  free(text);
  if (!copy) errno = ENOMEM;
  return copy;
}

/* core.source(path) -> text | nil, err */
static int core_source(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  size_t len;
  char *text = source_copy(worker_bs(L)->lrt, path, &len);
  if (!text) {
    lua_pushnil(L);
    lua_pushfstring(L, "cannot read %s: %s", path, strerror(errno));
    return 2;
  }
  lua_pushlstring(L, text, len); /* may raise (memory): the copy would leak */
  free(text);
  return 1;
}

/* core.reload_staging(on) */
static int core_reload_staging(lua_State *L) {
  staging = lua_toboolean(L, 1);
  return 0;
}

void reload_push_core_calls(lua_State *L) {
  lua_pushcfunction(L, core_source);
  lua_setfield(L, -2, "source");
  lua_pushcfunction(L, core_reload_staging);
  lua_setfield(L, -2, "reload_staging");
}

/* The file module `name` is, as the sandbox finds it (scripts dirs in order;
 * a.b is a/b.lua or a/b/init.lua), or NULL. */
static char *module_path(lore_runtime *lrt, const char *name) {
  size_t n = strlen(name);
  if (!n || n > 255 || name[0] == '.' || strstr(name, "..")) return NULL;
  for (size_t i = 0; i < n; i++) {
    char c = name[i];
    if (!(c == '_' || c == '.' || c == '-' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
          (c >= 'A' && c <= 'Z')))
      return NULL;
  }
  char rel[256];
  for (size_t i = 0; i <= n; i++) rel[i] = name[i] == '.' ? '/' : name[i];
  int ndirs = lrt->cfg.nscripts;
  for (int d = 0; d < (ndirs ? ndirs : 1); d++) {
    const char *dir = ndirs ? lrt->cfg.scripts[d] : ".";
    char path[4096];
    static const char *const forms[] = {"%s/%s.lua", "%s/%s/init.lua"};
    for (int f = 0; f < 2; f++) {
      snprintf(path, sizeof path, forms[f], dir, rel);
      FILE *fp = fopen(path, "r");
      if (!fp) continue;
      fclose(fp);
      return strdup(path);
    }
  }
  return NULL;
}

/* A reload starts: the file is read once, for every worker to prepare. */
static void stage(lore_runtime *lrt, const char *path) {
  reload_state *rs = state_of(lrt);
  size_t n;
  char *text = read_file(path, &n);
  if (!text) return; /* the workers then report what is wrong */
  uv_mutex_lock(&rs->lock);
  source_entry *e = source_entry_for(rs, path);
  if (e) {
    free(e->staged);
    e->staged = text;
    e->staged_len = n;
    text = NULL;
  }
  uv_mutex_unlock(&rs->lock);
  free(text);
}

/* The reload commits (keep = 1: the staged text becomes the runtime's) or
 * is refused (keep = 0: the text before it stays). */
static void unstage(lore_runtime *lrt, const char *path, int keep) {
  reload_state *rs = state_of(lrt);
  uv_mutex_lock(&rs->lock);
  source_entry *e = find_source(rs, path);
  if (e && e->staged) {
    if (keep) {
      free(e->text);
      e->text = e->staged;
      e->len = e->staged_len;
    } else {
      free(e->staged);
    }
    e->staged = NULL;
  }
  uv_mutex_unlock(&rs->lock);
}

typedef struct reload_job {
  lore_runtime *lrt;
  char *module;
  char *path; /* the module's file, staged while the job runs (NULL: none found) */
  int phase;  /* WORKER_RELOAD_* being answered */
  int started;
  int waiting;
  char *error; /* the first worker's error (prepare) */
  reload_cb cb;
  void *ud;
  struct reload_job *next;
} reload_job;

static void job_start(reload_job *job);

static void job_free(reload_job *job) {
  free(job->module);
  free(job->path);
  free(job->error);
  free(job);
}

/* The job at the head is done: the next one starts, then this one reports
 * (its callback may ask for another reload: it queues behind). */
static void job_done(reload_job *job, int status) {
  lore_runtime *lrt = job->lrt;
  reload_state *rs = lrt->reload;
  rs->head = job->next;
  if (!rs->head) rs->tail = NULL;
  if (job->path) unstage(lrt, job->path, 0); /* refused: the text before it stays */
  if (status == 0)
    log_info(&lrt->log, "hot reload: '%s' reloaded", job->module);
  else
    log_warn(&lrt->log, "hot reload: '%s' refused, the running code stays: %s", job->module,
             job->error ? job->error : lore_strerror(status));
  if (rs->head && !rs->head->started) job_start(rs->head);
  if (job->cb) job->cb(job->ud, status, job->error ? job->error : lore_strerror(status));
  job_free(job);
}

static void send_phase(reload_job *job, int phase);

static void answered(void *ud, int status, const void *reply, size_t len) {
  reload_job *job = ud;
  if (status && !job->error) {
    job->error = len ? strndup(reply, len) : strdup(lore_strerror(status));
    if (status == LORE_ESHUTDOWN) job->phase = WORKER_RELOAD_ABORT; /* nothing more to send */
  }
  if (--job->waiting > 0) return;
  if (job->phase == WORKER_RELOAD_PREPARE) {
    /* committed: a worker loading the behaviour from now on gets this text */
    if (!job->error && job->path) unstage(job->lrt, job->path, 1);
    send_phase(job, job->error ? WORKER_RELOAD_ABORT : WORKER_RELOAD_COMMIT);
  } else if (job->phase == WORKER_RELOAD_COMMIT && !job->error) {
    job_done(job, 0);
  } else {
    job_done(job, LORE_ESCRIPT);
  }
}

static void send_phase(reload_job *job, int phase) {
  lore_runtime *lrt = job->lrt;
  int workers = lrt->rt->workers;
  job->phase = phase;
  job->waiting = workers;
  size_t len = phase == WORKER_RELOAD_PREPARE ? strlen(job->module) : 0;
  for (int i = 1; i <= workers; i++) {
    if (host_ask_worker(lrt, (uint32_t)i, (uint32_t)phase, job->module, len, answered, job) == 0)
      continue;
    /* not sent (shutting down): counts as answered with an error */
    answered(job, LORE_ESHUTDOWN, NULL, 0);
  }
}

static void job_start(reload_job *job) {
  job->started = 1;
  /* read now, not when asked: a queued reload takes the file's latest text */
  if ((job->path = module_path(job->lrt, job->module))) stage(job->lrt, job->path);
  send_phase(job, WORKER_RELOAD_PREPARE);
}

int reload_begin(lore_runtime *lrt, const char *module, reload_cb cb, void *ud) {
  if (!module || !*module) return UV_EINVAL;
  if (lrt->phase != RT_RUNNING) return LORE_ESHUTDOWN;
  reload_state *rs = state_of(lrt);
  if (!rs) return UV_ENOMEM;
  reload_job *job = calloc(1, sizeof *job);
  if (!job || !(job->module = strdup(module))) {
    free(job);
    return UV_ENOMEM;
  }
  job->lrt = lrt;
  job->cb = cb;
  job->ud = ud;
  if (rs->tail)
    rs->tail->next = job;
  else
    rs->head = job;
  rs->tail = job;
  if (rs->head == job) job_start(job);
  return 0;
}

/* --- the watcher: uv_fs_event on every scripts directory (and below) --- */

/* Editors write a file in several steps (a temporary file, a rename, a
 * second write): changes are collected for this long after the last one. */
#define DEBOUNCE_MS 100
#define MAX_WATCHED_DIRS 256
#define MAX_PENDING 64

typedef struct watched_dir {
  uv_fs_event_t h;
  lore_runtime *lrt;
  char *prefix; /* the module name prefix of this directory ("" or "rooms.") */
} watched_dir;

static void flush_pending(uv_timer_t *t) {
  lore_runtime *lrt = t->data;
  reload_state *rs = lrt->reload;
  for (int i = 0; i < rs->npending; i++) {
    reload_begin(lrt, rs->pending[i], NULL, NULL);
    free(rs->pending[i]);
  }
  rs->npending = 0;
}

/* The module a file of a watched directory is: "x.lua" -> prefix .. "x",
 * "init.lua" -> the directory's own module. NULL for other files. */
static char *module_of(const char *prefix, const char *file) {
  size_t n = strlen(file);
  if (n < 5 || strcmp(file + n - 4, ".lua") != 0 || file[0] == '.') return NULL;
  if (strcmp(file, "init.lua") == 0) {
    size_t p = strlen(prefix);
    return p ? strndup(prefix, p - 1) : NULL;
  }
  size_t p = strlen(prefix);
  char *m = malloc(p + n - 4 + 1);
  if (!m) return NULL;
  memcpy(m, prefix, p);
  memcpy(m + p, file, n - 4);
  m[p + n - 4] = '\0';
  return m;
}

static void on_change(uv_fs_event_t *h, const char *file, int events, int status) {
  (void)events;
  watched_dir *w = h->data;
  lore_runtime *lrt = w->lrt;
  reload_state *rs = lrt->reload;
  if (status < 0 || !file || lrt->phase != RT_RUNNING) return;
  char *module = module_of(w->prefix, file);
  if (!module) return;
  for (int i = 0; i < rs->npending; i++) {
    if (strcmp(rs->pending[i], module) == 0) {
      free(module);
      module = NULL;
      break;
    }
  }
  if (module && rs->npending < MAX_PENDING)
    rs->pending[rs->npending++] = module;
  else
    free(module);
  uv_timer_start(&rs->debounce, flush_pending, DEBOUNCE_MS, 0);
}

static int watch_dir(lore_runtime *lrt, const char *path, const char *prefix, int depth) {
  reload_state *rs = lrt->reload;
  if (rs->nwatched == MAX_WATCHED_DIRS) {
    log_warn(&lrt->log, "hot reload: more than %d directories under scripts: %s not watched",
             MAX_WATCHED_DIRS, path);
    return 0;
  }
  watched_dir *w = calloc(1, sizeof *w);
  if (!w || !(w->prefix = strdup(prefix))) {
    free(w);
    return UV_ENOMEM;
  }
  w->lrt = lrt;
  uv_fs_event_init(lrt->loop, &w->h);
  w->h.data = w;
  int r = uv_fs_event_start(&w->h, on_change, path, 0);
  if (r) {
    log_warn(&lrt->log, "hot reload: cannot watch %s: %s", path, uv_strerror(r));
    free(w->prefix);
    free(w);
    return 0; /* uv_fs_event_init leaves nothing to close when start failed before */
  }
  uv_unref((uv_handle_t *)&w->h); /* watching never keeps a host loop alive */
  rs->watched[rs->nwatched++] = w;
  /* inotify watches one directory: its subdirectories (module folders) too */
  if (depth >= 4) return 0;
  DIR *d = opendir(path);
  if (!d) return 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char sub[4096], subprefix[1024];
    snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
    struct stat st;
    if (stat(sub, &st) != 0 || !S_ISDIR(st.st_mode)) continue;
    snprintf(subprefix, sizeof subprefix, "%s%s.", prefix, e->d_name);
    watch_dir(lrt, sub, subprefix, depth + 1);
  }
  closedir(d);
  return 0;
}

int reload_watch_start(lore_runtime *lrt) {
  reload_state *rs = state_of(lrt);
  if (!rs) return UV_ENOMEM;
  uv_timer_init(lrt->loop, &rs->debounce);
  rs->debounce.data = lrt;
  uv_unref((uv_handle_t *)&rs->debounce);
  rs->timer_on = 1;
  for (int i = 0; i < lrt->cfg.nscripts; i++) watch_dir(lrt, lrt->cfg.scripts[i], "", 0);
  log_info(&lrt->log, "hot reload: watching %d director%s", rs->nwatched,
           rs->nwatched == 1 ? "y" : "ies");
  return 0;
}

static void watched_closed(uv_handle_t *h) {
  watched_dir *w = h->data;
  lore_runtime *lrt = w->lrt;
  void (*done)(lore_runtime *) = lrt->reload->closed;
  free(w->prefix);
  free(w);
  if (--lrt->reload->closing == 0 && done) done(lrt);
}

static void timer_closed(uv_handle_t *h) {
  lore_runtime *lrt = h->data;
  void (*done)(lore_runtime *) = lrt->reload->closed;
  if (--lrt->reload->closing == 0 && done) done(lrt);
}

int reload_close(lore_runtime *lrt, void (*closed)(lore_runtime *)) {
  /* a worker may have made it (its first script read) */
  reload_state *rs = __atomic_load_n(&lrt->reload, __ATOMIC_ACQUIRE);
  if (!rs || (!rs->nwatched && !rs->timer_on)) return 0;
  rs->closed = closed;
  rs->closing = rs->nwatched + rs->timer_on;
  for (int i = 0; i < rs->npending; i++) free(rs->pending[i]);
  rs->npending = 0;
  for (int i = 0; i < rs->nwatched; i++)
    uv_close((uv_handle_t *)&rs->watched[i]->h, watched_closed);
  rs->nwatched = 0;
  if (rs->timer_on) uv_close((uv_handle_t *)&rs->debounce, timer_closed);
  rs->timer_on = 0;
  return 1;
}

void reload_free(lore_runtime *lrt) {
  reload_state *rs = lrt->reload;
  if (!rs) return;
  while (rs->head) {
    reload_job *job = rs->head;
    rs->head = job->next;
    job_free(job);
  }
  while (rs->sources) {
    source_entry *e = rs->sources;
    rs->sources = e->next;
    free(e->path);
    free(e->text);
    free(e->staged);
    free(e);
  }
  uv_mutex_destroy(&rs->lock);
  free(rs);
  lrt->reload = NULL;
}
