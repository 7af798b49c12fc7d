"""What a state holds, and the interface every state backend implements.

A *state* records, for one stack, each resource instance that exists (its address, type,
provider id, the properties it was applied with, the attributes it returned and the
addresses it depended on) and the stack's outputs. A :class:`Backend` stores states:
:class:`~shipyard.infra._state.LocalBackend` in a folder; the deploy service adds one in
its database. Changes go through a :class:`Session`, which holds the state's lease.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any, Self

from shipyard.infra._lock import LockInfo

__all__ = [
    "Backend",
    "LockInfo",
    "OutputState",
    "ResourceState",
    "Session",
    "State",
    "Version",
    "canonical_json",
]

_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), allow_nan=False)


def canonical_json(value: Any) -> bytes:
    """``value`` as JSON with sorted keys and no spaces: the same bytes in any process."""
    return _CANONICAL.encode(value).encode("ascii")


@dataclass(slots=True)
class ResourceState:
    """One resource instance as last applied.

    ``sensitive`` names the properties and attributes whose values are secret: they are
    stored encrypted. ``dir`` is the folder of the stack (or module) that declared it,
    relative to the root stack, for provider calls once its declaration is gone.
    ``tainted`` marks a create that did not finish: the next apply replaces it.
    """

    address: str
    type: str
    id: str
    properties: dict[str, Any]
    attributes: dict[str, Any]
    dependencies: list[str]
    sensitive: list[str]
    dir: str = "."
    tainted: bool = False

    def to_json(self) -> dict[str, Any]:
        """Every field, sensitive values included (in memory only: see the codec)."""
        return {
            "address": self.address,
            "type": self.type,
            "id": self.id,
            "properties": self.properties,
            "attributes": self.attributes,
            "dependencies": self.dependencies,
            "sensitive": self.sensitive,
            "dir": self.dir,
            "tainted": self.tainted,
        }


@dataclass(slots=True)
class OutputState:
    """A stack output's last value."""

    value: Any
    sensitive: bool = False


@dataclass(slots=True)
class State:
    """A stack's recorded resources and outputs.

    ``lineage`` identifies the state across its versions (empty until first written);
    ``serial`` is the number of the version it was read from (0: none yet).
    """

    lineage: str = ""
    serial: int = 0
    resources: dict[str, ResourceState] = field(default_factory=dict)
    outputs: dict[str, OutputState] = field(default_factory=dict)

    def digest(self) -> str:
        """SHA-256 (hex) of the canonical content: lineage, resources and outputs.

        The serial is left out: a version written with the same content (a recovery, a
        restore of identical content) does not make a saved plan stale.
        """
        content = {
            "lineage": self.lineage,
            "resources": {a: r.to_json() for a, r in self.resources.items()},
            "outputs": {
                n: {"value": o.value, "sensitive": o.sensitive} for n, o in self.outputs.items()
            },
        }
        return hashlib.sha256(canonical_json(content)).hexdigest()


@dataclass(frozen=True, slots=True)
class Version:
    """One stored version of a state: what wrote it, when, and how big it is."""

    serial: int
    time: datetime  # UTC
    operation: str
    resources: int
    size: int  # bytes
    owner: str = ""


class Session(ABC):
    """A lease on a state and the changes made under it.

    Use it as a context manager: on exit it commits if anything changed (also when the
    block raised), then releases the lease. ``put``, ``remove`` and ``set_outputs`` are
    thread-safe and durable when they return, except one made with ``durable=False``:
    that one is durable once a later durable change or a commit is (changes reach the
    disk in the order they were made), and a crash before may lose it. The engine uses
    that for resources that exist only in the state (``null``), whose lost record loses
    nothing else, and for the outputs, which the next apply computes again.
    """

    @property
    @abstractmethod
    def state(self) -> State:
        """The state as loaded when the session opened, with this session's changes."""

    @property
    @abstractmethod
    def changed(self) -> bool:
        """Whether anything changed since the session opened or last committed."""

    @property
    def notice(self) -> str | None:
        """What to tell the user about how the lease was taken ("took over the lease of
        alice@host (pid 42, no longer running) ..."), or None."""
        return None

    @abstractmethod
    def put(self, rs: ResourceState, *, durable: bool = True) -> None:
        """Record ``rs`` (replacing what was recorded at its address)."""

    @abstractmethod
    def remove(self, address: str, *, durable: bool = True) -> None:
        """Forget the resource at ``address`` (nothing if there is none)."""

    @abstractmethod
    def set_outputs(self, outputs: dict[str, OutputState], *, durable: bool = True) -> None:
        """Replace all the outputs."""

    @abstractmethod
    def restore(self, serial: int) -> None:
        """Make the state the content of version ``serial``."""

    @abstractmethod
    def commit(self) -> None:
        """Store the state as a new version (nothing if nothing changed)."""

    @abstractmethod
    def close(self) -> None:
        """Release the lease without committing; the session cannot be used after."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self.changed:
                try:
                    self.commit()
                except Exception as err:
                    if exc is None:
                        raise
                    # The block's own error is what the user must read; the changes are
                    # durable in the journal and the next session commits them.
                    exc.add_note(f"the state was not committed: {err}")
        finally:
            self.close()


class Backend(ABC):
    """Where states live. Reads need no lease; changes go through :meth:`session`."""

    @abstractmethod
    def read(self) -> State:
        """The current state (an empty one when there is none yet)."""

    @abstractmethod
    def session(
        self,
        owner: str,
        operation: str,
        *,
        wait: float = 0.0,
        force_unlock: bool = False,
    ) -> Session:
        """Take the lease (waiting up to ``wait`` s) or raise LockedError naming its holder."""

    @abstractmethod
    def versions(self) -> list[Version]:
        """The stored versions, oldest first."""

    @abstractmethod
    def read_version(self, serial: int) -> State:
        """The content of version ``serial``; StateError if it is not stored."""

    @abstractmethod
    def lock_info(self) -> LockInfo | None:
        """The current lease (check ``expired()``), None when nobody holds one."""

    @abstractmethod
    def force_unlock(self) -> LockInfo | None:
        """Remove the lease whoever holds it; the lease removed, if any."""
