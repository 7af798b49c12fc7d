"""The ``process`` provider: long-running local services, kept running by a supervisor.

A ``process`` resource is a command run as one or more *replicas* (replica ``i`` gets
``PORT=port+i``). The replicas belong to a small supervisor daemon of our own, one per
data folder, started on demand, which restarts them on crash with backoff, rolls them
over one at a time when their command changes, and outlives the ``shipyard infra`` run
that created them (see ``_supervisor`` for how, and why not supervisord).

``create`` starts the replicas and waits until each is ready (its health check passes,
or it has been running for half a second when there is none); ``update`` hands the
supervisor the new spec and waits for the rolling update, rolling back to the previous
spec if a new replica never becomes ready; ``delete`` stops every replica's process group
(stop signal, then SIGKILL after the stop timeout); ``read`` reports what runs, with notes
on replicas that exited or were restarted since the state recorded them.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Mapping
from typing import Any

from shipyard.infra.provider import (
    REQUIRED,
    Attribute,
    Context,
    Created,
    Observed,
    Property,
    Provider,
    ProviderError,
    ResourceType,
)
from shipyard.infra.providers._supervisor_client import SupervisorClient
from shipyard.infra.providers._supervisor_proc import parse_signal
from shipyard.infra.providers._supervisor_spec import HealthCheck, ServiceSpec, ServiceStatus

__all__ = ["MAX_REPLICAS", "Process", "ProcessProvider"]

MAX_REPLICAS = 256
#: Variables of the applying process a replica inherits; everything else comes from
#: ``environment`` (the apply's own secrets, SHIPYARD_INFRA_KEY first, must not leak).
BASE_ENV = ("PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "LC_ALL", "TZ", "TMPDIR")
_RESERVED_ENV = ("SHIPYARD_PROCESS", "SHIPYARD_REPLICA")
_HEALTH_KEYS = {"type", "path", "interval", "timeout", "start_period"}
_ENV_NAME = re.compile(r"^[^=\0]+$")
_DEFAULT_START_PERIOD = 30.0


def _health(props: Mapping[str, Any]) -> HealthCheck | None:
    raw = props.get("health_check")
    if raw is None:
        return HealthCheck("tcp") if props.get("port") is not None else None
    kind = raw.get("type") or ("http" if raw.get("path") else "tcp")
    return HealthCheck(
        type=kind,
        path=raw.get("path") or "/",
        interval=float(raw.get("interval", 10.0)),
        timeout=float(raw.get("timeout", 2.0)),
        start_period=float(raw.get("start_period", _DEFAULT_START_PERIOD)),
    )


def _observable(props: Mapping[str, Any]) -> dict[str, Any]:
    """The properties a spec records, as they were declared."""
    return {name: props.get(name, spec.default) for name, spec in Process.properties.items()}


class Process(ResourceType):
    """``process``: a command kept running as N replicas by the supervisor."""

    name = "process"
    description = (
        "A long-running local service: `command` run as `replicas` processes (replica i "
        "listens on `port`+i, given as PORT), restarted on crash with backoff, replaced one "
        "at a time on change, still running after the CLI exits."
    )
    properties = {
        "command": Property(
            type="any", default=REQUIRED,
            description="A string run by /bin/sh -c, or a list of strings run as argv.",
        ),
        "environment": Property(
            type="map(string)", default={},
            description="Variables added to the replicas' environment (besides PATH, HOME, "
            "USER, LOGNAME, SHELL, LANG, TZ, TMPDIR taken from the apply, and PORT).",
        ),
        "working_dir": Property(
            type="string", default=None,
            description="Folder the replicas run in, relative to the stack folder (default: it).",
        ),
        "port": Property(
            type="integer", default=None,
            description="Port of replica 0; replica i gets port+i, passed as PORT.",
        ),
        "replicas": Property(type="integer", default=1, description=f"How many (0 to {MAX_REPLICAS})."),
        "health_check": Property(
            type="map(any)", default=None,
            description="{type: http|tcp, path, interval, timeout, start_period} (seconds); "
            "default with a port: tcp.",
        ),
        "stop_signal": Property(type="string", default="TERM", description="Signal that asks a replica to stop."),
        "stop_timeout": Property(
            type="number", default=10,
            description="Seconds between the stop signal and SIGKILL of the replica's process group.",
        ),
    }
    attributes = {
        "pids": Attribute(type="list(any)", description="Each replica's pid (null while it is not running)."),
        "ports": Attribute(type="list(integer)", description="Each replica's port (empty without `port`)."),
        "url": Attribute(type="string", description="http://127.0.0.1:PORT of replica 0, when there is a port."),
        "restarts": Attribute(type="integer", description="Restarts after crashes, all replicas together."),
        "logs": Attribute(type="list(string)", description="Each replica's log file."),
    }

    # ---- checks ---------------------------------------------------------------------

    def validate(self, properties: Mapping[str, Any]) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        command = properties.get("command")
        if "command" in properties:
            if command is None:
                problems.append(("command", "is required"))
            elif isinstance(command, str):
                if not command.strip():
                    problems.append(("command", "must not be empty"))
            elif isinstance(command, list):
                if not command:
                    problems.append(("command", "must not be an empty list"))
                for i, item in enumerate(command):
                    if not isinstance(item, str):
                        problems.append((f"command[{i}]", f"expected string, got {type(item).__name__}"))
            else:
                problems.append(("command", "expected a string or a list of strings"))
        port = properties.get("port")
        replicas = properties.get("replicas")
        if isinstance(replicas, int) and not 0 <= replicas <= MAX_REPLICAS:
            problems.append(("replicas", f"must be between 0 and {MAX_REPLICAS}"))
        if isinstance(port, int):
            if not 1 <= port <= 65535:
                problems.append(("port", "must be between 1 and 65535"))
            elif isinstance(replicas, int) and port + max(replicas, 1) - 1 > 65535:
                problems.append(("port", f"port + replicas - 1 ({port + replicas - 1}) is above 65535"))
        for key in properties.get("environment") or {}:
            if not _ENV_NAME.match(key):
                problems.append((f"environment.{key}", "is not a valid variable name"))
            elif key in _RESERVED_ENV or (key == "PORT" and port is not None):
                problems.append((f"environment.{key}", "is set by the supervisor"))
        problems.extend(self._validate_health(properties.get("health_check"), port, "port" in properties))
        signal_name = properties.get("stop_signal")
        if isinstance(signal_name, str):
            try:
                parse_signal(signal_name)
            except ValueError as err:
                problems.append(("stop_signal", str(err)))
        timeout = properties.get("stop_timeout")
        if isinstance(timeout, int | float) and not isinstance(timeout, bool) and timeout < 0:
            problems.append(("stop_timeout", "must not be negative"))
        return problems

    @staticmethod
    def _validate_health(health: Any, port: Any, port_known: bool) -> list[tuple[str, str]]:
        if not isinstance(health, dict):
            return []
        problems = []
        for key in sorted(set(health) - _HEALTH_KEYS):
            problems.append((f"health_check.{key}", f"unknown key; known: {', '.join(sorted(_HEALTH_KEYS))}"))
        kind = health.get("type")
        if kind is not None and kind not in ("http", "tcp"):
            problems.append(("health_check.type", "must be http or tcp"))
        path = health.get("path")
        if path is not None and (not isinstance(path, str) or not path.startswith("/")):
            problems.append(("health_check.path", "must be a string starting with /"))
        if kind == "tcp" and path is not None:
            problems.append(("health_check.path", "only http checks have a path"))
        for key in ("interval", "timeout", "start_period"):
            value = health.get(key)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                problems.append((f"health_check.{key}", "expected a number of seconds"))
            elif value < 0 or (value == 0 and key != "start_period"):
                problems.append((f"health_check.{key}", "must be positive"))
        if port is None and port_known:
            problems.append(("health_check", "needs `port`: the checks connect to it"))
        return problems

    def _spec(self, ctx: Context, service: str, props: Mapping[str, Any]) -> ServiceSpec:
        problems = self.validate(props)
        if problems:
            raise ProviderError("; ".join(f"{path}: {message}" for path, message in problems))
        command = props["command"]
        argv = ["/bin/sh", "-c", command] if isinstance(command, str) else list(command)
        working_dir = props.get("working_dir")
        cwd = (ctx.stack_dir / working_dir) if working_dir else ctx.stack_dir
        if not cwd.is_dir():
            raise ProviderError(f"working_dir {cwd} is not a folder")
        port = props.get("port")
        return ServiceSpec(
            id=service,
            version=uuid.uuid4().hex[:12],
            properties=_observable(props),
            argv=argv,
            cwd=str(cwd.resolve()),
            env=dict(props.get("environment") or {}),
            base_env={k: os.environ[k] for k in BASE_ENV if k in os.environ},
            port=port,
            replicas=int(props.get("replicas", 1)),
            health=_health(props),
            stop_signal=int(parse_signal(props.get("stop_signal") or "TERM")),
            stop_timeout=float(props.get("stop_timeout", 10)),
        )

    @staticmethod
    def _timeout(spec: ServiceSpec) -> float:
        """How long a rollout of ``spec`` may take, at most: each replica may need to stop
        and then to pass its start period."""
        start = spec.health.start_period if spec.health is not None else _DEFAULT_START_PERIOD
        return max(spec.replicas, 1) * (spec.stop_timeout + start + 2.0) + 5.0

    # ---- operations -----------------------------------------------------------------

    def create(self, ctx: Context, properties: Mapping[str, Any]) -> Created:
        client = SupervisorClient(ctx.data_dir)
        service = f"proc-{uuid.uuid4().hex[:12]}"
        spec = self._spec(ctx, service, properties)
        client.mark_pending(service)
        since = time.time()
        client.put(spec)
        ctx.log(f"starting {spec.replicas} replica(s) of {service}")
        try:
            status = client.wait_converged(spec, since=since, timeout=self._timeout(spec))
        except BaseException:
            # Nothing half-made stays behind: the state will not record this id.
            client.remove(service)
            client.clear_pending(service)
            try:
                client.wait_gone(service, spec.stop_timeout + 10.0)
            except ProviderError as err:
                ctx.log(str(err))
            raise
        client.clear_pending(service)
        return Created(service, self._attributes(client, spec, status))

    def find(self, ctx: Context, properties: Mapping[str, Any]) -> Created | None:
        """The service an interrupted ``create`` of ``properties`` left, if any (adopted)."""
        client = SupervisorClient(ctx.data_dir)
        wanted = _observable(properties)
        for service in client.pending():
            spec = client.spec(service)
            if spec is not None and spec.properties == wanted:
                client.clear_pending(service)
                status = client.current_status(spec)
                return Created(service, self._attributes(client, spec, status))
        return None

    def read(
        self, ctx: Context, id: str, properties: Mapping[str, Any], attributes: Mapping[str, Any]
    ) -> Observed | None:
        client = SupervisorClient(ctx.data_dir)
        spec = client.spec(id)
        if spec is None:
            return None
        status = client.current_status(spec)
        observed = dict(spec.properties)
        running = [
            r for r in (status.replicas if status is not None else [])
            if r.index < spec.replicas and r.pid is not None and r.state in ("starting", "running")
        ]
        current = [r for r in running if r.hash == spec.replica_hash(r.index)]
        observed["replicas"] = len(current)
        notes = self._notes(spec, status, properties, attributes)
        return Observed(observed, self._attributes(client, spec, status), tuple(notes))

    def _notes(
        self, spec: ServiceSpec, status: ServiceStatus | None,
        properties: Mapping[str, Any], attributes: Mapping[str, Any],
    ) -> list[str]:
        notes: list[str] = []
        changed = [
            name for name in ("command", "environment", "working_dir", "port")
            if name in properties and properties.get(name) != spec.properties.get(name)
        ]
        if changed:
            notes.append(
                f"the supervisor runs a different {', '.join(changed)} than the state recorded "
                "(changed outside this stack)"
            )
        if status is None:
            return [*notes, "the supervisor reports nothing for it yet"]
        by_index = {r.index: r for r in status.replicas}
        recorded = attributes.get("pids")
        recorded_pids = recorded if isinstance(recorded, list) else []
        for index in range(spec.replicas):
            replica = by_index.get(index)
            old = recorded_pids[index] if index < len(recorded_pids) else None
            now_pid = replica.pid if replica is not None else None
            if replica is None:
                notes.append(f"replica {index} is not running")
                continue
            ended = next((e for e in reversed(replica.exits) if e.pid == old), None) if old else None
            if old is not None and old != now_pid:
                what = f"replica {index} (pid {old}) {ended.how}" if ended else f"replica {index} (pid {old}) ended"
                if now_pid is not None:
                    notes.append(f"{what}; restarted as pid {now_pid}")
                else:
                    notes.append(f"{what}; not running now ({self._waiting(replica)})")
            elif now_pid is None:
                notes.append(f"replica {index} is not running ({self._waiting(replica)})")
            elif replica.hash != spec.replica_hash(index):
                notes.append(f"replica {index} (pid {now_pid}) still runs the previous spec ({status.rollout or 'update stalled'})")
            elif replica.health.startswith("unhealthy"):
                notes.append(f"replica {index} (pid {now_pid}) is {replica.health}")
        return notes

    @staticmethod
    def _waiting(replica: Any) -> str:
        last = replica.exits[-1].how if replica.exits else "never started"
        if replica.next_start:
            return f"{last}; next start in {max(replica.next_start - time.time(), 0):.1f} s"
        return last

    def update(
        self, ctx: Context, id: str, prior: Mapping[str, Any],
        properties: Mapping[str, Any], attributes: Mapping[str, Any],
    ) -> dict[str, Any]:
        client = SupervisorClient(ctx.data_dir)
        previous = client.spec(id)
        spec = self._spec(ctx, id, properties)
        since = time.time()
        client.put(spec)
        ctx.log(f"updating {id}: {spec.replicas} replica(s), one at a time")
        try:
            status = client.wait_converged(spec, since=since, timeout=self._timeout(spec))
        except ProviderError as err:
            if previous is None:
                raise
            # Back to what the state records, so that the state stays true.
            back = ServiceSpec.from_json({**previous.to_json(), "version": uuid.uuid4().hex[:12]})
            client.put(back)
            try:
                client.wait_converged(back, since=time.time(), timeout=self._timeout(back))
            except ProviderError as again:
                raise ProviderError(f"{err}\nrolling back to the previous spec failed too: {again}") from None
            raise ProviderError(f"{err}\nrolled back to the previous spec") from None
        return self._attributes(client, spec, status)

    def delete(
        self, ctx: Context, id: str, properties: Mapping[str, Any], attributes: Mapping[str, Any]
    ) -> None:
        client = SupervisorClient(ctx.data_dir)
        spec = client.spec(id)
        client.remove(id)
        client.clear_pending(id)
        if spec is None and client.status(id) is None:
            return  # already gone
        timeout = (spec.stop_timeout if spec is not None else float(properties.get("stop_timeout") or 10)) + 10.0
        client.wait_gone(id, timeout)

    def import_(self, ctx: Context, id: str) -> Observed:
        client = SupervisorClient(ctx.data_dir)
        if client.spec(id) is None:
            known = ", ".join(client.service_ids()) or "none"
            raise ProviderError(f"no process {id!r} in {ctx.data_dir} (known: {known})")
        observed = self.read(ctx, id, {}, {})
        assert observed is not None
        return observed

    # ---- attributes -----------------------------------------------------------------

    @staticmethod
    def _attributes(
        client: SupervisorClient, spec: ServiceSpec, status: ServiceStatus | None
    ) -> dict[str, Any]:
        by_index = {r.index: r for r in status.replicas} if status is not None else {}
        pids: list[int | None] = []
        for index in range(spec.replicas):
            replica = by_index.get(index)
            pids.append(replica.pid if replica is not None and replica.state in ("starting", "running") else None)
        ports = [spec.port + i for i in range(spec.replicas)] if spec.port is not None else []
        return {
            "pids": pids,
            "ports": ports,
            "url": f"http://127.0.0.1:{spec.port}" if spec.port is not None else None,
            "restarts": sum(r.restarts for r in by_index.values()),
            "logs": [str(client.log_path(spec.id, i)) for i in range(spec.replicas)],
        }


class ProcessProvider(Provider):
    """Local long-running services (``process``)."""

    name = "process"
    description = "Local long-running services, supervised and restarted on crash."
    resource_types = (Process,)
