#!/usr/bin/env bash
# crash-loop.sh [BUILD_DIR] [run.sh options]: the long crash test: 50 kill -9
# cycles of tests/crash/run.sh (about two minutes). test.sh runs the short one
# (3 cycles). Builds BUILD_DIR (default build) first.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${1:-build}
shift || true
"$ROOT/scripts/build.sh" "$BUILD_DIR"
if (($#)); then
  exec bash "$ROOT/tests/crash/run.sh" "$BUILD_DIR" "$@"
fi
exec bash "$ROOT/tests/crash/run.sh" "$BUILD_DIR" --long
