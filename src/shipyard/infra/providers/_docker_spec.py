"""A ``docker_container``'s properties checked and turned into engine API arguments, and
engine data turned back into properties (for import)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from shipyard.infra.providers._docker_engine import NAME, duration_ns

PROTOCOLS = ("tcp", "udp", "sctp")
RESTART = ("no", "always", "unless-stopped", "on-failure")
_PORT_KEYS = {"internal", "external", "protocol", "ip"}
_VOLUME_KEYS = {"host_path", "volume", "container_path", "read_only"}
_HEALTH_KEYS = {"test": "Test", "interval": "Interval", "timeout": "Timeout",
                "start_period": "StartPeriod", "retries": "Retries"}  # fmt: skip
_TEST_KINDS = ("CMD", "CMD-SHELL", "NONE")
_NS = 10**9


def _port_number(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535


def _validate_port(i: int, item: Any) -> list[tuple[str, str]]:
    where = f"ports[{i}]"
    if not isinstance(item, Mapping):
        return [(where, "must be a mapping {internal, external, protocol, ip}")]
    problems = [(f"{where}.{k}", "unknown key") for k in sorted(set(item) - _PORT_KEYS)]
    if not _port_number(item.get("internal")):
        problems.append((f"{where}.internal", "must be a port number 1-65535"))
    external = item.get("external")
    if external is not None and not _port_number(external):
        problems.append((f"{where}.external", "must be a port number 1-65535, or unset"))
    if item.get("protocol", "tcp") not in PROTOCOLS:
        problems.append((f"{where}.protocol", f"must be one of {', '.join(PROTOCOLS)}"))
    if item.get("ip") is not None and not isinstance(item.get("ip"), str):
        problems.append((f"{where}.ip", "must be an address"))
    return problems


def _validate_volume(i: int, item: Any) -> list[tuple[str, str]]:
    where = f"volumes[{i}]"
    if not isinstance(item, Mapping):
        return [(where, "must be a mapping {host_path or volume, container_path, read_only}")]
    problems = [(f"{where}.{k}", "unknown key") for k in sorted(set(item) - _VOLUME_KEYS)]
    sources = [k for k in ("host_path", "volume") if item.get(k) is not None]
    if len(sources) != 1:
        problems.append((where, "set exactly one of host_path and volume"))
    for key in sources:
        value = item[key]
        if not isinstance(value, str) or not value or ":" in value:
            problems.append((f"{where}.{key}", "must be a non-empty path or name without ':'"))
    volume = item.get("volume")
    if isinstance(volume, str) and volume and not NAME.match(volume):
        problems.append((f"{where}.volume", "must be a volume name ([a-zA-Z0-9][a-zA-Z0-9_.-]*)"))
    target = item.get("container_path")
    if not isinstance(target, str) or not target.startswith("/") or ":" in target:
        problems.append((f"{where}.container_path", "must be an absolute path without ':'"))
    if not isinstance(item.get("read_only", False), bool):
        problems.append((f"{where}.read_only", "must be true or false"))
    return problems


def _validate_health(health: Any) -> list[tuple[str, str]]:
    if not isinstance(health, Mapping):
        return [("health_check", "must be a mapping {test, interval, timeout, retries}")]
    problems = [
        (f"health_check.{k}", "unknown key") for k in sorted(set(health) - set(_HEALTH_KEYS))
    ]
    test = health.get("test")
    if isinstance(test, str):
        if not test.strip():
            problems.append(("health_check.test", "must not be empty"))
    elif not (isinstance(test, list) and test and all(isinstance(t, str) for t in test)):
        problems.append(("health_check.test", "must be a command list or a shell string"))
    for key in ("interval", "timeout", "start_period"):
        if health.get(key) is not None:
            try:
                duration_ns(health[key])
            except ValueError as err:
                problems.append((f"health_check.{key}", str(err)))
    retries = health.get("retries")
    if retries is not None and (
        not isinstance(retries, int) or isinstance(retries, bool) or retries < 0
    ):
        problems.append(("health_check.retries", "must be a whole number, 0 or more"))
    return problems


def _validate_restart(restart: Any) -> list[tuple[str, str]]:
    if not isinstance(restart, str):
        return []
    name, sep, count = restart.partition(":")
    if name not in RESTART or (sep and (name != "on-failure" or not count.isdigit())):
        return [("restart", "must be no, always, unless-stopped, on-failure or on-failure:N")]
    return []


def validate_container(props: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Problems with known container properties beyond their types."""
    problems: list[tuple[str, str]] = []
    for i, item in enumerate(props.get("ports") or []):
        problems += _validate_port(i, item)
    for i, item in enumerate(props.get("volumes") or []):
        problems += _validate_volume(i, item)
    if props.get("health_check") is not None:
        problems += _validate_health(props["health_check"])
    problems += _validate_restart(props.get("restart"))
    for key in props.get("env") or {}:
        if not key or "=" in key:
            problems.append((f"env.{key}", "a variable name must be non-empty and without '='"))
    timeout = props.get("stop_timeout")
    if isinstance(timeout, int) and timeout < 0:
        problems.append(("stop_timeout", "must be 0 or more"))
    command = props.get("command")
    if isinstance(command, list) and not command:
        problems.append(("command", "must not be empty (leave it unset for the image's)"))
    return problems


@dataclass(frozen=True)
class Spec:
    """A container's properties in the shapes the engine API takes."""

    name: str
    image: str
    command: list[str] | None
    env: dict[str, str]
    ports: list[Mapping[str, Any]]
    volumes: list[tuple[str, str, bool]]  # source (absolute path or volume), target, ro
    networks: list[str]
    restart: str
    health: Mapping[str, Any] | None
    labels: dict[str, str]
    must_run: bool
    stop_timeout: int

    @classmethod
    def of(cls, props: Mapping[str, Any], stack_dir: Path) -> Spec:
        volumes = []
        for item in props.get("volumes") or []:
            if item.get("host_path") is not None:
                source = str((stack_dir / item["host_path"]).resolve())
            else:
                source = str(item["volume"])
            volumes.append((source, str(item["container_path"]), bool(item.get("read_only"))))
        timeout = props.get("stop_timeout")
        return cls(
            name=props["name"],
            image=props["image"],
            command=list(props["command"]) if props.get("command") else None,
            env=dict(props.get("env") or {}),
            ports=list(props.get("ports") or []),
            volumes=volumes,
            networks=list(props.get("networks") or []),
            restart=restart_text_of(props.get("restart") or "no"),
            health=props.get("health_check"),
            labels=dict(props.get("labels") or {}),
            must_run=bool(props.get("must_run", True)),
            stop_timeout=10 if timeout is None else int(timeout),
        )

    def environment(self) -> list[str]:
        return [f"{k}={v}" for k, v in self.env.items()]

    def exposed(self) -> list[tuple[int, str]]:
        seen = {(int(p["internal"]), str(p.get("protocol") or "tcp")) for p in self.ports}
        return sorted(seen)

    def port_bindings(self) -> dict[str, list[tuple[str, int | None]]]:
        bindings: dict[str, list[tuple[str, int | None]]] = {}
        for p in self.ports:
            key = f"{int(p['internal'])}/{p.get('protocol') or 'tcp'}"
            bindings.setdefault(key, []).append((str(p.get("ip") or ""), p.get("external")))
        return bindings

    def binds(self) -> list[str]:
        return [f"{src}:{dst}:{'ro' if ro else 'rw'}" for src, dst, ro in self.volumes]

    def restart_policy(self) -> dict[str, Any]:
        name, _, count = self.restart.partition(":")
        return {"Name": name, "MaximumRetryCount": int(count or 0)}

    def healthcheck(self) -> dict[str, Any] | None:
        if self.health is None:
            return None
        test = self.health["test"]
        if isinstance(test, str):
            test = ["CMD-SHELL", test]
        elif test[0] not in _TEST_KINDS:
            test = ["CMD", *test]
        out: dict[str, Any] = {"Test": list(test)}
        for key in ("interval", "timeout", "start_period"):
            if self.health.get(key) is not None:
                out[_HEALTH_KEYS[key]] = duration_ns(self.health[key])
        if self.health.get("retries") is not None:
            out["Retries"] = int(self.health["retries"])
        return out


def restart_text_of(text: str) -> str:
    """A restart policy as ``restart_text`` spells it (on-failure:0 is on-failure)."""
    name, _, count = text.partition(":")
    if name in ("", "no"):
        return "no"
    if name == "on-failure" and count.strip() in ("", "0"):
        return "on-failure"
    return text


def restart_text(info: Mapping[str, Any]) -> str:
    """A container's restart policy as a ``restart`` property value."""
    policy = (info.get("HostConfig") or {}).get("RestartPolicy") or {}
    name = policy.get("Name") or "no"
    count = int(policy.get("MaximumRetryCount") or 0)
    return f"{name}:{count}" if name == "on-failure" and count else name


def ports_from_engine(bindings: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """Port bindings as ``ports`` items, sorted by port (the engine keeps no order)."""
    out: list[dict[str, Any]] = []
    keys = sorted(bindings or {}, key=lambda k: (int(k.partition("/")[0]), k))
    for key, hosts in ((k, (bindings or {})[k]) for k in keys):
        port, _, protocol = key.partition("/")
        for host in hosts or [{}]:
            item: dict[str, Any] = {"internal": int(port)}
            if host.get("HostPort"):
                item["external"] = int(host["HostPort"])
            if protocol and protocol != "tcp":
                item["protocol"] = protocol
            if host.get("HostIp") not in (None, "", "0.0.0.0"):
                item["ip"] = host["HostIp"]
            out.append(item)
    return out


def volumes_from_engine(binds: list[str] | None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for bind in binds or []:
        source, _, rest = bind.partition(":")
        target, _, mode = rest.partition(":")
        item: dict[str, Any] = (
            {"host_path": source} if PurePosixPath(source).is_absolute() else {"volume": source}
        )
        item["container_path"] = target
        if "ro" in mode.split(","):
            item["read_only"] = True
        out.append(item)
    return out


def health_from_engine(health: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not health or not health.get("Test"):
        return None
    out: dict[str, Any] = {"test": list(health["Test"])}
    for key, api_key in _HEALTH_KEYS.items():
        if key == "test" or not health.get(api_key):
            continue
        value = health[api_key]
        if key == "retries":
            out[key] = int(value)
        else:
            seconds = value / _NS
            out[key] = int(seconds) if seconds == int(seconds) else seconds
    return out
