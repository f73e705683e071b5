"""A server that lies is caught: the client talks to the real server through a proxy that
changes its answers on the way (one byte of an envelope, a proof hash, a checkpoint signature,
the question itself), and every changed answer is refused rather than returned."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from conftest import Tenant

import custody
from custody.entries import Entry

#: (method, path with query, body) -> the same, possibly changed, before forwarding.
RequestRewrite = Callable[[str], str]
#: (path with query, response body) -> the body the client receives.
ResponseRewrite = Callable[[str, bytes], bytes]


class LyingProxy:
    """Forwards every request to the real server, rewriting requests and answers."""

    def __init__(self, upstream: str) -> None:
        self.rewrite_request: RequestRewrite = lambda path: path
        self.rewrite_response: ResponseRewrite = lambda path, body: body
        proxy = self
        upstream_client = httpx.Client(base_url=upstream, timeout=30)
        self._upstream = upstream_client

        class Handler(BaseHTTPRequestHandler):
            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                path = proxy.rewrite_request(self.path)
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in ("host", "content-length", "accept-encoding")
                }
                r = upstream_client.request(self.command, path, content=body, headers=headers)
                content = proxy.rewrite_response(path, r.content)
                self.send_response(r.status_code)
                self.send_header("Content-Type", r.headers.get("content-type", "text/plain"))
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_POST = _forward

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._upstream.close()


@pytest.fixture
def proxy(tenant: Tenant) -> Iterator[LyingProxy]:
    p = LyingProxy(tenant.url)
    yield p
    p.close()


def seeded(tenant: Tenant, tmp_path: Path) -> list[int]:
    both = tenant.add_member("rw", ["writer", "auditor"])
    tenant.members["rw"] = both
    with custody.Client(
        tenant.url, token=both.token, tenant=tenant.name, state_dir=tmp_path / "honest"
    ) as c:
        results = c.logs.append_many(
            [Entry("x.test.note", "note", f"n{i}", {"i": i}) for i in range(8)], log="governance"
        )
    return [r.index for r in results]


def through(proxy: LyingProxy, tenant: Tenant, tmp_path: Path) -> custody.Client:
    return custody.Client(
        proxy.url,
        token=tenant.token("rw"),
        tenant=tenant.name,
        purpose="tamper-test",
        vkeys=list(tenant.vkeys().values()),
        state_dir=tmp_path / "client",
    )


def test_a_changed_envelope_byte_is_refused(
    tenant: Tenant, proxy: LyingProxy, tmp_path: Path
) -> None:
    indexes = seeded(tenant, tmp_path)
    proxy.rewrite_response = lambda path, body: (
        body.replace(b'"i":3', b'"i":4') if "/entries/" in path else body
    )
    with through(proxy, tenant, tmp_path) as c:
        with pytest.raises(custody.VerificationError) as err:
            c.logs.get("governance", indexes[3])
        assert err.value.check == "leaf_hash"

        # An envelope changed together with its leaf hash fails its inclusion proof instead.
        def both(path: str, body: bytes) -> bytes:
            if "/entries/" not in path:
                return body
            doc = json.loads(body)
            doc["envelope"]["body"]["i"] = 99
            from custody.verify.entry import envelope_leaf_hash

            doc["leaf_hash"] = envelope_leaf_hash(doc["envelope"]).hex()
            return json.dumps(doc).encode()

        proxy.rewrite_response = both
        with pytest.raises(custody.VerificationError) as err:
            c.logs.get("governance", indexes[3])
        assert err.value.check == "inclusion"


def test_a_changed_proof_hash_is_refused(tenant: Tenant, proxy: LyingProxy, tmp_path: Path) -> None:
    indexes = seeded(tenant, tmp_path)

    def flip(path: str, body: bytes) -> bytes:
        if "/proof/inclusion" not in path:
            return body
        doc = json.loads(body)
        first = bytearray(base64.b64decode(doc["hashes"][0]))
        first[0] ^= 1
        doc["hashes"][0] = base64.b64encode(first).decode()
        return json.dumps(doc).encode()

    proxy.rewrite_response = flip
    with through(proxy, tenant, tmp_path) as c, pytest.raises(custody.VerificationError) as err:
        c.logs.get("governance", indexes[0])
    assert err.value.check == "inclusion"


def test_a_checkpoint_not_signed_by_the_pinned_key_is_refused(
    tenant: Tenant, proxy: LyingProxy, tmp_path: Path
) -> None:
    seeded(tenant, tmp_path)

    def resign(path: str, body: bytes) -> bytes:
        if not path.endswith("/checkpoint"):
            return body
        text = body.decode()
        head, _, sig_line = text.rstrip("\n").rpartition("\n")
        name, _, sig = sig_line[2:].rpartition(" ")
        raw = bytearray(base64.b64decode(sig))
        raw[-1] ^= 1
        return f"{head}\n— {name} {base64.b64encode(bytes(raw)).decode()}\n".encode()

    proxy.rewrite_response = resign
    with through(proxy, tenant, tmp_path) as c, pytest.raises(custody.VerificationError):
        c.logs.checkpoint("governance")


def test_an_answer_to_another_question_is_refused(
    tenant: Tenant, proxy: LyingProxy, tmp_path: Path
) -> None:
    indexes = seeded(tenant, tmp_path)
    with through(proxy, tenant, tmp_path) as c:
        first = c.logs.get("governance", indexes[1]).envelope["id"]
        other = c.logs.get("governance", indexes[2]).envelope["id"]
        assert c.audit.trace(entry=first).start == first
        proxy.rewrite_request = lambda path: path.replace(first, other)
        with pytest.raises(custody.VerificationError) as err:
            c.audit.trace(entry=first)
        assert err.value.check == "answer"
