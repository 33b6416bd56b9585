#!/usr/bin/env bash
# bench-nact.sh [--smoke] [--rounds N] [BUILD_DIR]: Lore vs a raw libpq store vs nact, on one
# PostgreSQL database, side by side (figures, never pass/fail).
#
# Installs nact and nact-persistence-postgres from the npm registry into a temporary folder
# (Node.js and npm come from Debian's packages, installed here if missing: they are this
# benchmark's alone, not Lore's, so scripts/setup.sh does not list them), builds Lore
# (Release, BUILD_DIR, default build), and runs tests/bench/postgres_bench.lua with nact's
# rounds (tests/bench/postgres_nact_round.js) alternating with Lore's and the baseline's, on
# the cluster LORE_TEST_PG names or on a private one (scripts/pg-cluster.sh). What each figure
# means: docs/postgres.md. Exits non-zero if anything cannot be installed or run.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=build
BENCH_ARGS=()
while (($#)); do
  case $1 in
    --smoke) BENCH_ARGS+=(--smoke) ;;
    --rounds)
      BENCH_ARGS+=(--rounds "${2:?--rounds needs a number}")
      shift
      ;;
    -h | --help)
      sed -n '2,12p' "$0"
      exit 0
      ;;
    -*)
      echo "bench-nact: unknown option $1" >&2
      exit 2
      ;;
    *) BUILD_DIR=$1 ;;
  esac
  shift
done
[[ "$BUILD_DIR" = /* ]] || BUILD_DIR="$ROOT/$BUILD_DIR"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "bench-nact: installing Node.js and npm from Debian's packages"
  if [[ $(id -u) -eq 0 ]]; then SUDO=(); else SUDO=(sudo -n); fi
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    nodejs npm </dev/null
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/lore-nact.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

echo "bench-nact: npm install nact@7 nact-persistence-postgres@8 into $TMP"
(cd "$TMP" && npm init -y >/dev/null && npm install --no-audit --no-fund --loglevel=error \
  nact@7 nact-persistence-postgres@8 >"$TMP/npm.log" 2>&1) || {
  cat "$TMP/npm.log" >&2
  echo "bench-nact: npm install failed (is the npm registry reachable from here?)" >&2
  exit 1
}
cp "$ROOT/tests/bench/postgres_nact_round.js" "$TMP/"
echo "bench-nact: node $(node --version), nact $(node -p "require('$TMP/node_modules/nact/package.json').version"),"\
  "nact-persistence-postgres $(node -p "require('$TMP/node_modules/nact-persistence-postgres/package.json').version")"

if ! "$ROOT/scripts/build.sh" "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >"$TMP/build.log" 2>&1; then
  cat "$TMP/build.log" >&2
  echo "bench-nact: the Release build failed" >&2
  exit 1
fi

cd "$ROOT"
"$ROOT/scripts/pg-cluster.sh" run "$BUILD_DIR/lore" run tests/bench/postgres_bench.lua \
  ${BENCH_ARGS[@]+"${BENCH_ARGS[@]}"} --nact "node $TMP/postgres_nact_round.js"
