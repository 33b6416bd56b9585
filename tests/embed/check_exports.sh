#!/usr/bin/env bash
# check_exports.sh LIBLORE_SO LIBLORE_A LORE_H: the libraries define, as global
# symbols, exactly the functions lore.h declares LORE_EXTERN (lore_* and
# luaopen_lore) and nothing else. Exit 0 when that holds.
set -euo pipefail

if [[ $# -ne 3 ]]; then
  echo "usage: check_exports.sh LIBLORE_SO LIBLORE_A LORE_H" >&2
  exit 2
fi
so=$1 archive=$2 header=$3
status=0

# What the header promises: each declaration starts a line with LORE_EXTERN
# and names its function before the first '('.
declared=$(grep -E '^LORE_EXTERN ' "$header" | sed -E 's/\(.*//; s/.*[ *]//' | sort -u)
if [[ -z "$declared" ]]; then
  echo "check_exports: no LORE_EXTERN declarations found in $header" >&2
  exit 1
fi

# check WHAT SYMBOLS: SYMBOLS (one a line) must be exactly `declared`.
check() {
  local what=$1 symbols=$2
  local stray missing
  stray=$(grep -vxE 'lore_[a-z0-9_]+|luaopen_lore' <<<"$symbols" || true)
  missing=$(comm -23 <(echo "$declared") <(echo "$symbols"))
  local extra
  extra=$(comm -13 <(echo "$declared") <(echo "$symbols"))
  if [[ -n "$stray" ]]; then
    echo "check_exports: $what defines symbols outside lore_*/luaopen_lore:" >&2
    sed 's/^/  /' <<<"$stray" >&2
    status=1
  fi
  if [[ -n "$missing" ]]; then
    echo "check_exports: $what lacks functions lore.h declares:" >&2
    sed 's/^/  /' <<<"$missing" >&2
    status=1
  fi
  if [[ -n "$extra" ]]; then
    echo "check_exports: $what exports lore_* names lore.h does not declare:" >&2
    sed 's/^/  /' <<<"$extra" >&2
    status=1
  fi
  echo "check_exports: $what: $(wc -l <<<"$symbols") global symbols"
}

check "$(basename "$so") (dynamic)" "$(nm -D --defined-only "$so" | awk 'NF == 3 {print $3}' | sort -u)"
# In the archive every defined global (text, data, bss, read-only, weak,
# common) would clash with a host's own definition.
check "$(basename "$archive")" \
  "$(nm -g --defined-only "$archive" | awk 'NF == 3 {print $3}' | sort -u)"
exit $status
