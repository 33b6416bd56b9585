#!/usr/bin/env bash
# pg-cluster.sh: a private, throw-away PostgreSQL cluster for Lore's tests and benchmarks.
#
#   scripts/pg-cluster.sh start     initdb a cluster in a new temporary directory, start it
#                                   listening on a Unix socket in that directory and on a free
#                                   loopback port, create the database `lore`, and print
#                                     export LORE_TEST_PG='host=DIR port=N user=postgres dbname=lore'
#                                     export LORE_TEST_PG_DIR='DIR'
#                                   for `eval "$(scripts/pg-cluster.sh start)"`. The conninfo is
#                                   also written to DIR/conninfo.
#   scripts/pg-cluster.sh stop [DIR] stops the cluster in DIR (default $LORE_TEST_PG_DIR) and
#                                   removes DIR.
#   scripts/pg-cluster.sh run CMD... runs CMD with LORE_TEST_PG set: the cluster named by an
#                                   existing $LORE_TEST_PG if it answers, else a private one
#                                   started for CMD and stopped after it.
#
# PostgreSQL refuses to run as root: as root, the server runs as the `postgres` user (made by
# Debian's postgresql package); as anyone else, as that user. The server binaries come from
# Debian's postgresql package (/usr/lib/postgresql/*/bin); `scripts/setup.sh` installs it.
# Any failure exits non-zero with a message on stderr saying what failed: a PostgreSQL test
# that cannot get its cluster fails, it is never skipped.
set -euo pipefail

die() {
  echo "pg-cluster: $*" >&2
  exit 1
}

# The newest installed server's bin directory (pg_ctl is not on PATH on Debian).
pg_bin() {
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [[ -x $d/pg_ctl && -x $d/initdb ]] && {
      echo "$d"
      return 0
    }
  done
  command -v pg_ctl >/dev/null 2>&1 && {
    dirname "$(command -v pg_ctl)"
    return 0
  }
  return 1
}

# as_server CMD...: runs CMD as the user the server runs as.
as_server() {
  if [[ $(id -u) -eq 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

port_free() {
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

start() {
  local bin
  bin=$(pg_bin) || die "PostgreSQL is not installed (no pg_ctl/initdb under /usr/lib/postgresql): run scripts/setup.sh"
  if [[ $(id -u) -eq 0 ]] && ! id postgres >/dev/null 2>&1; then
    die "running as root and there is no 'postgres' user to run the server as"
  fi
  local dir
  dir=$(mktemp -d "${TMPDIR:-/tmp}/lore-pg.XXXXXX") || die "mktemp failed"
  chmod 755 "$dir"
  [[ $(id -u) -eq 0 ]] && chown postgres: "$dir"
  if ! as_server "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C \
    >"$dir/initdb.log" 2>&1; then
    cat "$dir/initdb.log" >&2
    rm -rf "$dir"
    die "initdb failed (log above)"
  fi
  # A port nobody listens on; a race with another process taking it is caught by the start.
  local port tries=0 started=0
  while ((tries < 20)); do
    tries=$((tries + 1))
    port=$((20000 + RANDOM % 20000))
    port_free "$port" || continue
    if as_server "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300" \
      start >/dev/null 2>&1; then
      started=1
      break
    fi
  done
  if ((!started)); then
    cat "$dir/server.log" >&2 2>/dev/null || true
    rm -rf "$dir"
    die "the server did not start (log above)"
  fi
  if ! as_server "$bin/createdb" -h "$dir" -p "$port" -U postgres lore >/dev/null 2>&1; then
    as_server "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$dir"
    die "createdb lore failed"
  fi
  local conninfo="host=$dir port=$port user=postgres dbname=lore"
  echo "$conninfo" >"$dir/conninfo"
  echo "export LORE_TEST_PG='$conninfo'"
  echo "export LORE_TEST_PG_DIR='$dir'"
}

stop() {
  local dir=${1:-${LORE_TEST_PG_DIR:-}}
  [[ -n $dir ]] || die "stop: no directory given and LORE_TEST_PG_DIR is not set"
  [[ -d $dir/data ]] || die "stop: $dir holds no cluster"
  local bin
  bin=$(pg_bin) || die "PostgreSQL is not installed"
  as_server "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null 2>&1 ||
    as_server "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}

# Whether the cluster named by $LORE_TEST_PG answers.
answers() {
  [[ -n ${LORE_TEST_PG:-} ]] || return 1
  command -v psql >/dev/null 2>&1 || return 0 # no client to ask with: trust the caller
  env -u LD_PRELOAD psql "$LORE_TEST_PG" -Atqc 'SELECT 1' >/dev/null 2>&1
}

run() {
  (($# > 0)) || die "run: no command"
  if answers; then
    exec "$@"
  fi
  local out
  out=$(start) || exit 1
  eval "$out"
  local rc=0
  "$@" || rc=$?
  stop "$LORE_TEST_PG_DIR" || true
  exit "$rc"
}

cmd=${1:-}
shift || true
case $cmd in
  start) start ;;
  stop) stop "$@" ;;
  run) run "$@" ;;
  *)
    echo "usage: scripts/pg-cluster.sh start | stop [DIR] | run CMD..." >&2
    exit 2
    ;;
esac
