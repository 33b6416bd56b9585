#!/usr/bin/env bash
# run-busted.sh BUILD_DIR [BUSTED_ARGS...]: runs the Lua specs with busted under lua5.4
# against BUILD_DIR's lore.so and lore executable; exits with busted's status.
# The specs are tests/lua unless BUSTED_ARGS name existing spec files or folders
# (e.g. scripts/run-busted.sh build tests/lua/ask_spec.lua); options (-o TAP,
# --filter=...) are passed through.
set -uo pipefail

if [[ $# -lt 1 ]]; then
  echo "usage: scripts/run-busted.sh BUILD_DIR [BUSTED_ARGS...]" >&2
  exit 2
fi
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=$1
shift
[[ "$BUILD_DIR" = /* ]] || BUILD_DIR="$PWD/$BUILD_DIR"
if [[ ! -f "$BUILD_DIR/lore.so" || ! -x "$BUILD_DIR/lore" ]]; then
  echo "run-busted.sh: no lore.so and lore in $BUILD_DIR (build first)" >&2
  exit 2
fi
BUSTED=$(command -v busted || echo /usr/bin/busted)

cd "$ROOT" || exit 2
export LORE_BIN="$BUILD_DIR/lore"
paths=(tests/lua)
for a in "$@"; do
  [[ "$a" != -* && -e "$a" ]] && paths=()
done
lua5.4 "$BUSTED" --cpath="$BUILD_DIR/?.so" --lpath="$ROOT/tests/lua/?.lua" "$@" "${paths[@]}"
