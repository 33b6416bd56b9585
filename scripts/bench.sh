#!/usr/bin/env bash
# bench.sh [--smoke | --reload | --entities] [BUILD_DIR]: builds Release and runs benchmarks.
#   default     runtime, snapshot, persistence and journal benchmarks, full sizes
#               (figures for the README; 12-15 minutes here)
#   --smoke     every benchmark at tiny sizes, one round: checks they still run (test.sh
#               runs this; ~15 s)
#   --reload    the hot reload benchmark alone, full size (~1 minute)
#   --entities  the entities benchmark alone, full size (1,000,000 entities: minutes)
# What each figure means: tests/bench/README.md.
# Benchmarks print figures; they never fail on time. A benchmark that crashes
# or exits non-zero makes this script exit non-zero.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SMOKE=0
ONLY=
BUILD_DIR=build
for a in "$@"; do
  case "$a" in
    --smoke) SMOKE=1 ;;
    --reload | --entities) ONLY=${a#--} ;;
    -h | --help)
      sed -n '2,11p' "$0"
      exit 0
      ;;
    -*)
      echo "bench.sh: unknown option $a" >&2
      exit 2
      ;;
    *) BUILD_DIR=$a ;;
  esac
done
[[ "$BUILD_DIR" = /* ]] || BUILD_DIR="$ROOT/$BUILD_DIR"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/lore-bench.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
export LORE_TEST_TMP="$TMP"

if ! "$ROOT/scripts/build.sh" "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >"$TMP/build.log" 2>&1; then
  cat "$TMP/build.log" >&2
  echo "bench.sh: the Release build failed" >&2
  exit 1
fi
cd "$ROOT"

failed=0
run() {
  local name=$1
  shift
  echo
  echo "=== bench: $name ($*)"
  if ! "$@"; then
    echo "=== bench: $name FAILED" >&2
    failed=$((failed + 1))
  fi
}

# The C benchmarks are built by CMake from tests/bench/bench_*.c when present.
run_if_built() {
  local name=$1 exe=$2
  shift 2
  if [[ -x "$exe" ]]; then
    run "$name" "$exe" "$@"
  else
    echo
    echo "=== bench: $name: $exe not built, skipped"
  fi
}

if [[ $ONLY == reload ]]; then
  run reload "$BUILD_DIR/lore" run tests/bench/reload_bench.lua
elif [[ $ONLY == entities ]]; then
  run entities "$BUILD_DIR/lore" run tests/bench/entities_bench.lua
elif ((SMOKE)); then
  run runtime "$BUILD_DIR/lore" run tests/bench/runtime_bench.lua 0.01
  run_if_built snapshot "$BUILD_DIR/bench_snapshot" 4096 10
  run snapshot-recovery "$BUILD_DIR/lore" run tests/bench/snapshot_bench.lua 0.005
  run persist "$BUILD_DIR/lore" run tests/bench/persist_bench.lua --smoke
  run_if_built journal "$BUILD_DIR/bench_journal" 0.01
  run reload "$BUILD_DIR/lore" run tests/bench/reload_bench.lua --smoke
  run entities "$BUILD_DIR/lore" run tests/bench/entities_bench.lua --smoke
  # On the cluster LORE_TEST_PG names, or a private one (scripts/pg-cluster.sh).
  run postgres "$ROOT/scripts/pg-cluster.sh" run "$BUILD_DIR/lore" run tests/bench/postgres_bench.lua --smoke
else
  run runtime "$BUILD_DIR/lore" run tests/bench/runtime_bench.lua
  run_if_built snapshot "$BUILD_DIR/bench_snapshot"
  run snapshot-recovery "$BUILD_DIR/lore" run tests/bench/snapshot_bench.lua
  run persist "$BUILD_DIR/lore" run tests/bench/persist_bench.lua
  run_if_built journal "$BUILD_DIR/bench_journal"
  # Lore vs raw libpq; with nact too: scripts/bench-nact.sh.
  run postgres "$ROOT/scripts/pg-cluster.sh" run "$BUILD_DIR/lore" run tests/bench/postgres_bench.lua
fi

echo
if ((failed)); then
  echo "bench: $failed benchmark(s) failed" >&2
  exit 1
fi
echo "bench: all benchmarks ran in ${SECONDS} s"
