"""Errors raised while parsing or evaluating ``${{ }}`` expressions."""

from __future__ import annotations

from typing import Any

from shipyard.errors import LocatedError

__all__ = ["EvaluationError", "ExpressionError", "shifted"]


class ExpressionError(LocatedError):
    """A bad expression.

    ``offset`` is the 0-based character offset, inside the source text that was
    given to the parser, of the token at fault. ``location`` stays ``None`` here:
    callers know where the text came from and map the offset to file:line:col.
    """

    def __init__(self, message: str, offset: int = 0) -> None:
        super().__init__(message)
        self.offset = offset

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.message, self.offset), {"location": self.location})

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, offset={self.offset})"


class EvaluationError(ExpressionError):
    """An expression that parsed fine failed while being evaluated."""


def shifted(error: ExpressionError, delta: int) -> ExpressionError:
    """The same error, with its offset moved by ``delta`` (same class, same location)."""
    moved = type(error)(error.message, error.offset + delta)
    moved.location = error.location
    return moved
