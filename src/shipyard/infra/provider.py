"""The provider interface: how the infra engine talks to the real world.

A *provider* (``null``, ``file``, ``postgres``, ``docker`` ...) is a set of *resource
types*. A resource type declares its schema (the properties a stack file may set and the
attributes it yields once it exists) and implements five operations on the real thing:
``create``, ``read``, ``update``, ``delete`` and ``import_``. The engine does everything
else: it evaluates the stack, diffs the desired properties against what ``read``
reports, decides between update in place and replacement (from :attr:`Property.replace`
and :meth:`ResourceType.requires_replace`), orders and parallelises the calls, and
records the state after each one.

Providers are found through the ``shipyard.infra.providers`` entry-point group; each
entry point names a :class:`Provider` subclass. The provider of a resource type is the
part of the type name before the first ``_`` (``postgres_role`` → ``postgres``), so a
stack only imports the providers it uses.

Operations run in worker threads, several at once: implementations must be thread-safe.
(Those of a type that is not :attr:`~ResourceType.external` run on the applying thread.)
They raise :class:`ProviderError` for failures a user should read; any other exception is
reported as a provider bug with its type and message.

Before calling ``create`` on an :attr:`~ResourceType.external` type, the engine records a
*pending* entry (a create without an id yet), so that a process killed during the call
leaves a trace; the next plan calls :meth:`ResourceType.find` to adopt what the create
made, if anything.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Final

from shipyard.errors import ProviderError

__all__ = [
    "REQUIRED",
    "Attribute",
    "Context",
    "Created",
    "Observed",
    "Property",
    "Provider",
    "ProviderError",
    "ResourceType",
    "StateOnlyType",
]


class _Required:
    """The default of a property that has none: the stack must set it."""

    _instance: ClassVar[_Required | None] = None

    def __new__(cls) -> _Required:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Final = _Required()


@dataclass(frozen=True, slots=True)
class Property:
    """One input of a resource type.

    ``type`` is a type expression: ``string``, ``number``, ``integer``, ``boolean``,
    ``any``, ``list(T)``, ``map(T)`` (e.g. ``map(string)``, ``list(map(any))``).
    ``default`` is :data:`REQUIRED` when the stack must set it; ``None`` means optional
    with no value. ``replace`` marks properties that cannot change in place: a change
    replaces the resource. ``sensitive`` values are masked in plans and encrypted in the
    state. ``derived`` properties may not be set in a stack: :meth:`ResourceType.prepare`
    computes them from the others (a digest of a template file or of a build context),
    so that a change on disk shows in the plan like any other property change.
    ``verbatim`` strings are taken as written: ``${{ }}`` in them is not the stack's
    expression (an inline template the provider renders with its own variables).
    """

    type: str = "string"
    default: Any = None
    description: str = ""
    replace: bool = False
    sensitive: bool = False
    derived: bool = False
    verbatim: bool = False

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


@dataclass(frozen=True, slots=True)
class Attribute:
    """One output of a resource type, known once the resource exists.

    ``stable`` attributes keep their value through an update in place (a database's
    name, a file's path); the others are "known after apply" in a plan that updates the
    resource.
    """

    type: str = "string"
    description: str = ""
    sensitive: bool = False
    stable: bool = False


@dataclass(frozen=True, slots=True)
class Created:
    """What ``create`` returns: the id of the new thing and its attributes."""

    id: str
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Observed:
    """What ``read`` and ``import_`` find in the real world.

    ``properties`` holds the current value of every property the provider can observe
    (properties it cannot observe are left out and never reported as drift);
    ``attributes`` the current attributes. ``notes`` explain a difference to a person
    ("process 4121 exited with status 1").
    """

    properties: dict[str, Any]
    attributes: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Context:
    """What an operation may use besides its inputs.

    ``config`` is the provider's configuration from the stack's ``providers:`` section,
    validated against :attr:`Provider.config`; ``stack_dir`` the folder of the stack
    (or module) that declares the resource, against which relative paths resolve;
    ``data_dir`` a folder the provider may keep runtime files in (pid files, generated
    configs), private to the stack's state; ``log`` reports progress to the user.
    """

    config: Mapping[str, Any]
    stack_dir: Path
    data_dir: Path
    log: Callable[[str], None] = print


class ResourceType(ABC):
    """One kind of resource (``postgres_role``), stateless: one instance serves all.

    Subclasses set the class attributes and implement the operations. ``properties`` and
    ``attributes`` passed in and returned are plain JSON values (str, int, float, bool,
    None, list, dict) with every property present (defaults filled in by the engine).
    """

    name: ClassVar[str]
    description: ClassVar[str]
    properties: ClassVar[Mapping[str, Property]]
    attributes: ClassVar[Mapping[str, Attribute]] = {}
    # False when every change replaces the resource (update is never called).
    updatable: ClassVar[bool] = True
    # False when the resource has no existence outside the state (null, random_*): an
    # interrupted create cannot leave anything behind, so the engine records no pending
    # entry before creating it. Nor does it wait for the resource's records to reach
    # the disk before going on (a crash can lose only what exists nowhere else), and it
    # runs its operations on the applying thread: they must be quick and do no I/O.
    external: ClassVar[bool] = True

    def validate(self, properties: Mapping[str, Any]) -> list[tuple[str, str]]:
        """Problems with fully known property values beyond their types.

        Returns ``(property path, message)`` pairs, e.g. ``("ports[1].host", "must be
        between 1 and 65535")``. The engine locates them in the stack file. Values that
        are not known yet (they depend on a resource still to be created) are absent.
        """
        return []

    def prepare(self, ctx: Context, properties: Mapping[str, Any]) -> dict[str, Any]:
        """The desired properties as they will be diffed and applied.

        Called at plan time when every property is known, else at apply time once they
        are (a property that reads another resource's attribute), before ``create`` or
        ``update``. The default returns them unchanged; a type with ``derived``
        properties fills them in here.
        """
        return dict(properties)

    def requires_replace(
        self, prior: Mapping[str, Any], desired: Mapping[str, Any]
    ) -> list[str]:
        """The properties whose change forces a replacement (beyond ``replace=True``)."""
        return []

    @abstractmethod
    def create(self, ctx: Context, properties: Mapping[str, Any]) -> Created:
        """Make the thing; return its id and attributes."""

    @abstractmethod
    def read(
        self,
        ctx: Context,
        id: str,
        properties: Mapping[str, Any],
        attributes: Mapping[str, Any],
    ) -> Observed | None:
        """What exists now for ``id`` (given what the state recorded), None if gone."""

    def update(
        self,
        ctx: Context,
        id: str,
        prior: Mapping[str, Any],
        properties: Mapping[str, Any],
        attributes: Mapping[str, Any],
    ) -> dict[str, Any]:
        """Change the thing in place from ``prior`` to ``properties``; new attributes."""
        raise ProviderError(f"{self.name} cannot be updated in place")

    @abstractmethod
    def delete(
        self,
        ctx: Context,
        id: str,
        properties: Mapping[str, Any],
        attributes: Mapping[str, Any],
    ) -> None:
        """Remove the thing; removing something already gone is not an error."""

    def import_(self, ctx: Context, id: str) -> Observed:
        """Adopt an existing thing by id; raise ProviderError if there is none."""
        raise ProviderError(f"{self.name} resources cannot be imported")

    def find(self, ctx: Context, properties: Mapping[str, Any]) -> Created | None:
        """The thing ``create(ctx, properties)`` would have made, if it exists.

        Called for a create that was interrupted before its id was recorded (the process
        was killed during ``create``): what it made, if anything, can only be found by
        its properties (a database's name, a container's label). Return its id and
        attributes, and the engine adopts it instead of creating a second one; return
        None when nothing was made. The default returns None: a type that does not
        override this cannot look, and the plan says that whatever an interrupted
        create made is not managed by the stack.
        """
        return None

    @classmethod
    def can_find(cls) -> bool:
        """Whether this type overrides :meth:`find` (can look for what an interrupted
        create made)."""
        return cls.find is not ResourceType.find


class StateOnlyType(ResourceType):
    """A type whose resources exist only in the state (``null``, ``random_*``).

    There is no outside world to read or to clean up: ``read`` returns what the state
    holds and ``delete`` has nothing to do; ``external`` is False (see ResourceType).
    """

    external: ClassVar[bool] = False

    def read(
        self,
        ctx: Context,
        id: str,
        properties: Mapping[str, Any],
        attributes: Mapping[str, Any],
    ) -> Observed:
        return Observed(dict(properties), dict(attributes))

    def delete(
        self,
        ctx: Context,
        id: str,
        properties: Mapping[str, Any],
        attributes: Mapping[str, Any],
    ) -> None:
        return None


class Provider:
    """A named set of resource types with an optional configuration schema.

    ``config`` declares the keys of the provider's block in a stack's ``providers:``
    section (e.g. the PostgreSQL server to manage). ``resource_types`` lists classes;
    the engine instantiates each once.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    config: ClassVar[Mapping[str, Property]] = {}
    resource_types: ClassVar[tuple[type[ResourceType], ...]] = ()
