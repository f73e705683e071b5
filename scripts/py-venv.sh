#!/usr/bin/env bash
# Creates (once) the throwaway Python environment the interop tests check custody against:
# OpenSSF model-signing, pyca/cryptography and an RFC 8785 implementation from PyPI, and
# moto's S3-compatible server for the object-store tests of `custody drift`.
# Prints the environment's python interpreter. Safe to run from many tests at once.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${CUSTODY_PY_VENV:-$root/target/py-venv}"
req="$root/testdata/python/requirements.txt"
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
stamp="$venv/.requirements"
if ! cmp -s "$req" "$stamp" 2>/dev/null; then
    rm -rf "$venv"
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req" >&2
    cp "$req" "$stamp"
fi
echo "$venv/bin/python"
