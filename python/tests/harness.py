"""A real `custody serve` process on 127.0.0.1:0 over a fresh data directory: what the SDK's
tests and its benchmark both run against (``custody_bin``: ``CUSTODY_BIN``, default
``target/debug/custody``)."""

from __future__ import annotations

import os
import re
import subprocess
import threading
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
SERVER_NAME = "sdk.test"


def custody_bin() -> Path:
    """The binary under test."""
    path = Path(os.environ.get("CUSTODY_BIN", REPO / "target" / "debug" / "custody"))
    if not path.is_file():
        raise FileNotFoundError(
            f"no custody binary at {path}: run `cargo build -p custody-cli` or set CUSTODY_BIN"
        )
    return path


class Server:
    """A running `custody serve` process."""

    def __init__(
        self,
        data_dir: Path,
        extra_args: tuple[str, ...] = (),
        listen: str = "127.0.0.1:0",
        binary: Path | None = None,
        server_name: str = SERVER_NAME,
    ) -> None:
        self.data_dir = data_dir
        token_file = data_dir / "admin.token"
        self.process = subprocess.Popen(
            [
                str(binary or custody_bin()),
                "serve",
                "--data-dir",
                str(data_dir),
                "--listen",
                listen,
                "--server-name",
                server_name,
                "--bootstrap-token-file",
                str(token_file),
                "--reconcile-every",
                "0",
                *extra_args,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.output: list[str] = []
        ready = threading.Event()
        found: list[str] = []

        def pump() -> None:
            assert self.process.stdout is not None
            for line in self.process.stdout:
                self.output.append(line)
                m = re.search(r"custody listening on (http\S+)", line)
                if m and not found:
                    found.append(m.group(1))
                    ready.set()
            ready.set()

        self._pump = threading.Thread(target=pump, daemon=True)
        self._pump.start()
        if not ready.wait(60) or not found:
            self.stop()
            raise RuntimeError("custody serve did not start:\n" + "".join(self.output))
        self.url = found[0]
        self.admin_token = token_file.read_text().strip()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._close()

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        self.process.kill()
        self.process.wait()
        self._close()

    def _close(self) -> None:
        self._pump.join(5)
        if self.process.stdout is not None:
            self.process.stdout.close()

    def admin(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {self.admin_token}"},
            timeout=30,
        )
