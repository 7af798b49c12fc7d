"""Cycles among the resources and modules of one stack folder.

A resource or module depends on what its expressions reference and what its
``depends_on`` names; a module counts as one unit (its variables are evaluated before
anything inside it, its outputs after). Each strongly connected component with more
than one member, or with a member that depends on itself, is one error naming the
members in order, ``cycle: a → b → c → a``, at the first member in file order. The
work is linear in the size of the graph (Tarjan's algorithm, iteratively).
"""

from __future__ import annotations

from collections.abc import Callable

from shipyard._graphs import shortest_cycle, strongly_connected
from shipyard.errors import LocatedError, Location
from shipyard.infra._model import ModuleDecl, ResourceDecl

__all__ = ["find_cycles"]


def find_cycles(
    resources: dict[str, ResourceDecl],
    modules: dict[str, ModuleDecl],
    order: Callable[[Location], tuple[int, int, int]],
) -> list[LocatedError]:
    """One error per cycle; ``order`` sorts locations in file order."""
    locations: dict[str, Location] = {}
    edges: dict[str, list[str]] = {}
    decls: list[ResourceDecl | ModuleDecl] = [*resources.values(), *modules.values()]
    for decl in decls:
        node = decl.name if isinstance(decl, ResourceDecl) else f"modules.{decl.name}"
        locations[node] = decl.location
        targets: dict[str, None] = {}
        for ref in decl.references:
            if ref.kind == "resource" and ref.name in resources:
                targets[ref.name] = None
            elif ref.kind == "module" and ref.name in modules:
                targets[f"modules.{ref.name}"] = None
        for name, _ in decl.depends_on:
            targets[name] = None
        edges[node] = list(targets)
    nodes = sorted(locations, key=lambda n: order(locations[n]))
    rank = {node: i for i, node in enumerate(nodes)}
    for node in nodes:
        edges[node] = sorted((t for t in edges[node] if t in rank), key=rank.__getitem__)
    errors: list[LocatedError] = []
    for component in strongly_connected(nodes, edges):
        members = set(component)
        start = min(component, key=rank.__getitem__)
        if len(component) == 1 and start not in edges[start]:
            continue
        path = shortest_cycle(start, edges, members)
        errors.append(LocatedError("cycle: " + " → ".join(path), locations[start]))
    return errors


