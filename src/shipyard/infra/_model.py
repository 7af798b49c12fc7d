"""A stack as declared in its files, checked but not yet evaluated.

The loader (``_stack``) builds these from a folder of YAML files; the engine evaluates
them against variable values and the state. Values that may hold expressions are *value
trees*: plain JSON-like data (dict, list, str, int, float, bool, None) where a string
containing ``${{ }}`` has been compiled to a :class:`~shipyard.workflow.expressions.Template`.
``locations`` map a path inside a declaration (``("properties", "ports", 0, "host")``)
to where it is written, so that a problem found while evaluating is still reported as
``file:line:col``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shipyard.errors import Location
from shipyard.workflow.expressions import Expression

__all__ = [
    "Lifecycle",
    "ModuleDecl",
    "MovedDecl",
    "OutputDecl",
    "Reference",
    "ResourceDecl",
    "Stack",
    "Validation",
    "VariableDecl",
]

# A path inside a declaration: mapping keys and list indexes.
Path_ = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Reference:
    """One ``resources.X``/``modules.X``/``var.X`` an expression uses, and where.

    ``kind`` is ``"resource"``, ``"module"`` or ``"var"``; ``name`` the declared name;
    ``attribute`` the first member after the name (or after an index), if any.
    """

    kind: str
    name: str
    attribute: str | None
    location: Location


@dataclass(frozen=True, slots=True)
class Validation:
    """A variable's ``validation`` rule: a condition over ``var`` and its message."""

    condition: Expression
    message: str
    location: Location


@dataclass(frozen=True, slots=True)
class VariableDecl:
    """``variables.NAME``: a typed input of the stack (or module)."""

    name: str
    type: str  # a type expression, see shipyard.infra.provider.Property
    default: Any  # shipyard.infra.provider.REQUIRED when it has none
    description: str
    sensitive: bool
    validations: tuple[Validation, ...]
    location: Location


@dataclass(frozen=True, slots=True)
class Lifecycle:
    prevent_destroy: bool = False
    create_before_destroy: bool = False
    ignore_changes: tuple[str, ...] = ()  # property names, or ("*",) for all


@dataclass(frozen=True, slots=True)
class ResourceDecl:
    """``resources.NAME``: one resource, or several with ``count``/``for_each``.

    ``count`` is an int or a Template yielding one; ``for_each`` a value tree yielding
    a list of strings or a mapping. ``depends_on`` names resources or modules
    (``"db"``, ``"modules.api"``) besides those the expressions reference.
    """

    name: str
    type: str
    properties: dict[str, Any]  # value tree
    depends_on: tuple[tuple[str, Location], ...]
    lifecycle: Lifecycle
    count: Any | None
    for_each: Any | None
    references: tuple[Reference, ...]  # from properties, count and for_each
    location: Location
    locations: dict[Path_, Location] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class OutputDecl:
    name: str
    value: Any  # value tree
    description: str
    sensitive: bool
    references: tuple[Reference, ...]
    location: Location
    locations: dict[Path_, Location] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MovedDecl:
    """``moved``: an address that now has a new name, so no destroy and create."""

    source: str  # "old", "old[0]", "modules.api.web"
    target: str
    location: Location


@dataclass(frozen=True, slots=True)
class ModuleDecl:
    """``modules.NAME``: a local folder stack used as a unit, possibly several times."""

    name: str
    source: str  # as written
    stack: Stack  # the loaded module folder
    variables: dict[str, Any]  # value tree per module variable
    depends_on: tuple[tuple[str, Location], ...]
    count: Any | None
    for_each: Any | None
    references: tuple[Reference, ...]
    location: Location
    locations: dict[Path_, Location] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Stack:
    """A folder of stack files (the root stack, or a module)."""

    dir: Path
    files: tuple[Path, ...]
    variables: dict[str, VariableDecl]
    resources: dict[str, ResourceDecl]
    modules: dict[str, ModuleDecl]
    outputs: dict[str, OutputDecl]
    moved: tuple[MovedDecl, ...]
    providers: dict[str, dict[str, Any]]  # provider name -> value tree (var only)
    provider_locations: dict[str, Location] = field(default_factory=dict)
