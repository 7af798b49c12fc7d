"""What the ``process`` provider and its supervisor daemon tell each other, through files.

The provider writes the *desired* state of a service, the supervisor writes what it
*observes*; neither ever edits the other's files, and every write is an atomic rename,
so either side may be killed at any moment::

    <data_dir>/                      (the provider's ctx.data_dir: one supervisor per folder)
        supervisor.lock              flock held by the live supervisor for its whole life
        supervisor.pid               {"pid", "start_time"} of the live supervisor
        supervisor.log               the supervisor's own log (rotated)
        services/<id>.json           desired: a ServiceSpec (written by the provider)
        pending/<id>                 a create that has not returned yet (for ``find``)
        status/<id>.json             observed: a ServiceStatus (written by the supervisor)
        logs/<id>/<replica>.log      each replica's stdout and stderr (rotated)

Each replica's environment carries ``SHIPYARD_PROCESS=<tag>/<id>/<index>/<hash>``: the
tag names the data folder, the hash what the replica was started from. A new supervisor
finds the replicas of a killed one by this mark (see ``_supervisor``).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "MARK",
    "ExitRecord",
    "HealthCheck",
    "Layout",
    "ReplicaStatus",
    "ServiceSpec",
    "ServiceStatus",
    "parse_mark",
]

#: The environment variable that marks a replica (see the module doc).
MARK = "SHIPYARD_PROCESS"


@dataclass(frozen=True)
class Layout:
    """The files of one supervisor's data folder."""

    root: Path

    @property
    def lock(self) -> Path:
        return self.root / "supervisor.lock"

    @property
    def pid(self) -> Path:
        return self.root / "supervisor.pid"

    @property
    def log(self) -> Path:
        return self.root / "supervisor.log"

    @property
    def services(self) -> Path:
        return self.root / "services"

    @property
    def status_dir(self) -> Path:
        return self.root / "status"

    @property
    def pending_dir(self) -> Path:
        return self.root / "pending"

    def spec(self, service: str) -> Path:
        return self.services / f"{service}.json"

    def status(self, service: str) -> Path:
        return self.status_dir / f"{service}.json"

    def pending(self, service: str) -> Path:
        return self.pending_dir / service

    def log_dir(self, service: str) -> Path:
        return self.root / "logs" / service

    def replica_log(self, service: str, index: int) -> Path:
        return self.log_dir(service) / f"{index}.log"

    @property
    def tag(self) -> str:
        """A short name of this folder, unique on the machine, for the replicas' mark."""
        return hashlib.sha256(os.fsencode(os.path.realpath(self.root))).hexdigest()[:16]

    def make_dirs(self) -> None:
        for path in (self.services, self.status_dir, self.pending_dir, self.root / "logs"):
            path.mkdir(parents=True, exist_ok=True)


def parse_mark(value: str) -> tuple[str, str, int, str] | None:
    """``(tag, service id, replica index, hash)`` from a mark, None if malformed."""
    parts = value.split("/")
    if len(parts) != 4 or not parts[2].isdigit():
        return None
    return parts[0], parts[1], int(parts[2]), parts[3]


@dataclass(frozen=True)
class HealthCheck:
    """How the supervisor decides that a replica serves: ``tcp`` connect or ``http`` GET."""

    type: str  # "tcp" or "http"
    path: str = "/"
    interval: float = 10.0
    timeout: float = 2.0
    start_period: float = 30.0


@dataclass(frozen=True)
class ServiceSpec:
    """The desired state of one service (``services/<id>.json``).

    ``properties`` are the resource's properties as declared (what ``read`` reports);
    the other fields are what the supervisor needs, resolved: ``argv`` (a string command
    becomes ``/bin/sh -c``), ``cwd`` absolute, ``env`` the declared environment and
    ``base_env`` the few variables taken from the applying process (PATH, HOME, ...).
    ``version`` changes with every write, so the provider can tell when the supervisor
    has acted on it.
    """

    id: str
    version: str
    properties: dict[str, Any]
    argv: list[str]
    cwd: str
    env: dict[str, str]
    base_env: dict[str, str]
    port: int | None
    replicas: int
    health: HealthCheck | None
    stop_signal: int
    stop_timeout: float
    min_uptime: float = 0.5  # without a health check: "started" after this long

    def replica_port(self, index: int) -> int | None:
        return None if self.port is None else self.port + index

    def replica_hash(self, index: int) -> str:
        """What replica ``index`` runs, hashed: a change means a restart."""
        what = [self.argv, self.cwd, self.env, self.replica_port(index)]
        return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]

    def replica_env(self, index: int, tag: str) -> dict[str, str]:
        env = {**self.base_env, **self.env}
        port = self.replica_port(index)
        if port is not None:
            env["PORT"] = str(port)
        env["SHIPYARD_REPLICA"] = str(index)
        env[MARK] = f"{tag}/{self.id}/{index}/{self.replica_hash(index)}"
        return env

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ServiceSpec:
        health = data.get("health")
        return cls(**{**data, "health": HealthCheck(**health) if health else None})


@dataclass
class ExitRecord:
    """One end of a replica's process: ``how`` it ended, whether it had become ready,
    and whether the supervisor ``requested`` it (a stop, not a crash)."""

    pid: int
    hash: str
    how: str
    at: float
    ready: bool
    requested: bool = False


@dataclass
class ReplicaStatus:
    """One replica as the supervisor sees it.

    ``state``: ``starting`` (running, not ready yet), ``running`` (ready), ``stopping``,
    ``backoff`` (exited, to be started again at ``next_start``), ``failed`` (could not
    be started at all; retried with backoff too).
    """

    index: int
    pid: int | None = None
    start_time: int | None = None
    hash: str | None = None
    state: str = "backoff"
    ready: bool = False
    health: str = ""  # the last health check's result, for people
    restarts: int = 0
    started_at: float | None = None
    next_start: float | None = None
    adopted: bool = False
    exits: list[ExitRecord] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ReplicaStatus:
        exits = [ExitRecord(**e) for e in data.get("exits", [])]
        return cls(**{**data, "exits": exits})


@dataclass
class ServiceStatus:
    """``status/<id>.json``: every replica of one service, and the spec version seen."""

    id: str
    version: str
    supervisor: int
    replicas: list[ReplicaStatus]
    rollout: str = ""  # what a rolling update is waiting for, empty when none

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ServiceStatus:
        replicas = [ReplicaStatus.from_json(r) for r in data.get("replicas", [])]
        return cls(
            id=data["id"], version=data["version"], supervisor=data.get("supervisor", 0),
            replicas=replicas, rollout=data.get("rollout", ""),
        )
