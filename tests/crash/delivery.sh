#!/usr/bin/env bash
# delivery.sh BUILD_DIR [--short|--long|--cycles N]: the delivery crash test.
#
# Each cycle starts delivery_writer.lua (12 persistent senders delivering at least once
# to 4 persistent receivers on a sqlite journal, each send with a durable timer, every
# acknowledged send appended to an ack file) and kills it with SIGKILL at a random moment
# 0.2-1.5 s after it reported that it delivers (every 5th cycle instead 0-0.3 s after it
# started: during start-up, recovery and the re-sends that follow). Then
# delivery_verify.lua recovers everyone, lets redelivery and the timers due meanwhile play
# out, and checks that every stored send reached its receiver exactly once (ids without a
# gap), that nothing stays unconfirmed, and that every timer fired exactly once. The
# journal carries over from cycle to cycle (a fresh one every 10 cycles).
#
#   --short      3 cycles
#   --long       30 cycles (scripts/crash-loop.sh BUILD --delivery)
#   --cycles N   N cycles
# CRASH_SEED=N makes the kill moments repeatable; CRASH_KEEP=1 keeps the files.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=common.sh
source "$HERE/common.sh"
crash_setup "delivery crash" lore-dcrash 30 "$@"


echo "delivery crash: $CYCLES kill -9 cycles, seed $SEED, journal $DB"
start=$SECONDS
for ((cycle = 1; cycle <= CYCLES; cycle++)); do
  crash_write_and_kill delivery_writer.lua delivering 5
  if ! "$LORE" run "$HERE/delivery_verify.lua" "$DB" "$ACK" >"$TMP/verify.log" 2>&1; then
    cat "$TMP/verify.log" >&2
    fail "verification failed (see above)"
  fi
  after=$(wc -l <"$ACK")
  line=$(grep '^verify:' "$TMP/verify.log" | tail -1)
  printf 'delivery crash: cycle %2d/%d: killed %4d ms after %-11s %5d new acks; %s\n' \
    "$cycle" "$CYCLES" "$delay_ms" "$when," "$((after - before))" "${line#verify: }"
done
echo "delivery crash: passed: $CYCLES kill -9 cycles in $((SECONDS - start)) s (seed $SEED)"
