"""Matrix expansion, following GitHub's documented rules.

1. The axes (every key but ``include``/``exclude``) form a cartesian product, the first
   axis varying slowest.
2. ``exclude`` entries remove every combination that matches all of their keys.
3. Each ``include`` entry is merged into every combination whose *original* axis values
   it agrees with (it may overwrite values added by an earlier include, never an axis
   value); an entry that fits no combination is appended as a combination of its own.
"""

from __future__ import annotations

import contextlib
import itertools
import json
from collections.abc import Mapping
from typing import Any

from shipyard.errors import LocatedError, Location
from shipyard.workflow._model import Strategy, Tree, Value
from shipyard.workflow._schema import kind_of
from shipyard.workflow.expressions import EvalContext

MAX_COMBINATIONS = 256  # GitHub's limit per workflow run


class MatrixError(LocatedError):
    """A matrix that cannot be expanded (bad shape after evaluation, too large)."""


def evaluate_tree(tree: Tree, ctx: EvalContext) -> Any:
    """Evaluate every :class:`Value` in ``tree``; a whole-expression string keeps its type."""
    if isinstance(tree, Value):
        return tree.evaluate(ctx)
    if isinstance(tree, list):
        return [evaluate_tree(item, ctx) for item in tree]
    if isinstance(tree, dict):
        return {key: evaluate_tree(value, ctx) for key, value in tree.items()}
    return tree


def expand_matrix(strategy: Strategy | None, ctx: EvalContext) -> list[dict[str, Any]]:
    """The list of matrix combinations of a job; ``[{}]`` when it has no matrix."""
    if strategy is None or strategy.matrix is None:
        return [{}]
    location = strategy.location
    matrix = evaluate_tree(strategy.matrix, ctx)
    if isinstance(matrix, str) and isinstance(strategy.matrix, Value):
        # ``matrix: ${{ needs.a.outputs.m }}`` yields a JSON string; GitHub expects fromJSON,
        # but a string holding a JSON object is the obvious intent.
        with contextlib.suppress(ValueError):
            matrix = json.loads(matrix)
    if not isinstance(matrix, Mapping):
        raise MatrixError(f"matrix must be a mapping, got {kind_of(matrix)}", location)
    axes: dict[str, list[Any]] = {}
    include: list[Any] = []
    exclude: list[Any] = []
    for key, value in matrix.items():
        if key == "include":
            include = _as_entries(value, "include", location)
        elif key == "exclude":
            exclude = _as_entries(value, "exclude", location)
        else:
            if not isinstance(value, list):
                raise MatrixError(
                    f"matrix axis '{key}' must be a list, got {kind_of(value)}", location
                )
            if not value:
                raise MatrixError(f"matrix axis '{key}' is empty", location)
            axes[key] = value
    combos: list[dict[str, Any]] = []
    if axes:
        names = list(axes)
        for values in itertools.product(*(axes[n] for n in names)):
            combos.append(dict(zip(names, values, strict=True)))
    for entry in exclude:
        for key in entry:
            if key not in axes:
                raise MatrixError(f"matrix exclude names '{key}', which is not an axis", location)
        combos = [c for c in combos if not _matches(c, entry)]
    extra: list[dict[str, Any]] = []
    for entry in include:
        merged = False
        for combo in combos:
            if all(_equal(combo[k], v) for k, v in entry.items() if k in axes):
                for k, v in entry.items():
                    if k not in axes:
                        combo[k] = v
                merged = True
        if not merged:
            extra.append(dict(entry))
    combos.extend(extra)
    if not combos:
        raise MatrixError("matrix has no combinations left after exclude", location)
    if len(combos) > MAX_COMBINATIONS:
        raise MatrixError(
            f"matrix has {len(combos)} combinations; at most {MAX_COMBINATIONS} are allowed",
            location,
        )
    return combos


def matrix_suffix(combo: Mapping[str, Any]) -> str:
    """The values GitHub appends to a matrix job's name: ``(3.11, ubuntu)``."""
    parts = [_flat(value) for value in combo.values()]
    return f"({', '.join(parts)})" if parts else ""


def _flat(value: Any) -> str:
    if isinstance(value, Mapping):
        return ", ".join(_flat(v) for v in value.values())
    if isinstance(value, list):
        return ", ".join(_flat(v) for v in value)
    from shipyard.workflow.expressions import to_string

    return to_string(value)


def _as_entries(value: Any, what: str, location: Location | None) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise MatrixError(f"matrix '{what}' must be a list of mappings", location)
    return [dict(v) for v in value]


def _matches(combo: Mapping[str, Any], entry: Mapping[str, Any]) -> bool:
    return all(k in combo and _equal(combo[k], v) for k, v in entry.items())


def _equal(a: Any, b: Any) -> bool:
    if _num(a) and _num(b):
        return bool(a == b)
    return type(a) is type(b) and bool(a == b)


def _num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)
