"""``docker_container``: a container run from an image on the engine.

A container's configuration cannot change once created, so most properties replace it;
``networks`` (connect/disconnect), ``restart`` (``docker update``), ``must_run`` and
``stop_timeout`` change in place. ``read`` observes what can drift on a living container:
its name, networks, restart policy and whether it still runs; a container removed by hand
reads as gone. With a ``health_check``, create (and a restart by update) waits until the
container is healthy, and fails, removing it, if it turns unhealthy or exits.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from typing import Any, ClassVar

import docker.errors
from docker.utils import parse_repository_tag

from shipyard.errors import ProviderError
from shipyard.infra.provider import (
    REQUIRED,
    Attribute,
    Context,
    Created,
    Observed,
    Property,
    ResourceType,
)
from shipyard.infra.providers._docker_engine import NAME, engine, explain, inspect
from shipyard.infra.providers._docker_spec import (
    Spec,
    health_from_engine,
    ports_from_engine,
    restart_text,
    restart_text_of,
    validate_container,
    volumes_from_engine,
)

# Docker's defaults for a health check field left at 0.
_HEALTH_DEFAULTS = {"Interval": 30 * 10**9, "Timeout": 30 * 10**9, "StartPeriod": 0, "Retries": 3}
_LOG_TAIL = 20


class DockerContainer(ResourceType):
    """A container; created, started and (with a health check) waited for."""

    name = "docker_container"
    description = "A Docker container"
    properties: ClassVar[Mapping[str, Property]] = {
        "name": Property(default=REQUIRED, replace=True, description="Container name."),
        "image": Property(
            default=REQUIRED,
            replace=True,
            description="Image to run: name:tag or id (e.g. a docker_image's image_id).",
        ),
        "command": Property(
            type="list(string)", replace=True, description="Command; unset = the image's."
        ),
        "env": Property(
            type="map(string)", default={}, replace=True, description="Environment variables."
        ),
        "ports": Property(
            type="list(map(any))",
            default=[],
            replace=True,
            description="Published ports: {internal, external (unset = any free port), "
            "protocol (tcp|udp|sctp), ip}.",
        ),
        "volumes": Property(
            type="list(map(any))",
            default=[],
            replace=True,
            description="Mounts: {host_path (relative to the stack) or volume, "
            "container_path, read_only}.",
        ),
        "networks": Property(
            type="list(string)",
            default=[],
            description="Networks (names or ids) to join; empty = the default bridge.",
        ),
        "restart": Property(
            default="no",
            description="Restart policy: no, always, unless-stopped, on-failure[:N].",
        ),
        "health_check": Property(
            type="map(any)",
            replace=True,
            description="{test (command list, or a shell string), interval, timeout, "
            "start_period (seconds or 10s/500ms), retries}; create waits for healthy.",
        ),
        "labels": Property(type="map(string)", default={}, replace=True, description="Labels."),
        "must_run": Property(
            type="boolean",
            default=True,
            description="Keep it running: a stopped container is drift; apply starts it.",
        ),
        "stop_timeout": Property(
            type="integer",
            default=10,
            description="Seconds to wait after SIGTERM before SIGKILL when stopping.",
        ),
    }
    attributes: ClassVar[Mapping[str, Attribute]] = {
        "id": Attribute(stable=True, description="The container's id."),
        "ip_address": Attribute(description="Address on its first network."),
        "status": Attribute(description="running, exited, ..."),
        "published_ports": Attribute(
            type="map(integer)", description='Host port of each published port ("80/tcp": 49153).'
        ),
    }

    def validate(self, properties: Mapping[str, Any]) -> list[tuple[str, str]]:
        problems = validate_container(properties)
        name = properties.get("name")
        if isinstance(name, str) and not NAME.match(name):
            problems.insert(
                0, ("name", f"'{name}' is not a valid container name ([a-zA-Z0-9][a-zA-Z0-9_.-]*)")
            )
        return problems

    # -- create ----------------------------------------------------------------------------

    def create(self, ctx: Context, properties: Mapping[str, Any]) -> Created:
        spec = Spec.of(properties, ctx.stack_dir)
        with engine(ctx.config) as api:
            _ensure_image(api, spec.image)
            networks = [_network(api, ref) for ref in spec.networks]
            first = networks[0]["Name"] if networks else None
            host_config = api.create_host_config(
                port_bindings=spec.port_bindings(),
                binds=spec.binds(),
                restart_policy=spec.restart_policy(),
                network_mode=first,
            )
            networking = (
                api.create_networking_config({first: api.create_endpoint_config()})
                if first
                else None
            )
            try:
                made = api.create_container(
                    spec.image,
                    command=spec.command,
                    name=spec.name,
                    environment=spec.environment(),
                    ports=spec.exposed(),
                    labels=spec.labels,
                    host_config=host_config,
                    networking_config=networking,
                    healthcheck=spec.healthcheck(),
                    stop_timeout=spec.stop_timeout,
                    detach=True,
                )
            except docker.errors.APIError as err:
                if err.status_code == 409:
                    raise ProviderError(
                        f"docker: a container named '{spec.name}' already exists: "
                        "remove it, or adopt it with import"
                    ) from None
                raise
            cid = str(made["Id"])
            try:
                for net in networks[1:]:
                    api.connect_container_to_network(cid, net["Id"])
                api.start(cid)
                info = self._wait(api, cid, spec)
            except BaseException:
                # A container that did not come up is not left behind half-made.
                with contextlib.suppress(docker.errors.DockerException):
                    api.remove_container(cid, force=True, v=True)
                raise
        return Created(id=cid, attributes=_attributes(info, spec.networks))

    def _wait(self, api: Any, cid: str, spec: Spec) -> dict[str, Any]:
        """Wait for healthy (with a health check) or check it runs (must_run)."""
        info = dict(api.inspect_container(cid))
        health = spec.healthcheck()
        if health is None or health["Test"] == ["NONE"]:
            if spec.must_run and not info["State"].get("Running"):
                raise ProviderError(_stopped(api, cid, info, spec.name))
            return info
        limits = {k: health.get(k) or default for k, default in _HEALTH_DEFAULTS.items()}
        budget = (
            limits["StartPeriod"]
            + (limits["Interval"] + limits["Timeout"]) * (limits["Retries"] + 1)
        ) / 10**9 + 10
        deadline = time.monotonic() + budget
        pause = 0.05
        while True:
            state = info["State"]
            status = (state.get("Health") or {}).get("Status")
            if status == "healthy":
                return info
            if not state.get("Running"):
                raise ProviderError(_stopped(api, cid, info, spec.name))
            if status == "unhealthy":
                raise ProviderError(
                    f"docker: container '{spec.name}' is unhealthy: {_health_log(state)}"
                )
            if time.monotonic() > deadline:
                raise ProviderError(
                    f"docker: container '{spec.name}' was not healthy after {budget:.0f}s: "
                    f"{_health_log(state)}"
                )
            time.sleep(pause)
            pause = min(pause * 2, 0.25)
            info = dict(api.inspect_container(cid))

    # -- read / update / delete / import ---------------------------------------------------

    def read(
        self,
        ctx: Context,
        id: str,
        properties: Mapping[str, Any],
        attributes: Mapping[str, Any],
    ) -> Observed | None:
        with engine(ctx.config) as api:
            info = inspect(api.inspect_container, attributes.get("id") or id)
        if info is None:
            return None
        state = info["State"]
        observed = dict(properties)  # configuration is immutable for a given container
        observed["name"] = info["Name"].lstrip("/")
        observed["restart"] = _same_restart(properties.get("restart"), info)
        observed["networks"] = _observed_networks(list(properties.get("networks") or []), info)
        notes: list[str] = []
        if not state.get("Running"):
            notes.append(_state_text(info))
            if properties.get("must_run"):
                observed["must_run"] = False
        networks = list(properties.get("networks") or [])
        return Observed(
            properties=observed, attributes=_attributes(info, networks), notes=tuple(notes)
        )

    def update(
        self,
        ctx: Context,
        id: str,
        prior: Mapping[str, Any],
        properties: Mapping[str, Any],
        attributes: Mapping[str, Any],
    ) -> dict[str, Any]:
        spec = Spec.of(properties, ctx.stack_dir)
        cid = attributes.get("id") or id
        with engine(ctx.config) as api:
            info = inspect(api.inspect_container, cid)
            if info is None:
                raise ProviderError(f"docker: container '{spec.name}' is gone")
            if restart_text(info) != spec.restart:
                api.update_container(cid, restart_policy=spec.restart_policy())
            self._sync_networks(api, cid, info, spec.networks)
            if spec.must_run and not info["State"].get("Running"):
                api.start(cid)
                info = self._wait(api, cid, spec)
            else:
                info = dict(api.inspect_container(cid))
        return _attributes(info, spec.networks)

    def _sync_networks(
        self, api: Any, cid: str, info: Mapping[str, Any], wanted: list[str]
    ) -> None:
        joined = dict(info["NetworkSettings"].get("Networks") or {})
        targets = [_network(api, ref) for ref in (wanted or ["bridge"])]
        target_ids = {net["Id"] for net in targets}
        for name, endpoint in joined.items():
            if endpoint.get("NetworkID") not in target_ids:
                api.disconnect_container_from_network(cid, name)
        joined_ids = {endpoint.get("NetworkID") for endpoint in joined.values()}
        for net in targets:
            if net["Id"] not in joined_ids:
                api.connect_container_to_network(cid, net["Id"])

    def delete(
        self,
        ctx: Context,
        id: str,
        properties: Mapping[str, Any],
        attributes: Mapping[str, Any],
    ) -> None:
        cid = attributes.get("id") or id
        timeout = properties.get("stop_timeout")
        with engine(ctx.config) as api:
            try:
                # A graceful stop first: the process gets SIGTERM and stop_timeout seconds.
                api.stop(cid, timeout=10 if timeout is None else int(timeout))
                api.remove_container(cid, v=True, force=True)
            except docker.errors.NotFound:
                pass

    def find(self, ctx: Context, properties: Mapping[str, Any]) -> Created | None:
        """The container an interrupted create made: its name, running that image."""
        with engine(ctx.config) as api:
            info = inspect(api.inspect_container, properties["name"])
        if info is None or (info.get("Config") or {}).get("Image") != properties["image"]:
            return None
        return Created(
            id=info["Id"], attributes=_attributes(info, list(properties.get("networks") or []))
        )

    def import_(self, ctx: Context, id: str) -> Observed:
        with engine(ctx.config) as api:
            info = inspect(api.inspect_container, id)
            if info is None:
                raise ProviderError(f"docker: there is no container '{id}' on the engine")
            image = inspect(api.inspect_image, info["Image"]) or {}
        config = info.get("Config") or {}
        base = image.get("Config") or {}
        host = info.get("HostConfig") or {}
        env = dict(_env_pairs(config.get("Env")))
        base_env = dict(_env_pairs(base.get("Env")))
        base_labels = base.get("Labels") or {}
        joined = list((info["NetworkSettings"].get("Networks") or {}).keys())
        networks = [] if joined == ["bridge"] else joined
        timeout = config.get("StopTimeout")
        props: dict[str, Any] = {
            "name": info["Name"].lstrip("/"),
            "image": config.get("Image"),
            "command": None if config.get("Cmd") == base.get("Cmd") else config.get("Cmd"),
            "env": {k: v for k, v in env.items() if base_env.get(k) != v},
            "ports": ports_from_engine(host.get("PortBindings")),
            "volumes": volumes_from_engine(host.get("Binds")),
            "networks": networks,
            "restart": restart_text(info),
            "health_check": None
            if config.get("Healthcheck") == base.get("Healthcheck")
            else health_from_engine(config.get("Healthcheck")),
            "labels": {
                k: v for k, v in (config.get("Labels") or {}).items() if base_labels.get(k) != v
            },
            "must_run": bool(info["State"].get("Running")),
            "stop_timeout": 10 if timeout is None else int(timeout),
        }
        return Observed(properties=props, attributes=_attributes(info, networks))


# -- helpers ---------------------------------------------------------------------------------


def _ensure_image(api: Any, image: str) -> None:
    if inspect(api.inspect_image, image) is not None:
        return
    repo, tag = parse_repository_tag(image)
    try:
        api.pull(repo, tag=tag or "latest")
    except docker.errors.DockerException as err:
        reason = explain(err) if isinstance(err, docker.errors.APIError) else str(err)
        raise ProviderError(
            f"docker: image '{image}' is not on the engine and pulling it failed: {reason} "
            "(build it with a docker_image resource)"
        ) from None


def _network(api: Any, ref: str) -> dict[str, Any]:
    info = inspect(api.inspect_network, ref)
    if info is None:
        raise ProviderError(f"docker: there is no network '{ref}'")
    return info


def _matches(ref: str, name: str, network_id: str) -> bool:
    return ref in (name, network_id) or (len(ref) >= 12 and network_id.startswith(ref))


def _observed_networks(wanted: list[str], info: Mapping[str, Any]) -> list[str]:
    """``wanted`` when the container is on exactly those networks, else their names."""
    joined = {
        name: str(endpoint.get("NetworkID") or "")
        for name, endpoint in (info["NetworkSettings"].get("Networks") or {}).items()
    }
    if not wanted:
        return [] if set(joined) <= {"bridge"} else sorted(joined)
    found = {name for ref in wanted for name, nid in joined.items() if _matches(ref, name, nid)}
    all_found = all(any(_matches(ref, n, nid) for n, nid in joined.items()) for ref in wanted)
    if all_found and found == set(joined):
        return wanted
    return sorted(joined)


def _same_restart(wanted: Any, info: Mapping[str, Any]) -> str:
    """``wanted`` as written when the policy is that one, else the actual policy."""
    actual = restart_text(info)
    return str(wanted) if wanted is not None and restart_text_of(str(wanted)) == actual else actual


def _attributes(info: Mapping[str, Any], networks: list[str]) -> dict[str, Any]:
    settings = info.get("NetworkSettings") or {}
    joined = settings.get("Networks") or {}
    address = ""
    for ref in networks:
        for name, endpoint in joined.items():
            if _matches(ref, name, str(endpoint.get("NetworkID") or "")):
                address = endpoint.get("IPAddress") or ""
                break
        if address:
            break
    if not address:
        address = settings.get("IPAddress") or next(
            (e.get("IPAddress") for e in joined.values() if e.get("IPAddress")), ""
        )
    published: dict[str, int] = {}
    for port, bindings in (settings.get("Ports") or {}).items():
        for binding in bindings or []:
            if binding.get("HostPort"):
                published.setdefault(port, int(binding["HostPort"]))
    return {
        "id": info["Id"],
        "ip_address": address or None,
        "status": info["State"].get("Status"),
        "published_ports": published,
    }


def _state_text(info: Mapping[str, Any]) -> str:
    state = info["State"]
    text = f"container is {state.get('Status')}"
    if state.get("Status") == "exited":
        text += f" with status {state.get('ExitCode')}"
        if state.get("OOMKilled"):
            text += " (killed: out of memory)"
        if state.get("FinishedAt"):
            text += f" at {str(state['FinishedAt'])[:19].replace('T', ' ')}"
    return text


def _stopped(api: Any, cid: str, info: Mapping[str, Any], name: str) -> str:
    text = f"docker: container '{name}' does not run: {_state_text(info)}"
    if info["State"].get("Error"):
        text += f": {info['State']['Error']}"
    try:
        logs = api.logs(cid, tail=_LOG_TAIL).decode("utf-8", "replace").rstrip()
    except docker.errors.DockerException:
        logs = ""
    return text + (f"\nlast output:\n{logs}" if logs else "")


def _health_log(state: Mapping[str, Any]) -> str:
    log = (state.get("Health") or {}).get("Log") or []
    if not log:
        return "no check has finished yet"
    last = log[-1]
    output = str(last.get("Output") or "").strip()
    return f"last check exited {last.get('ExitCode')}" + (f": {output}" if output else "")


def _env_pairs(env: list[str] | None) -> list[tuple[str, str]]:
    pairs = []
    for item in env or []:
        key, _, value = item.partition("=")
        pairs.append((key, value))
    return pairs
