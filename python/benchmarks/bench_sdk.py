"""Throughput of the Python SDK, side by side with the Rust load generator in the same run.

Starts a throwaway ``custody serve`` on 127.0.0.1 over a fresh data directory (or uses the
server at ``--url`` with the administrator token in ``--admin-token-file``), then measures, on
one Python process:

* appends of generic ``x.bench.event`` entries (the load generator's shape: a 200-character
  ``body.blob``): one by one (``client.logs.append``), in batches (``append_many`` of 100 and
  1,000, sync and async clients), and streamed as NDJSON (``stream``, 1,000 per request), each
  with verification on and off (``verify=False``), and the same requests with plain httpx
  (the Python HTTP stack without the SDK);
* inference records (the load generator's credit-scoring record: 13 input features and the
  output in the payload) streamed as NDJSON and sent by ``client.serving.recorder(...)``, to a
  deployment of a promoted model version that ``custody-loadgen evidence-setup`` registered;
* the cost of verification per answer: ``logs.get`` and ``audit.trace`` with and without
  verification, the same requests with plain httpx, the local checks alone, and cProfile
  profiles (verified single and batched appends, sync and async; an unverified batched
  append; a verified trace) with the time of each kind of HTTP call the SDK made;

and runs ``custody-loadgen`` against the same server, each against tenants of its own:
``http-append`` with one client (one entry per request, and batches of 100 and 1,000),
``http-inference`` with one client, and ``trace-latency`` with one client.

    cd python && ../target/py-venv/bin/python benchmarks/bench_sdk.py \\
        --custody ../target/release/custody --loadgen ../target/release/custody-loadgen \\
        --json-out /tmp/bench-sdk.jsonl

Rates count entries acknowledged (and, with verification on, proven) per second of wall
time; latencies are per call (one request of the load generator, one SDK call).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import cProfile
import datetime as dt
import importlib.metadata
import json
import logging
import os
import platform
import pstats
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

import custody
from custody import _transport as transport
from custody.entries import rfc3339, uuid7
from custody.verify.entry import check_payload_commitment, envelope_leaf_hash

# The server harness the SDK's tests use.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from harness import Server

from custody.verify.merkle import verify_inclusion
from custody.verify.note import Verifier, open_checkpoint
from custody.verify.proven import verify_answer

REPO = Path(__file__).resolve().parents[2]
PURPOSE = "benchmark"
RNG = random.Random(7)  # noqa: S311 - filler and sample indices, not secrets


@dataclass
class Row:
    """One measurement."""

    group: str
    client: str
    mode: str
    verify: str
    count: int
    seconds: float
    p50_ms: float | None = None
    p99_ms: float | None = None
    errors: int = 0
    note: str = ""
    load: tuple[float, float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else 0.0


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-p * len(ordered) // 1))))
    return ordered[rank - 1]


class Timer:
    """Per-call latencies (ms) and the wall time of a run."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.start = time.perf_counter()

    def call(self, fn: Callable[..., object], *args: Any, **kwargs: Any) -> None:
        t = time.perf_counter()
        fn(*args, **kwargs)
        self.latencies.append((time.perf_counter() - t) * 1000.0)

    def elapsed(self) -> float:
        return time.perf_counter() - self.start


# ----- what is sent


def blob() -> str:
    """200 characters of the load generator's alphabet (URL-safe base64 of 150 random
    bytes)."""
    return base64.urlsafe_b64encode(RNG.randbytes(150)).decode()


def bench_event(seq: int) -> dict[str, Any]:
    """The load generator's ``x.bench.event`` (the SDK adds a client id)."""
    return {
        "type": "x.bench.event",
        "subject": {"kind": "x_item", "id": f"item-{seq}"},
        "body": {"seq": seq, "blob": blob()},
    }


def features() -> tuple[dict[str, Any], dict[str, Any], str, int]:
    """The load generator's credit-scoring input and output, and decision and latency."""
    score = RNG.random()
    decision = "approve" if score >= 0.62 else "refer" if score >= 0.45 else "decline"
    reasons = ["R03", "R07", "R12", "R19", "R22", "R31"]
    model_input = {
        "income": 18_000 + RNG.randrange(232_000),
        "loan_amount": 1_000 + RNG.randrange(59_000),
        "term_months": int(RNG.choice(["12", "24", "36", "48", "60"])),
        "age": 18 + RNG.randrange(62),
        "employment_years": RNG.randrange(40),
        "debt_to_income": round(RNG.random() * 0.6, 4),
        "open_credit_lines": RNG.randrange(30),
        "delinquencies_2y": RNG.randrange(5),
        "inquiries_6m": RNG.randrange(8),
        "home_ownership": RNG.choice(["rent", "mortgage", "own"]),
        "purpose": RNG.choice(["debt_consolidation", "home_improvement", "car", "medical"]),
        "region": RNG.choice(["DE-BY", "DE-BE", "DE-NW", "FR-IDF", "NL-NH", "AT-9"]),
        "channel": RNG.choice(["web", "branch", "partner"]),
    }
    output = {
        "score": round(score, 4),
        "decision": decision,
        "threshold": 0.62,
        "reason_codes": [RNG.choice(reasons), RNG.choice(reasons)],
    }
    return model_input, output, decision, 3 + RNG.randrange(40)


def inference_line(request_id: str, chain: Mapping[str, Any]) -> dict[str, Any]:
    """The load generator's ``inference.recorded`` NDJSON line, as a mapping."""
    model_input, output, decision, latency = features()
    return {
        "type": "inference.recorded",
        "subject": {"kind": "inference", "id": request_id},
        "client_time": rfc3339(),
        "related": [{"kind": "deployment", "id": chain["deployment"], "rel": "served_by"}],
        "body": {
            "version_hash": chain["version_hash"],
            "latency_ms": latency,
            "decision": decision,
            "model_name": "credit-risk",
        },
        "payload": {"input": model_input, "output": output},
    }


# ----- the server and the load generator


class Loadgen:
    def __init__(self, binary: Path, url: str) -> None:
        self.binary = binary
        self.url = url

    def run(self, token: str, *args: str) -> str:
        env = {**os.environ, "CUSTODY_TOKEN": token}
        done = subprocess.run(
            [str(self.binary), "--json", *args, "--url", self.url],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"custody-loadgen {' '.join(args)} failed:\n{done.stderr}")
        return done.stdout.strip().splitlines()[-1]

    def report(self, token: str, *args: str) -> dict[str, Any]:
        out: dict[str, Any] = json.loads(self.run(token, *args))
        return out


def loadgen_row(group: str, mode: str, report: Mapping[str, Any], note: str = "") -> Row:
    return Row(
        group,
        "Rust custody-loadgen",
        mode,
        "-",
        int(report["ok"]),
        float(report["seconds"]),
        float(report["p50_ms"]),
        float(report["p99_ms"]),
        int(report["errors"]),
        note,
        extra={k: v for k, v in report.items() if k not in ("ok", "seconds")},
    )


# ----- Python measurements


class Bench:
    def __init__(self, url: str, state: Path, scale: float) -> None:
        self.url = url
        self.state = state
        self.scale = scale
        self.rows: list[Row] = []
        self._states = 0
        self._seq = 0

    def n(self, count: int, multiple: int = 1) -> int:
        return max(multiple, int(count * self.scale) // multiple * multiple)

    def state_dir(self) -> Path:
        """A fresh state directory per client: keys pinned on first use, no stored
        checkpoints."""
        self._states += 1
        path = self.state / f"client-{self._states}"
        path.mkdir()
        return path

    def client(self, token: str, tenant: str, verify: bool) -> custody.Client:
        return custody.Client(
            self.url,
            token=token,
            tenant=tenant,
            purpose=PURPOSE,
            state_dir=self.state_dir(),
            verify=verify,
        )

    def aclient(self, token: str, tenant: str, verify: bool) -> custody.AsyncClient:
        return custody.AsyncClient(
            self.url,
            token=token,
            tenant=tenant,
            purpose=PURPOSE,
            state_dir=self.state_dir(),
            verify=verify,
        )

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        p50 = f"{row.p50_ms:.2f}" if row.p50_ms is not None else "-"
        p99 = f"{row.p99_ms:.2f}" if row.p99_ms is not None else "-"
        print(
            f"{row.client:22} {row.mode:44} verify={row.verify:3} {row.count:7,} in "
            f"{row.seconds:7.2f}s = {row.rate:9,.0f}/s  p50 {p50} p99 {p99} ms  "
            f"load {_load(row)} {row.note}",
            flush=True,
        )
        return row

    def measured(self, make: Callable[..., Row], *args: Any) -> Row:
        before = os.getloadavg()[0]
        row = make(*args)
        row.load = (before, os.getloadavg()[0])
        return self.add(row)

    def events(self, n: int) -> list[dict[str, Any]]:
        first, self._seq = self._seq, self._seq + n
        return [bench_event(s) for s in range(first, first + n)]

    # appends

    def single(self, token: str, tenant: str, verify: bool, n: int) -> Row:
        with self.client(token, tenant, verify) as c:
            c.logs.append(bench_event(-1))  # pins keys, opens the connection
            events = self.events(n)
            timer = Timer()
            for e in events:
                timer.call(c.logs.append, e)
            seconds = timer.elapsed()
        return self._row(
            "append", "Python Client: logs.append, 1 per call", verify, n, seconds, timer
        )

    def batched(self, token: str, tenant: str, verify: bool, n: int, batch: int) -> Row:
        with self.client(token, tenant, verify) as c:
            c.logs.append(bench_event(-1))
            batches = [self.events(batch) for _ in range(n // batch)]
            timer = Timer()
            for entries in batches:
                timer.call(c.logs.append_many, entries, log="governance")
            seconds = timer.elapsed()
        mode = f"Python Client: append_many, {batch:,} per call"
        return self._row("append", mode, verify, n, seconds, timer)

    def streamed(self, token: str, tenant: str, verify: bool, n: int) -> Row:
        with self.client(token, tenant, verify) as c:
            c.logs.append(bench_event(-1))
            events = self.events(n)
            start = time.perf_counter()
            summary = c.logs.stream(
                events,
                log="governance",
                chunk_size=1000,
                progress=False,
            )
            seconds = time.perf_counter() - start
        assert summary.appended == n, summary
        return Row(
            "append",
            "Python",
            "Client: stream (NDJSON), 1,000 per request",
            _on(verify),
            n,
            seconds,
        )

    def async_batched(self, token: str, tenant: str, verify: bool, n: int, batch: int) -> Row:
        async def go() -> tuple[float, Timer]:
            async with self.aclient(token, tenant, verify) as c:
                await c.logs.append(bench_event(-1))
                batches = [self.events(batch) for _ in range(n // batch)]
                timer = Timer()
                for entries in batches:
                    t = time.perf_counter()
                    await c.logs.append_many(entries, log="governance")
                    timer.latencies.append((time.perf_counter() - t) * 1000.0)
                return timer.elapsed(), timer

        seconds, timer = asyncio.run(go())
        mode = f"Python AsyncClient: append_many, {batch:,} per call"
        return self._row("append", mode, verify, n, seconds, timer)

    def plain(self, token: str, tenant: str, n: int, batch: int) -> Row:
        """The same entries, with client ids as the SDK sends them, POSTed with plain httpx:
        the Python HTTP stack without the SDK."""
        headers = {"Authorization": f"Bearer {token}"}
        path = f"/v1/tenants/{tenant}/logs/governance/entries"
        with httpx.Client(base_url=self.url, headers=headers, timeout=60) as http:
            http.post(path, json=bench_event(-1)).raise_for_status()

            def post(body: Any) -> None:
                r = http.post(path, json=body)
                r.raise_for_status()
                r.json()

            batches = [
                [{**e, "id": uuid7()} for e in self.events(batch)] for _ in range(n // batch)
            ]
            timer = Timer()
            for entries in batches:
                timer.call(post, entries[0] if batch == 1 else entries)
            seconds = timer.elapsed()
        what = "1 entry" if batch == 1 else f"JSON array of {batch:,}"
        return self._row("append", f"Python plain httpx: POST {what}", False, n, seconds, timer)

    def _row(
        self, group: str, mode: str, verify: bool, n: int, seconds: float, timer: Timer
    ) -> Row:
        client, _, what = mode.partition(" ")
        return Row(
            group,
            client,
            what,
            _on(verify),
            n,
            seconds,
            percentile(timer.latencies, 0.5),
            percentile(timer.latencies, 0.99),
        )

    # inference records

    def inference_stream(
        self, token: str, chain: Mapping[str, Any], verify: bool, n: int, prefix: str
    ) -> Row:
        with self.client(token, chain["tenant"], verify) as c:
            lines = [inference_line(f"{prefix}{i}", chain) for i in range(n)]
            start = time.perf_counter()
            summary = c.logs.stream(
                lines,
                log="inference",
                chunk_size=1000,
                progress=False,
            )
            seconds = time.perf_counter() - start
        assert summary.appended == n, summary
        return Row(
            "inference",
            "Python",
            "Client: stream (NDJSON), 1,000 per request",
            _on(verify),
            n,
            seconds,
        )

    def recorder(
        self, token: str, chain: Mapping[str, Any], verify: bool, n: int, prefix: str
    ) -> Row:
        warnings = Counting()
        logging.getLogger("custody").addHandler(warnings)
        try:
            with self.client(token, chain["tenant"], verify) as c:
                rec = c.serving.recorder(
                    deployment_id=chain["deployment"],
                    version_hash=chain["version_hash"],
                    model_name="credit-risk",
                    max_queue=n + 1,
                )
                calls: list[float] = []
                made = [features() for _ in range(n)]
                start = time.perf_counter()
                for i, (model_input, output, decision, latency) in enumerate(made):
                    t = time.perf_counter()
                    rec.record(
                        f"{prefix}{i}",
                        input=model_input,
                        output=output,
                        decision=decision,
                        latency_ms=latency,
                    )
                    calls.append((time.perf_counter() - t) * 1000.0)
                recorded = time.perf_counter() - start
                flushed = rec.close(timeout=600)
                seconds = time.perf_counter() - start
                stats = rec.stats()
        finally:
            logging.getLogger("custody").removeHandler(warnings)
        assert flushed, stats
        assert stats.recorded == stats.sent == n, stats
        assert stats.dropped == stats.rejected == stats.pending == 0, stats
        return Row(
            "inference",
            "Python",
            "Client: serving.recorder(), record() then close()",
            _on(verify),
            n,
            seconds,
            percentile(calls, 0.5),
            percentile(calls, 0.99),
            note=(
                f"record() loop {recorded:.2f}s; sent {stats.sent:,}, dropped {stats.dropped}, "
                f"rejected {stats.rejected}; {warnings.count} warnings logged"
            ),
            extra={"stats": asdict(stats), "record_loop_s": recorded},
        )

    # reads

    def reads(
        self, token: str, chain: Mapping[str, Any], size: int, request_ids: list[str], n: int
    ) -> None:
        tenant = chain["tenant"]
        indices = [RNG.randrange(size) for _ in range(n)]
        ids = [RNG.choice(request_ids) for _ in range(n)]
        headers = {"Authorization": f"Bearer {token}", "Custody-Purpose": PURPOSE}
        base = f"/v1/tenants/{tenant}"
        with httpx.Client(base_url=self.url, headers=headers, timeout=60) as http:

            def get(path: str, **params: Any) -> Any:
                return http.get(path, params=params).json()

            raw = Timer()
            for i in indices:
                raw.call(get, f"{base}/logs/inference/entries/{i}")
            self.measured(self._read, "logs.get", "plain httpx GET + json", "-", n, raw)
            raw = Timer()
            for r in ids:
                raw.call(get, f"{base}/trace", request_id=r)
            self.measured(self._read, "audit.trace", "plain httpx GET + json", "-", n, raw)
            records = [get(f"{base}/logs/inference/entries/{i}") for i in indices[:200]]
            traces = [get(f"{base}/trace", request_id=r) for r in ids[:200]]
            vkeys = [log["verifier_key"] for log in get(f"{base}/logs")["logs"]]
            checkpoint = http.get(
                f"{base}/logs/inference/checkpoint", headers={"Accept": "text/plain"}
            ).text
            proofs = [
                get(f"{base}/logs/inference/proof/inclusion", index=r["index"], size=size)["hashes"]
                for r in records
            ]
        for verify in (True, False):
            with self.client(token, tenant, verify) as c:
                c.logs.get("inference", 0)
                timer = Timer()
                for i in indices:
                    timer.call(c.logs.get, "inference", i)
                self.measured(self._read, "logs.get", "Client", _on(verify), n, timer)
            with self.client(token, tenant, verify) as c:
                c.audit.trace(request_id=ids[0])
                timer = Timer()
                for r in ids:
                    timer.call(c.audit.trace, request_id=r)
                self.measured(self._read, "audit.trace", "Client", _on(verify), n, timer)
        self.local_checks(records, traces, vkeys, checkpoint, proofs, size)

    def _read(self, what: str, how: str, verify: str, n: int, timer: Timer) -> Row:
        return Row(
            "read",
            "Python",
            f"{what}: {how}",
            verify,
            n,
            timer.elapsed(),
            percentile(timer.latencies, 0.5),
            percentile(timer.latencies, 0.99),
            extra={"mean_ms": statistics.fmean(timer.latencies)},
        )

    def local_checks(
        self,
        records: list[dict[str, Any]],
        traces: list[dict[str, Any]],
        vkeys: list[str],
        checkpoint: str,
        proofs: list[list[str]],
        size: int,
    ) -> None:
        """The checks alone, on answers already fetched: no network, no state directory."""
        verifiers = [Verifier.parse(k) for k in vkeys]

        def gets() -> None:
            for r, hashes in zip(records, proofs, strict=True):
                leaf = envelope_leaf_hash(r["envelope"])
                if r.get("payload") is not None and r.get("salt"):
                    check_payload_commitment(r["envelope"], r["payload"], bytes.fromhex(r["salt"]))
                cp = open_checkpoint(checkpoint, verifiers)
                proof = [base64.b64decode(h) for h in hashes]
                verify_inclusion(leaf, r["index"], size, proof, cp.root)

        def answers() -> None:
            for t in traces:
                verify_answer(t, verifiers)

        def checkpoints() -> None:
            for _ in records:
                open_checkpoint(checkpoint, verifiers)

        def leaves() -> None:
            for r in records:
                envelope_leaf_hash(r["envelope"])

        checks: list[tuple[str, Callable[[], None], int]] = [
            (
                "logs.get answer: leaf hash, payload commitment, checkpoint signature, inclusion",
                gets,
                len(records),
            ),
            ("audit.trace answer: verify_answer()", answers, len(traces)),
            ("checkpoint signature: open_checkpoint()", checkpoints, len(records)),
            ("leaf hash of one inference envelope (RFC 8785 + SHA-256)", leaves, len(records)),
        ]
        for label, check, count in checks:
            start = time.perf_counter()
            check()
            seconds = time.perf_counter() - start
            self.add(
                Row(
                    "local",
                    "Python",
                    label,
                    "on",
                    count,
                    seconds,
                    p50_ms=seconds / count * 1000.0,
                    note=f"{seconds / count * 1000.0:.3f} ms each, CPU only",
                )
            )
        entries = [len(t["entries"]) for t in traces]
        print(f"trace answers: {statistics.fmean(entries):.1f} entries each", flush=True)


class Counting(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


def _load(row: Row) -> str:
    """The 1-minute load average before and after a row ("-" for CPU-only checks)."""
    return "-" if row.load is None else f"{row.load[0]:.2f} -> {row.load[1]:.2f}"


def _on(verify: bool) -> str:
    return "on" if verify else "off"


# ----- profiles


def profile(label: str, fn: Callable[[], object], out: Path | None) -> dict[str, float]:
    """Runs ``fn`` under cProfile and splits its time: in custody.verify (entered from outside
    it, so nested calls count once), of which fsync; in sending HTTP calls (``send_sync``:
    request building, the round trip, reading the reply); parsing replies into pydantic models;
    building entries."""
    calls: dict[str, list[float]] = {}
    original, original_async = transport.send_sync, transport.send_async

    def timed(http: httpx.Client, call: transport.Call) -> transport.Reply:
        t = time.perf_counter()
        try:
            return original(http, call)
        finally:
            calls.setdefault(kind(call), []).append(time.perf_counter() - t)

    async def timed_async(http: httpx.AsyncClient, call: transport.Call) -> transport.Reply:
        t = time.perf_counter()
        try:
            return await original_async(http, call)
        finally:
            calls.setdefault(kind(call), []).append(time.perf_counter() - t)

    prof = cProfile.Profile()
    transport.send_sync, transport.send_async = timed, timed_async
    try:
        start = time.perf_counter()
        prof.enable()
        fn()
        prof.disable()
        wall = time.perf_counter() - start
    finally:
        transport.send_sync, transport.send_async = original, original_async
    stats = pstats.Stats(prof)
    table: dict[tuple[str, int, str], Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in table.values())

    def inside(key: tuple[str, int, str]) -> bool:
        return f"custody{os.sep}verify{os.sep}" in key[0]

    def entered(pred: Callable[[tuple[str, int, str]], bool]) -> float:
        """Cumulative time of the functions ``pred`` selects, counted where they are called
        from functions it does not select."""
        t = 0.0
        for key, (_cc, _nc, _tt, _ct, callers) in table.items():
            if not pred(key):
                continue
            for caller, edge in callers.items():
                if not pred(caller):
                    t += edge[3]
        return t

    def named(*names: str) -> Callable[[tuple[str, int, str]], bool]:
        return lambda key: any(key[2] == n or key[2].endswith(n) for n in names)

    split = {
        "wall_s": wall,
        "profiled_s": total,
        "custody.verify": entered(inside),
        "of which os.fsync": sum(
            v[2] for k, v in table.items() if k[2] == "<built-in method posix.fsync>"
        ),
        "of which rfc8785": entered(lambda k: f"rfc8785{os.sep}" in k[0]),
        "of which signature checks": entered(named("open_checkpoint")),
        "send_sync/send_async (HTTP)": entered(named("send_sync", "send_async")),
        "httpcore connection pool": entered(named("_assign_requests_to_connections")),
        "pydantic parse": entered(lambda k: k[2] == "parse" and k[0].endswith("_api.py")),
    }
    print(f"\nprofile: {label}: wall {wall:.2f}s")
    for k, v in split.items():
        if k not in ("wall_s", "profiled_s"):
            print(f"  {k:28} {v:8.3f}s  {v / wall:6.1%}")
    print("  HTTP calls by kind (timed around send_sync/send_async; async calls overlap):")
    for k, times in sorted(calls.items(), key=lambda kv: -sum(kv[1])):
        print(
            f"    {k:34} {len(times):6,} calls {sum(times):8.3f}s  {sum(times) / wall:6.1%}  "
            f"{statistics.fmean(times) * 1000:.2f} ms each"
        )
        split[f"http {k} calls"] = len(times)
        split[f"http {k} s"] = sum(times)
    text = _top(stats)
    print(text)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")
        stats.dump_stats(out / f"{name}.pstats")
    return split


def kind(call: transport.Call) -> str:
    """What an HTTP call of the SDK is for."""
    path = call.path
    for suffix, name in (
        ("/proof/inclusion", "GET inclusion proof"),
        ("/proof/consistency", "GET consistency proof"),
        ("/checkpoint", "GET checkpoint"),
        ("/trace", "GET trace"),
        ("/logs", "GET log list (keys)"),
    ):
        if path.endswith(suffix):
            return name
    if call.method == "POST" and path.endswith("/entries"):
        return "POST entries (the append)"
    return f"{call.method} other"


def _top(stats: pstats.Stats) -> str:
    import io

    buffer = io.StringIO()
    stats.stream = buffer  # type: ignore[attr-defined]
    stats.sort_stats("tottime").print_stats(15)
    lines = buffer.getvalue().splitlines()
    start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
    return "\n".join(lines[start : start + 17])


# ----- the run


def machine() -> dict[str, Any]:
    def cmd(*args: str) -> str:
        try:
            return subprocess.run(args, capture_output=True, text=True, check=False).stdout.strip()
        except OSError:
            return ""

    cpu = next((line for line in cmd("lscpu").splitlines() if line.startswith("Model name")), "")
    return {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "nproc": os.cpu_count(),
        "cpu": cpu.split(":", 1)[-1].strip(),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        **{name: _version(name) for name in ("httpx", "httpcore", "anyio", "sniffio", "pydantic")},
        "rfc8785": _version("rfc8785"),
        "custody": custody.__version__,
        "uptime": cmd("uptime"),
    }


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--custody", type=Path, default=REPO / "target/release/custody")
    parser.add_argument("--loadgen", type=Path, default=REPO / "target/release/custody-loadgen")
    parser.add_argument("--url", help="use this server instead of starting one")
    parser.add_argument("--admin-token-file", type=Path, help="with --url: its admin token")
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies every count")
    parser.add_argument("--json-out", type=Path, help="append one JSON line per row here")
    parser.add_argument("--profile-out", type=Path, help="write the cProfile data here")
    parser.add_argument("--no-profile", action="store_true")
    a = parser.parse_args(argv)

    info = machine()
    print(json.dumps(info), flush=True)
    work = Path(tempfile.mkdtemp(prefix="custody-bench-sdk-"))
    server: Server | None = None
    try:
        if a.url:
            if a.admin_token_file is None:
                parser.error("--url needs --admin-token-file")
            url, admin = a.url, a.admin_token_file.read_text().strip()
        else:
            server = Server(work / "data", binary=a.custody, server_name="bench.sdk")
            url, admin = server.url, server.admin_token
        print(f"server {url}", flush=True)
        (work / "state").mkdir()
        bench = Bench(url, work / "state", a.scale)
        try:
            run(bench, Loadgen(a.loadgen, url), admin, a)
        finally:
            print("\n".join(["", *table(bench.rows)]), flush=True)
        if a.json_out is not None:
            with open(a.json_out, "a", encoding="utf-8") as f:
                for row in bench.rows:
                    f.write(json.dumps({**asdict(row), "rate": row.rate, "machine": info}) + "\n")
        print(json.dumps({"end": machine()["date"], "uptime": machine()["uptime"]}))
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


def run(bench: Bench, gen: Loadgen, admin: str, a: argparse.Namespace) -> None:
    suffix = f"{os.getpid()}"
    rs, py = f"bench-rs-{suffix}", f"bench-py-{suffix}"
    rs_token = gen.run(admin, "principal", "--tenant", rs)
    py_token = gen.run(admin, "principal", "--tenant", py)
    ev_rs: dict[str, Any] = json.loads(
        gen.run(admin, "evidence-setup", "--tenant", f"ev-rs-{suffix}")
    )
    ev_py: dict[str, Any] = json.loads(
        gen.run(admin, "evidence-setup", "--tenant", f"ev-py-{suffix}")
    )
    writer_rs, writer_py = ev_rs["writer_token"], ev_py["writer_token"]

    def rust_append(label: str, *args: str) -> Row:
        report = gen.report(rs_token, "http-append", "--tenant", rs, "--concurrency", "1", *args)
        return loadgen_row("append", label, report)

    def rust_inference(batch: int, total: int) -> Row:
        report = gen.report(
            writer_rs,
            "http-inference",
            "--tenant",
            ev_rs["tenant"],
            "--deployment",
            ev_rs["deployment"],
            "--version-hash",
            ev_rs["version_hash"],
            "--concurrency",
            "1",
            "--batch",
            str(batch),
            "--total",
            str(total),
            "--prefix",
            f"rs-b{batch}-",
        )
        return loadgen_row("inference", f"http-inference, 1 client, {batch:,} per request", report)

    # one entry per request
    n = bench.n(2000)
    bench.measured(rust_append, "http-append, 1 client, 1 per request", "--total", str(n))
    for verify in (True, False):
        bench.measured(bench.single, py_token, py, verify, n)
    bench.measured(bench.plain, py_token, py, n, 1)

    # batches
    for batch, count in ((100, 10_000), (1000, 20_000)):
        n = bench.n(count, batch)
        label = f"http-append, 1 client, {batch:,} per request"
        bench.measured(rust_append, label, "--total", str(n), "--batch", str(batch))
        for verify in (True, False):
            bench.measured(bench.batched, py_token, py, verify, n, batch)
        bench.measured(bench.plain, py_token, py, n, batch)
        for verify in (True, False):
            bench.measured(bench.async_batched, py_token, py, verify, n, batch)
    n = bench.n(20_000, 1000)
    for verify in (True, False):
        bench.measured(bench.streamed, py_token, py, verify, n)

    # inference records
    n = bench.n(20_000, 1000)
    bench.measured(rust_inference, 1000, n)
    bench.measured(rust_inference, 500, n)
    ids: list[str] = []
    for verify in (True, False):
        prefix = f"py-s-{_on(verify)}-"
        bench.measured(bench.inference_stream, writer_py, ev_py, verify, n, prefix)
        ids += [f"{prefix}{i}" for i in range(n)]
    for verify in (True, False):
        prefix = f"py-r-{_on(verify)}-"
        bench.measured(bench.recorder, writer_py, ev_py, verify, n, prefix)
        ids += [f"{prefix}{i}" for i in range(n)]

    # reads: the Rust side's trace latency, then the SDK's
    reads = bench.n(300)

    def rust_trace() -> Row:
        report = gen.report(
            ev_rs["auditor_token"],
            "trace-latency",
            "--tenant",
            ev_rs["tenant"],
            "--concurrency",
            "1",
            "--total",
            str(reads),
            "--prefix",
            "rs-b1000-",
            "--ids",
            str(n),
        )
        row = loadgen_row("read", "trace-latency, 1 client (verifies every answer)", report)
        row.note = (
            f"{report['entries_per_answer']} entries per answer; verification "
            f"{report['verify_ms_per_answer']} ms per answer"
        )
        return row

    bench.measured(rust_trace)
    with httpx.Client(base_url=bench.url, headers={"Authorization": f"Bearer {admin}"}) as http:
        size = next(
            log["size"]
            for log in http.get(f"/v1/tenants/{ev_py['tenant']}/logs").json()["logs"]
            if log["name"] == "inference"
        )
    bench.reads(ev_py["auditor_token"], ev_py, size, ids, reads)

    if a.no_profile:
        return
    out = a.profile_out
    with bench.client(py_token, py, True) as c:
        c.logs.append(bench_event(-1))
        events = bench.events(bench.n(3000, 100))
        profile(
            "verified append_many of 100 (Client)",
            lambda: [
                c.logs.append_many(events[i : i + 100], log="governance")
                for i in range(0, len(events), 100)
            ],
            out,
        )
    with bench.client(py_token, py, False) as c:
        c.logs.append(bench_event(-1))
        events = bench.events(bench.n(10_000, 1000))
        profile(
            "unverified append_many of 1,000 (Client)",
            lambda: [
                c.logs.append_many(events[i : i + 1000], log="governance")
                for i in range(0, len(events), 1000)
            ],
            out,
        )

    async def async_appends(events: list[dict[str, Any]]) -> None:
        async with bench.aclient(py_token, py, True) as c:
            await c.logs.append(bench_event(-1))
            for i in range(0, len(events), 100):
                await c.logs.append_many(events[i : i + 100], log="governance")

    events = bench.events(bench.n(2000, 100))
    profile(
        "verified append_many of 100 (AsyncClient)", lambda: asyncio.run(async_appends(events)), out
    )
    with bench.client(py_token, py, True) as c:
        c.logs.append(bench_event(-1))
        events = bench.events(bench.n(300))
        profile("verified logs.append (Client)", lambda: [c.logs.append(e) for e in events], out)
    with bench.client(ev_py["auditor_token"], ev_py["tenant"], True) as c:
        sample = [RNG.choice(ids) for _ in range(bench.n(100))]
        c.audit.trace(request_id=sample[0])
        profile(
            "verified audit.trace (Client)",
            lambda: [c.audit.trace(request_id=r) for r in sample],
            out,
        )


def table(rows: list[Row]) -> Iterator[str]:
    """The rows as a Markdown table."""
    yield "| client | mode | verify | count | per s | p50 ms | p99 ms | load avg (1 min) |"
    yield "|---|---|---|---|---|---|---|---|"
    for r in rows:
        p50 = f"{r.p50_ms:.3g}" if r.p50_ms is not None else "-"
        p99 = f"{r.p99_ms:.3g}" if r.p99_ms is not None else "-"
        yield (
            f"| {r.client} | {r.mode} | {r.verify} | {r.count:,} | {r.rate:,.0f} | {p50} | "
            f"{p99} | {_load(r)} |"
        )


if __name__ == "__main__":
    sys.exit(main())
