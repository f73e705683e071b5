"""Client settings: explicit arguments first, then the same environment variables the
``custody`` command line reads, then defaults."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigurationError

DEFAULT_SERVER = "http://127.0.0.1:7878"
TENANT_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


def default_state_dir() -> Path:
    """Where a client keeps the checkpoints it verified and the keys it pinned:
    ``$CUSTODY_STATE_DIR``, else ``$XDG_STATE_HOME/custody``, else ``~/.local/state/custody``.
    """
    explicit = os.environ.get("CUSTODY_STATE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "state"
    return base / "custody"


@dataclass(frozen=True)
class Settings:
    """Everything a client needs to reach a server and to check its answers."""

    server: str
    token: str | None
    tenant: str | None
    purpose: str | None
    ca_cert: Path | None
    timeout: float
    vkeys: tuple[str, ...]
    state_dir: Path
    verify: bool

    def __repr__(self) -> str:
        # The token is a secret: it never appears in a repr, a log line or a traceback.
        token = "set" if self.token else "none"
        return (
            f"Settings(server={self.server!r}, tenant={self.tenant!r}, token={token}, "
            f"purpose={self.purpose!r}, verify={self.verify})"
        )

    def for_tenant(self, tenant: str) -> Settings:
        """The same settings for another tenant."""
        if not TENANT_NAME.fullmatch(tenant):
            raise ConfigurationError(
                f"tenant {tenant!r} is not a tenant name: use [a-z0-9][a-z0-9-]{{0,62}}"
            )
        return dataclasses.replace(self, tenant=tenant)

    @staticmethod
    def resolve(
        *,
        server: str | None,
        token: str | None,
        tenant: str | None,
        purpose: str | None,
        ca_cert: str | os.PathLike[str] | None,
        timeout: float | None,
        vkeys: Sequence[str] | Mapping[str, str] | None,
        state_dir: str | os.PathLike[str] | None,
        verify: bool,
    ) -> Settings:
        env = os.environ
        server = (server or env.get("CUSTODY_SERVER") or DEFAULT_SERVER).rstrip("/")
        if not server.startswith(("http://", "https://")):
            raise ConfigurationError(
                f"server {server!r} is not an http(s) URL: pass e.g. server='https://custody.example'"
                " or set CUSTODY_SERVER"
            )
        tenant = tenant or env.get("CUSTODY_TENANT") or None
        if tenant is not None and not TENANT_NAME.fullmatch(tenant):
            raise ConfigurationError(
                f"tenant {tenant!r} is not a tenant name: use [a-z0-9][a-z0-9-]{{0,62}}"
            )
        ca = ca_cert if ca_cert is not None else env.get("CUSTODY_CA_CERT")
        ca_path = Path(ca) if ca else None
        if ca_path is not None and not ca_path.is_file():
            raise ConfigurationError(
                f"ca_cert {str(ca_path)!r} is not a file: pass the PEM bundle of your private CA"
            )
        if timeout is None:
            raw = env.get("CUSTODY_TIMEOUT", "30")
            try:
                timeout = float(raw)
            except ValueError:
                raise ConfigurationError(
                    f"CUSTODY_TIMEOUT {raw!r} is not a number of seconds"
                ) from None
        if timeout <= 0:
            raise ConfigurationError(f"timeout {timeout} must be a positive number of seconds")
        if vkeys is None:
            pinned: tuple[str, ...] = tuple(
                k for k in re.split(r"[\s,]+", env.get("CUSTODY_VKEYS", "")) if k
            )
        elif isinstance(vkeys, Mapping):
            pinned = tuple(vkeys.values())
        elif isinstance(vkeys, str):
            raise ConfigurationError("vkeys must be a list of verifier keys, not one string")
        else:
            pinned = tuple(vkeys)
        return Settings(
            server=server,
            token=token or env.get("CUSTODY_TOKEN") or None,
            tenant=tenant,
            purpose=purpose or env.get("CUSTODY_PURPOSE") or None,
            ca_cert=ca_path,
            timeout=timeout,
            vkeys=pinned,
            state_dir=Path(state_dir) if state_dir is not None else default_state_dir(),
            verify=verify,
        )
