"""The syntax tree of an expression.

Every node records ``offset``, the position of its most telling token (the
operator, the function name, ...), used for error messages. ``depth`` is the
height of the subtree, bounded by the parser so that walking a tree never
recurses deeply.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "And",
    "Call",
    "Compare",
    "Concat",
    "ContextRef",
    "Index",
    "Literal",
    "Member",
    "Node",
    "Not",
    "Or",
    "Wildcard",
    "children",
    "walk",
]


@dataclass(frozen=True, slots=True)
class Node:
    offset: int
    depth: int = field(default=1, compare=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class Literal(Node):
    value: Any  # None, bool, int, float or str


@dataclass(frozen=True, slots=True)
class ContextRef(Node):
    name: str  # as written; names are case-insensitive


@dataclass(frozen=True, slots=True)
class Member(Node):
    """``target.name``"""

    target: Node
    name: str


@dataclass(frozen=True, slots=True)
class Index(Node):
    """``target[index]``"""

    target: Node
    index: Node


@dataclass(frozen=True, slots=True)
class Wildcard(Node):
    """``target.*`` or ``target[*]``"""

    target: Node


@dataclass(frozen=True, slots=True)
class Not(Node):
    operand: Node


@dataclass(frozen=True, slots=True)
class Compare(Node):
    op: str  # == != < <= > >=
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class And(Node):
    operands: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or(Node):
    operands: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Call(Node):
    name: str  # canonical lower-case name
    args: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Concat(Node):
    """A template with text around expressions, used as a condition: its string value."""

    parts: tuple[str | Node, ...]


def children(node: Node) -> tuple[Node, ...]:
    """The direct sub-nodes of ``node``."""
    if isinstance(node, (Member, Wildcard)):
        return (node.target,)
    if isinstance(node, Index):
        return (node.target, node.index)
    if isinstance(node, Not):
        return (node.operand,)
    if isinstance(node, Compare):
        return (node.left, node.right)
    if isinstance(node, (And, Or)):
        return node.operands
    if isinstance(node, Call):
        return node.args
    if isinstance(node, Concat):
        return tuple(part for part in node.parts if isinstance(part, Node))
    return ()


def walk(node: Node) -> Iterator[Node]:
    """Every node of the tree, parents before children (iterative)."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(children(current)))
