#!/usr/bin/env bash
# Creates (once) the throwaway Python environment the tests use: the independent
# implementations custody is checked against (OpenSSF model-signing, pyca/cryptography, an
# RFC 8785 implementation), moto's S3-compatible server, and the Python SDK in python/
# (installed editable, with what its tests and linters need).
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
# The SDK is installed editable (its code is read from python/src); only a change to its
# pyproject.toml needs a new install.
sdk_stamp="$venv/.pyproject"
if ! cmp -s "$root/python/pyproject.toml" "$sdk_stamp" 2>/dev/null; then
    "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps --no-build-isolation \
        -e "$root/python" >&2
    cp "$root/python/pyproject.toml" "$sdk_stamp"
fi
echo "$venv/bin/python"
