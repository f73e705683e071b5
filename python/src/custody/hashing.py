"""Digests of the things custody's evidence names: model weights, dataset files, lockfiles, and
the code commit of a training run.

A model's version hash is the OpenSSF model-signing v1.0 root digest (SPEC §6), so
``model_signing``, ``custody model hash`` and a short shell pipeline all derive the same value
from the same files, and an inference record can name the exact weights that served it:

* every regular file of the model is hashed with SHA-256 (the value ``sha256sum`` prints);
* only the top-level ``.git``, ``.github``, ``.gitattributes`` and ``.gitignore`` are left out;
* a symbolic link or special file anywhere in the tree is refused, as ``model_signing`` refuses
  it, because what a link points at can change after the hash is recorded;
* files are ordered by their POSIX path relative to the model, compared component by component
  (``a/b`` before ``a-c``), and the version hash is SHA-256 over their concatenated raw 32-byte
  digests. A single-file model is the one resource ``.``, so its version hash is
  ``SHA-256(SHA-256(file))``.

Files are read in fixed-size chunks into one reused buffer, so a model of any size is hashed in
bounded memory. The hashes use only the Python standard library, so they can be re-derived
without custody installed.

``python -m custody hash-model PATH [--json]`` prints a model's version hash (or its manifest).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import stat
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from custody.errors import ConfigurationError

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10 reads TOML with the tomli backport
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

__all__ = [
    "IGNORED_TOP_LEVEL_NAMES",
    "SINGLE_FILE_PATH",
    "DatasetDigest",
    "FileDigest",
    "ModelDigest",
    "code_commit",
    "digest_dataset",
    "digest_file",
    "environment_from_lockfile",
    "hash_model",
    "lockfile_digest",
    "main",
    "requirement_lines",
]

#: Top-level names a directory model leaves out: ``model_signing``'s default git ignore list.
IGNORED_TOP_LEVEL_NAMES = frozenset({".git", ".github", ".gitattributes", ".gitignore"})

#: The manifest path of the only file of a single-file model, as ``model_signing`` names it.
SINGLE_FILE_PATH = "."

#: Bytes read per chunk: large enough to keep hashing I/O-bound, small enough that memory stays
#: flat whatever the file size.
CHUNK_SIZE = 1 << 20

_SHA256_RE = re.compile(r"sha256:[0-9a-f]{64}")
_PREFIX = "sha256:"


@dataclass(frozen=True)
class FileDigest:
    """One file of a model or dataset, as the ``files`` manifest of a registration records it:
    the manifest lets a verifier find which file changed, not only that the root did."""

    path: str
    """POSIX path relative to the model (``.`` for a single-file model)."""
    digest: str
    """``sha256:`` and the file's SHA-256 in lowercase hex, as ``sha256sum`` prints it."""
    size: int
    """Size in bytes."""

    def to_json(self) -> dict[str, Any]:
        """The manifest item: ``{path, digest, size}``."""
        return {"path": self.path, "digest": self.digest, "size": self.size}


def _component_key(path: str) -> tuple[str, ...]:
    """Sort key ordering paths component by component, as Python's ``PurePosixPath`` (and so
    ``model_signing``) orders them."""
    return tuple(path.split("/"))


def _root_digest(files: Sequence[FileDigest]) -> str:
    """SHA-256 over the files' raw digests in manifest order (the model-signing root)."""
    root = hashlib.sha256()
    for f in files:
        root.update(bytes.fromhex(f.digest[len(_PREFIX) :]))
    return _PREFIX + root.hexdigest()


@dataclass(frozen=True)
class ModelDigest:
    """A model's version hash and the per-file manifest it was computed from: the two values a
    ``model_version.registered`` entry records (``body.version_hash`` and ``body.files``)."""

    version_hash: str
    """``sha256:`` + hex of the OpenSSF model-signing v1.0 root digest."""
    files: tuple[FileDigest, ...]
    """Every hashed file, in the order the root digest covers them."""

    @classmethod
    def from_files(cls, files: Sequence[FileDigest]) -> ModelDigest:
        """Builds the digest of a manifest already computed elsewhere (e.g. read back from a
        registration), ordering the files and re-deriving the root, so a stored manifest can
        be checked against the version hash it claims."""
        if not files:
            raise ConfigurationError("files: a model needs at least one file; pass its manifest")
        seen: set[str] = set()
        for f in files:
            if not _SHA256_RE.fullmatch(f.digest):
                raise ConfigurationError(
                    f"files: {f.path!r} has digest {f.digest!r}; use sha256: and 64 lowercase hex"
                )
            if f.path in seen:
                raise ConfigurationError(f"files: {f.path!r} is listed twice; list each file once")
            seen.add(f.path)
        ordered = tuple(sorted(files, key=lambda f: _component_key(f.path)))
        return cls(version_hash=_root_digest(ordered), files=ordered)

    def manifest(self) -> list[dict[str, Any]]:
        """The ``files`` list of a ``model_version.registered`` body: ``[{path, digest,
        size}]`` in root-digest order."""
        return [f.to_json() for f in self.files]


@dataclass(frozen=True)
class DatasetDigest:
    """What a ``dataset_version.registered`` body records about the data's content: its
    ``digest`` and, for a directory, the ``files`` manifest the digest is the root of."""

    digest: str
    """``sha256:`` + hex: a file's SHA-256, or a directory's model-signing root digest."""
    files: tuple[FileDigest, ...] = ()
    """The manifest of a directory; empty for a single file (whose digest is its own hash)."""

    def body_fields(self) -> dict[str, Any]:
        """The ``digest`` (and, for a directory, ``files``) fields of the registration body."""
        out: dict[str, Any] = {"digest": self.digest}
        if self.files:
            out["files"] = [f.to_json() for f in self.files]
        return out


def _stream_sha256(path: Path) -> tuple[str, int]:
    """SHA-256 and size of a file, read in :data:`CHUNK_SIZE` chunks into one buffer."""
    h = hashlib.sha256()
    buf = bytearray(CHUNK_SIZE)
    view = memoryview(buf)
    size = 0
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(view):
            h.update(view[:n])
            size += n
    return _PREFIX + h.hexdigest(), size


def _refuse(path: Path, problem: str) -> NoReturn:
    raise ConfigurationError(f"path: {path}: {problem}")


def _checked_name(full: Path, name: str) -> str:
    """A file name, refused unless it is valid UTF-8 (a manifest path is JSON text)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        _refuse(full, "file name is not valid UTF-8; rename the file")
    return name


def _walk(root: Path, rel: tuple[str, ...], ignored: bool) -> Iterator[tuple[str, Path]]:
    """Yields ``(posix relative path, full path)`` of each regular file to hash under
    ``root/rel``. Ignored subtrees are still walked, so a link inside them is refused too."""
    directory = root.joinpath(*rel)
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError as e:
        _refuse(directory, f"cannot be read ({e.strerror}); fix its permissions")
    for entry in entries:
        full = Path(entry.path)
        name = _checked_name(full, entry.name)
        st = entry.stat(follow_symlinks=False)
        skip = ignored or (not rel and name in IGNORED_TOP_LEVEL_NAMES)
        if stat.S_ISLNK(st.st_mode):
            _refuse(
                full,
                "is a symbolic link; a model may not contain symbolic links: "
                "copy the file it points to in its place",
            )
        elif stat.S_ISDIR(st.st_mode):
            yield from _walk(root, (*rel, name), skip)
        elif stat.S_ISREG(st.st_mode):
            if not skip:
                yield "/".join((*rel, name)), full
        else:
            _refuse(full, "is not a regular file or directory; remove it from the model")


def hash_model(path: str | os.PathLike[str]) -> ModelDigest:
    """The version hash of a model directory or file and its manifest (SPEC §6), the same value
    ``custody model hash`` and OpenSSF ``model_signing`` derive, so a registration, an
    approval and an inference record all name the same weights.

    Raises :class:`~custody.errors.ConfigurationError` for a missing path, a symbolic link or
    special file anywhere in the model, a file name that is not UTF-8, or a directory with no
    file to hash.
    """
    root = Path(path)
    try:
        st = root.lstat()
    except OSError as e:
        _refuse(root, f"cannot be read ({e.strerror}); pass a model file or directory")
    if stat.S_ISLNK(st.st_mode):
        _refuse(
            root,
            "is a symbolic link; a model may not contain symbolic links: pass the real path",
        )
    if stat.S_ISREG(st.st_mode):
        try:
            digest, size = _stream_sha256(root)
        except OSError as e:
            _refuse(root, f"cannot be read ({e.strerror}); fix its permissions")
        only = FileDigest(path=SINGLE_FILE_PATH, digest=digest, size=size)
        return ModelDigest(version_hash=_root_digest([only]), files=(only,))
    if not stat.S_ISDIR(st.st_mode):
        _refuse(root, "is not a regular file or directory; pass a model file or directory")
    found = list(_walk(root, (), False))
    if not found:
        _refuse(root, "the model contains no files to hash; pass the directory holding the weights")
    files = []
    for rel, full in sorted(found, key=lambda item: _component_key(item[0])):
        try:
            digest, size = _stream_sha256(full)
        except OSError as e:
            _refuse(full, f"cannot be read ({e.strerror}); fix its permissions")
        files.append(FileDigest(path=rel, digest=digest, size=size))
    return ModelDigest(version_hash=_root_digest(files), files=tuple(files))


def digest_file(path: str | os.PathLike[str]) -> str:
    """A file's digest as custody writes it: ``sha256:`` and the hex ``sha256sum`` prints, for
    evidence such as an evaluation report, a config file or a single-file dataset."""
    p = Path(path)
    if p.is_dir():
        raise ConfigurationError(
            f"path: {p} is a directory; use hash_model() for a model or digest_dataset() "
            "for a dataset directory"
        )
    if not p.is_file():
        raise ConfigurationError(f"path: {p} is not a readable regular file; pass a file")
    try:
        return _stream_sha256(p)[0]
    except OSError as e:
        raise ConfigurationError(f"path: {p} cannot be read ({e.strerror}); check it") from e


_REMOTE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def digest_dataset(path_or_uri: str | os.PathLike[str]) -> DatasetDigest:
    """The content digest of a dataset version for ``dataset_version.registered``: a file's
    SHA-256, or for a directory the same root digest as a model with its ``files`` manifest
    (which the server checks against the digest), so one rule covers weights and data.

    Remote data is read as a stream, never stored: ``https://`` (one object) and ``s3://``
    (one object, or with a trailing ``/`` every object under the prefix, as a directory; the
    endpoint and credentials come from the usual ``AWS_*`` settings, with boto3 installed:
    ``pip install 'custody[s3]'``).
    """
    text = os.fspath(path_or_uri)
    if text.startswith("s3://"):
        return _s3_dataset(text)
    if text.startswith(("https://", "http://")):
        return DatasetDigest(digest=_http_digest(text))
    if _REMOTE_RE.match(text) and not text.startswith("file://"):
        raise ConfigurationError(
            f"path_or_uri: {text} cannot be read here (local paths, file://, https:// and "
            "s3:// can); pass a local copy of the data, or the digest (sha256:...) its "
            "producer recorded"
        )
    if text.startswith("file://"):
        text = text[len("file://") :]
    p = Path(text)
    if p.is_dir():
        model = hash_model(p)
        return DatasetDigest(digest=model.version_hash, files=model.files)
    return DatasetDigest(digest=digest_file(p))


def _stream_digest(chunks: Iterator[bytes]) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    for chunk in chunks:
        h.update(chunk)
        size += len(chunk)
    return _PREFIX + h.hexdigest(), size


def _http_digest(url: str) -> str:
    import httpx

    try:
        with httpx.stream("GET", url, follow_redirects=True, timeout=60) as r:
            if r.status_code != 200:
                raise ConfigurationError(
                    f"path_or_uri: GET {url} answered {r.status_code}; check the URL"
                )
            return _stream_digest(r.iter_bytes(CHUNK_SIZE))[0]
    except httpx.HTTPError as e:
        raise ConfigurationError(f"path_or_uri: cannot read {url} ({e})") from e


def _s3_dataset(uri: str) -> DatasetDigest:
    """One object's digest, or a prefix's objects hashed as the files of a directory."""
    try:
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:
        raise ConfigurationError(
            f"path_or_uri: reading {uri} needs boto3: pip install 'custody[s3]'"
        ) from None
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket:
        raise ConfigurationError(f"path_or_uri: {uri} names no bucket; use s3://BUCKET/KEY")
    s3 = boto3.client("s3")
    try:
        if key and not key.endswith("/"):
            body = s3.get_object(Bucket=bucket, Key=key)["Body"]
            return DatasetDigest(digest=_stream_digest(body.iter_chunks(CHUNK_SIZE))[0])
        files: list[FileDigest] = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key):
            for obj in page.get("Contents", []):
                name = obj.get("Key", "")
                relative = name[len(key) :]
                if not relative or relative.endswith("/"):
                    continue
                if relative.split("/", 1)[0] in IGNORED_TOP_LEVEL_NAMES:
                    continue
                if any(part in ("", ".", "..") for part in relative.split("/")):
                    raise ConfigurationError(
                        f"path_or_uri: object {name!r} under {uri} is not a plain relative path"
                    )
                body = s3.get_object(Bucket=bucket, Key=name)["Body"]
                digest, size = _stream_digest(body.iter_chunks(CHUNK_SIZE))
                files.append(FileDigest(path=relative, digest=digest, size=size))
        if not files:
            raise ConfigurationError(f"path_or_uri: {uri} holds no objects; check the prefix")
        model = ModelDigest.from_files(files)
        return DatasetDigest(digest=model.version_hash, files=model.files)
    except (BotoCoreError, ClientError) as e:
        raise ConfigurationError(
            f"path_or_uri: cannot read {uri} ({e}); check AWS_ENDPOINT_URL and the credentials"
        ) from e
    finally:
        s3.close()


def lockfile_digest(path: str | os.PathLike[str]) -> str:
    """The ``environment.lockfile_digest`` of a training run: the lockfile's SHA-256, which
    pins every dependency the run resolved."""
    return digest_file(path)


_NAME_RE = re.compile(r"[-_.]+")
_REQUIREMENT_RE = re.compile(
    r"(?P<name>[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*(?:\[[^\]]*\])?\s*"
    r"===?\s*(?P<version>\S+)"
)
_HASH_OPTION_RE = re.compile(r"\s--hash[=\s]\s*\S+")
_TOKEN_MAX = 128


def _normalise(name: str) -> str:
    """PEP 503 normalised project name, so the same library has one key whatever file named it."""
    return _NAME_RE.sub("-", name).lower()


def _is_token(s: str) -> bool:
    return 0 < len(s) <= _TOKEN_MAX and all(33 <= ord(c) <= 126 for c in s)


def _toml_packages(doc: dict[str, Any], path: Path) -> dict[str, set[str]]:
    packages = doc.get("package")
    if not isinstance(packages, list):
        raise ConfigurationError(
            f"path: {path} has no [[package]] tables; pass the lockfile itself (uv.lock or "
            "poetry.lock)"
        )
    found: dict[str, set[str]] = {}
    for pkg in packages:
        if not isinstance(pkg, dict):
            continue
        name, version = pkg.get("name"), pkg.get("version")
        if isinstance(name, str) and isinstance(version, str):
            found.setdefault(_normalise(name), set()).add(version)
    return found


def requirement_lines(text: str) -> Iterator[tuple[int, str]]:
    """Logical lines of a requirements file (backslash continuations joined, comments cut),
    with the number of the line each starts on: what both reading a lockfile's libraries and
    checking one for replay go through."""
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = re.sub(r"(^|\s)#.*$", "", raw).rstrip()
        if not pending:
            start = number
        if line.endswith("\\"):
            pending.append(line[:-1])
            continue
        pending.append(line)
        joined = " ".join(part.strip() for part in pending).strip()
        pending = []
        if joined:
            yield start, joined
    if pending:
        joined = " ".join(part.strip() for part in pending).strip()
        if joined:
            yield start, joined


def _requirement(line: str) -> re.Match[str] | None:
    """Matches ``name[extras]==version`` once ``--hash`` options and an environment marker
    (``; python_version < "3.11"``) are cut off."""
    spec = _HASH_OPTION_RE.sub("", " " + line).split(";", 1)[0].strip()
    return _REQUIREMENT_RE.fullmatch(spec)


def _requirements_packages(text: str, path: Path) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for number, line in requirement_lines(text):
        if line.startswith("-"):
            continue
        m = _requirement(line)
        if not m:
            raise ConfigurationError(
                f"path: {path} line {number}: {line[:80]!r} is not pinned as name==version; "
                "pass a fully pinned file (pip freeze, uv pip compile or pip-compile output)"
            )
        found.setdefault(_normalise(m["name"]), set()).add(m["version"])
    return found


def _looks_like_requirements(text: str) -> bool:
    lines = [line for _, line in requirement_lines(text) if not line.startswith("-")]
    return bool(lines) and all(_requirement(line) for line in lines)


def _read_libraries(path: Path) -> dict[str, str]:
    """``{name: version}`` of every package a uv.lock, poetry.lock or pinned requirements file
    lists; a package locked at several versions (per platform) gets them comma-joined."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigurationError(
            f"path: {path} cannot be read as UTF-8 text ({e}); pass the lockfile"
        ) from e
    name = path.name.lower()
    if name in ("uv.lock", "poetry.lock"):
        try:
            doc: dict[str, Any] = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ConfigurationError(
                f"path: {path} is not valid TOML ({e}); pass an unmodified {path.name}"
            ) from e
        found = _toml_packages(doc, path)
    elif name.endswith(".txt"):
        found = _requirements_packages(text, path)
    else:
        try:
            sniffed: dict[str, Any] | None = tomllib.loads(text)
        except tomllib.TOMLDecodeError:
            sniffed = None
        if sniffed is not None and isinstance(sniffed.get("package"), list):
            found = _toml_packages(sniffed, path)
        elif _looks_like_requirements(text):
            found = _requirements_packages(text, path)
        else:
            raise ConfigurationError(
                f"path: cannot tell the format of {path}; pass a uv.lock, a poetry.lock or a "
                "requirements.txt pinned as name==version"
            )
    libraries: dict[str, str] = {}
    for pkg in sorted(found):
        version = ",".join(sorted(found[pkg]))
        if _is_token(pkg) and _is_token(version):
            libraries[pkg] = version
    return libraries


def environment_from_lockfile(
    path: str | os.PathLike[str],
    *,
    image_digest: str | None = None,
    hardware: str | None = None,
) -> dict[str, Any]:
    """The ``environment`` object of a ``training_run.recorded`` body, captured from the
    lockfile the run installed from and the interpreter running it: what a later replay or an
    auditor needs to rebuild the run's software.

    ``libraries`` is ``{name: version}`` parsed from a ``uv.lock`` or ``poetry.lock``
    (``[[package]]`` tables) or a requirements file pinned as ``name==version`` (hashes
    allowed); ``python`` and ``os`` describe this interpreter and platform. ``image_digest``
    (``sha256:...``) names the container image, when the run had one.
    """
    p = Path(path)
    digest = lockfile_digest(p)
    env: dict[str, Any] = {
        "lockfile_digest": digest,
        "libraries": _read_libraries(p),
        "python": platform.python_version(),
        "os": platform.platform()[:_TOKEN_MAX],
    }
    if image_digest is not None:
        if not _SHA256_RE.fullmatch(image_digest):
            raise ConfigurationError(
                f"image_digest: {image_digest!r} is not sha256: and 64 lowercase hex; pass the "
                "image's digest as `docker inspect --format '{{.Id}}'` prints it"
            )
        env["image_digest"] = image_digest
    if hardware is not None:
        if not hardware.strip() or len(hardware) > 256 or not hardware.isprintable():
            raise ConfigurationError(
                "hardware: must be one line of at most 256 printable characters, e.g. "
                "'8 vCPU, 32 GiB, 1x A100'"
            )
        env["hardware"] = hardware
    return env


def code_commit(repo_dir: str | os.PathLike[str] = ".", *, allow_dirty: bool = False) -> str:
    """The commit a training run's code is at (``git rev-parse HEAD``), for
    ``body.code_commit``. Refuses a work tree with uncommitted or untracked changes unless
    ``allow_dirty``, because then the commit would not say what code actually ran.
    """
    repo = os.fspath(repo_dir)
    if not Path(repo).is_dir():
        raise ConfigurationError(f"repo_dir: {repo} is not a directory; pass the repository")

    def git(*args: str) -> str:
        try:
            done = subprocess.run(
                ["git", "-C", repo, *args],
                capture_output=True,
                text=True,
                check=False,
                timeout=60,
            )
        except FileNotFoundError as e:
            raise ConfigurationError(
                "repo_dir: git is not installed or not on PATH; install git or pass the commit "
                "yourself"
            ) from e
        if done.returncode != 0:
            why = (done.stderr.strip().splitlines() or ["git failed"])[-1]
            raise ConfigurationError(
                f"repo_dir: {repo} has no commit to record ({why}); run from a git work tree "
                "with at least one commit"
            )
        return done.stdout.strip()

    commit = git("rev-parse", "--verify", "HEAD")
    if not allow_dirty:
        changes = git("status", "--porcelain", "--untracked-files=normal")
        if changes:
            first = changes.splitlines()[0].strip()
            raise ConfigurationError(
                f"repo_dir: {repo} has uncommitted changes (e.g. {first!r}), so commit "
                f"{commit[:12]} does not say what code ran; commit them, or pass "
                "allow_dirty=True"
            )
    return commit


class _UsageError(Exception):
    """A command-line mistake, reported on one line with exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{message}; see `python -m custody hash-model --help`")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m custody hash-model PATH [--json]``: prints the version hash of a model (or,
    with ``--json``, its version hash and manifest), so a script can register or admit weights
    without the Rust CLI. Exit 0 on success, 2 with one line on stderr otherwise."""
    parser = _Parser(
        prog="python -m custody hash-model",
        description="Print a model's version hash (OpenSSF model-signing v1.0 root digest).",
    )
    parser.add_argument("path", metavar="PATH", help="model file or directory")
    parser.add_argument(
        "--json", action="store_true", help="print the version hash and the files manifest"
    )
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
        digest = hash_model(args.path)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    except (_UsageError, ConfigurationError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.json:
        doc = {"version_hash": digest.version_hash, "files": digest.manifest()}
        print(json.dumps(doc, indent=2))
    else:
        print(digest.version_hash)
    return 0
