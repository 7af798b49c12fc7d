"""Compiled expressions."""

from __future__ import annotations

from typing import Any, NoReturn

from ._ast import Call, ContextRef, Node, walk
from ._context import EvalContext, Evaluator
from ._errors import EvaluationError, ExpressionError
from ._eval import compile_node
from ._functions import STATUS_FUNCTIONS, CallbackFailure
from ._parser import parse_ast
from ._values import FilteredArray

__all__ = ["Expression", "guarded", "parse"]


class Expression:
    """A compiled expression: immutable, reusable and safe to share between threads.

    Build one with :func:`parse` (or ``parse_condition``), then call
    :meth:`evaluate` as often as needed.
    """

    __slots__ = ("_contexts", "_evaluator", "_functions", "_tree", "source")

    source: str
    _tree: Node
    _evaluator: Evaluator
    _contexts: frozenset[str]
    _functions: frozenset[str]

    def __init__(self, source: str, tree: Node) -> None:
        contexts: set[str] = set()
        functions: set[str] = set()
        for node in walk(tree):
            if isinstance(node, ContextRef):
                contexts.add(node.name.lower())
            elif isinstance(node, Call):
                functions.add(node.name)
        setattr_ = object.__setattr__
        setattr_(self, "source", source)
        setattr_(self, "_tree", tree)
        setattr_(self, "_evaluator", compile_node(tree))
        setattr_(self, "_contexts", frozenset(contexts))
        setattr_(self, "_functions", frozenset(functions))

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.source!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Expression):
            return NotImplemented
        return self.source == other.source and self._tree == other._tree

    def __hash__(self) -> int:
        return hash(self.source)

    def __reduce__(self) -> tuple[Any, ...]:
        return (Expression, (self.source, self._tree))

    def evaluate(self, ctx: EvalContext) -> Any:
        """The value of the expression in ``ctx``.

        Raises EvaluationError (and nothing else, apart from whatever the
        context's own ``status``/``hash_files`` hooks raise).
        """
        try:
            value = self._evaluator(ctx)
        except EvaluationError:
            raise
        except CallbackFailure as failure:
            raise failure.error from None
        except Exception as error:
            _internal_error(error)
        if type(value) is FilteredArray:
            return list(value)
        return value

    def contexts(self) -> set[str]:
        """Names of the contexts referenced, lower-cased (e.g. ``{"github", "matrix"}``)."""
        return set(self._contexts)

    def functions(self) -> set[str]:
        """Names of the functions called, lower-cased (e.g. ``{"success", "contains"}``)."""
        return set(self._functions)

    def uses_status_function(self) -> bool:
        """Whether success(), failure(), cancelled() or always() is called anywhere."""
        return not self._functions.isdisjoint(STATUS_FUNCTIONS)


def _internal_error(error: Exception) -> NoReturn:
    if isinstance(error, RecursionError):
        raise EvaluationError("expression is too deeply nested to evaluate") from error
    raise EvaluationError(
        f"internal error while evaluating: {type(error).__name__}: {error}"
    ) from error


def guarded(parser: Any, *args: Any) -> Any:
    """Run a parse step so that it can only fail with ExpressionError."""
    try:
        return parser(*args)
    except ExpressionError:
        raise
    except RecursionError:
        raise ExpressionError("expression is too deeply nested") from None
    except Exception as error:
        raise ExpressionError(
            f"internal error while parsing: {type(error).__name__}: {error}"
        ) from error


def _parse(source: str) -> Expression:
    if not isinstance(source, str):
        raise ExpressionError(f"expression must be a string, not {type(source).__name__}")
    return Expression(source, parse_ast(source))


def parse(source: str) -> Expression:
    """Compile expression text given without the ``${{ }}`` around it.

    Raises ExpressionError whose ``offset`` points into ``source``: syntax errors,
    unknown functions and wrong numbers of arguments.
    """
    result: Expression = guarded(_parse, source)
    return result
