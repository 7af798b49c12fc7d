"""Each kind of declaration in a stack file, read and checked against its folder.

Every function reports what is wrong through the file's :class:`Reader` and returns
what it could read, so one mistake does not hide the next.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from shipyard.errors import InfraError, Location
from shipyard.infra._model import (
    Lifecycle,
    ModuleDecl,
    OutputDecl,
    Path_,
    Reference,
    ResourceDecl,
    Stack,
)
from shipyard.infra._refs import COUNT, FOR_EACH, SINGLE, Scope, Site, single_expression
from shipyard.infra._registry import Registry
from shipyard.infra._stack_values import Values
from shipyard.infra._types import ANY, TypeSpec, kind_name, parse_type
from shipyard.infra.provider import REQUIRED, Property, ResourceType
from shipyard.workflow._parse_common import Reader
from shipyard.workflow._schema import did_you_mean
from shipyard.workflow._yaml import MappingNode, Node, ScalarNode, SequenceNode

__all__ = [
    "MODULE_KEYS",
    "RESOURCE_KEYS",
    "VAR_ONLY",
    "Folder",
    "empty_stack",
    "expansion_of",
    "is_null",
    "parse_module",
    "parse_output",
    "parse_provider",
    "parse_resource",
    "type_text",
]

RESOURCE_KEYS: Final = ("type", "properties", "depends_on", "count", "for_each", "lifecycle")
MODULE_KEYS: Final = ("source", "variables", "count", "for_each", "depends_on")
OUTPUT_KEYS: Final = ("value", "description", "sensitive")
LIFECYCLE_KEYS: Final = ("prevent_destroy", "create_before_destroy", "ignore_changes")

VAR_ONLY: Final = frozenset({"var"})
_DECLARED: Final = frozenset({"var", "resources", "modules"})
_KEYS: Final = TypeSpec("list", TypeSpec("string"))
_MAP: Final = TypeSpec("map", ANY)


@dataclass(slots=True)
class Folder:
    """What the declarations of one stack folder are checked against."""

    dir: Path
    registry: Registry
    scope: Scope
    types: dict[str, ResourceType | None]  # resource name -> its type, None if unknown
    modules: dict[str, Stack | None]  # module name -> the loaded module folder


def empty_stack(dir: Path) -> Stack:
    return Stack(dir, (), {}, {}, {}, {}, (), {})


def type_text(node: Node) -> str | None:
    """A resource's type as written; a plain ``null`` is the null provider's type."""
    if not isinstance(node, ScalarNode):
        return None
    value = node.value
    if isinstance(value, str):
        return value if value.strip() and "${{" not in value else None
    if value is None and node.style == "" and node.text.lower() == "null":
        return "null"  # YAML reads it as null; nobody writes `type: null` meaning nothing
    return None


def expansion_of(mapping: MappingNode) -> str:
    """How a resource or module body expands: ``count``, ``for_each`` or single."""
    keys = {key.text for key, _ in mapping.items}
    return COUNT if "count" in keys else FOR_EACH if "for_each" in keys else SINGLE


def _body_site(what: str, expansion: str) -> Site:
    extra = {"count"} if expansion == COUNT else {"each"} if expansion == FOR_EACH else set()
    return Site(_DECLARED | extra, what)


# -- providers -------------------------------------------------------------------------


def parse_provider(folder: Folder, reader: Reader, key: ScalarNode, body: Node) -> dict[str, Any]:
    """``providers.NAME``: the provider's configuration (expressions over var only)."""
    name = key.text
    schema: Mapping[str, Property] | None = None
    try:
        schema = folder.registry.provider(name).config
    except InfraError as err:
        reader.error(key, str(err))
    if is_null(body):
        body_map = None
    else:
        body_map = reader.mapping(body)
        if body_map is None:
            return {}
    values = Values(reader, folder.scope, Site(VAR_ONLY, f"provider '{name}'"), {}, [])
    return _schema_values(values, body_map, key, schema, f"provider '{name}'", "config", ())


def _schema_values(
    values: Values,
    mapping: MappingNode | None,
    at: Node,
    schema: Mapping[str, Property] | None,
    owner: str,
    what: str,
    prefix: Path_,
) -> dict[str, Any]:
    """Values checked against a schema: unknown and derived keys, required, types."""
    reader = values.reader
    out: dict[str, Any] = {}
    items = mapping.items if mapping is not None else []
    for key, node in items:
        name = key.text
        prop = schema.get(name) if schema is not None else None
        if schema is not None and prop is None:
            settable = [n for n, p in schema.items() if not p.derived]
            hint = did_you_mean(name, settable)
            if not hint and settable:
                hint = f" ({owner} has: {', '.join(settable)})"
            reader.error(key, f"unknown {what} '{name}' for {owner}{hint}")
            continue
        if prop is not None and prop.derived:
            reader.error(key, f"{what} '{name}' of {owner} is computed and cannot be set")
            continue
        spec = parse_type(prop.type) if prop is not None else ANY
        value = values.tree(node, spec, prefix=prefix, path=(name,), what=what,
                            verbatim=prop is not None and prop.verbatim)
        if value is None and prop is not None and prop.required and is_null(node):
            reader.error(node, f"{what} '{name}' is required and cannot be null")
        out[name] = value
    if schema is not None:
        missing = [n for n, p in schema.items() if p.required and not p.derived and n not in out]
        if missing:
            names = ", ".join(f"'{n}'" for n in missing)
            plural = "ies" if what == "property" and len(missing) > 1 else ""
            shown = ("propert" + (plural or "y")) if what == "property" else what
            reader.error(at, f"{owner} is missing required {shown} {names}")
    return out


# -- resources -------------------------------------------------------------------------


def parse_resource(
    folder: Folder, reader: Reader, key: ScalarNode, body: Node
) -> ResourceDecl | None:
    name = key.text
    mapping = reader.mapping(body)
    if mapping is None:
        return None
    e = reader.entries(mapping, RESOURCE_KEYS, f" in resource '{name}'")
    locations: dict[Path_, Location] = {(): reader.loc(key)}
    references: list[Reference] = []
    type_name = ""
    rtype = folder.types.get(name)
    if reader.require(e, "type", key):
        type_node = e["type"][1]
        locations[("type",)] = reader.loc(type_node)
        found = type_text(type_node)
        if found is None:
            # Not a plain name: report lists, expressions and emptiness; a number or a
            # boolean is looked up as written (and is unknown).
            text = reader.literal(type_node, "'type'")
            if text is not None and not text.strip():
                reader.error(type_node, "'type' cannot be empty")
            elif text is not None:
                found = text
        type_name = found or ""
        if type_name and rtype is None:
            try:
                rtype = folder.registry.resource_type(type_name)
            except InfraError as err:
                reader.error(type_node, str(err))
    label = f"resource '{name}'"
    values = Values(
        reader, folder.scope, _body_site(label, expansion_of(mapping)), locations, references
    )
    count, for_each = _expansion(values, e, label)
    schema = rtype.properties if rtype is not None else None
    props_at: Node = key
    props_map: MappingNode | None = None
    if "properties" in e:
        props_at, props_node = e["properties"]
        locations[("properties",)] = reader.loc(props_node)
        if not is_null(props_node):
            props_map = reader.mapping(props_node)
            if props_map is None:
                schema = None  # reported; do not also report every required one missing
    properties = _schema_values(
        values, props_map, props_at, schema, f"type '{type_name}'", "property", ("properties",)
    )
    depends_on = _depends_on(folder, reader, e, locations)
    lifecycle = Lifecycle()
    if "lifecycle" in e:
        lifecycle = _lifecycle(reader, e["lifecycle"][1], rtype, type_name, locations)
    return ResourceDecl(
        name=name,
        type=type_name,
        properties=properties,
        depends_on=depends_on,
        lifecycle=lifecycle,
        count=count,
        for_each=for_each,
        references=tuple(references),
        location=reader.loc(key),
        locations=locations,
    )


def _expansion(
    values: Values, e: dict[str, tuple[ScalarNode, Node]], label: str
) -> tuple[Any | None, Any | None]:
    """``count`` and ``for_each`` of a resource or module body."""
    reader = values.reader
    count: Any | None = None
    for_each: Any | None = None
    if "count" in e and "for_each" in e:
        reader.error(e["for_each"][0], "count and for_each cannot both be set: use one")
    if "count" in e:
        node = e["count"][1]
        values.locations[("count",)] = reader.loc(node)
        count = _count(values, node, Site(_DECLARED, f"the count of {label}"))
    if "for_each" in e:
        node = e["for_each"][1]
        values.locations[("for_each",)] = reader.loc(node)
        for_each = _for_each(values, node, Site(_DECLARED, f"the for_each of {label}"))
    return count, for_each


def _count(values: Values, node: Node, site: Site) -> Any | None:
    reader = values.reader
    if isinstance(node, ScalarNode):
        value = node.value
        if isinstance(value, int) and not isinstance(value, bool):
            if value >= 0:
                return value
            reader.error(node, f"count must be a non-negative whole number, got {value}")
            return None
        if isinstance(value, str) and "${{" in value:
            template = values.template(node, site)
            if template is not None and single_expression(template) is None:
                reader.error(node, "count is a whole number or one ${{ }} expression, not text")
                return None
            return template
        got = f"number {value!r}" if isinstance(value, float) else kind_name(value)
        if isinstance(value, str):
            got = f"string {value!r}"
    else:
        got = "list" if isinstance(node, SequenceNode) else "map"
    reader.error(
        node, f"count must be a non-negative whole number or one ${{{{ }}}} expression, got {got}"
    )
    return None


def _for_each(values: Values, node: Node, site: Site) -> Any | None:
    reader = values.reader
    if isinstance(node, SequenceNode):
        keys = values.tree(node, _KEYS, path=("for_each",), site=site)
        seen: set[str] = set()
        for item, value in zip(node.items, keys or (), strict=False):
            if isinstance(value, str):
                if value in seen:
                    reader.error(item, f"duplicate for_each key '{value}'")
                seen.add(value)
        return keys
    if isinstance(node, MappingNode):
        return values.tree(node, _MAP, path=("for_each",), site=site)
    value = node.value
    if isinstance(value, str) and "${{" in value:
        template = values.template(node, site)
        if template is not None and single_expression(template) is None:
            reader.error(node, "for_each is a list, a mapping or one ${{ }} expression, not text")
            return None
        return template
    reader.error(
        node,
        "for_each must be a list of keys, a mapping or one ${{ }} expression,"
        f" got {kind_name(value)}",
    )
    return None


def _depends_on(
    folder: Folder,
    reader: Reader,
    e: dict[str, tuple[ScalarNode, Node]],
    locations: dict[Path_, Location],
) -> tuple[tuple[str, Location], ...]:
    if "depends_on" not in e or is_null(e["depends_on"][1]):
        return ()
    scope = folder.scope
    out: dict[str, Location] = {}
    for i, (item, text) in enumerate(reader.string_list(e["depends_on"][1], "depends_on")):
        location = reader.loc(item)
        locations[("depends_on", i)] = location
        if "${{" in text:
            reader.error(
                item, "expressions are not allowed in depends_on: name a resource or module"
            )
            continue
        if text.startswith("modules."):
            module = text[len("modules.") :]
            found = scope.resolve("modules", module)
            if found is None:
                hint = did_you_mean(module, scope.names("modules"))
                reader.error(item, f"depends_on names no module: '{module}' is not declared{hint}")
                continue
            out.setdefault(f"modules.{found}", location)
            continue
        if "." in text or "[" in text:
            reader.error(
                item,
                f"depends_on names a whole resource ('web') or module ('modules.api'), got '{text}'",
            )
            continue
        found = scope.resolve("resources", text)
        if found is None:
            hint = did_you_mean(text, scope.names("resources"))
            if not hint and scope.resolve("modules", text) is not None:
                hint = f" (for the module, write 'modules.{text}')"
            reader.error(item, f"depends_on names no resource: '{text}' is not declared{hint}")
            continue
        out.setdefault(found, location)
    return tuple(out.items())


def _lifecycle(
    reader: Reader,
    node: Node,
    rtype: ResourceType | None,
    type_name: str,
    locations: dict[Path_, Location],
) -> Lifecycle:
    if is_null(node):
        return Lifecycle()
    mapping = reader.mapping(node)
    if mapping is None:
        return Lifecycle()
    e = reader.entries(mapping, LIFECYCLE_KEYS, " in lifecycle")
    flags: dict[str, bool] = {}
    for flag in ("prevent_destroy", "create_before_destroy"):
        if flag in e:
            locations[("lifecycle", flag)] = reader.loc(e[flag][1])
            flags[flag] = bool(reader.boolean(e[flag][1]))
    ignored: list[str] = []
    if "ignore_changes" in e and not is_null(e["ignore_changes"][1]):
        locations[("lifecycle", "ignore_changes")] = reader.loc(e["ignore_changes"][1])
        for item, text in reader.string_list(e["ignore_changes"][1], "ignore_changes"):
            if text == "*":
                ignored = ["*"]
                break
            if rtype is not None and text not in rtype.properties:
                hint = did_you_mean(text, rtype.properties)
                reader.error(
                    item, f"ignore_changes: type '{type_name}' has no property '{text}'{hint}"
                )
                continue
            if text not in ignored:
                ignored.append(text)
    return Lifecycle(
        prevent_destroy=flags.get("prevent_destroy", False),
        create_before_destroy=flags.get("create_before_destroy", False),
        ignore_changes=tuple(ignored),
    )


# -- modules and outputs ---------------------------------------------------------------


def parse_module(
    folder: Folder, reader: Reader, key: ScalarNode, body: Node, source: str
) -> ModuleDecl | None:
    """``modules.NAME`` (its ``source`` was read and loaded before, by the loader)."""
    name = key.text
    mapping = reader.mapping(body)
    if mapping is None:
        return None
    e = reader.entries(mapping, MODULE_KEYS, f" in module '{name}'")
    reader.require(e, "source", key)
    locations: dict[Path_, Location] = {(): reader.loc(key)}
    if "source" in e:
        locations[("source",)] = reader.loc(e["source"][1])
    references: list[Reference] = []
    label = f"module '{name}'"
    values = Values(
        reader, folder.scope, _body_site(label, expansion_of(mapping)), locations, references
    )
    count, for_each = _expansion(values, e, label)
    module = folder.modules.get(name)
    variables: dict[str, Any] = {}
    at: Node = key
    if "variables" in e and not is_null(e["variables"][1]):
        at, node = e["variables"]
        locations[("variables",)] = reader.loc(node)
        given = reader.mapping(node)
        for var_key, var_node in given.items if given is not None else []:
            var_name = var_key.text
            spec = ANY
            if module is not None:
                decl = module.variables.get(var_name)
                if decl is None:
                    hint = did_you_mean(var_name, module.variables)
                    reader.error(var_key, f"module '{name}' has no variable '{var_name}'{hint}")
                    continue
                spec = parse_type(decl.type)
            variables[var_name] = values.tree(
                var_node, spec, prefix=("variables",), path=(var_name,), what="variable"
            )
    if module is not None:
        missing = [
            v.name
            for v in module.variables.values()
            if v.default is REQUIRED and v.name not in variables
        ]
        if missing:
            names = ", ".join(f"'{n}'" for n in missing)
            plural = "s" if len(missing) > 1 else ""
            reader.error(at, f"module '{name}' is missing required variable{plural} {names}")
    return ModuleDecl(
        name=name,
        source=source,
        stack=module if module is not None else empty_stack(folder.dir),
        variables=variables,
        depends_on=_depends_on(folder, reader, e, locations),
        count=count,
        for_each=for_each,
        references=tuple(references),
        location=reader.loc(key),
        locations=locations,
    )


def parse_output(folder: Folder, reader: Reader, key: ScalarNode, body: Node) -> OutputDecl | None:
    name = key.text
    mapping = reader.mapping(body)
    if mapping is None:
        return None
    e = reader.entries(mapping, OUTPUT_KEYS, f" in output '{name}'")
    locations: dict[Path_, Location] = {(): reader.loc(key)}
    references: list[Reference] = []
    values = Values(
        reader, folder.scope, Site(_DECLARED, f"output '{name}'"), locations, references
    )
    value: Any = None
    if reader.require(e, "value", key):
        value = values.tree(e["value"][1], prefix=("value",))
    description = (reader.text(e["description"][1]) or "") if "description" in e else ""
    sensitive = bool(reader.boolean(e["sensitive"][1])) if "sensitive" in e else False
    return OutputDecl(
        name, value, description, sensitive, tuple(references), reader.loc(key), locations
    )


def is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.value is None
