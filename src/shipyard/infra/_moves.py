"""``moved`` blocks: renaming state entries before the plan compares them.

A ``moved`` block in a module folder speaks of addresses inside that module, so it
applies to every instance of the module. ``from: web`` without a key moves every
instance of ``web`` (keeping each key); ``from: modules.api`` moves everything inside
the module. Blocks apply in order, so chains (``a`` → ``b``, then ``b`` → ``c``) work.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

from shipyard.errors import LocatedError
from shipyard.infra._address import Address, Key, format_address, parse_address
from shipyard.infra._changes import DEPOSED
from shipyard.infra._model import MovedDecl, Stack
from shipyard.infra._state_model import ResourceState

__all__ = ["MoveResult", "apply_moves", "matches", "moved_blocks"]

Steps = tuple[tuple[str, Key], ...]


def moved_blocks(stack: Stack, chain: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], MovedDecl]]:
    """Every ``moved`` block of a stack and its modules, with the module names leading
    to the folder that declares it."""
    for moved in stack.moved:
        yield chain, moved
    for name, module in stack.modules.items():
        yield from moved_blocks(module.stack, (*chain, name))


@dataclass(slots=True)
class MoveResult:
    entries: dict[str, ResourceState]  # the state's entries under their new addresses
    origin: dict[str, str]  # new address -> address in the state, for moved entries
    dropped: list[str]  # entries left behind by an interrupted move (same object)
    redepended: list[str]  # entries (not moved) whose recorded dependencies were renamed
    warnings: list[str]
    errors: list[LocatedError]


def _split(address: str) -> tuple[str, str]:
    if address.endswith(DEPOSED):
        return address[: -len(DEPOSED)], DEPOSED
    return address, ""


def matches(pattern: Address, address: Address) -> bool:
    """Whether ``address`` is ``pattern`` or inside it (a resource without a key covers
    all its instances; a module covers everything inside it)."""
    if pattern.name is None:
        return _module_prefix(pattern.module, address.module)
    return (
        address.module == pattern.module
        and address.name == pattern.name
        and (pattern.key is None or pattern.key == address.key)
    )


def _module_prefix(prefix: Steps, module: Steps) -> bool:
    if len(module) < len(prefix):
        return False
    for i, (name, key) in enumerate(prefix):
        step_name, step_key = module[i]
        if step_name != name:
            return False
        if key != step_key and not (key is None and i == len(prefix) - 1):
            return False
    return True


def _rename(source: Address, target: Address, address: Address) -> Address | None:
    """``address`` moved by ``source`` → ``target``, or None when it is not concerned."""
    if not matches(source, address):
        return None
    if source.name is None:
        depth = len(source.module)
        last_key = address.module[depth - 1][1]
        new_module = list(target.module)
        if new_module and new_module[-1][1] is None and source.module[-1][1] is None:
            new_module[-1] = (new_module[-1][0], last_key)
        return Address(address.name, address.key, (*new_module, *address.module[depth:]))
    key = target.key
    if key is None and source.key is None:
        key = address.key
    return Address(target.name, key, target.module)


def apply_moves(stack: Stack, entries: dict[str, ResourceState]) -> MoveResult:
    """The state's entries after every ``moved`` block of ``stack``."""
    current = dict(entries)
    origin: dict[str, str] = {}
    dropped: list[str] = []
    warnings: list[str] = []
    errors: list[LocatedError] = []
    blocks = list(moved_blocks(stack))
    if not blocks or not current:
        return MoveResult(current, origin, dropped, [], warnings, errors)
    parsed: dict[str, Address] = {}
    for address in current:
        base, _ = _split(address)
        try:
            parsed[address] = parse_address(base)
        except ValueError:
            continue  # not an address this engine wrote: left alone
    for chain, block in blocks:
        try:
            source = parse_address(block.source)
            target = parse_address(block.target)
        except ValueError as err:
            errors.append(LocatedError(str(err), block.location))
            continue
        renames: list[tuple[str, str, Address]] = []
        for address, where in parsed.items():
            if len(where.module) < len(chain) or tuple(n for n, _ in where.module[: len(chain)]) != chain:
                continue
            outer = where.module[: len(chain)]
            inner = Address(where.name, where.key, where.module[len(chain) :])
            moved = _rename(source, target, inner)
            if moved is None:
                continue
            full = Address(moved.name, moved.key, (*outer, *moved.module))
            _, suffix = _split(address)
            renames.append((address, format_address(full.name, full.key, full.module) + suffix, full))
        for old, new, new_parsed in renames:
            entry = current.get(old)
            if entry is None or old == new:
                continue
            existing = current.get(new)
            if existing is not None:
                if existing.id == entry.id and existing.type == entry.type:
                    # A move interrupted between its two records: the object is the same.
                    del current[old]
                    parsed.pop(old, None)
                    dropped.append(old)
                else:
                    warnings.append(
                        f"moved: {old} was not moved to {new}: the state already has {new}"
                        f" ({block.location})"
                    )
                continue
            del current[old]
            parsed.pop(old, None)
            current[new] = replace(entry, address=new)
            parsed[new] = new_parsed
            origin[new] = origin.pop(old, old)
    renamed = {old: new for new, old in origin.items()}
    redepended: list[str] = []
    if renamed:
        for address, entry in list(current.items()):
            if any(dep in renamed for dep in entry.dependencies):
                deps = [renamed.get(dep, dep) for dep in entry.dependencies]
                current[address] = replace(entry, dependencies=deps)
                if address not in origin:
                    redepended.append(address)
    return MoveResult(current, origin, dropped, redepended, warnings, errors)
