"""What an expression is evaluated against."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["EvalContext", "Evaluator"]


@dataclass(slots=True)
class EvalContext:
    """The data and hooks an expression is evaluated with.

    ``contexts`` maps context names (``github``, ``env``, ``matrix``, ...) to plain
    JSON-like values. ``status`` answers the status functions; it is called with
    ``"success"``, ``"failure"``, ``"cancelled"`` or ``"always"`` (by default
    success() and always() are true, failure() and cancelled() false).
    ``hash_files`` implements ``hashFiles(patterns...)``; without it, calling
    hashFiles is an evaluation error. Exceptions raised by either hook pass
    through ``evaluate`` unchanged.
    """

    contexts: Mapping[str, Any]
    status: Callable[[str], bool] | None = None
    hash_files: Callable[[list[str]], str] | None = None


# A compiled (sub-)expression.
Evaluator = Callable[[EvalContext], Any]
