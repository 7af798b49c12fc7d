"""What every built-in action shares: its declared inputs, the run's services, and input
parsing with GitHub's rules."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from shipyard.errors import ActionError
from shipyard.workflow._runtime import StepHost
from shipyard.workflow.actions._stores import ArtifactStore, CacheStore

__all__ = [
    "ActionInputDef",
    "BuiltinAction",
    "RunServices",
    "bool_input",
    "github_context",
    "home_dir",
    "int_input",
    "lines_input",
    "resolve_path",
]


@dataclass(frozen=True)
class ActionInputDef:
    """One input an action declares, as in an ``action.yml``."""

    required: bool = False
    default: str | None = None
    description: str = ""
    deprecation: str | None = None


class BuiltinAction(Protocol):
    """An action Shipyard implements itself instead of fetching it."""

    name: str
    inputs: Mapping[str, ActionInputDef]
    outputs: tuple[str, ...]

    def run(self, host: StepHost, inputs: dict[str, str]) -> None:
        """Run the step. ``inputs`` holds every declared input, defaults applied.

        Raises :class:`shipyard.errors.ActionError` to fail the step.
        """
        ...


@dataclass
class RunServices:
    """The stores a run's steps use: ``host.services`` is one of these."""

    artifacts: ArtifactStore
    caches: CacheStore


_TRUE = ("true", "True", "TRUE")
_FALSE = ("false", "False", "FALSE")


def bool_input(inputs: Mapping[str, str], name: str) -> bool:
    """A boolean input, accepting exactly what GitHub's ``getBooleanInput`` accepts."""
    value = inputs.get(name, "").strip()
    if value in _TRUE:
        return True
    if value in _FALSE or value == "":
        return False
    raise ActionError(f"input {name!r} must be true or false, got {value!r}")


def int_input(inputs: Mapping[str, str], name: str, default: int) -> int:
    """An integer input; blank means ``default``."""
    value = inputs.get(name, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise ActionError(f"input {name!r} must be a whole number, got {value!r}") from None


def lines_input(inputs: Mapping[str, str], name: str) -> list[str]:
    """A multi-line input: its non-blank lines, trimmed."""
    return [line.strip() for line in inputs.get(name, "").splitlines() if line.strip()]


def home_dir(host: StepHost) -> str:
    """The home directory the job's processes see."""
    return host.env.get("HOME") or os.path.expanduser("~")


def resolve_path(host: StepHost, value: str) -> Path:
    """A path input: ``~`` is the job's home, relative paths are in the workspace."""
    if value == "~" or value.startswith("~/"):
        value = home_dir(host) + value[1:]
    path = Path(value)
    return path if path.is_absolute() else host.workspace / path


def github_context(host: StepHost) -> Mapping[str, object]:
    """The run's ``github`` context (empty when the request carries none)."""
    ctx = host.request.contexts.get("github")
    return ctx if isinstance(ctx, Mapping) else {}
