"""``container.options`` / ``services.<id>.options``: the ``docker create`` flags Shipyard knows.

Workflows pass extra ``docker create`` flags as one string. Shipyard turns the common
ones into Engine API settings; anything else is refused with the list of what is
supported, rather than silently dropped.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from typing import Any

from shipyard.errors import ExecutorError

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_NANOS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "ms": 1_000_000,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
}


def parse_duration(text: str, flag: str) -> int:
    """A Go duration (``10s``, ``1m30s``, ``500ms``) in nanoseconds."""
    pos, total = 0, 0.0
    text = text.strip()
    while pos < len(text):
        m = _DURATION_PART.match(text, pos)
        if m is None:
            raise ExecutorError(f"container option {flag}: '{text}' is not a duration like 10s")
        total += float(m.group(1)) * _NANOS[m.group(2)]
        pos = m.end()
    if not text:
        raise ExecutorError(f"container option {flag} needs a duration like 10s")
    return int(total)


@dataclass(slots=True)
class ContainerOptions:
    """The parsed flags, ready for ``create_container``/``create_host_config``."""

    healthcheck: dict[str, Any] = field(default_factory=dict)
    no_healthcheck: bool = False
    env: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    hostname: str | None = None
    aliases: list[str] = field(default_factory=list)
    entrypoint: list[str] | None = None
    workdir: str | None = None
    host_config: dict[str, Any] = field(default_factory=dict)


_VALUE_FLAGS = {
    "--health-cmd",
    "--health-interval",
    "--health-timeout",
    "--health-retries",
    "--health-start-period",
    "-e",
    "--env",
    "-u",
    "--user",
    "-h",
    "--hostname",
    "--network-alias",
    "--entrypoint",
    "-w",
    "--workdir",
    "--cpus",
    "-m",
    "--memory",
    "--shm-size",
    "--add-host",
    "--cap-add",
    "--cap-drop",
    "--tmpfs",
    "--security-opt",
}
_BOOL_FLAGS = {"--no-healthcheck", "--privileged", "--init", "--rm"}
SUPPORTED = sorted(_VALUE_FLAGS | _BOOL_FLAGS)


def parse_options(text: str) -> ContainerOptions:
    """Parse an ``options:`` string; raises ExecutorError on flags Shipyard does not know."""
    try:
        words = shlex.split(text)
    except ValueError as err:
        raise ExecutorError(f"container options '{text}': {err}") from None
    opts = ContainerOptions()
    i = 0
    while i < len(words):
        word = words[i]
        flag, eq, inline = word.partition("=")
        if flag in _BOOL_FLAGS and not eq:
            _apply_bool(opts, flag)
            i += 1
            continue
        if flag not in _VALUE_FLAGS:
            raise ExecutorError(
                f"unsupported container option '{word}'; supported: {', '.join(SUPPORTED)}"
            )
        if eq:
            value = inline
            i += 1
        else:
            if i + 1 >= len(words):
                raise ExecutorError(f"container option {flag} needs a value")
            value = words[i + 1]
            i += 2
        _apply_value(opts, flag, value)
    return opts


def _apply_bool(opts: ContainerOptions, flag: str) -> None:
    if flag == "--no-healthcheck":
        opts.no_healthcheck = True
    elif flag == "--privileged":
        opts.host_config["privileged"] = True
    elif flag == "--init":
        opts.host_config["init"] = True
    # --rm: containers are always removed at job end.


def _apply_value(opts: ContainerOptions, flag: str, value: str) -> None:
    hc = opts.healthcheck
    hostc = opts.host_config
    if flag == "--health-cmd":
        hc["test"] = ["CMD-SHELL", value]
    elif flag == "--health-interval":
        hc["interval"] = parse_duration(value, flag)
    elif flag == "--health-timeout":
        hc["timeout"] = parse_duration(value, flag)
    elif flag == "--health-start-period":
        hc["start_period"] = parse_duration(value, flag)
    elif flag == "--health-retries":
        try:
            hc["retries"] = int(value)
        except ValueError:
            raise ExecutorError(f"container option {flag}: '{value}' is not a number") from None
    elif flag in ("-e", "--env"):
        name, _, val = value.partition("=")
        opts.env[name] = val
    elif flag in ("-u", "--user"):
        opts.user = value
    elif flag in ("-h", "--hostname"):
        opts.hostname = value
    elif flag == "--network-alias":
        opts.aliases.append(value)
    elif flag == "--entrypoint":
        opts.entrypoint = [value]
    elif flag in ("-w", "--workdir"):
        opts.workdir = value
    elif flag == "--cpus":
        try:
            hostc["nano_cpus"] = int(float(value) * 1e9)
        except ValueError:
            raise ExecutorError(f"container option {flag}: '{value}' is not a number") from None
    elif flag in ("-m", "--memory"):
        hostc["mem_limit"] = value
    elif flag == "--shm-size":
        hostc["shm_size"] = value
    elif flag == "--add-host":
        host, _, ip = value.partition(":")
        hostc.setdefault("extra_hosts", {})[host] = ip
    elif flag == "--cap-add":
        hostc.setdefault("cap_add", []).append(value)
    elif flag == "--cap-drop":
        hostc.setdefault("cap_drop", []).append(value)
    elif flag == "--tmpfs":
        path, _, mount_opts = value.partition(":")
        hostc.setdefault("tmpfs", {})[path] = mount_opts
    elif flag == "--security-opt":
        hostc.setdefault("security_opt", []).append(value)


def parse_port(spec: str) -> tuple[str, Any]:
    """``ports:`` entry -> (container port with protocol, host binding for the SDK)."""
    text = spec.strip()
    proto = "tcp"
    if "/" in text:
        text, proto = text.rsplit("/", 1)
    parts = text.split(":")
    try:
        if len(parts) == 1:
            return f"{int(parts[0])}/{proto}", None
        if len(parts) == 2:
            host = int(parts[0]) if parts[0] else None
            return f"{int(parts[1])}/{proto}", host
        if len(parts) == 3:
            host_port = int(parts[1]) if parts[1] else None
            return f"{int(parts[2])}/{proto}", (parts[0], host_port)
    except ValueError:
        pass
    raise ExecutorError(f"port '{spec}' is not like 8080:80, 80 or 127.0.0.1:8080:80")
