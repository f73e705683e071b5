"""The real custody server for the SDK's tests: the `custody` binary built from this repository
(``CUSTODY_BIN``, default ``target/debug/custody``), started once per test session on
``127.0.0.1:0`` over a fresh embedded store, and stopped afterwards.

Tests get a tenant of their own (:func:`tenant`) with principals of each role, so no test sees
another's entries. Set-up talks plain HTTP (httpx), not the SDK under test.
"""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from harness import Server

ROLES = ("admin", "writer", "approver", "auditor")


@dataclass
class Member:
    principal: str
    token: str


@dataclass
class Tenant:
    """A tenant of the test server and a principal (with token) per role."""

    name: str
    server: Server
    members: dict[str, Member] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.server.url

    def token(self, role: str) -> str:
        return self.members[role].token

    def principal(self, role: str) -> str:
        return self.members[role].principal

    def add_member(self, name: str, roles: list[str], kind: str = "user") -> Member:
        with self.server.admin() as http:
            r = http.post(
                f"/v1/tenants/{self.name}/principals",
                json={"kind": kind, "name": name, "roles": roles},
            )
            r.raise_for_status()
            made = r.json()
        return Member(made["principal"]["id"], made["token"]["token"])

    def vkeys(self) -> dict[str, str]:
        with self.server.admin() as http:
            r = http.get(f"/v1/tenants/{self.name}/logs")
            r.raise_for_status()
            return {log["name"]: log["verifier_key"] for log in r.json()["logs"]}


_counter = itertools.count()


def new_tenant(server: Server, prefix: str = "t") -> Tenant:
    name = f"{prefix}-{os.getpid()}-{next(_counter)}"
    with server.admin() as http:
        http.post("/v1/tenants", json={"name": name}).raise_for_status()
    t = Tenant(name=name, server=server)
    for role in ROLES:
        t.members[role] = t.add_member(f"{role}-1", [role])
    t.members["approver2"] = t.add_member("approver-2", ["approver"])
    t.members["service"] = t.add_member("scoring", ["writer"], kind="service")
    return t


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = Server(tmp_path_factory.mktemp("custody-server"))
    yield s
    s.stop()


@pytest.fixture
def tenant(server: Server) -> Tenant:
    return new_tenant(server)


def wait_until(predicate: object, timeout: float = 10.0) -> None:
    """Polls ``predicate`` (a callable returning a truthy value) until it holds."""
    deadline = time.monotonic() + timeout
    assert callable(predicate)
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """moto's real S3 server, started for this module and stopped afterwards."""
    moto = Path(sys.executable).with_name("moto_server")
    if not moto.is_file():
        pytest.fail(f"no moto_server next to {sys.executable}: run scripts/py-venv.sh")
    port = free_port()
    process = subprocess.Popen(
        [str(moto), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or process.poll() is not None:
                    pytest.fail("moto_server did not start")
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(10)
