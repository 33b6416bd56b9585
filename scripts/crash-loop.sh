#!/usr/bin/env bash
# crash-loop.sh [BUILD_DIR] [--delivery] [run.sh options]: the long crash test: 50 kill -9
# cycles of tests/crash/run.sh (about two minutes). test.sh runs the short one
# (3 cycles). Builds BUILD_DIR (default build) first.
# --delivery runs tests/crash/delivery.sh instead: at-least-once delivery and durable
# timers across kill -9 (30 cycles, about a minute; its own options after it, e.g.
# --cycles 100).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${1:-build}
shift || true
"$ROOT/scripts/build.sh" "$BUILD_DIR"
if [[ "${1:-}" == --delivery ]]; then
  shift
  if (($#)); then
    exec bash "$ROOT/tests/crash/delivery.sh" "$BUILD_DIR" "$@"
  fi
  exec bash "$ROOT/tests/crash/delivery.sh" "$BUILD_DIR" --long
fi
if (($#)); then
  exec bash "$ROOT/tests/crash/run.sh" "$BUILD_DIR" "$@"
fi
exec bash "$ROOT/tests/crash/run.sh" "$BUILD_DIR" --long
