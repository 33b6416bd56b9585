#!/usr/bin/env bash
# postgres_cpu_ab.sh ROUNDS ACTORS EVENTS TREE...: Lore builds side by side on one private
# PostgreSQL cluster, for changes to the PostgreSQL journal (figures, never pass/fail).
#
# TREE is a source tree with its Release build in TREE/build (e.g. `git archive REV | tar -x`
# into a folder, then scripts/build.sh there): copies, so that rebuilding the worktree does
# not pull a binary from under a round. Runs tests/bench/postgres_rounds.lua's chain mode
# (ACTORS carts x EVENTS events, one persist in flight each) of every TREE in turn, ROUNDS
# times, each round a fresh schema, and prints per round: events/s (wall clock), events per
# commit, and CPU time per event of the Lore process and of the PostgreSQL cluster. On a
# shared, noisy machine the server's CPU per event is far steadier than the wall clock. The
# CPU figures include a fixed cost (the schema made, ACTORS leases and recoveries: about
# 0.5 s of server CPU for 100 actors), so use EVENTS of 400 or more.
#
# Needs the cluster's data directory to read the server's CPU: run it under
# `scripts/pg-cluster.sh run` or with LORE_TEST_PG and LORE_TEST_PG_DIR exported by
# `scripts/pg-cluster.sh start`.
set -euo pipefail
(($# >= 4)) || {
  sed -n '2,16p' "$0"
  exit 2
}
: "${LORE_TEST_PG:?LORE_TEST_PG is not set (scripts/pg-cluster.sh start)}"
: "${LORE_TEST_PG_DIR:?LORE_TEST_PG_DIR is not set (scripts/pg-cluster.sh start)}"
ROUNDS=$1 ACTORS=$2 EVENTS=$3
shift 3
postmaster=$(head -1 "$LORE_TEST_PG_DIR/data/postmaster.pid")
# Clock ticks of the postmaster and of every server process it has reaped (each round's
# sessions end with its process, so their time is in the postmaster's children's time).
server_ticks() { awk '{print $14 + $15 + $16 + $17}' "/proc/$postmaster/stat"; }
n=0
for ((r = 1; r <= ROUNDS; r++)); do
  for tree in "$@"; do
    n=$((n + 1))
    schema="cpu_ab_$$_$n"
    before=$(server_ticks)
    out=$({ /usr/bin/time -f "CPU %U %S" "$tree/build/bench_stamp" "$tree/build/lore" run \
      "$tree/tests/bench/postgres_rounds.lua" chain "postgres:$LORE_TEST_PG?schema=$schema" \
      "$ACTORS" "$EVENTS"; } 2>&1) || {
      echo "$out" >&2
      exit 1
    }
    sleep 0.5 # the round's server sessions are reaped
    after=$(server_ticks)
    "$tree/build/bench_postgres" drop "$LORE_TEST_PG" "$schema" >/dev/null
    awk -v tree="$tree" -v n=$((ACTORS * EVENTS)) -v ticks=$((after - before)) \
      -v hz="$(getconf CLK_TCK)" -v out="$out" 'BEGIN {
        split(out, lines, "\n")
        for (i in lines) {
          if (lines[i] ~ /^@mark start/) { split(lines[i], f, " "); t0 = f[3] }
          if (lines[i] ~ /^@mark end/) { split(lines[i], f, " "); t1 = f[3] }
          if (lines[i] ~ /^NOTE writes=/) { split(lines[i], f, /[= ]/); w = f[3]; b = f[5] }
          if (lines[i] ~ /^CPU /) { split(lines[i], f, " "); cpu = f[2] + f[3] }
        }
        printf "%-40s %8.0f events/s %5.1f events/commit  Lore %6.1f us/event  server %6.1f us/event\n",
          tree, n / (t1 - t0), b ? w / b : 0, cpu * 1e6 / n, ticks / hz * 1e6 / n
      }'
  done
done
