"""Stack variables: their type, default, and validation rules over ``var``."""

from __future__ import annotations

from typing import Any, Final

from shipyard.infra._model import Validation, VariableDecl
from shipyard.infra._refs import Site, single_expression
from shipyard.infra._stack_decls import VAR_ONLY, Folder, is_null
from shipyard.infra._stack_values import Values, compile_expression, compile_template
from shipyard.infra._types import ANY, kind_name, parse_type
from shipyard.infra.provider import REQUIRED
from shipyard.workflow._parse_common import Reader
from shipyard.workflow._yaml import Node, ScalarNode, SequenceNode
from shipyard.workflow.expressions import Expression, ExpressionError

__all__ = ["VARIABLE_KEYS", "parse_variable"]

VARIABLE_KEYS: Final = ("type", "default", "description", "sensitive", "validation")
VALIDATION_KEYS: Final = ("condition", "message")


def parse_variable(folder: Folder, reader: Reader, key: ScalarNode, body: Node) -> VariableDecl:
    """``variables.NAME``; a declaration is returned even when it has mistakes, so uses
    of the variable are not reported as unknown."""
    name = key.text
    spec = ANY
    default: Any = REQUIRED
    description = ""
    sensitive = False
    validations: list[Validation] = []
    mapping = None if is_null(body) else reader.mapping(body)
    if mapping is not None:
        e = reader.entries(mapping, VARIABLE_KEYS, f" in variable '{name}'")
        if "type" in e:
            text = reader.literal(e["type"][1], "a type")
            if text is not None:
                try:
                    spec = parse_type(text)
                except ValueError as err:
                    reader.error(e["type"][1], str(err))
        if "description" in e:
            description = reader.text(e["description"][1]) or ""
        if "sensitive" in e:
            sensitive = bool(reader.boolean(e["sensitive"][1]))
        values = Values(reader, folder.scope, Site(VAR_ONLY, f"variable '{name}'"), {}, [])
        if "default" in e:
            default = values.tree(
                e["default"][1], spec, path=("default",), literal="a variable's default"
            )
        if "validation" in e:
            validations = _validations(values, name, e["validation"][1])
    return VariableDecl(
        name, str(spec), default, description, sensitive, tuple(validations), reader.loc(key)
    )


def _validations(values: Values, name: str, node: Node) -> list[Validation]:
    reader = values.reader
    items = node.items if isinstance(node, SequenceNode) else [node]
    if isinstance(node, ScalarNode):
        reader.error(
            node, f"expected a list of rules (condition and message), got {kind_name(node.value)}"
        )
        return []
    out: list[Validation] = []
    site = Site(VAR_ONLY, f"the validation of variable '{name}'")
    for item in items:
        mapping = reader.mapping(item)
        if mapping is None:
            continue
        e = reader.entries(mapping, VALIDATION_KEYS, " in a validation rule")
        message = ""
        if reader.require(e, "message", mapping):
            message = reader.literal(e["message"][1], "a validation message") or ""
            if not message.strip() and not is_null(e["message"][1]):
                reader.error(e["message"][1], "the message cannot be empty")
        if not reader.require(e, "condition", mapping):
            continue
        cond = e["condition"][1]
        expression = _condition(values, cond, site)
        if expression is None:
            continue
        offset, compiled = expression
        assert isinstance(cond, ScalarNode)
        found = values.check(cond, offset, compiled, site)
        if not any(ref.kind == "var" and ref.name == name for ref in found):
            reader.error(cond, f"the condition must test the variable: use var.{name}")
        out.append(Validation(compiled, message, reader.loc(cond)))
    return out


def _condition(values: Values, node: Node, site: Site) -> tuple[int, Expression] | None:
    """A condition: one ``${{ }}`` or a bare expression; (offset in the scalar, it)."""
    reader = values.reader
    if not isinstance(node, ScalarNode) or not isinstance(node.value, str):
        got = kind_name(node.value) if isinstance(node, ScalarNode) else "a collection"
        reader.error(node, f"expected an expression such as ${{{{ var.x > 0 }}}}, got {got}")
        return None
    text: str = node.value
    if "${{" not in text:
        bare = compile_expression(text)
        if isinstance(bare, ExpressionError):
            values.expression_error(node, 0, bare)
            return None
        return 0, bare
    compiled = compile_template(text)
    if isinstance(compiled, ExpressionError):
        values.expression_error(node, 0, compiled)
        return None
    single = single_expression(compiled)
    if single is None:
        reader.error(node, "a condition is one ${{ }} expression with nothing around it")
    return single
