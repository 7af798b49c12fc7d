"""Settings of a Shipyard installation, from a file, the environment and flags.

Precedence, lowest to highest: built-in defaults, the TOML file
(``<data-dir>/shipyard.toml``, or the file named by ``--config`` / ``SHIPYARD_CONFIG``),
``SHIPYARD_*`` environment variables, command-line flags. Every field can be set each
way: field ``database_url`` is ``database_url = "..."`` in the file and
``SHIPYARD_DATABASE_URL`` in the environment.
"""

from __future__ import annotations

import os
import secrets
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from shipyard.errors import ConfigError

__all__ = ["SERVICES", "Settings", "load_settings"]

#: The services ``shipyard up`` starts, in start order.
SERVICES = ("git", "store", "ci", "gateway")

_ENV_PREFIX = "SHIPYARD_"


class Settings(BaseModel):
    """Everything a service, the supervisor or a runner reads at start."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    data_dir: Path = Field(
        default_factory=lambda: Path(os.environ.get("HOME", ".")) / ".shipyard" / "server",
        description="where databases, repositories, blobs and logs live",
    )
    host: str = Field("127.0.0.1", description="address the gateway listens on")
    port: int = Field(8080, ge=0, le=65535, description="gateway port (0: any free port)")
    public_url: str = Field("", description="URL users and runners reach the gateway at")
    runners: int = Field(2, ge=0, le=64, description="local runner agents `shipyard up` starts")
    runner_concurrency: int = Field(2, ge=1, le=64, description="jobs each local runner runs at once")
    runner_executor: str = Field("local", pattern="^(local|sandbox|docker)$")
    database_url: str = Field(
        "", description="empty: a SQLite file per service; postgresql://...: a schema per service"
    )
    database_schema_prefix: str = Field(
        "shipyard_", pattern=r"^[a-z_][a-z0-9_]*$", description="PostgreSQL schema name prefix"
    )
    secret: str = Field("", description="key that signs tokens; read from <data-dir>/secret.key when empty")
    git_url: str = Field("", description="internal URL of the git service")
    ci_url: str = Field("", description="internal URL of the ci service")
    store_url: str = Field("", description="internal URL of the store service")
    heartbeat_timeout: float = Field(30.0, gt=0, description="seconds without a heartbeat before a job is lost")
    lost_job_retries: int = Field(0, ge=0, le=10, description="times a lost job is queued again")
    cache_size_limit: int = Field(10 << 30, gt=0, description="bytes of caches kept before LRU eviction")
    max_json_body: int = Field(1 << 20, gt=0, description="largest JSON request body, bytes")
    max_upload_body: int = Field(10 << 30, gt=0, description="largest push or blob upload, bytes")
    log_level: str = Field("info", pattern="^(debug|info|warning|error)$")

    def database_for(self, service: str) -> tuple[str, str | None]:
        """The SQLAlchemy URL and schema (``None`` for SQLite) of one service's database."""
        url = self.database_url
        if not url:
            return f"sqlite:///{self.data_dir / (service + '.db')}", None
        if url.startswith(("postgres://", "postgresql://")):
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        if url.startswith("sqlite"):
            return url, None
        return url, f"{self.database_schema_prefix}{service}"

    def signing_key(self) -> bytes:
        """The token-signing secret: the setting, or ``secret.key`` in the data dir."""
        if self.secret:
            return self.secret.encode()
        path = self.data_dir / "secret.key"
        try:
            return path.read_bytes().strip()
        except FileNotFoundError:
            raise ConfigError(
                f"no signing secret: set SHIPYARD_SECRET or create {path} (shipyard up does)"
            ) from None

    def ensure_signing_key(self) -> bytes:
        """The signing secret, created (mode 0600) in the data dir on first start."""
        if self.secret:
            return self.secret.encode()
        path = self.data_dir / "secret.key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(32))
            os.replace(tmp, path)
        return self.signing_key()


def _from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in Settings.model_fields:
        key = _ENV_PREFIX + name.upper()
        if key in environ:
            out[name] = environ[key]
    return out


def _from_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: {err}") from None
    unknown = sorted(set(data) - set(Settings.model_fields))
    if unknown:
        raise ConfigError(f"{path}: unknown setting(s): {', '.join(unknown)}")
    return data


def load_settings(
    flags: Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> Settings:
    """Merge defaults < file < environment < flags (flags that are ``None`` are unset)."""
    env = os.environ if environ is None else environ
    given = {k: v for k, v in (flags or {}).items() if v is not None}
    from_env = _from_env(env)
    data_dir = given.get("data_dir") or from_env.get("data_dir")
    if config_file is None and env.get(_ENV_PREFIX + "CONFIG"):
        config_file = Path(env[_ENV_PREFIX + "CONFIG"])
    if config_file is None:
        base = Path(data_dir) if data_dir else Settings.model_fields["data_dir"].get_default(
            call_default_factory=True
        )
        config_file = Path(base) / "shipyard.toml"
    merged = {**_from_file(config_file), **from_env, **given}
    try:
        return Settings(**merged)
    except PydanticValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()
        )
        raise ConfigError(f"bad settings: {problems}") from None
