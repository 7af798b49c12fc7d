"""GitHub Actions' ``${{ }}`` expression language.

Parse once, evaluate many times::

    from shipyard.workflow.expressions import EvalContext, parse, parse_template

    expression = parse("github.event_name == 'push' && matrix.os != 'windows'")
    expression.evaluate(EvalContext({"github": {...}, "matrix": {...}}))

    parse_template("v-${{ matrix.os }}-x").evaluate_str(ctx)

Parsing and evaluation never raise anything but :class:`ExpressionError`
(:class:`EvaluationError` at evaluation time), whatever the input.
"""

from ._context import EvalContext
from ._errors import EvaluationError, ExpressionError
from ._expression import Expression, parse
from ._template import Template, parse_condition, parse_template
from ._values import is_truthy, to_string

__all__ = [
    "EvalContext",
    "EvaluationError",
    "Expression",
    "ExpressionError",
    "Template",
    "is_truthy",
    "parse",
    "parse_condition",
    "parse_template",
    "to_string",
]
