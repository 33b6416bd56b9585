#!/usr/bin/env bash
# fuzz.sh [SECONDS] [TARGET...]: builds the libFuzzer targets (tests/fuzz/) into
# build-fuzz/ with clang, ASan and UBSan, and runs each TARGET (default: all)
# for SECONDS (default 60) on a copy of its seed corpus tests/fuzz/corpus/TARGET,
# so the committed seeds stay as they are.
#
# Exits non-zero if a target crashed, leaked, hung (-timeout) or broke one of
# its checks; the line "fuzz: TARGET: CRASH ..." then names the input libFuzzer
# saved, under build-fuzz/fuzz-artifacts/TARGET/. The last line is
# "N passed, M failed" over the targets.
#
# Environment: LORE_FUZZ_BUILD (build dir, default build-fuzz), LORE_FUZZ_FLAGS
# (extra libFuzzer flags, e.g. "-jobs=2 -workers=2"), LORE_FUZZ_KEEP_CORPUS=DIR
# (keep each grown working corpus in DIR/TARGET instead of deleting it).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 2
DURATION=${1:-60}
shift || true
ALL_TARGETS=(fuzz_codec fuzz_journal_row fuzz_codec_page)
TARGETS=("$@")
((${#TARGETS[@]})) || TARGETS=("${ALL_TARGETS[@]}")
BUILD=${LORE_FUZZ_BUILD:-build-fuzz}
[[ "$BUILD" = /* ]] || BUILD="$ROOT/$BUILD"
read -r -a EXTRA_FLAGS <<<"${LORE_FUZZ_FLAGS:-}"

if ! [[ "$DURATION" =~ ^[0-9]+$ ]] || ((DURATION < 1)); then
  echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...]  (targets: ${ALL_TARGETS[*]})" >&2
  exit 2
fi
for t in "${TARGETS[@]}"; do
  if [[ ! -d tests/fuzz/corpus/$t ]]; then
    echo "fuzz: unknown target $t (targets: ${ALL_TARGETS[*]})" >&2
    exit 2
  fi
done

# clang is in setup.sh's package list; the build needs nothing else new.
if ! command -v clang >/dev/null 2>&1; then
  "$ROOT/scripts/setup.sh" || exit 1
fi

start=$SECONDS
echo "fuzz: building ${TARGETS[*]} in $BUILD"
cmake -S "$ROOT" -B "$BUILD" -DLORE_FUZZ=ON -DCMAKE_C_COMPILER=clang \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$BUILD.configure.log" 2>&1 ||
  { cat "$BUILD.configure.log"; echo "fuzz: cmake configure failed" >&2; exit 1; }
rm -f "$BUILD.configure.log"
cmake --build "$BUILD" -j"$(nproc 2>/dev/null || echo 2)" --target "${TARGETS[@]}" ||
  { echo "fuzz: build failed" >&2; exit 1; }
echo "fuzz: built in $((SECONDS - start))s"

# Leaks are checked by libFuzzer itself (-detect_leaks=1, the default with ASan).
# A smaller quarantine than ASan's 256 MB: freed memory is reused sooner, and
# on a VM, where each fresh page costs a fault, a 30 s run does about 30% more
# executions (and fuzz_journal_row's RSS stays under 100 MB instead of 450).
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:quarantine_size_mb=32}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

passed=0
failed=0
for t in "${TARGETS[@]}"; do
  work=$(mktemp -d "${TMPDIR:-/tmp}/lore-fuzz-$t.XXXXXX")
  artifacts="$BUILD/fuzz-artifacts/$t"
  mkdir -p "$work/corpus" "$artifacts"
  cp -R "tests/fuzz/corpus/$t/." "$work/corpus/"
  seeds=$(find "$work/corpus" -type f | wc -l)
  echo
  echo "== fuzz: $t for ${DURATION}s on $seeds seeds"
  t0=$SECONDS
  rc=0
  # TMPDIR: fuzz_journal_row's database goes into the working directory too.
  # The outer timeout only guards against libFuzzer itself not stopping.
  # Run in $work: with -jobs, libFuzzer writes a fuzz-N.log per job into the cwd.
  (cd "$work" && TMPDIR="$work" timeout --kill-after=10 $((DURATION + 120)) \
    "$BUILD/tests/fuzz/$t" -max_total_time="$DURATION" -max_len=4096 -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$artifacts/" \
    "${EXTRA_FLAGS[@]}" "$work/corpus") >"$work/log" 2>&1 || rc=$?
  for job_log in "$work"/fuzz-*.log; do
    [[ -e "$job_log" ]] && cat "$job_log" >>"$work/log"
  done
  grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)' "$work/log"
  grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)' "$work/log"
  if ((rc == 0)); then
    passed=$((passed + 1))
    echo "== fuzz: $t: passed ($((SECONDS - t0))s, corpus $seeds -> $(find "$work/corpus" -type f | wc -l) inputs)"
  else
    failed=$((failed + 1))
    echo "---- the last 60 lines of $t's output:"
    tail -n 60 "$work/log"
    crash=$(sed -nE 's/.*Test unit written to (.*)$/\1/p' "$work/log" | tail -n 1)
    echo "fuzz: $t: CRASH (exit $rc): ${crash:-no input saved (see the output above)}" >&2
    [[ -n "$crash" ]] && echo "fuzz: reproduce with: $BUILD/tests/fuzz/$t $crash" >&2
  fi
  if [[ -n "${LORE_FUZZ_KEEP_CORPUS:-}" ]]; then
    mkdir -p "$LORE_FUZZ_KEEP_CORPUS/$t"
    cp -R "$work/corpus/." "$LORE_FUZZ_KEEP_CORPUS/$t/"
    echo "fuzz: $t: working corpus kept in $LORE_FUZZ_KEEP_CORPUS/$t"
  fi
  rm -rf "$work"
done

echo
echo "fuzz: $((SECONDS - start))s in all"
echo "$passed passed, $failed failed"
((failed == 0))
