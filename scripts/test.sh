#!/usr/bin/env bash
# test.sh: installs what is missing, builds into build/, and runs every suite:
#   ctest (cmocka: core, bindings, tck, embed), the install test
#   (scripts/install-test.sh), busted (tests/lua), luacheck,
#   the crash smoke tests (tests/crash/run.sh and delivery.sh), and the
#   benchmark smoke run (scripts/bench.sh --smoke: the benchmarks still run).
# PostgreSQL: a private cluster (scripts/pg-cluster.sh) runs for the whole
# test run, named by LORE_TEST_PG for the postgres TCKs (ctest) and
# tests/lua/postgres_spec.lua, and is stopped at the end; a caller that set
# LORE_TEST_PG already (.ci/run) lends its own. If it cannot start, the
# PostgreSQL tests fail (and so does the "postgres" suite): never skipped.
# Every suite runs even when an earlier one failed; the last line is
# "N passed, M failed" (suites), and the exit status is non-zero when M > 0.
# Each suite has a time limit so the whole run stays well under 10 minutes.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BUILD=build
DEADLINE=$((SECONDS + 570)) # the whole run stays under 10 minutes

passed=0
failed=0
failed_names=()

banner() {
  echo
  echo "=================================================================="
  echo "== $*"
  echo "=================================================================="
}

# suite NAME SECONDS COMMAND...: runs one suite under a time limit and counts it.
suite() {
  local name=$1 limit=$2
  shift 2
  banner "$name: $*"
  local left=$((DEADLINE - SECONDS))
  ((limit <= left)) || limit=$left
  local start=$SECONDS rc=0
  if ((limit > 0)); then
    timeout --kill-after=10 "$limit" "$@" || rc=$?
  else
    rc=124
  fi
  local took=$((SECONDS - start))
  if ((rc == 0)); then
    passed=$((passed + 1))
    echo "== $name: passed (${took}s)"
  else
    failed=$((failed + 1))
    failed_names+=("$name")
    if ((rc == 124 || rc == 137)); then
      echo "== $name: FAILED: timed out after ${limit}s" >&2
    else
      echo "== $name: FAILED (exit $rc, ${took}s)" >&2
    fi
  fi
}

summary() {
  echo
  if ((failed)); then echo "failed suites: ${failed_names[*]}"; fi
  echo "$passed passed, $failed failed"
  ((failed == 0))
  exit $?
}

banner "setup: system packages"
if ! "$ROOT/scripts/setup.sh"; then
  failed=$((failed + 1))
  failed_names+=(setup)
  summary
fi

suite build 360 "$ROOT/scripts/build.sh" "$BUILD"
if ((failed)); then summary; fi

if [[ -z ${LORE_TEST_PG:-} ]]; then
  banner "postgres: a private cluster (scripts/pg-cluster.sh start)"
  if pg_env=$("$ROOT/scripts/pg-cluster.sh" start); then
    eval "$pg_env"
    trap '"$ROOT/scripts/pg-cluster.sh" stop "$LORE_TEST_PG_DIR" || true' EXIT
    echo "== postgres: $LORE_TEST_PG"
  else
    failed=$((failed + 1))
    failed_names+=(postgres)
    echo "== postgres: FAILED: the cluster did not start; the PostgreSQL tests fail too" >&2
  fi
fi

suite ctest 300 ctest --test-dir "$BUILD" --output-on-failure -j2
# cmake --install into a temporary prefix; a host built against it with
# pkg-config and with find_package(lore) runs.
suite install 120 bash "$ROOT/scripts/install-test.sh" "$BUILD"
# busted runs through the project's own runner (it puts build/lore.so on the path).
suite busted 240 bash "$ROOT/scripts/run-busted.sh" "$BUILD"
# luacheck reads the repo's .luacheckrc; a folder not in the tree yet is left out
# (luacheck fails on a missing path).
lua_paths=()
for p in lua tests/lua examples; do [[ -d $p ]] && lua_paths+=("$p"); done
suite luacheck 60 luacheck --no-color "${lua_paths[@]}"
suite crash 180 bash tests/crash/run.sh "$BUILD" --short
suite crash-delivery 180 bash tests/crash/delivery.sh "$BUILD" --short
suite bench-smoke 120 "$ROOT/scripts/bench.sh" --smoke "$BUILD"

summary
