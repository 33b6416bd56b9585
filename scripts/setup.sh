#!/usr/bin/env bash
# setup.sh: installs what Lore needs to build and test on Debian 12 (bookworm).
# Idempotent: when every package is already installed, apt is not touched at all.
# Works without a tty (CI); as root directly, otherwise through sudo when there is one.
set -euo pipefail

PACKAGES=(
  build-essential pkg-config make gcc cmake git
  liblua5.4-dev lua5.4
  libuv1-dev
  libsqlite3-dev sqlite3
  libpq-dev postgresql # the "postgres:" journal; its tests run a private cluster (scripts/pg-cluster.sh)
  libmsgpack-dev
  libmimalloc-dev # the workers' Lua heaps
  libjansson-dev jq lua-dkjson # bindings/cli: JSON output; its checks (tests/cli, tests/lua)
  libcmocka-dev
  lua-busted lua-check
  procps
  clang libclang-rt-dev # scripts/fuzz.sh: libFuzzer and clang's sanitizer runtimes
  clang-format # .ci/run checks the C sources against .clang-format
)

missing=()
for p in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
  echo "setup: all ${#PACKAGES[@]} packages already installed"
  exit 0
fi

echo "setup: installing ${missing[*]}"
if [[ $(id -u) -eq 0 ]]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1; then
  SUDO=(sudo -n)
else
  echo "setup: not root and no sudo: install these packages first: ${missing[*]}" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
  "${missing[@]}" </dev/null
echo "setup: done"
