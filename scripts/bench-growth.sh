#!/usr/bin/env bash
# How custody's cost grows with the log: appends in batches up to each milestone, then records
# server RSS, inclusion-proof throughput and latency, and disk bytes per entry.
# Usage: [BACKEND=postgres] scripts/bench-growth.sh [milestones...]
#   (default milestones: 100000 1000000 10000000; BACKEND sqlite (default) or postgres, on a
#   throwaway cluster from scripts/pg-cluster.sh; disk is then the database's size)
# Results: one JSON line per measurement in $OUT (default bench-growth.jsonl).
# custody starts with --bootstrap-token-file; its administrator's token makes a writer of the
# growth tenant, whose token the loadgen sends.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p custody-cli -p custody-loadgen
B=target/release/custody-loadgen
OUT=${OUT:-bench-growth.jsonl}
MILESTONES=${*:-100000 1000000 10000000}
WORK=$(mktemp -d)
BACKEND=${BACKEND:-sqlite}
DB=()
if [ "$BACKEND" = postgres ]; then
  eval "$(scripts/pg-cluster.sh start)"
  DB=(--database-url "$CUSTODY_PG_URL")
fi
CPID=
cleanup() {
  [ -z "$CPID" ] || kill "$CPID" 2>/dev/null || true
  if [ "$BACKEND" = postgres ]; then scripts/pg-cluster.sh stop "$CUSTODY_PG_DIR"; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
: > "$OUT"
setsid target/release/custody serve --data-dir "$WORK/custody" --listen 127.0.0.1:0 \
  --server-name bench.local --bootstrap-token-file "$WORK/admin.token" "${DB[@]}" > "$WORK/custody.log" 2>&1 &
CPID=$!
for _ in $(seq 50); do grep -q "listening on" "$WORK/custody.log" && break; sleep 0.1; done
URL=$(grep -o 'listening on http://[0-9.:]*' "$WORK/custody.log" | head -1 | sed 's/listening on //')
TOKEN=$("$B" principal --url "$URL" --token "$(cat "$WORK/admin.token")" --tenant growth \
  --name bench-writer --roles writer)
size=0
for m in $MILESTONES; do
  "$B" --json --pid $CPID --note "grow to $m" http-append --url "$URL" --token "$TOKEN" --tenant growth \
    --concurrency 4 --batch 1000 --payload-bytes 64 --total $((m - size)) >> "$OUT"
  size=$m
  "$B" --json --pid $CPID --note "proofs at $m" http-proof --url "$URL" --token "$TOKEN" --tenant growth \
    --concurrency 16 --total 20000 >> "$OUT"
  if [ "$BACKEND" = postgres ]; then
    bytes=$(psql -tA "$CUSTODY_PG_URL" -c "SELECT pg_database_size('custody')")
  else
    bytes=$(du -sb "$WORK/custody" | cut -f1)
  fi
  echo "{\"mode\":\"disk\",\"backend\":\"$BACKEND\",\"entries\":$m,\"bytes\":$bytes,\"bytes_per_entry\":$((bytes / m))}" >> "$OUT"
done
