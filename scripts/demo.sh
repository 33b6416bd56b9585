#!/usr/bin/env bash
# demo.sh: installs what is missing, builds into build/, and runs the demos.
#
# Each demo is a function named demo_NAME, run in the order of DEMOS below,
# from the repository root, with a banner. To add one: write demo_NAME and
# add NAME to DEMOS. A demo that fails stops the script (non-zero exit).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
LORE="$ROOT/build/lore"

banner() {
  echo
  echo "=================================================================="
  echo "== $*"
  echo "=================================================================="
}

# --- the demos --------------------------------------------------------------

demo_hello() {
  banner "hello: spawn an actor, tell it, ask it"
  "$LORE" run examples/hello/app.lua
}

# The examples' journals go to a temporary directory, removed at exit.
DEMO_TMP=$(mktemp -d "${TMPDIR:-/tmp}/lore-demo.XXXXXX")
trap 'rm -rf "$DEMO_TMP"' EXIT

demo_cart() {
  banner "cart: a persistent shopping cart; each command is a new process"
  local app=examples/cart/app.lua db="$DEMO_TMP/cart.db"
  set -x
  "$LORE" run $app "$db" add apple 3 pear 2
  "$LORE" run $app "$db" add kiwi 0
  "$LORE" run $app "$db" remove apple 1
  "$LORE" run $app "$db" show
  "$LORE" run $app "$db" checkout
  "$LORE" run $app "$db" show
  { set +x; } 2>/dev/null
}

demo_cart_killed() {
  banner "cart_killed: kill -9 while adding; every acknowledged item survives"
  local app=examples/cart/app.lua db="$DEMO_TMP/killed.db" out="$DEMO_TMP/fill.out"
  echo "+ lore run $app DB fill 1000 0.01 &   (then kill -9 after 0.7 s)"
  "$LORE" run $app "$db" fill 1000 0.01 >"$out" &
  local pid=$!
  sleep 0.7
  kill -9 "$pid"
  wait "$pid" 2>/dev/null || true
  local acked
  acked=$(grep -c '^acked item-' "$out" || true)
  echo "killed: $acked item(s) were acknowledged, the last: $(tail -1 "$out")"
  echo "+ lore run $app DB show"
  "$LORE" run $app "$db" show >"$DEMO_TMP/show.out"
  head -4 "$DEMO_TMP/show.out"
  echo "  ..."
  tail -2 "$DEMO_TMP/show.out"
  local missing=0 i
  for ((i = 1; i <= acked; i++)); do
    grep -q "^  item-$i " "$DEMO_TMP/show.out" || missing=$((missing + 1))
  done
  if ((missing)); then
    echo "cart_killed: $missing acknowledged item(s) are MISSING" >&2
    return 1
  fi
  echo "all $acked acknowledged item(s) recovered"
}

demo_bank() {
  banner "bank: a persistent bank account (deposit, withdraw, insufficient funds)"
  local app=examples/bank/app.lua db="$DEMO_TMP/bank.db"
  set -x
  "$LORE" run $app "$db" deposit 12345678 1000
  "$LORE" run $app "$db" withdraw 12345678 300
  "$LORE" run $app "$db" withdraw 12345678 5000
  "$LORE" run $app "$db" balance 12345678
  { set +x; } 2>/dev/null
}

DEMOS=(
  hello
  cart
  cart_killed
  bank
)

# --- setup, build, run ------------------------------------------------------

banner "setup: system packages"
"$ROOT/scripts/setup.sh"

banner "build: build/ (Release)"
"$ROOT/scripts/build.sh" build

for d in "${DEMOS[@]}"; do
  "demo_$d"
done

banner "all ${#DEMOS[@]} demo(s) ran"
