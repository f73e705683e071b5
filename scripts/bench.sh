#!/usr/bin/env bash
# One comparison session for docs/BENCHMARKS.md: custody over HTTP, plain SQLite inserts of
# the same bytes at the same durability, and the siglog transparency log, all on loopback.
# Needs siglog installed (`cargo install siglog --root /opt/siglog`, or set SIGLOG=path).
# Results: one JSON line per run in $OUT (default bench-results.jsonl).
# custody starts with --bootstrap-token-file; its administrator's token makes a writer of the
# bench tenant, whose token the loadgen sends.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p custody-cli -p custody-loadgen
B=target/release/custody-loadgen
SIGLOG=${SIGLOG:-/opt/siglog/bin/siglog}
OUT=${OUT:-bench-results.jsonl}
WORK=$(mktemp -d)
CPID=
trap '[ -z "$CPID" ] || kill "$CPID" 2>/dev/null || true; rm -rf "$WORK"' EXIT
: > "$OUT"
run() { "$B" --json "$@" >> "$OUT"; }

# --- custody -------------------------------------------------------------
rm -rf "$WORK/custody"
setsid target/release/custody serve --data-dir "$WORK/custody" --listen 127.0.0.1:0 \
  --server-name bench.local --bootstrap-token-file "$WORK/admin.token" > "$WORK/custody.log" 2>&1 &
CPID=$!
for _ in $(seq 50); do grep -q "listening on" "$WORK/custody.log" && break; sleep 0.1; done
CURL=$(grep -o 'listening on http://[0-9.:]*' "$WORK/custody.log" | head -1 | sed 's/listening on //')
echo "custody at $CURL pid $CPID" >&2
TOKEN=$("$B" principal --url "$CURL" --token "$(cat "$WORK/admin.token")" --tenant bench \
  --name bench-writer --roles writer)
run --pid $CPID http-append --url "$CURL" --token "$TOKEN" --tenant bench --concurrency 1 --total 5000
run --pid $CPID http-append --url "$CURL" --token "$TOKEN" --tenant bench --concurrency 16 --total 20000
run --pid $CPID http-append --url "$CURL" --token "$TOKEN" --tenant bench --concurrency 256 --total 20000
run --pid $CPID http-append --url "$CURL" --token "$TOKEN" --tenant bench --concurrency 16 --total 100000 --batch 100
run --pid $CPID http-proof --url "$CURL" --token "$TOKEN" --tenant bench --concurrency 1 --total 5000
run --pid $CPID http-proof --url "$CURL" --token "$TOKEN" --tenant bench --concurrency 16 --total 20000
run --pid $CPID http-proof --url "$CURL" --token "$TOKEN" --tenant bench --concurrency 256 --total 20000
kill $CPID
for _ in $(seq 100); do kill -0 $CPID 2>/dev/null || break; sleep 0.1; done
if kill -0 $CPID 2>/dev/null; then echo "custody still running 10 s after SIGTERM: SIGKILL" >&2; kill -9 $CPID; fi
CPID=
du -sh "$WORK/custody" >&2

# --- plain SQLite ----------------------------------------------------------
for c in 1 16 256; do
  rm -f "$WORK"/sqlite.db*
  run sqlite-insert --path "$WORK/sqlite.db" --concurrency $c --total 20000
done
for c in 1 16 256; do
  rm -f "$WORK"/sqlite.db*
  run sqlite-insert --path "$WORK/sqlite.db" --concurrency $c --total 20000 --group
done
rm -f "$WORK"/sqlite.db*

# --- siglog ----------------------------------------------------------------
siglog_start() { # $1 = label, rest = extra flags
  local label=$1; shift
  rm -rf "$WORK/siglog-$label" && mkdir -p "$WORK/siglog-$label"/tiles
  RUST_LOG=warn setsid "$SIGLOG" \
    --database-url "sqlite:$WORK/siglog-$label/siglog.db?mode=rwc" \
    --storage-backend fs --fs-root "$WORK/siglog-$label"/tiles \
    --origin bench.local/siglog --private-key "$("$B" siglog-key)" \
    --listen 127.0.0.1:2025 "$@" > /dev/null 2>&1 &
  SPID=$!
  for _ in $(seq 50); do curl -sf http://127.0.0.1:2025/health >/dev/null && break; sleep 0.1; done
}
SURL=http://127.0.0.1:2025
siglog_start default
run --pid $SPID --note "siglog defaults (batch-max-age 1000 ms, batch-max-size 256)" siglog-add --integrate-timeout 120 --url $SURL --concurrency 1 --total 20
run --pid $SPID --note "siglog defaults (batch-max-age 1000 ms, batch-max-size 256)" siglog-add --integrate-timeout 120 --url $SURL --concurrency 16 --total 1000
run --pid $SPID --note "siglog defaults (batch-max-age 1000 ms, batch-max-size 256)" siglog-add --integrate-timeout 120 --url $SURL --concurrency 256 --total 20000
kill $SPID; wait $SPID 2>/dev/null || true
siglog_start tuned --batch-max-age-ms 1
run --pid $SPID --note "siglog --batch-max-age-ms 1" siglog-add --integrate-timeout 120 --url $SURL --concurrency 1 --total 2000
run --pid $SPID --note "siglog --batch-max-age-ms 1" siglog-add --integrate-timeout 120 --url $SURL --concurrency 16 --total 20000
run --pid $SPID --note "siglog --batch-max-age-ms 1" siglog-add --integrate-timeout 120 --url $SURL --concurrency 256 --total 20000
kill $SPID; wait $SPID 2>/dev/null || true
echo done >&2
