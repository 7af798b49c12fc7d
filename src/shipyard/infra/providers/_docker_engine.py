"""The Docker engine the ``docker`` provider talks to, and what its types share.

Each operation opens its own API client (operations run in parallel worker threads; a
client on a local socket costs a version request). Engine errors become
:class:`ProviderError` with the engine's own explanation.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import stat
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests.exceptions
from docker.api.build import process_dockerfile
from docker.utils import kwargs_from_env
from docker.utils.build import exclude_paths

from shipyard.errors import ProviderError

# Docker's own default when neither the provider's ``host`` nor DOCKER_HOST says.
DEFAULT_HOST = "unix:///var/run/docker.sock"
_API_TIMEOUT = 300
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9}
_UNIT_NS["h"] = 60 * _UNIT_NS["m"]
NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")


def engine_url(config: Mapping[str, Any]) -> str:
    host = config.get("host")
    return str(host or os.environ.get("DOCKER_HOST") or DEFAULT_HOST)


@contextmanager
def engine(config: Mapping[str, Any]) -> Iterator[Any]:
    """An API client for the engine at the provider's ``host`` (else DOCKER_HOST, TLS
    settings included, else the local socket); engine errors become ProviderError."""
    host = config.get("host")
    kwargs: dict[str, Any] = {"base_url": host} if host else dict(kwargs_from_env())
    url = engine_url(config)
    problem = _unix_socket_problem(url)
    try:
        if problem:
            raise docker.errors.DockerException(problem)
        api = docker.APIClient(version="auto", timeout=_API_TIMEOUT, **kwargs)
    except (docker.errors.DockerException, requests.exceptions.RequestException) as err:
        raise ProviderError(
            f"docker: no Docker engine is reachable at {url} ({err}): start dockerd, "
            "or set the provider's 'host'"
        ) from None
    try:
        yield api
    except docker.errors.APIError as err:
        raise ProviderError(f"docker: {explain(err)}") from None
    except (docker.errors.DockerException, requests.exceptions.RequestException) as err:
        raise ProviderError(f"docker: engine at {url}: {err}") from None
    finally:
        api.close()


def _unix_socket_problem(url: str) -> str | None:
    """Why a unix-socket engine URL cannot be connected to, if it cannot.

    Checked before docker-py tries: its socket transport leaks the socket of a failed
    connection.
    """
    scheme, _, path = url.partition("://")
    if scheme not in ("unix", "http+unix"):
        return None
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        try:
            sock.connect(path)
        except OSError as err:
            return err.strerror or str(err)
    return None


def explain(err: docker.errors.APIError) -> str:
    text = err.explanation
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return str(text or err).strip()


def inspect(fn: Any, ref: str) -> dict[str, Any] | None:
    """``fn(ref)`` (an ``inspect_*`` call), or None when the engine has no such thing."""
    try:
        return dict(fn(ref))
    except docker.errors.NotFound:
        return None


def is_conflict(err: docker.errors.APIError) -> bool:
    return err.status_code == 409


def duration_ns(value: Any) -> int:
    """Seconds (a number) or a Go duration (``1m30s``, ``500ms``) in nanoseconds."""
    if isinstance(value, bool):
        raise ValueError("expected seconds or a duration like 10s, got a boolean")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("must not be negative")
        return int(value * 10**9)
    if isinstance(value, str):
        text = value.strip()
        pos, total = 0, 0.0
        for match in _DURATION.finditer(text):
            if match.start() != pos:
                break
            total += float(match.group(1)) * _UNIT_NS[match.group(2)]
            pos = match.end()
        if text and pos == len(text):
            return int(total)
    raise ValueError(f"'{value}' is not a duration: use seconds (5) or 300ms, 10s, 1m30s")


def context_files(context: Path, dockerfile: str | None) -> tuple[list[str], str | None]:
    """The paths (relative) docker-py sends for ``context``, honouring ``.dockerignore``
    with docker-py's own matcher; and the Dockerfile text when it lies outside."""
    root = str(context)
    patterns: list[str] = []
    ignore = context / ".dockerignore"
    if ignore.is_file():
        lines = [line.strip() for line in ignore.read_text().splitlines()]
        patterns = [line for line in lines if line and not line.startswith("#")]
    name, outside = process_dockerfile(dockerfile, root)
    files = sorted(exclude_paths(root, patterns, dockerfile=name))
    return files, outside


def context_digest(context: Path, dockerfile: str | None) -> str:
    """A digest of what a build of ``context`` sends: paths, permissions, contents.

    Modification times are left out (like Docker's build cache): touching a file does
    not rebuild, changing it does.
    """
    files, outside = context_files(context, dockerfile)
    digest = hashlib.sha256()
    for rel in files:
        path = context / rel
        info = path.lstat()
        perms = stat.S_IMODE(info.st_mode)
        if stat.S_ISLNK(info.st_mode):
            digest.update(f"L\0{rel}\0{os.readlink(path)}\0".encode())
        elif stat.S_ISDIR(info.st_mode):
            digest.update(f"D\0{rel}\0{perms:o}\0".encode())
        elif stat.S_ISREG(info.st_mode):
            digest.update(f"F\0{rel}\0{perms:o}\0".encode())
            with path.open("rb") as f:
                digest.update(hashlib.file_digest(f, "sha256").digest())
    if outside is not None:
        digest.update(b"Dockerfile\0" + outside.encode())
    return "sha256:" + digest.hexdigest()
