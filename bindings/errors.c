/* errors.c: one message for every error code a runtime call can return. */
#include <uv.h>

#include "binding.h"

const char *binding_strerror(int code) {
  if (code <= -5001 && code > -5100) return journal_strerror(code);
  if (code <= -5101 && code > -5200) return snapshot_strerror(code);
  static _Thread_local char buf[96];
  return uv_strerror_r(code, buf, sizeof buf);
}
