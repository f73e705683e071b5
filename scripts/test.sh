#!/usr/bin/env bash
# The whole test suite, as a fresh clone runs it: unit, property, known-answer, integration
# (the real server on an ephemeral port) and process tests (the real binary, killed with
# SIGKILL), on both storage backends. One throwaway PostgreSQL cluster serves the whole run
# (scripts/pg-cluster.sh) and is removed afterwards; tests that need PostgreSQL find it
# through CUSTODY_PG_*, and fail rather than skip without it.
#
# Arguments go to the test runner: `scripts/test.sh -p custody-server` runs one crate's tests
# (cargo-nextest's when it is installed, else `cargo test`'s). Documentation tests, the Python
# SDK's tests (python/tests, with pytest) and the check that the conformance suite ran on every
# backend belong to the whole run, without arguments.
set -euo pipefail
cd "$(dirname "$0")/.."

eval "$(scripts/pg-cluster.sh start)"

# The Python environment is made (once; it is kept under target/) while the tests build; a
# test that needs it waits for it (the script holds a lock while it works).
mkdir -p target
scripts/py-venv.sh > target/py-venv.log 2>&1 &
venv=$!
trap 'kill "$venv" 2>/dev/null || true; scripts/pg-cluster.sh stop "$CUSTODY_PG_DIR"' EXIT

# Every run of the storage conformance suite writes the line that proves it passed every case.
export CUSTODY_CONFORMANCE_REPORT="$PWD/target/conformance"
rm -rf "$CUSTODY_CONFORMANCE_REPORT"

# cargo-nextest runs the test binaries side by side, each test in its own process; plain
# `cargo test` runs the same tests one binary after another.
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --locked --no-fail-fast "$@"
else
    cargo test --workspace --locked --no-fail-fast --lib --bins --tests "$@"
fi

if [[ $# -eq 0 ]]; then
    # nextest does not run documentation tests.
    cargo test --workspace --locked --doc
    # The Python SDK's tests, against the custody binary built for the CLI's integration tests
    # above (building it alone would unify features differently and compile it again).
    python="$(scripts/py-venv.sh)"
    (cd python && CUSTODY_BIN="$PWD/../target/debug/custody" "$python" -m pytest -q -p no:cacheprovider -n auto)
    # The conformance suite must have run, whole, on both databases and through the object
    # wrapper.
    cases="$(sed -n '/^pub const CASES/,/^];/p' crates/custody-conformance/src/lib.rs | grep -c '^    "')"
    for backend in sqlite postgres sqlite+objects; do
        want="conformance: backend=$backend passed=$cases"
        got="$(cat "$CUSTODY_CONFORMANCE_REPORT/$backend.txt" 2>/dev/null || true)"
        if [[ "$got" != "$want" ]]; then
            echo "test.sh: the conformance suite must run all $cases cases on $backend; got: ${got:-nothing}" >&2
            exit 1
        fi
        echo "$got (of $cases cases)"
    done
fi
