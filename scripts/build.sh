#!/usr/bin/env bash
# build.sh [BUILD_DIR] [extra cmake args...]: configures and builds Lore.
# Release by default (an explicit -DCMAKE_BUILD_TYPE=... among the extra args wins).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${1:-build}
shift || true
[[ "$BUILD_DIR" = /* ]] || BUILD_DIR="$ROOT/$BUILD_DIR"

BUILD_TYPE=(-DCMAKE_BUILD_TYPE=Release)
for a in "$@"; do
  [[ "$a" == -DCMAKE_BUILD_TYPE=* ]] && BUILD_TYPE=()
done

JOBS=$(nproc 2>/dev/null || echo 2)
cmake -S "$ROOT" -B "$BUILD_DIR" "${BUILD_TYPE[@]}" "$@"
cmake --build "$BUILD_DIR" -j"$JOBS"
