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

DEMOS=(
  hello
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
