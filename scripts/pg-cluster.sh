#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for tests and benchmarks: initdb in a temp directory, a random
# port on 127.0.0.1, a non-superuser role `custody` (row-level security binds it) owning the
# database `custody`.
#
#   eval "$(scripts/pg-cluster.sh start)"   # exports CUSTODY_PG_DIR, CUSTODY_PG_URL, CUSTODY_PG_ADMIN_URL
#   scripts/pg-cluster.sh stop "$CUSTODY_PG_DIR"
#
#   scripts/pg-cluster.sh start --tls CERT.pem KEY.pem
#
# With --tls the cluster speaks TLS with that certificate and key and accepts TCP connections
# only over TLS (hostssl, SCRAM passwords: postgres/postgres, custody/custody); plaintext ones
# are refused. The Unix socket in CUSTODY_PG_DIR stays open to every role without a password,
# for administration. The exported URLs then carry sslmode=require.
#
# PostgreSQL is installed with apt-get if no server binaries are found. initdb refuses to run
# as root, so as root the cluster runs as the `postgres` system user.
set -euo pipefail

find_bin() {
    local d
    for d in /usr/lib/postgresql/*/bin; do
        if [[ -x "$d/initdb" && -x "$d/pg_ctl" ]]; then
            echo "$d"
        fi
    done | sort -V | tail -n 1
}

as_owner() {
    if [[ "$(id -u)" == 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

start() {
    local cert="" key=""
    if [[ $# -gt 0 ]]; then
        [[ $# -eq 3 && "$1" == --tls ]] || { echo "usage: pg-cluster.sh start [--tls CERT.pem KEY.pem]" >&2; exit 2; }
        cert="$2" key="$3"
        [[ -r "$cert" && -r "$key" ]] || { echo "pg-cluster: cannot read $cert and $key" >&2; exit 1; }
    fi
    local bin
    bin="$(find_bin)"
    if [[ -z "$bin" ]]; then
        echo "pg-cluster: PostgreSQL not found; installing it with apt-get" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2
        bin="$(find_bin)"
        [[ -n "$bin" ]] || { echo "pg-cluster: PostgreSQL is still missing after apt-get" >&2; exit 1; }
    fi
    local dir port
    dir="$(mktemp -d "${TMPDIR:-/tmp}/custody-pg.XXXXXX")"
    chmod 700 "$dir"
    if [[ "$(id -u)" == 0 ]]; then
        chown postgres: "$dir"
    fi
    port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    as_owner "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-instructions >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; exit 1; }
    local tls_options="" admin_host=127.0.0.1 admin_password="" query=""
    if [[ -n "$cert" ]]; then
        # PostgreSQL refuses a key that others can read: 0600, owned by the server's user.
        install -m 0644 "$cert" "$dir/server.crt"
        install -m 0600 "$key" "$dir/server.key"
        if [[ "$(id -u)" == 0 ]]; then
            chown postgres: "$dir/server.crt" "$dir/server.key"
        fi
        as_owner tee "$dir/data/pg_hba.conf" >/dev/null <<HBA
# TYPE  DATABASE  USER  ADDRESS       METHOD
local   all       all                 trust
hostssl all       all   127.0.0.1/32  scram-sha-256
HBA
        tls_options="-c ssl=on -c ssl_cert_file=$dir/server.crt -c ssl_key_file=$dir/server.key"
        admin_host="$dir" admin_password=":postgres" query="?sslmode=require"
    fi
    # Durability as shipped (fsync, synchronous_commit on); a bigger WAL and more connections
    # for several servers and the load generator.
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=300 -c max_wal_size=4GB -c shared_buffers=512MB $tls_options" \
        start >&2 || { cat "$dir/server.log" >&2; exit 1; }
    "$bin/psql" -q -h "$admin_host" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 >&2 <<SQL
CREATE ROLE custody LOGIN CREATEDB PASSWORD 'custody';
CREATE DATABASE custody OWNER custody;
SQL
    if [[ -n "$cert" ]]; then
        "$bin/psql" -q -h "$dir" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 \
            -c "ALTER ROLE postgres PASSWORD 'postgres'" >&2
    fi
    echo "export CUSTODY_PG_DIR='$dir' CUSTODY_PG_BIN='$bin'"
    echo "export CUSTODY_PG_URL='postgres://custody:custody@127.0.0.1:$port/custody$query'"
    echo "export CUSTODY_PG_ADMIN_URL='postgres://postgres$admin_password@127.0.0.1:$port/postgres$query'"
}

stop() {
    local dir="${1:?usage: pg-cluster.sh stop DIR}" bin
    [[ -d "$dir" ]] || return 0
    bin="$(find_bin)"
    if [[ -f "$dir/data/postmaster.pid" ]]; then
        as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
}

case "${1:-}" in
    start) shift; start "$@" ;;
    stop) stop "${2:-}" ;;
    *) echo "usage: $0 start [--tls CERT.pem KEY.pem] | stop DIR" >&2; exit 2 ;;
esac
