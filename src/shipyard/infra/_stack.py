"""Loading a stack: a folder of YAML files (and the module folders it uses), checked.

:func:`load_stack` reads every ``*.yaml``/``*.yml`` file directly in the folder
(sorted by name; hidden files are skipped), merges their sections and checks
everything it can without evaluating anything: the shape of each section, names
declared twice, types, resource types and their properties, expressions and what they
reference, modules (loaded recursively, each at most once), ``moved`` entries and
cycles. All the mistakes of all the files are raised at once as one
:class:`~shipyard.errors.ValidationError`, each ``file:line:col: message``, in file
order; nothing a user writes makes it raise anything else.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Final

from shipyard.errors import InfraError, LocatedError, Location, ValidationError
from shipyard.infra._address import Address, parse_address
from shipyard.infra._model import (
    ModuleDecl,
    MovedDecl,
    OutputDecl,
    ResourceDecl,
    Stack,
    VariableDecl,
)
from shipyard.infra._refs import SINGLE, Scope, Target
from shipyard.infra._registry import Registry
from shipyard.infra._stack_decls import (
    Folder,
    empty_stack,
    expansion_of,
    is_null,
    parse_module,
    parse_output,
    parse_provider,
    parse_resource,
    type_text,
)
from shipyard.infra._stack_graph import find_cycles
from shipyard.infra._stack_variables import parse_variable
from shipyard.infra.provider import ResourceType
from shipyard.workflow._parse_common import Reader
from shipyard.workflow._yaml import MappingNode, Node, ScalarNode, load_yaml

__all__ = ["TOP_KEYS", "load_stack", "stack_files"]

TOP_KEYS: Final = ("variables", "providers", "resources", "modules", "outputs", "moved")
MOVED_KEYS: Final = ("from", "to")
_SECTIONS: Final = {
    "variables": "variable",
    "providers": "provider",
    "resources": "resource",
    "modules": "module",
    "outputs": "output",
}
_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")

# One declaration: the reader of its file, its name's node and its body.
Entry = tuple[Reader, ScalarNode, Node]


def load_stack(dir: Path, registry: Registry) -> Stack:
    """Load and check the stack in ``dir``; raises ValidationError listing every mistake."""
    loader = _Loader(registry)
    stack = loader.root(Path(dir))
    if loader.errors:
        raise ValidationError(loader.sorted_errors())
    return stack


def stack_files(dir: Path) -> list[Path]:
    """The stack files of a folder: ``*.yaml``/``*.yml``, not hidden, sorted by name."""
    names = []
    with os.scandir(dir) as entries:
        for entry in entries:
            name = entry.name
            if name.endswith((".yaml", ".yml")) and not name.startswith(".") and entry.is_file():
                names.append(name)
    return [dir / name for name in sorted(names)]


class _Loader:
    """Loads a root folder and its modules, collecting every error."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.errors: list[LocatedError] = []
        self.order: dict[str, int] = {}
        self.loaded: dict[Path, Stack] = {}
        # The folders being loaded, outermost first: (resolved, as shown).
        self.chain: list[tuple[Path, str]] = []

    def position(self, location: Location) -> tuple[int, int, int]:
        return self.order.get(location.file, len(self.order)), location.line, location.col

    def sorted_errors(self) -> list[LocatedError]:
        return sorted(
            self.errors, key=lambda e: self.position(e.location) if e.location else (-1, 0, 0)
        )

    def root(self, dir: Path) -> Stack:
        problem = _folder_problem(dir)
        files: list[Path] = []
        if problem is None:
            try:
                files = stack_files(dir)
            except OSError as err:
                problem = f"cannot read stack folder '{dir}': {err.strerror or err}"
            else:
                if not files:
                    problem = f"no stack files (*.yaml, *.yml) in '{dir}'"
        if problem is not None:
            self.errors.append(LocatedError(problem))
            return empty_stack(dir)
        return self.folder(dir, files)

    def folder(self, dir: Path, files: list[Path]) -> Stack:
        resolved = dir.resolve()
        self.chain.append((resolved, str(dir)))
        try:
            stack = _FolderLoader(self, dir, files).load()
        finally:
            self.chain.pop()
        self.loaded[resolved] = stack
        return stack

    def module(self, reader: Reader, dir: Path, name: str, node: Node) -> tuple[str, Stack | None]:
        """A module's ``source`` and the folder it names, loaded (None if it cannot be)."""
        text = reader.literal(node, "'source'")
        if text is None:
            return "", None
        if not text.strip():
            reader.error(
                node, "source cannot be empty: give the module's folder, e.g. ./modules/api"
            )
            return text, None
        if Path(text).is_absolute():
            reader.error(
                node, f"source '{text}' must be relative to this stack's folder, e.g. ./modules/api"
            )
            return text, None
        shown = Path(os.path.normpath(dir / text))
        problem = _folder_problem(shown, what="module folder")
        if problem is not None:
            reader.error(node, problem)
            return text, None
        resolved = shown.resolve()
        for i, (folder, _) in enumerate(self.chain):
            if folder == resolved:
                path = " → ".join([s for _, s in self.chain[i:]] + [str(shown)])
                reader.error(node, f"module '{name}' includes itself: {path}")
                return text, None
        if resolved in self.loaded:
            return text, self.loaded[resolved]
        try:
            files = stack_files(shown)
        except OSError as err:
            reader.error(node, f"cannot read module folder '{shown}': {err.strerror or err}")
            return text, None
        if not files:
            reader.error(node, f"module folder '{shown}' has no stack files (*.yaml, *.yml)")
            return text, None
        return text, self.folder(shown, files)


def _folder_problem(path: Path, what: str = "stack folder") -> str | None:
    try:
        if not path.exists():
            return f"{what} '{path}' does not exist"
        if not path.is_dir():
            return f"{what} '{path}' is not a folder"
    except OSError as err:
        return f"cannot read {what} '{path}': {err.strerror or err}"
    return None


class _FolderLoader:
    """One folder: its files read, sections merged, declarations checked."""

    def __init__(self, loader: _Loader, dir: Path, files: list[Path]) -> None:
        self.loader = loader
        self.dir = dir
        self.files = files
        self.entries: dict[str, list[Entry]] = {section: [] for section in _SECTIONS}
        self.moved: list[tuple[Reader, Node]] = []
        self.first: dict[str, dict[str, Location]] = {section: {} for section in _SECTIONS}

    def load(self) -> Stack:
        for path in self.files:
            self.read(path)
        registry = self.loader.registry
        types, resource_targets = self.resource_targets()
        sources, stacks, module_targets = self.module_targets()
        variable_names = {key.text for _, key, _ in self.entries["variables"]}
        scope = Scope(variable_names, resource_targets, module_targets)
        folder = Folder(self.dir, registry, scope, types, stacks)
        variables: dict[str, VariableDecl] = {}
        for reader, key, body in self.entries["variables"]:
            variables[key.text] = parse_variable(folder, reader, key, body)
        providers: dict[str, dict[str, Any]] = {}
        provider_locations: dict[str, Location] = {}
        for reader, key, body in self.entries["providers"]:
            providers[key.text] = parse_provider(folder, reader, key, body)
            provider_locations[key.text] = reader.loc(key)
        resources: dict[str, ResourceDecl] = {}
        for reader, key, body in self.entries["resources"]:
            resource = parse_resource(folder, reader, key, body)
            if resource is not None:
                resources[key.text] = resource
        modules: dict[str, ModuleDecl] = {}
        for reader, key, body in self.entries["modules"]:
            module = parse_module(folder, reader, key, body, sources.get(key.text, ""))
            if module is not None:
                modules[key.text] = module
        outputs: dict[str, OutputDecl] = {}
        for reader, key, body in self.entries["outputs"]:
            output = parse_output(folder, reader, key, body)
            if output is not None:
                outputs[key.text] = output
        moved = self.parse_moved(set(resource_targets), stacks)
        self.loader.errors.extend(find_cycles(resources, modules, self.loader.position))
        return Stack(
            dir=self.dir,
            files=tuple(self.files),
            variables=variables,
            resources=resources,
            modules=modules,
            outputs=outputs,
            moved=moved,
            providers=providers,
            provider_locations=provider_locations,
        )

    # -- files and sections ------------------------------------------------------------

    def read(self, path: Path) -> None:
        file = str(path)
        errors = self.loader.errors
        self.loader.order.setdefault(file, len(self.loader.order))
        try:
            data = path.read_bytes()
        except OSError as err:
            errors.append(
                LocatedError(f"cannot read file: {err.strerror or err}", Location(file, 1, 1))
            )
            return
        doc = load_yaml(data, file)
        errors.extend(doc.errors)
        if doc.fatal or doc.root is None:
            return
        reader = Reader(file, doc.source)
        reader.errors = errors  # one list for every file, sorted at the end
        root = doc.root
        if isinstance(root, ScalarNode) and root.value is None:
            return  # an empty file declares nothing
        mapping = reader.mapping(root)
        if mapping is None:
            return
        e = reader.entries(mapping, TOP_KEYS, " at the top of a stack file")
        for section, what in _SECTIONS.items():
            if section in e:
                self.section(reader, section, what, e[section][1])
        if "moved" in e and not is_null(e["moved"][1]):
            moved = reader.sequence(e["moved"][1])
            if moved is not None:
                self.moved.extend((reader, item) for item in moved.items)

    def section(self, reader: Reader, section: str, what: str, node: Node) -> None:
        if is_null(node):
            return
        mapping = reader.mapping(node)
        if mapping is None:
            return
        entries = self.entries[section]
        first = self.first[section]
        for key, body in mapping.items:
            name = key.text
            if not _NAME.match(name):
                reader.error(
                    key,
                    f"invalid {what} name '{name}': use letters, digits, '_' and '-',"
                    " starting with a letter or '_'",
                )
                continue
            if section == "resources" and name == "modules":
                reader.error(key, "'modules' cannot name a resource: addresses use it for modules")
                continue
            if name in first:
                reader.error(key, f"{what} '{name}' is already declared at {first[name]}")
                continue
            first[name] = reader.loc(key)
            entries.append((reader, key, body))

    # -- what expressions may name -----------------------------------------------------

    def resource_targets(self) -> tuple[dict[str, ResourceType | None], dict[str, Target]]:
        """Each resource's type and what may follow ``resources.NAME`` (errors come later)."""
        registry = self.loader.registry
        types: dict[str, ResourceType | None] = {}
        targets: dict[str, Target] = {}
        for _, key, body in self.entries["resources"]:
            name = key.text
            rtype: ResourceType | None = None
            type_name = "?"
            expansion = SINGLE
            if isinstance(body, MappingNode):
                expansion = expansion_of(body)
                node = next((v for k, v in body.items if k.text == "type"), None)
                found = type_text(node) if node is not None else None
                if found:
                    type_name = found
                    try:
                        rtype = registry.resource_type(type_name)
                    except InfraError:  # reported with its location by parse_resource
                        rtype = None
            types[name] = rtype
            members = (
                frozenset({*rtype.properties, *rtype.attributes, "id"})
                if rtype is not None
                else None
            )
            targets[name] = Target(members, expansion, f"resource '{name}' ({type_name})")
        return types, targets

    def module_targets(
        self,
    ) -> tuple[dict[str, str], dict[str, Stack | None], dict[str, Target]]:
        """Each module's source, its folder loaded, and what may follow ``modules.NAME``."""
        sources: dict[str, str] = {}
        stacks: dict[str, Stack | None] = {}
        targets: dict[str, Target] = {}
        for reader, key, body in self.entries["modules"]:
            name = key.text
            stack: Stack | None = None
            expansion = SINGLE
            if isinstance(body, MappingNode):
                expansion = expansion_of(body)
                node = next((v for k, v in body.items if k.text == "source"), None)
                if node is not None:
                    sources[name], stack = self.loader.module(reader, self.dir, name, node)
            stacks[name] = stack
            members = frozenset(stack.outputs) if stack is not None else None
            targets[name] = Target(members, expansion, f"module '{name}'")
        return sources, stacks, targets

    # -- moved -------------------------------------------------------------------------

    def parse_moved(
        self, resources: set[str], modules: dict[str, Stack | None]
    ) -> tuple[MovedDecl, ...]:
        decls: list[MovedDecl] = []
        sources: dict[Address, Location] = {}
        targets: dict[Address, Location] = {}
        checks: list[tuple[Reader, Node, Address]] = []
        for reader, item in self.moved:
            mapping = reader.mapping(item)
            if mapping is None:
                continue
            e = reader.entries(mapping, MOVED_KEYS, " in a moved entry")
            found: dict[str, Address] = {}
            for end in MOVED_KEYS:
                if not reader.require(e, end, mapping):
                    continue
                text = reader.literal(e[end][1], "an address")
                if text is None:
                    continue
                try:
                    found[end] = parse_address(text)
                except ValueError as err:
                    reader.error(e[end][1], str(err))
            if len(found) < 2:
                continue
            src, dst = found["from"], found["to"]
            if src == dst:
                reader.error(mapping, f"moved from and to are the same address '{src}'")
            elif src.is_module != dst.is_module:
                kinds = ("a module", "a resource") if src.is_module else ("a resource", "a module")
                reader.error(mapping, f"cannot move {kinds[0]} ('{src}') to {kinds[1]} ('{dst}')")
            elif src in sources:
                reader.error(
                    e["from"][1], f"'{src}' is already moved by the entry at {sources[src]}"
                )
            elif dst in targets:
                reader.error(
                    e["to"][1], f"'{dst}' is already the target of the entry at {targets[dst]}"
                )
            else:
                sources[src] = reader.loc(e["from"][1])
                targets[dst] = reader.loc(e["to"][1])
                checks.append((reader, e["to"][1], dst))
                decls.append(MovedDecl(str(src), str(dst), reader.loc(mapping)))
        for reader, node, dst in checks:
            # A target moved on by another entry (a → b, b → c) need not exist any more.
            if dst not in sources and not _declares(dst, resources, modules):
                reader.error(node, f"moved to '{dst}', which this stack does not declare")
        return tuple(decls)


def _declares(address: Address, resources: set[str], modules: dict[str, Stack | None]) -> bool:
    """Whether the stack declares what ``address`` names (instance keys aside)."""
    steps = address.module[:-1] if address.is_module else address.module
    names: set[str] = resources
    for module_name, _ in steps:
        if module_name not in modules:
            return False
        stack = modules[module_name]
        if stack is None:
            return True  # the module could not be loaded; that error is enough
        names = set(stack.resources)
        modules = {n: m.stack for n, m in stack.modules.items()}
    if address.is_module:
        return address.module[-1][0] in modules
    return address.name in names
