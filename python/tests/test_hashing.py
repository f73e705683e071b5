"""custody.hashing against independent implementations and the real server: the version hash
must equal what ``custody model hash`` prints and what OpenSSF ``model_signing`` derives, and
the bodies built from these digests must be accepted as they are."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import httpx
import model_signing.hashing
import pytest
from conftest import Tenant
from harness import custody_bin
from model_signing._signing.signing import Payload

from custody.errors import ConfigurationError
from custody.hashing import (
    FileDigest,
    ModelDigest,
    code_commit,
    digest_dataset,
    digest_file,
    environment_from_lockfile,
    hash_model,
    lockfile_digest,
    main,
)


def cli_hash(path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(custody_bin()), "model", "hash", *extra, str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


def model_signing_root(path: Path) -> tuple[str, list[tuple[str, str]]]:
    """The root digest and ``(path, hex digest)`` list OpenSSF model_signing computes."""
    manifest = model_signing.hashing.hash(path)
    root = Payload(manifest).statement.pb.subject[0].digest["sha256"]
    files = [(d.identifier, d.digest.digest_hex) for d in manifest.resource_descriptors()]
    return "sha256:" + root, files


def make_model(root: Path) -> Path:
    """A model directory with the cases the rules distinguish: nested files, a path order that
    differs from byte order (``a/b`` before ``a-c``), ignored top-level git files and a nested
    ``.gitignore`` that is part of the model."""
    (root / "a").mkdir(parents=True)
    (root / "a" / "b").write_bytes(b"nested\n")
    (root / "a-c").write_bytes(b"dash\n")
    (root / "config.json").write_text('{"model": "m"}')
    (root / "weights.safetensors").write_bytes(os.urandom(300_000))
    (root / "empty.bin").write_bytes(b"")
    (root / "sub").mkdir()
    (root / "sub" / ".gitignore").write_text("*.tmp\n")
    (root / ".git" / "objects").mkdir(parents=True)
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (root / ".github").mkdir()
    (root / ".github" / "ci.yml").write_text("on: push\n")
    (root / ".gitattributes").write_text("*.bin filter=lfs\n")
    (root / ".gitignore").write_text("*.log\n")
    return root


def test_directory_hash_equals_custody_cli_and_model_signing(tmp_path: Path) -> None:
    model = make_model(tmp_path / "model")
    digest = hash_model(model)

    cli = cli_hash(model)
    assert cli.returncode == 0, cli.stderr
    assert digest.version_hash == cli.stdout.strip()
    cli_json = json.loads(cli_hash(model, "--json").stdout)
    assert digest.manifest() == cli_json["files"]
    assert digest.version_hash == cli_json["version_hash"]

    root, files = model_signing_root(model)
    assert digest.version_hash == root
    assert [(f.path, f.digest.removeprefix("sha256:")) for f in digest.files] == files

    paths = [f.path for f in digest.files]
    assert paths == [
        "a/b",
        "a-c",
        "config.json",
        "empty.bin",
        "sub/.gitignore",
        "weights.safetensors",
    ]
    by_path = {f.path: f for f in digest.files}
    assert by_path["weights.safetensors"].size == 300_000
    assert by_path["empty.bin"].digest == "sha256:" + hashlib.sha256(b"").hexdigest()
    raw = b"".join(bytes.fromhex(f.digest[7:]) for f in digest.files)
    assert digest.version_hash == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert ModelDigest.from_files(list(reversed(digest.files))) == digest


def test_single_file_is_resource_dot(tmp_path: Path) -> None:
    weights = tmp_path / "model.onnx"
    weights.write_bytes(os.urandom(70_000))
    digest = hash_model(weights)
    inner = hashlib.sha256(weights.read_bytes()).digest()
    assert digest.version_hash == "sha256:" + hashlib.sha256(inner).hexdigest()
    assert digest.manifest() == [{"path": ".", "digest": "sha256:" + inner.hex(), "size": 70_000}]
    assert digest.version_hash == cli_hash(weights).stdout.strip()
    assert digest.version_hash == model_signing_root(weights)[0]


@pytest.mark.parametrize("where", ["file", "directory", "inside-git", "root"])
def test_symlinks_are_refused(tmp_path: Path, where: str) -> None:
    model = make_model(tmp_path / "model")
    target = model
    if where == "file":
        (model / "a" / "link.bin").symlink_to(model / "config.json")
    elif where == "directory":
        (model / "linked").symlink_to(model / "a", target_is_directory=True)
    elif where == "inside-git":
        (model / ".git" / "objects" / "link").symlink_to(model / "a-c")
    else:
        target = tmp_path / "alias"
        target.symlink_to(model, target_is_directory=True)
    with pytest.raises(ConfigurationError, match="symbolic link") as err:
        hash_model(target)
    assert str(err.value).startswith("path: ")
    assert cli_hash(target).returncode != 0
    with pytest.raises(ValueError, match="symlink"):
        model_signing.hashing.hash(target)


def test_special_files_and_empty_models_are_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    (empty / "only-dirs").mkdir(parents=True)
    (empty / ".git").mkdir()
    (empty / ".git" / "HEAD").write_text("x")
    with pytest.raises(ConfigurationError, match="no files to hash"):
        hash_model(empty)
    assert cli_hash(empty).returncode != 0

    model = make_model(tmp_path / "model")
    os.mkfifo(model / "pipe")
    with pytest.raises(ConfigurationError, match="not a regular file"):
        hash_model(model)
    with pytest.raises(ConfigurationError, match="cannot be read"):
        hash_model(tmp_path / "missing")


def test_ignored_paths_do_not_change_the_hash(tmp_path: Path) -> None:
    model = make_model(tmp_path / "model")
    before = hash_model(model).version_hash
    (model / ".git" / "objects" / "ab").write_bytes(os.urandom(100))
    (model / ".github" / "ci.yml").write_text("on: pull_request\n")
    (model / ".gitattributes").write_text("changed\n")
    (model / ".gitignore").write_text("changed\n")
    assert hash_model(model).version_hash == before
    assert cli_hash(model).stdout.strip() == before

    (model / "sub" / ".gitignore").write_text("changed\n")
    after = hash_model(model).version_hash
    assert after != before
    assert after == cli_hash(model).stdout.strip() == model_signing_root(model)[0]


def test_large_file_is_hashed_in_bounded_memory(tmp_path: Path) -> None:
    size = 64 << 20
    big = tmp_path / "model" / "weights.bin"
    big.parent.mkdir()
    with open(big, "wb") as f:
        f.truncate(size)
    expected = hashlib.sha256()
    zeros = bytes(1 << 20)
    for _ in range(size // len(zeros)):
        expected.update(zeros)
    del zeros

    tracemalloc.start()
    try:
        digest = hash_model(big.parent)
        single = digest_file(big)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, f"peak {peak} bytes: the file was not streamed"
    assert digest.files == (FileDigest("weights.bin", "sha256:" + expected.hexdigest(), size),)
    assert single == "sha256:" + expected.hexdigest()


def test_digest_file_equals_sha256sum(tmp_path: Path) -> None:
    report = tmp_path / "eval report.pdf"
    report.write_bytes(os.urandom(12_345))
    out = subprocess.run(["sha256sum", str(report)], capture_output=True, text=True, check=True)
    assert digest_file(report) == "sha256:" + out.stdout.split()[0]
    assert lockfile_digest(report) == digest_file(report)
    with pytest.raises(ConfigurationError, match="directory; use hash_model"):
        digest_file(tmp_path)
    with pytest.raises(ConfigurationError, match="not a readable regular file"):
        digest_file(tmp_path / "missing")


def test_digest_dataset_for_files_directories_and_uris(tmp_path: Path) -> None:
    data = tmp_path / "loans.parquet"
    data.write_bytes(os.urandom(5_000))
    one = digest_dataset(data)
    assert one.digest == digest_file(data)
    assert one.files == ()
    assert one.body_fields() == {"digest": one.digest}
    assert digest_dataset(f"file://{data}") == one

    directory = make_model(tmp_path / "parts")
    many = digest_dataset(directory)
    model = hash_model(directory)
    assert many.digest == model.version_hash
    assert many.body_fields() == {"digest": model.version_hash, "files": model.manifest()}

    with pytest.raises(ConfigurationError, match="local copy") as err:
        digest_dataset("ftp://data.example/loans.parquet")
    assert str(err.value).startswith("path_or_uri: ")


def test_remote_datasets_are_hashed_as_they_stream(
    tmp_path: Path, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An object over HTTP, an S3 object and an S3 prefix digest like the same bytes on disk."""
    import http.server
    import threading

    import boto3

    data = tmp_path / "loans.csv"
    data.write_bytes(b"income,debt\n" + b"1,2\n" * 100_000)
    root = str(tmp_path)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=root, **kwargs)

        def log_message(self, *args: object) -> None:
            pass

    web = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{web.server_address[1]}/loans.csv"
        assert digest_dataset(url).digest == digest_file(data)
        with pytest.raises(ConfigurationError, match="404"):
            digest_dataset(url + ".missing")
    finally:
        web.shutdown()
        web.server_close()

    for key, value in {
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    httpx.put(f"{s3_endpoint}/lake").raise_for_status()
    directory = make_model(tmp_path / "parts")
    s3 = boto3.client("s3")
    try:
        s3.upload_file(str(data), "lake", "loans/2026-12.csv")
        for f in sorted(p for p in directory.rglob("*") if p.is_file()):
            s3.upload_file(str(f), "lake", f"parts/v1/{f.relative_to(directory).as_posix()}")
    finally:
        s3.close()
    assert digest_dataset("s3://lake/loans/2026-12.csv").digest == digest_file(data)
    assert digest_dataset("s3://lake/parts/v1/") == digest_dataset(directory)
    with pytest.raises(ConfigurationError, match="no objects"):
        digest_dataset("s3://lake/nothing-here/")


UV_LOCK = """\
version = 1
revision = 2
requires-python = ">=3.11"

[[package]]
name = "numpy"
version = "2.3.5"
source = { registry = "https://pypi.org/simple" }
sdist = { url = "https://files.example/numpy-2.3.5.tar.gz", hash = "sha256:00", size = 1 }

[[package]]
name = "Scikit_Learn"
version = "1.7.2"
source = { registry = "https://pypi.org/simple" }
dependencies = [{ name = "numpy" }]

[[package]]
name = "train"
version = "0.1.0"
source = { editable = "." }
"""

POETRY_LOCK = """\
# This file is automatically @generated by Poetry 2.1.3 and should not be changed by hand.

[[package]]
name = "pandas"
version = "2.2.3"
description = "Powerful data structures"
optional = false
python-versions = ">=3.9"
files = [
    {file = "pandas-2.2.3.tar.gz", hash = "sha256:00"},
]

[package.dependencies]
numpy = ">=1.26.0"

[[package]]
name = "xgboost"
version = "2.1.3"
description = "XGBoost"
optional = false
python-versions = ">=3.8"
files = []

[metadata]
lock-version = "2.1"
python-versions = "^3.11"
content-hash = "00"
"""

REQUIREMENTS = """\
# uv pip compile pyproject.toml --generate-hashes
--index-url https://pypi.org/simple
torch==2.5.1 \\
    --hash=sha256:1111111111111111111111111111111111111111111111111111111111111111 \\
    --hash=sha256:2222222222222222222222222222222222222222222222222222222222222222
    # via train
requests[socks]==2.32.3 ; python_version >= "3.8"
Typing_Extensions==4.12.2  # via torch
tomli==2.0.1; python_version < "3.11"
"""


@pytest.mark.parametrize(
    ("name", "text", "libraries"),
    [
        ("uv.lock", UV_LOCK, {"numpy": "2.3.5", "scikit-learn": "1.7.2", "train": "0.1.0"}),
        ("poetry.lock", POETRY_LOCK, {"pandas": "2.2.3", "xgboost": "2.1.3"}),
        (
            "requirements.txt",
            REQUIREMENTS,
            {
                "requests": "2.32.3",
                "tomli": "2.0.1",
                "torch": "2.5.1",
                "typing-extensions": "4.12.2",
            },
        ),
        ("deps.lock.toml", UV_LOCK, {"numpy": "2.3.5", "scikit-learn": "1.7.2", "train": "0.1.0"}),
        ("frozen", REQUIREMENTS, {"requests": "2.32.3", "tomli": "2.0.1", "torch": "2.5.1"}),
    ],
)
def test_environment_from_each_lockfile_format(
    tmp_path: Path, name: str, text: str, libraries: dict[str, str]
) -> None:
    lock = tmp_path / name
    lock.write_text(text)
    env = environment_from_lockfile(lock, image_digest="sha256:" + "ab" * 32)
    assert env["lockfile_digest"] == digest_file(lock)
    assert env["image_digest"] == "sha256:" + "ab" * 32
    assert libraries.items() <= env["libraries"].items()
    assert list(env["libraries"]) == sorted(env["libraries"])
    assert env["python"] == ".".join(str(n) for n in sys.version_info[:3])
    assert env["os"]
    assert set(env) == {"lockfile_digest", "image_digest", "libraries", "python", "os"}


def test_unknown_or_unpinned_lockfiles_are_refused(tmp_path: Path) -> None:
    pipfile = tmp_path / "Pipfile.lock"
    pipfile.write_text('{"_meta": {}, "default": {}}')
    with pytest.raises(ConfigurationError, match="cannot tell the format"):
        environment_from_lockfile(pipfile)

    loose = tmp_path / "requirements.txt"
    loose.write_text("numpy==2.3.5\npandas>=2\n")
    with pytest.raises(ConfigurationError, match=r"line 2: 'pandas>=2' is not pinned"):
        environment_from_lockfile(loose)

    broken = tmp_path / "uv.lock"
    broken.write_text("[[package]\nname = ")
    with pytest.raises(ConfigurationError, match="not valid TOML"):
        environment_from_lockfile(broken)

    ok = tmp_path / "uv2" / "uv.lock"
    ok.parent.mkdir()
    ok.write_text(UV_LOCK)
    with pytest.raises(ConfigurationError, match=r"^image_digest: "):
        environment_from_lockfile(ok, image_digest="latest")


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def test_code_commit_on_a_real_repository(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    with pytest.raises(ConfigurationError, match="no commit to record"):
        code_commit(repo)
    (repo / "train.py").write_text("print('train')\n")
    git(repo, "add", "train.py")
    git(repo, "commit", "-q", "-m", "first")
    head = git(repo, "rev-parse", "HEAD")
    assert code_commit(repo) == head

    (repo / "train.py").write_text("print('changed')\n")
    with pytest.raises(ConfigurationError, match="uncommitted changes") as err:
        code_commit(repo)
    assert "allow_dirty=True" in str(err.value)
    assert code_commit(repo, allow_dirty=True) == head
    git(repo, "checkout", "--", "train.py")
    (repo / "notes.txt").write_text("untracked\n")
    with pytest.raises(ConfigurationError, match="uncommitted changes"):
        code_commit(repo)

    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(ConfigurationError, match=r"^repo_dir: "):
        code_commit(plain)
    with pytest.raises(ConfigurationError, match="not a directory"):
        code_commit(tmp_path / "missing")


def test_hash_model_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    model = make_model(tmp_path / "model")
    assert main([str(model)]) == 0
    assert capsys.readouterr().out.strip() == cli_hash(model).stdout.strip()

    assert main([str(model), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(cli_hash(model, "--json").stdout)

    for argv in ([str(tmp_path / "missing")], [], [str(model), "--bogus"]):
        assert main(argv) == 2
        captured = capsys.readouterr()
        assert captured.out == ""
        assert len(captured.err.strip().splitlines()) == 1, captured.err
        assert captured.err.startswith("error: ")

    (model / "link").symlink_to(model / "a-c")
    assert main([str(model)]) == 2
    assert "symbolic link" in capsys.readouterr().err
    assert main(["--help"]) == 0
    assert "hash-model" in capsys.readouterr().out

    (model / "link").unlink()
    monkeypatch.chdir(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "custody", "hash-model", "model"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == hash_model(model).version_hash
    done = subprocess.run(
        [sys.executable, "-m", "custody", "hash-model", "nowhere"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1


def test_bodies_built_from_these_digests_are_accepted(tenant: Tenant, tmp_path: Path) -> None:
    """A dataset directory, a training run's environment and commit, and a model's manifest,
    posted as they come out of this module, pass the server's field-by-field checks."""
    data = make_model(tmp_path / "dataset")
    dataset = digest_dataset(data)
    lock = tmp_path / "requirements.txt"
    lock.write_text(REQUIREMENTS)
    repo = tmp_path / "code"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "train.py").write_text("print(1)\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "c")
    weights = hash_model(make_model(tmp_path / "weights"))

    entries: list[dict[str, Any]] = [
        {
            "type": "dataset_version.registered",
            "subject": {"kind": "dataset_version", "id": dataset.digest},
            "body": {
                "name": "loans",
                "version": "2025-10",
                "uri": "s3://lake/loans/2025-10/",
                "legal_basis": "contract",
                **dataset.body_fields(),
            },
        },
        {
            "type": "training_run.recorded",
            "subject": {"kind": "training_run", "id": "run-1"},
            "related": [{"kind": "dataset_version", "id": dataset.digest, "rel": "trained_on"}],
            "body": {
                "code_commit": code_commit(repo),
                "status": "succeeded",
                "metrics": {"auc": 0.91},
                "environment": environment_from_lockfile(
                    lock, image_digest=digest_file(lock), hardware="8 vCPU, 32 GiB"
                ),
            },
        },
        {
            "type": "model_version.registered",
            "subject": {"kind": "model_version", "id": weights.version_hash},
            "related": [{"kind": "training_run", "id": "run-1", "rel": "produced_by"}],
            "body": {
                "name": "credit-risk",
                "version_hash": weights.version_hash,
                "files": weights.manifest(),
            },
        },
    ]
    with httpx.Client(
        base_url=tenant.url,
        headers={"Authorization": f"Bearer {tenant.token('writer')}"},
        timeout=30,
    ) as http:
        for entry in entries:
            r = http.post(f"/v1/tenants/{tenant.name}/logs/governance/entries", json=entry)
            assert r.status_code == 201, r.text

        tampered = dict(entries[2])
        files = weights.manifest()
        files[0] = {**files[0], "size": files[0]["size"] + 1, "digest": "sha256:" + "0" * 64}
        tampered["body"] = {**entries[2]["body"], "files": files}
        r = http.post(f"/v1/tenants/{tenant.name}/logs/governance/entries", json=tampered)
        assert r.status_code == 400
        assert "body.files" in [e["field"] for e in r.json()["errors"]]
