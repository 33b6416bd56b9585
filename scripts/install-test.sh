#!/usr/bin/env bash
# install-test.sh BUILD_DIR: installs BUILD_DIR (cmake --install) into a
# temporary prefix and builds a small host (tests/embed/installed) against
# that prefix twice: with `pkg-config --cflags --libs lore` and as a CMake
# project using find_package(lore) and lore::lore. Runs both: each spawns a
# behaviour, asks it, shuts down, and exits 0 only on the right answer.
# Also checks the installed LuaLS annotations compile (luac -p).
# Exit status 0 when all of that holds. Leaves nothing behind.
set -euo pipefail

if [[ $# -ne 1 ]]; then
  echo "usage: scripts/install-test.sh BUILD_DIR" >&2
  exit 2
fi
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$1
[[ "$BUILD" = /* ]] || BUILD="$PWD/$BUILD"
if [[ ! -f "$BUILD/cmake_install.cmake" ]]; then
  echo "install-test: $BUILD is not a configured build directory (run scripts/build.sh first)" >&2
  exit 2
fi
HOST_SRC="$ROOT/tests/embed/installed"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/lore-install-test.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
PREFIX="$WORK/prefix"

step() { echo "install-test: $*"; }

step "cmake --install $BUILD --prefix $PREFIX"
cmake --install "$BUILD" --prefix "$PREFIX" >"$WORK/install.log" ||
  { cat "$WORK/install.log" >&2; exit 1; }

# The libdir is lib or lib/<multiarch>: find the .pc where it was installed.
pc=$(find "$PREFIX" -name lore.pc -path '*/pkgconfig/*' | head -n 1)
[[ -n "$pc" ]] || { echo "install-test: no lore.pc under $PREFIX" >&2; exit 1; }
export PKG_CONFIG_PATH
PKG_CONFIG_PATH="$(dirname "$pc")${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"

# Every path pkg-config gives for lore must be inside the prefix it was
# installed to (a .pc naming the configure-time prefix would build against
# whatever is there, or nothing).
cflags=$(pkg-config --cflags lore)
libs=$(pkg-config --libs lore)
libdir=$(pkg-config --variable=libdir lore)
includedir=$(pkg-config --variable=includedir lore)
for d in "$libdir" "$includedir"; do
  if [[ "$(cd "$d" 2>/dev/null && pwd -P)" != "$(cd "$PREFIX" && pwd -P)"/* ]]; then
    echo "install-test: lore.pc points at $d, outside the prefix $PREFIX" >&2
    exit 1
  fi
done

# loads_installed EXE: EXE's liblore.so is the one in the prefix, not one
# from the build tree or the system.
loads_installed() {
  local lib
  lib=$(ldd "$1" | awk '$1 ~ /^liblore\.so/ {print $3}')
  if [[ -z "$lib" || "$(realpath "$lib")" != "$(realpath "$libdir")"/* ]]; then
    echo "install-test: $1 does not load liblore.so from $libdir:" >&2
    ldd "$1" >&2
    return 1
  fi
}

run_host() { "$@"; }

step "pkg-config: cc host.c $cflags $libs"
# rpath: the host must load the installed library, not one from the build tree.
cc -Wall -Wextra -Werror -o "$WORK/host-pkg-config" "$HOST_SRC/host.c" \
  $cflags $libs -Wl,-rpath,"$libdir"
loads_installed "$WORK/host-pkg-config"
"$WORK/host-pkg-config" "$HOST_SRC/behaviours"

step "CMake: find_package(lore), lore::lore"
cmake -S "$HOST_SRC" -B "$WORK/cmake-build" -DCMAKE_PREFIX_PATH="$PREFIX" \
  -DCMAKE_BUILD_TYPE=Release >"$WORK/cmake.log" || { cat "$WORK/cmake.log" >&2; exit 1; }
cmake --build "$WORK/cmake-build" >>"$WORK/cmake.log" || { cat "$WORK/cmake.log" >&2; exit 1; }
loads_installed "$WORK/cmake-build/installed_host"
"$WORK/cmake-build/installed_host" "$HOST_SRC/behaviours"

types="$PREFIX/share/lore/types/lore.lua"
step "LuaLS annotations: luac -p $types"
[[ -f "$types" ]] || { echo "install-test: $types is not installed" >&2; exit 1; }
LUAC=$(command -v luac5.4 || command -v luac)
"$LUAC" -p "$types"

step "ok"
