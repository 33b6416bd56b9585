# common.sh: what the crash tests share (sourced by run.sh and delivery.sh).
#
# crash_setup NAME TMP_PREFIX LONG_CYCLES BUILD_DIR [--short|--long|--cycles N]
# parses the arguments and sets CYCLES, BUILD, LORE, SEED (RANDOM seeded with it), TMP (a
# fresh folder, removed at exit unless CRASH_KEEP=1 or a failure), DB and ACK (empty);
# fail MESSAGE stops the test naming the cycle ($cycle) and the seed; the process in WPID,
# if any, is killed at exit.
crash_setup() {
  CRASH_NAME=$1
  local prefix=$2 long=$3
  shift 3
  BUILD=${1:-build}
  shift || true
  CYCLES=3
  while (($#)); do
    case "$1" in
      --short) CYCLES=3 ;;
      --long) CYCLES=$long ;;
      --cycles)
        CYCLES=${2:?--cycles needs a number}
        shift
        ;;
      *)
        echo "$CRASH_NAME: unknown argument $1 (usage: BUILD_DIR [--short|--long|--cycles N])" >&2
        exit 2
        ;;
    esac
    shift
  done
  [[ "$BUILD" = /* ]] || BUILD="$ROOT/$BUILD"
  LORE="$BUILD/lore"
  if [[ ! -x "$LORE" ]]; then
    echo "$CRASH_NAME: $LORE not found (build first: scripts/build.sh)" >&2
    exit 2
  fi
  SEED=${CRASH_SEED:-$(($(date +%s) % 100000))}
  RANDOM=$SEED
  TMP=$(mktemp -d "${TMPDIR:-/tmp}/$prefix.XXXXXX")
  DB="$TMP/journal.db"
  ACK="$TMP/acks.txt"
  : >"$ACK"
  trap crash_cleanup EXIT
}

crash_cleanup() {
  if [[ -n "${WPID:-}" ]] && kill -0 "$WPID" 2>/dev/null; then kill -9 "$WPID" 2>/dev/null; fi
  if [[ "${CRASH_KEEP:-0}" == 1 ]]; then echo "$CRASH_NAME: files kept in $TMP"; else rm -rf "$TMP"; fi
}

fail() {
  echo "$CRASH_NAME: FAILED in cycle $cycle of $CYCLES (seed $SEED): $*" >&2
  CRASH_KEEP=1
  exit 1
}

# crash_write_and_kill WRITER READY STARTUP_EVERY: cycle $cycle's writer. Every 10 cycles
# the journal and the ack file start afresh. The writer (HERE/WRITER DB ACK 30) is killed
# with SIGKILL a random 0.2-1.5 s after it logs "writer: READY", or, every STARTUP_EVERY-th
# cycle, 0-0.3 s after it starts. Sets before (acks so far), when, delay_ms and killed_rc
# (the writer's status: 137 when the kill ended it).
crash_write_and_kill() {
  local writer=$1 ready=$2 every=$3 i
  if ((cycle > 1 && (cycle - 1) % 10 == 0)); then
    rm -f "$DB" "$DB-wal" "$DB-shm"
    : >"$ACK"
  fi
  before=$(wc -l <"$ACK")
  if ((cycle % every == 0)); then
    when="start-up"
    delay_ms=$((RANDOM % 301))
  else
    when=$ready
    delay_ms=$((200 + RANDOM % 1301))
  fi
  "$LORE" run "$HERE/$writer" "$DB" "$ACK" 30 >"$TMP/writer.log" 2>&1 &
  WPID=$!
  if [[ $when == "$ready" ]]; then # waits up to 120 s for the writer to say it is ready
    for ((i = 0; i < 6000; i++)); do
      grep -q "^writer: $ready" "$TMP/writer.log" 2>/dev/null && break
      kill -0 "$WPID" 2>/dev/null || i=6000
      sleep 0.02
    done
    if ((i >= 6000)); then
      kill -9 "$WPID" 2>/dev/null
      wait "$WPID" 2>/dev/null
      cat "$TMP/writer.log" >&2
      fail "the writer never reported that it was $ready"
    fi
  fi
  sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
  if ! kill -0 "$WPID" 2>/dev/null; then
    wait "$WPID"
    killed_rc=$?
    cat "$TMP/writer.log" >&2
    fail "the writer exited by itself (status $killed_rc) before the kill"
  fi
  kill -9 "$WPID"
  wait "$WPID" 2>/dev/null
  killed_rc=$?
  WPID=
}
