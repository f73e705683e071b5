"""``python -m custody`` (also installed as ``custody-py``): the commands that need no server
or that check the server from outside.

* ``verify PACK --vkey V``: verify an evidence pack offline (exit 0 valid, 1 invalid).
* ``replay --request-id ID``: re-run a recorded decision in its pinned environment.
* ``hash-model PATH``: the version hash of a model directory or file.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

#: Each command's ``main(argv) -> exit code``, imported only when the command runs.
COMMANDS: dict[str, tuple[str, str]] = {
    "verify": ("custody.verify.cli", "verify an evidence pack offline"),
    "replay": ("custody.replay", "re-run a recorded decision and compare its output"),
    "hash-model": ("custody.hashing", "print the version hash of a model directory or file"),
}


def usage() -> str:
    lines = ["usage: python -m custody COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<12} {about}" for name, (_, about) in COMMANDS.items()]
    lines.append("\n`python -m custody COMMAND --help` says more.")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        print(
            f"error: unknown command {command!r}; use one of: {', '.join(COMMANDS)}",
            file=sys.stderr,
        )
        return 2
    module = importlib.import_module(COMMANDS[command][0])
    code: int = module.main(rest)
    return code


if __name__ == "__main__":
    sys.exit(main())
