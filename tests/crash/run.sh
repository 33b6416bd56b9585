#!/usr/bin/env bash
# run.sh BUILD_DIR [--short|--long|--cycles N]: the crash test.
#
# Each cycle starts writer.lua (50 persistent actors persisting without pause
# on a sqlite journal, synchronous = "full", acknowledging every event whose
# persist callback ran into an ack file) and kills it with SIGKILL at a random
# moment 0.2-1.5 s after it reported that every actor had recovered and was
# persisting (every 8th cycle instead 0-0.3 s after it started: a kill during
# start-up and recovery). Then verify.lua recovers every actor and checks:
# every acknowledged event is recovered; the events are a gap-free 1..N per id
# with the values the writer meant (nothing invented); every persist_all batch
# of 5 is whole or absent. The journal and the ack file carry over from cycle
# to cycle (a fresh journal every 10 cycles, to bound its growth), so cycles
# also recover longer streams and resume writing after a crash.
#
#   --short      3 cycles (test.sh runs this; well under 60 s)
#   --long       50 cycles (scripts/crash-loop.sh)
#   --cycles N   N cycles
# CRASH_SEED=N makes the kill moments repeatable; CRASH_KEEP=1 keeps the files.
# Exits non-zero with a message naming the cycle on the first violation.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=common.sh
source "$HERE/common.sh"
crash_setup "crash" lore-crash 50 "$@"

echo "crash: $CYCLES kill -9 cycles, seed $SEED, journal $DB"
start=$SECONDS
total_acks=0
verify_line=""
for ((cycle = 1; cycle <= CYCLES; cycle++)); do
  crash_write_and_kill writer.lua persisting 8
  ((killed_rc == 137)) || {
    cat "$TMP/writer.log" >&2
    fail "the writer ended with status $killed_rc, not by SIGKILL (137)"
  }
  if ! "$LORE" run "$HERE/verify.lua" "$DB" "$ACK" >"$TMP/verify.log" 2>&1; then
    cat "$TMP/verify.log" >&2
    fail "verification failed (see above)"
  fi
  after=$(wc -l <"$ACK")
  new=$((after - before))
  total_acks=$((total_acks + new))
  verify_line=$(grep '^verify:' "$TMP/verify.log" | tail -1)
  printf 'crash: cycle %2d/%d: killed %4d ms after %-10s %6d new acks; %s\n' \
    "$cycle" "$CYCLES" "$delay_ms" "$when," "$new" "${verify_line#verify: }"
done
echo "crash: passed: $CYCLES kill -9 cycles in $((SECONDS - start)) s, $total_acks acknowledged events," \
  "all recovered; no event invented, no torn persist_all batch (seed $SEED)"
