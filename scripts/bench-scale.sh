#!/usr/bin/env bash
# The storage backends side by side, in one session, for docs/BENCHMARKS.md: custody over HTTP
# on the embedded SQLite store and on PostgreSQL (one server, then two servers appending to the
# same log), and plain inserts of the same bytes at the same durability into SQLite (WAL,
# synchronous=FULL) and PostgreSQL (synchronous_commit on), all on loopback.
# A throwaway PostgreSQL cluster is started and removed (scripts/pg-cluster.sh).
# Results: one JSON line per run in $OUT (default bench-scale.jsonl).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p custody-cli -p custody-loadgen
B=target/release/custody-loadgen
OUT=${OUT:-bench-scale.jsonl}
WORK=$(mktemp -d)
PIDS=()
eval "$(scripts/pg-cluster.sh start)"
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  scripts/pg-cluster.sh stop "$CUSTODY_PG_DIR"
  rm -rf "$WORK"
}
trap cleanup EXIT
: > "$OUT"
run() { "$B" --json "$@" >> "$OUT"; }

# start_custody NAME [serve flags...]: starts a server, sets URL and PID.
start_custody() {
  local name=$1; shift
  setsid target/release/custody serve --data-dir "$WORK/$name" --listen 127.0.0.1:0 \
    --server-name bench.local --bootstrap-token-file "$WORK/admin.token" "$@" > "$WORK/$name.log" 2>&1 &
  PID=$!
  PIDS+=("$PID")
  for _ in $(seq 100); do grep -q "listening on" "$WORK/$name.log" && break; sleep 0.1; done
  URL=$(grep -o 'listening on http://[0-9.:]*' "$WORK/$name.log" | head -1 | sed 's/listening on //')
}

stop_all() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  done
  PIDS=()
  rm -f "$WORK/admin.token"
}

# custody_suite LABEL: the append and proof runs against $URL / $PID.
custody_suite() {
  local label=$1
  local token
  token=$("$B" principal --url "$URL" --token "$(cat "$WORK/admin.token")" --tenant bench \
    --name bench-writer --roles writer)
  run --pid "$PID" --note "$label" http-append --url "$URL" --token "$token" --concurrency 1 --total 3000
  run --pid "$PID" --note "$label" http-append --url "$URL" --token "$token" --concurrency 16 --total 20000
  run --pid "$PID" --note "$label" http-append --url "$URL" --token "$token" --concurrency 256 --total 20000
  run --pid "$PID" --note "$label" http-append --url "$URL" --token "$token" --concurrency 16 --total 200000 --batch 100
  run --pid "$PID" --note "$label" http-proof --url "$URL" --token "$token" --concurrency 1 --total 5000
  run --pid "$PID" --note "$label" http-proof --url "$URL" --token "$token" --concurrency 16 --total 20000
}

# --- custody on SQLite -----------------------------------------------------
start_custody sqlite
custody_suite "custody, SQLite"
stop_all

# --- custody on PostgreSQL, one server ---------------------------------------
psql -q "$CUSTODY_PG_ADMIN_URL" -c "DROP DATABASE custody WITH (FORCE)" -c "CREATE DATABASE custody OWNER custody"
start_custody pg1 --database-url "$CUSTODY_PG_URL"
custody_suite "custody, PostgreSQL, 1 server"
stop_all

# --- custody on PostgreSQL, two servers, one log ----------------------------
psql -q "$CUSTODY_PG_ADMIN_URL" -c "DROP DATABASE custody WITH (FORCE)" -c "CREATE DATABASE custody OWNER custody"
start_custody pg2a --database-url "$CUSTODY_PG_URL" --key-dir "$WORK/pg2-keys"
URL1=$URL PID1=$PID
start_custody pg2b --database-url "$CUSTODY_PG_URL" --key-dir "$WORK/pg2-keys"
URL2=$URL PID2=$PID
token=$("$B" principal --url "$URL1" --token "$(cat "$WORK/admin.token")" --tenant bench \
  --name bench-writer --roles writer)
for args in "--concurrency 8 --total 10000" "--concurrency 8 --total 50000 --batch 100"; do
  # shellcheck disable=SC2086
  "$B" --json --pid "$PID1" --note "custody, PostgreSQL, 2 servers (server 1 of 2)" http-append --url "$URL1" --token "$token" $args >> "$OUT" &
  LG=$!
  # shellcheck disable=SC2086
  "$B" --json --pid "$PID2" --note "custody, PostgreSQL, 2 servers (server 2 of 2)" http-append --url "$URL2" --token "$token" $args >> "$OUT"
  wait "$LG"
done
stop_all
psql -q "$CUSTODY_PG_ADMIN_URL" -c "SELECT pg_size_pretty(pg_database_size('custody'))" >&2

# --- plain inserts -----------------------------------------------------------
for c in 1 16 256; do
  rm -f "$WORK"/sqlite.db*
  run sqlite-insert --path "$WORK/sqlite.db" --concurrency $c --total 20000
  run pg-insert --url "$CUSTODY_PG_URL" --concurrency $c --total 20000
done
for c in 16 256; do
  rm -f "$WORK"/sqlite.db*
  run sqlite-insert --path "$WORK/sqlite.db" --concurrency $c --total 20000 --group
  run pg-insert --url "$CUSTODY_PG_URL" --concurrency $c --total 20000 --group
done
echo done >&2
