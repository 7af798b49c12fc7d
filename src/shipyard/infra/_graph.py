"""Small graph algorithms over hashable nodes: order, closure, cycles, DOT.

Graphs are given as ``{node: dependencies}``; every function is linear in nodes plus
edges and iterative (stacks of tens of thousands of resources never recurse deeply).
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Collection, Hashable, Iterable, Mapping
from typing import Any, TypeVar

__all__ = ["closure", "dependents_index", "dot", "find_cycle", "topological_order"]

N = TypeVar("N", bound=Hashable)
_END: Any = object()


def topological_order(graph: Mapping[N, Iterable[N]]) -> list[N]:
    """Nodes with every dependency before its dependents (stable: each next node is the
    first, in the input order, whose dependencies are done). Dependencies that are not nodes of ``graph`` are ignored. Raises ValueError
    with the members of a cycle, in order, when there is one."""
    indegree: dict[N, int] = dict.fromkeys(graph, 0)
    dependents: dict[N, list[N]] = {node: [] for node in graph}
    for node, deps in graph.items():
        for dep in set(deps):
            if dep in indegree and dep != node:
                indegree[node] += 1
                dependents[dep].append(node)
            elif dep == node:
                raise ValueError(_cycle_text([node]))
    position = {node: i for i, node in enumerate(graph)}
    ready = [position[node] for node, count in indegree.items() if count == 0]
    nodes = list(graph)
    order: list[N] = []
    while ready:
        node = nodes[heapq.heappop(ready)]
        order.append(node)
        for dependent in dependents[node]:
            indegree[dependent] -= 1
            if indegree[dependent] == 0:
                heapq.heappush(ready, position[dependent])
    if len(order) != len(indegree):
        left = [node for node, count in indegree.items() if count > 0]
        members = set(left)
        cycle = find_cycle({node: [d for d in graph[node] if d in members] for node in left})
        raise ValueError(_cycle_text(cycle or left))
    return order


def _cycle_text(cycle: list[N]) -> str:
    names = [str(node) for node in cycle]
    return "cycle: " + " → ".join([*names, names[0]])


def find_cycle(graph: Mapping[N, Iterable[N]]) -> list[N] | None:
    """The members of one cycle in order (each depends on the next), or None."""
    WHITE, GREY, BLACK = 0, 1, 2
    color: dict[N, int] = dict.fromkeys(graph, WHITE)
    for start in graph:
        if color[start] != WHITE:
            continue
        path: list[N] = [start]
        iterators = [iter(graph[start])]
        color[start] = GREY
        while iterators:
            dep = next(iterators[-1], _END)
            if dep is _END:
                color[path.pop()] = BLACK
                iterators.pop()
                continue
            state = color.get(dep)
            if state is None or state == BLACK:
                continue
            if state == GREY:
                return path[path.index(dep) :]
            color[dep] = GREY
            path.append(dep)
            iterators.append(iter(graph[dep]))
    return None


def closure(starts: Iterable[N], edges: Mapping[N, Iterable[N]]) -> set[N]:
    """``starts`` and everything reachable from them along ``edges``."""
    seen: set[N] = set()
    todo = list(starts)
    while todo:
        node = todo.pop()
        if node in seen:
            continue
        seen.add(node)
        todo.extend(dep for dep in edges.get(node, ()) if dep not in seen)
    return seen


def dependents_index(graph: Mapping[N, Iterable[N]]) -> dict[N, list[N]]:
    """The reverse graph: for each node, the nodes that depend on it."""
    out: dict[N, list[N]] = {}
    for node, deps in graph.items():
        for dep in deps:
            out.setdefault(dep, []).append(node)
    return out


def dot(graph: Mapping[str, Collection[str]], *, labels: Mapping[str, str] | None = None,
        name: str = "stack") -> str:
    """Graphviz DOT text: one node per key, an edge from each node to each dependency."""
    lines = [f"digraph {json.dumps(name)} {{", "  rankdir = \"RL\";", "  node [shape = box];"]
    for node in graph:
        label = (labels or {}).get(node)
        extra = f" [label = {json.dumps(label)}]" if label else ""
        lines.append(f"  {json.dumps(node)}{extra};")
    for node, deps in graph.items():
        for dep in deps:
            lines.append(f"  {json.dumps(node)} -> {json.dumps(dep)};")
    lines.append("}")
    return "\n".join(lines) + "\n"
