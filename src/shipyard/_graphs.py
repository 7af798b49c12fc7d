"""Cycles in dependency graphs: what workflows (``needs``) and stacks (references) share.

Both report every cycle as one error naming its members in order, so both need the
strongly connected components of a graph and, in each, one shortest cycle to show.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence

__all__ = ["shortest_cycle", "strongly_connected"]


def strongly_connected(nodes: Iterable[str], edges: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """The strongly connected components (Tarjan's algorithm, iterative: graphs may be
    deep), each a list of its members; components come out dependencies first."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in nodes:
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            successors = edges.get(node, ())
            advanced = False
            while i < len(successors):
                succ = successors[i]
                i += 1
                if succ not in index:
                    work.append((node, i))
                    work.append((succ, 0))
                    advanced = True
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            if advanced:
                continue
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                out.append(component)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return out


def shortest_cycle(start: str, edges: Mapping[str, Sequence[str]], members: set[str]) -> list[str]:
    """``[start, ..., start]``: the shortest way back to ``start`` inside its component
    (breadth first, following each node's edges in their order)."""
    previous: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for succ in edges.get(node, ()):
            if succ not in members:
                continue
            if succ == start:
                path = [node]
                while path[-1] != start:
                    path.append(previous[path[-1]])
                path.reverse()
                return [*path, start]
            if succ not in previous:
                previous[succ] = node
                queue.append(succ)
    return [start, start]
