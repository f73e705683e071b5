#!/usr/bin/env bash
# The whole test suite, as a fresh clone runs it: unit, property, known-answer, integration
# (real server on an ephemeral port) and process tests (the real binary, killed with SIGKILL).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --locked "$@"
