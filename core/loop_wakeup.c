/* loop_wakeup.c: a cross-thread wake-up of a libuv loop on an eventfd (see loop_wakeup.h). */
#include "loop_wakeup.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/eventfd.h>
#endif

static void on_readable(uv_poll_t *h, int status, int events) {
  (void)events;
  loop_wakeup *w = (loop_wakeup *)h;
  /* Emptied before the callback: a send after this read wakes the loop again. */
  char buf[64];
  ssize_t n;
  do {
    n = read(w->read_fd, buf, sizeof buf);
  } while (n > 0 ? w->read_fd != w->write_fd : n < 0 && errno == EINTR);
  /* After the read: a sender that sets the mark from here on writes again,
   * and one that still finds it set queued before the callback looks. */
  __atomic_store_n(&w->pending, 0, __ATOMIC_SEQ_CST);
  if (status < 0) return;
  w->cb(w);
}

static int open_fds(loop_wakeup *w) {
#ifdef __linux__
  int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd >= 0) {
    w->read_fd = w->write_fd = fd;
    return 0;
  }
#endif
  int fds[2];
  if (pipe(fds) != 0) return uv_translate_sys_error(errno);
  for (int i = 0; i < 2; i++) {
    if (fcntl(fds[i], F_SETFD, FD_CLOEXEC) != 0 ||
        fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) | O_NONBLOCK) != 0) {
      int err = uv_translate_sys_error(errno);
      close(fds[0]);
      close(fds[1]);
      return err;
    }
  }
  w->read_fd = fds[0];
  w->write_fd = fds[1];
  return 0;
}

static void close_fds(loop_wakeup *w) {
  if (w->write_fd != w->read_fd) close(w->write_fd);
  close(w->read_fd);
  w->read_fd = w->write_fd = -1;
}

int loop_wakeup_init(uv_loop_t *loop, loop_wakeup *w, loop_wakeup_cb cb) {
  w->cb = cb;
  w->data = NULL;
  w->pending = 0;
  int r = open_fds(w);
  if (r < 0) return r;
  if ((r = uv_poll_init(loop, &w->poll, w->read_fd)) < 0) {
    close_fds(w);
    return r;
  }
  if ((r = uv_poll_start(&w->poll, UV_READABLE, on_readable)) < 0) {
    /* The handle is initialised: it must be closed, and its fd after it. */
    uv_close((uv_handle_t *)&w->poll, NULL);
    close_fds(w);
    return r;
  }
  return 0;
}

void loop_wakeup_send(loop_wakeup *w) {
  if (__atomic_load_n(&w->pending, __ATOMIC_SEQ_CST) ||
      __atomic_exchange_n(&w->pending, 1, __ATOMIC_SEQ_CST))
    return;
  /* A full pipe or a saturated counter already wakes the loop: EAGAIN is fine. */
  if (w->read_fd == w->write_fd) {
    uint64_t one = 1;
    while (write(w->write_fd, &one, sizeof one) < 0 && errno == EINTR) {
    }
  } else {
    char one = 1;
    while (write(w->write_fd, &one, 1) < 0 && errno == EINTR) {
    }
  }
}

void loop_wakeup_close(loop_wakeup *w, uv_close_cb close_cb) {
  w->poll.data = w->data;
  /* uv_close stops polling at once, so the fds may go now. */
  uv_close((uv_handle_t *)&w->poll, close_cb);
  close_fds(w);
}

int loop_wakeup_is_closing(const loop_wakeup *w) {
  return uv_is_closing((const uv_handle_t *)&w->poll);
}
