"""``python -m custody verify PACK --vkey V [--vkey V2] [--json]``: check an evidence pack
offline, with no custody server and no custody code beyond this package.

Exit 0 when the pack is valid, 1 when it is not (each problem printed as
``FAILED: <file>: <check>: <message>``), 2 for a usage error (one line on stderr naming the
flag and the fix). Keys are required: a pack's own keys show consistency, not who signed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from custody.errors import ConfigurationError
from custody.verify.note import Verifier
from custody.verify.pack import verify_pack


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageError(message)


def _parser() -> _Parser:
    parser = _Parser(
        prog="python -m custody verify",
        description="Verify an evidence pack directory offline under pinned log keys.",
    )
    parser.add_argument("pack", metavar="PACK", help="the directory `custody export` wrote")
    parser.add_argument(
        "--vkey",
        action="append",
        required=True,
        metavar="KEY_OR_FILE",
        help="a log's verifier key, or a file holding keys (one a line); repeat per log",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser


def load_verifiers(values: Sequence[str]) -> list[Verifier]:
    """The verifier keys given on the command line: each value is a key string or the path of a
    file holding one key a line. Raises :class:`ConfigurationError` naming the bad value."""
    verifiers: list[Verifier] = []
    for value in values:
        path = Path(value)
        if "+" not in value and not path.is_file():
            raise ConfigurationError(f"{value!r} is neither a verifier key nor a readable file")
        lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else [value]
        keys = [line.strip() for line in lines if line.strip()]
        if not keys:
            raise ConfigurationError(f"{value} holds no verifier key")
        verifiers.extend(Verifier.parse(key) for key in keys)
    return verifiers


def _usage(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def main(argv: Sequence[str]) -> int:
    """Runs the command; returns the exit code."""
    try:
        args = _parser().parse_args(list(argv))
    except _UsageError as e:
        if "--vkey" in str(e):
            return _usage(
                "--vkey is required: pin each log's verifier key "
                "(`custody vkey -t TENANT -l LOG`), e.g. --vkey 'NAME+ID+KEY' or --vkey FILE"
            )
        return _usage(f"{e}; usage: python -m custody verify PACK --vkey KEY_OR_FILE [--json]")
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 0
    try:
        verifiers = load_verifiers(args.vkey)
    except (ConfigurationError, OSError, UnicodeDecodeError) as e:
        return _usage(f"--vkey: {e}; give a key as `custody vkey` prints it, or a file holding one")
    pack = Path(args.pack)
    if not pack.is_dir():
        return _usage(f"PACK: {pack} is not a directory; give the directory `custody export` wrote")
    report = verify_pack(pack, verifiers)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        for line in report.passed:
            print(f"OK: {line}")
        for problem in report.problems:
            print(f"FAILED: {problem.file}: {problem.check}: {problem.message}")
        if report.ok:
            print(f"OK: evidence pack {pack} ({report.scope}) verified")
        else:
            print(f"FAILED: evidence pack {pack} is not valid: {len(report.problems)} problem(s)")
    return 0 if report.ok else 1
