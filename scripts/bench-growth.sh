#!/usr/bin/env bash
# How custody's cost grows with the log: appends in batches up to each milestone, then records
# server RSS, inclusion-proof throughput and latency, and disk bytes per entry.
# Usage: scripts/bench-growth.sh [milestones...]   (default: 100000 1000000 10000000)
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
trap 'kill $CPID 2>/dev/null || true; rm -rf "$WORK"' EXIT
: > "$OUT"
setsid target/release/custody serve --data-dir "$WORK/custody" --listen 127.0.0.1:0 \
  --server-name bench.local --bootstrap-token-file "$WORK/admin.token" > "$WORK/custody.log" 2>&1 &
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
  bytes=$(du -sb "$WORK/custody" | cut -f1)
  echo "{\"mode\":\"disk\",\"entries\":$m,\"bytes\":$bytes,\"bytes_per_entry\":$((bytes / m))}" >> "$OUT"
done
