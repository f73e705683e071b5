#!/usr/bin/env bash
# The evidence-chain benchmark for docs/BENCHMARKS.md: inference records ingested per second
# (NDJSON, acknowledged durable) and trace latency on a ledger of >= 1M entries, side by side
# with the same records as generic x.* entries (no serving check) and with plain SQLite
# (WAL, synchronous=FULL, group commit, indexed by request id).
#
# One throwaway `custody serve` in a temp dir: registers a chain (evidence-setup), fills the
# inference log with $FILL records, measures ingest at 1/16/64 clients with batches of 1 and
# 1000, runs the SQLite baseline on the same records, then times verified traces backward from
# random request ids and forward from a dataset. Prints server RSS and disk bytes per entry.
# Usage: scripts/bench-evidence.sh            (FILL=1000000 by default; about 15 minutes)
#        FILL=20000 SHRINK=20 scripts/bench-evidence.sh   (a quick check of the script)
# Results: one JSON line per run in $OUT (default bench-evidence.jsonl).
# custody starts with --bootstrap-token-file; evidence-setup uses its administrator's token to
# make the chain's principals and hands back a writer's token (ingest) and an auditor's
# (traces, footprint); tokens never go to $OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p custody-cli -p custody-loadgen
B=target/release/custody-loadgen
OUT=${OUT:-bench-evidence.jsonl}
FILL=${FILL:-1000000}
T=evidence
WORK=$(mktemp -d)
CPID=
stop_server() {
  [ -n "$CPID" ] || return 0
  kill "$CPID" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$CPID" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$CPID" 2>/dev/null; then echo "custody still running 10 s after SIGTERM: SIGKILL" >&2; kill -9 "$CPID"; fi
  CPID=
}
trap 'stop_server; rm -rf "$WORK"' EXIT
: > "$OUT"
run() { "$B" --json "$@" >> "$OUT"; }
phase() { echo "== $(date -u +%H:%M:%S) $*" >&2; }

# Disk and memory of the server: one JSON line.
footprint() { # $1 = label
  local logs inf gov bytes
  logs=$(curl -sf -H "Authorization: Bearer $ATOKEN" "$URL/v1/tenants/$T/logs")
  inf=$(jq '.logs[] | select(.name == "inference") | .size' <<< "$logs")
  gov=$(jq '.logs[] | select(.name == "governance") | .size' <<< "$logs")
  bytes=$(du -sb "$WORK/custody" | cut -f1)
  local rss hwm
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$CPID/status")
  hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$CPID/status")
  echo "{\"mode\":\"footprint\",\"note\":\"$1\",\"inference_entries\":$inf,\"governance_entries\":$gov,\"disk_bytes\":$bytes,\"bytes_per_entry\":$((bytes / (inf + gov))),\"rss_mb\":$((rss / 1024)),\"peak_rss_mb\":$((hwm / 1024))}" | tee -a "$OUT" >&2
}

# --- custody server and the chain -----------------------------------------
setsid target/release/custody serve --data-dir "$WORK/custody" --listen 127.0.0.1:0 \
  --server-name bench.local --bootstrap-token-file "$WORK/admin.token" > "$WORK/custody.log" 2>&1 &
CPID=$!
for _ in $(seq 100); do grep -q "listening on" "$WORK/custody.log" && break; sleep 0.1; done
URL=$(grep -o 'listening on http://[0-9.:]*' "$WORK/custody.log" | head -1 | sed 's/listening on //')
for _ in $(seq 100); do curl -sf "$URL/healthz" > /dev/null && break; sleep 0.1; done
phase "custody at $URL pid $CPID, data in $WORK"
CHAIN=$("$B" evidence-setup --url "$URL" --token "$(cat "$WORK/admin.token")" --tenant $T)
echo "$CHAIN" | jq -c '{mode: "evidence-setup"} + . | del(.writer_token, .auditor_token)' >> "$OUT"
WTOKEN=$(jq -r .writer_token <<< "$CHAIN")
ATOKEN=$(jq -r .auditor_token <<< "$CHAIN")
DEP=$(jq -r .deployment <<< "$CHAIN")
VH=$(jq -r .version_hash <<< "$CHAIN")
DS=$(jq -r '.datasets[0]' <<< "$CHAIN")
INF=(--url "$URL" --token "$WTOKEN" --tenant $T --deployment "$DEP" --version-hash "$VH")

# --- fill: >= 1M inference records -----------------------------------------
phase "fill: $FILL inference records, 4 clients, 1000 per request"
run --pid $CPID --note "fill" http-inference "${INF[@]}" --concurrency 4 --batch 1000 \
  --total "$FILL" --prefix fill-
footprint "after fill"

# --- ingest: inference records vs generic entries ---------------------------
total_for() { # $1 = clients, $2 = batch; SHRINK=n divides every total, for a quick check
  local n
  case "$2" in
    1) case "$1" in 1) n=2000 ;; 16) n=16000 ;; *) n=32000 ;; esac ;;
    *) case "$1" in 1) n=40000 ;; 16) n=96000 ;; *) n=128000 ;; esac ;;
  esac
  echo $((n / ${SHRINK:-1}))
}
for b in 1 1000; do
  for c in 1 16 64; do
    n=$(total_for $c $b)
    phase "ingest c=$c batch=$b: $n inference records, then $n generic entries"
    run --pid $CPID --note "ingest" http-inference "${INF[@]}" --concurrency $c --batch $b \
      --total $n --prefix "m-c$c-b$b-"
    run --pid $CPID --note "ingest" http-inference "${INF[@]}" --concurrency $c --batch $b \
      --total $n --prefix "g-c$c-b$b-" --generic
  done
done
footprint "after ingest"

# --- traces on the >= 1M-entry ledger --------------------------------------
phase "traces backward from random request ids and forward from a dataset"
# Each run stops after 2,000 traces or 60 s, whichever comes first.
TR=(--url "$URL" --token "$ATOKEN" --tenant $T --max-seconds "${TRACE_SECONDS:-60}")
run --pid $CPID trace-latency "${TR[@]}" --concurrency 1 --total 2000 --prefix fill- --ids "$FILL"
run --pid $CPID trace-latency "${TR[@]}" --concurrency 16 --total 2000 --prefix fill- --ids "$FILL"
run --pid $CPID trace-latency "${TR[@]}" --concurrency 1 --total 2000 --forward "$DS" --limit 100
run --pid $CPID trace-latency "${TR[@]}" --concurrency 16 --total 2000 --forward "$DS" --limit 100
footprint "after traces"
stop_server

# --- plain SQLite on the same records -------------------------------------
DB="$WORK/sqlite.db"
phase "sqlite: fill $FILL records, then the same ingest matrix, then lookups"
run --note "fill" sqlite-ndjson --path "$DB" --concurrency 4 --batch 1000 --total "$FILL" --prefix fill-
for b in 1 1000; do
  for c in 1 16 64; do
    run --note "ingest" sqlite-ndjson --path "$DB" --concurrency $c --batch $b \
      --total "$(total_for $c $b)" --prefix "m-c$c-b$b-"
  done
done
run sqlite-lookup --path "$DB" --concurrency 1 --total 20000 --prefix fill- --ids "$FILL"
run sqlite-lookup --path "$DB" --concurrency 16 --total 50000 --prefix fill- --ids "$FILL"
rows=$(jq -s '[.[] | select(.mode == "sqlite-ndjson")] | last | .table_rows' "$OUT")
bytes=$(du -cb "$DB"* | tail -1 | cut -f1)
echo "{\"mode\":\"sqlite-footprint\",\"rows\":$rows,\"disk_bytes\":$bytes,\"bytes_per_row\":$((bytes / rows))}" | tee -a "$OUT" >&2
phase "done: $OUT"
