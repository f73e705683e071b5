"""The last checkpoint this client verified, per log, kept on disk: what turns single answers
into a check that the log never rewinds or forks between them.

Each origin has one small file holding the signed checkpoint text, replaced atomically (temporary
file, fsync, rename) under an exclusive ``flock``, so several processes sharing a directory
never lose an update or read half of one.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from custody.errors import ForkDetected, VerificationError
from custody.verify.merkle import verify_consistency
from custody.verify.note import Checkpoint, Verifier, open_checkpoint, parse_checkpoint_body

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class CheckpointStore:
    """A directory of last-verified checkpoints, one file per log origin."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        # The signed text last opened per origin, so reading back an unchanged file does not
        # check its signature again on every answer.
        self._opened: dict[str, tuple[str, Checkpoint]] = {}

    def path_for(self, origin: str) -> Path:
        """The file of one origin: a readable, filesystem-safe form of the origin plus a hash of
        it, so distinct origins never share a file (``a/b`` and ``a_b`` differ) and no origin
        can name a path outside the directory."""
        readable = _UNSAFE.sub("_", origin).strip("._")[:80] or "origin"
        digest = hashlib.sha256(origin.encode("utf-8")).hexdigest()[:16]
        return self.directory / f"{readable}-{digest}.checkpoint"

    @contextlib.contextmanager
    def _locked(self, origin: str, mode: int) -> Iterator[None]:
        lock_path = self.path_for(origin).with_suffix(".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, mode)
            yield
        finally:
            os.close(fd)

    def _read(self, origin: str) -> str | None:
        try:
            return self.path_for(origin).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    def latest(self, origin: str, verifiers: Sequence[Verifier]) -> Checkpoint | None:
        """The last checkpoint verified for ``origin``, re-opened with ``verifiers`` so a file
        edited on disk is not believed; ``None`` when none was stored yet."""
        with self._locked(origin, fcntl.LOCK_SH):
            text = self._read(origin)
        if text is None:
            return None
        seen = self._opened.get(origin)
        if seen is not None and seen[0] == text:
            return seen[1]
        checkpoint = open_checkpoint(text, verifiers)
        if checkpoint.origin != origin:
            raise VerificationError(
                "checkpoint", f"{origin} checkpoint", f"stored file holds {checkpoint.origin}"
            )
        self._opened[origin] = (text, checkpoint)
        return checkpoint

    def _stored(self, origin: str) -> Checkpoint | None:
        text = self._read(origin)
        if text is None:
            return None
        body = text[: text.rfind("\n\n") + 1]
        stored_origin, size, root = parse_checkpoint_body(body, target=f"{origin} checkpoint")
        return Checkpoint(origin=stored_origin, size=size, root=root, text=text)

    def needs_proof(self, new: Checkpoint) -> int | None:
        """The stored size from which a consistency proof to ``new`` is needed before
        :meth:`advance`, or ``None`` when no proof is needed (nothing stored, or not larger)."""
        with self._locked(new.origin, fcntl.LOCK_SH):
            stored = self._stored(new.origin)
        if stored is None or new.size <= stored.size:
            return None
        return stored.size

    def advance(self, new: Checkpoint, consistency_proof: Sequence[bytes] | None) -> None:
        """Records ``new`` (an opened checkpoint) as the latest for its origin once it provably
        extends the stored one. Raises :class:`ForkDetected` when it is smaller (rewound), the
        same size with another root, or a larger tree the proof does not connect (forked); the
        conflicting checkpoint is then kept beside the stored one as evidence."""
        target = f"{new.origin} checkpoint"
        with self._locked(new.origin, fcntl.LOCK_EX):
            stored = self._stored(new.origin)
            if stored is not None:
                self._check_extends(stored, new, consistency_proof, target)
                if stored.size == new.size:
                    return
            self._write(self.path_for(new.origin), new.text)
            self._opened[new.origin] = (new.text, new)

    def _check_extends(
        self,
        stored: Checkpoint,
        new: Checkpoint,
        consistency_proof: Sequence[bytes] | None,
        target: str,
    ) -> None:
        sizes = f"size {stored.size} verified before, size {new.size} now"
        if new.size < stored.size:
            kept = self._keep_conflict(new)
            raise ForkDetected(
                "consistency",
                target,
                f"log rewound: {sizes}; keep both checkpoints as proof "
                f"({self.path_for(new.origin)}, {kept})",
            )
        if new.size == stored.size:
            if stored.root != new.root:
                kept = self._keep_conflict(new)
                raise ForkDetected(
                    "consistency",
                    target,
                    f"log forked: two roots for {sizes}; keep both checkpoints as proof "
                    f"({self.path_for(new.origin)}, {kept})",
                )
            return
        if consistency_proof is None:
            raise VerificationError(
                "consistency",
                target,
                f"a consistency proof from size {stored.size} to {new.size} is needed",
            )
        try:
            verify_consistency(
                stored.size, new.size, consistency_proof, stored.root, new.root, target=target
            )
        except VerificationError as e:
            kept = self._keep_conflict(new)
            raise ForkDetected(
                "consistency",
                target,
                f"log forked: {sizes} are not consistent ({e.message}); keep both checkpoints "
                f"as proof ({self.path_for(new.origin)}, {kept})",
            ) from e

    def _keep_conflict(self, new: Checkpoint) -> Path:
        digest = hashlib.sha256(new.text.encode("utf-8")).hexdigest()[:16]
        path = self.path_for(new.origin).with_suffix(f".conflict-{new.size}-{digest}")
        self._write(path, new.text)
        return path

    def _write(self, path: Path, text: str) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".checkpoint")
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
