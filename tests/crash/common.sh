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
