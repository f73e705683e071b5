#!/usr/bin/env bash
# The whole test suite, as a fresh clone runs it: unit, property, known-answer, integration
# (real server on an ephemeral port) and process tests (the real binary, killed with SIGKILL),
# on both storage backends. A throwaway PostgreSQL cluster is started for the run and removed
# afterwards (scripts/pg-cluster.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

eval "$(scripts/pg-cluster.sh start)"
trap 'scripts/pg-cluster.sh stop "$CUSTODY_PG_DIR"' EXIT
export CUSTODY_REQUIRE_PG=1

# The storage conformance suite on each backend, with its report: both must run every case.
report="$(cargo test --locked -p custody-store-sqlite -p custody-store-postgres --test conformance \
    -- --nocapture conformance 2>&1)" || { echo "$report"; exit 1; }
cases="$(grep -c '^    "' <(sed -n '/^pub const CASES/,/^];/p' crates/custody-store/src/conformance.rs))"
for backend in sqlite postgres; do
    line="$(grep -E "^conformance: backend=$backend passed=" <<<"$report" || true)"
    if [[ "$line" != "conformance: backend=$backend passed=$cases" ]]; then
        echo "$report"
        echo "test.sh: the conformance suite must run all $cases cases on $backend; got: ${line:-nothing}" >&2
        exit 1
    fi
    echo "$line (of $cases cases)"
done

cargo test --workspace --locked "$@"
