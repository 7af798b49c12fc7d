"""Parse tokens into a syntax tree.

Grammar, loosest binding first::

    or       := and ('||' and)*
    and      := equality ('&&' equality)*
    equality := compare (('==' | '!=') compare)*
    compare  := unary (('<' | '<=' | '>' | '>=') unary)*
    unary    := '!' unary | postfix
    postfix  := primary ('.' (name | '*') | '[' (or | '*') ']')*
    primary  := literal | '(' or ')' | name '(' [or (',' or)*] ')' | name

Like GitHub, a property or index may not follow a literal (``'abc'[0]``).
Nesting is limited to MAX_DEPTH levels, so no input can exhaust the stack.
"""

from __future__ import annotations

from typing import Final

from . import _lexer as lx
from ._ast import And, Call, Compare, ContextRef, Index, Literal, Member, Node, Not, Or, Wildcard
from ._errors import ExpressionError
from ._functions import FUNCTIONS, arity_message

__all__ = ["MAX_DEPTH", "parse_ast"]

# GitHub's limit on how deeply an expression may nest.
MAX_DEPTH: Final = 50

_KEYWORDS: Final = {
    "true": True,
    "false": False,
    "null": None,
    "NaN": float("nan"),
    "Infinity": float("inf"),
}
_COMPARISONS: Final = frozenset({"<", "<=", ">", ">="})
_EQUALITIES: Final = frozenset({"==", "!="})


def _too_deep(offset: int) -> ExpressionError:
    return ExpressionError(
        f"expression is nested too deeply (the maximum depth is {MAX_DEPTH})", offset
    )


class _Parser:
    __slots__ = ("nesting", "pos", "tokens")

    def __init__(self, tokens: list[lx.Token]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.nesting = 0

    # -- helpers ------------------------------------------------------------------

    def peek(self) -> lx.Token:
        return self.tokens[self.pos]

    def advance(self) -> lx.Token:
        token = self.tokens[self.pos]
        if token.kind != lx.END:
            self.pos += 1
        return token

    def unexpected(self, token: lx.Token) -> ExpressionError:
        if token.kind == lx.END:
            return ExpressionError("unexpected end of expression", token.offset)
        return ExpressionError(f"unexpected {lx.describe(token)}", token.offset)

    def expect_close(self, kind: str, opener: lx.Token) -> lx.Token:
        token = self.peek()
        if token.kind != kind:
            raise ExpressionError(
                f"expected {kind!r} to close {opener.text!r} at offset {opener.offset}"
                + ("" if token.kind == lx.END else f", found {lx.describe(token)}"),
                token.offset,
            )
        return self.advance()

    def enter(self, offset: int) -> None:
        self.nesting += 1
        if self.nesting > MAX_DEPTH:
            raise _too_deep(offset)

    @staticmethod
    def deeper(offset: int, *nodes: Node) -> int:
        depth = 1 + max(node.depth for node in nodes)
        if depth > MAX_DEPTH:
            raise _too_deep(offset)
        return depth

    # -- grammar ------------------------------------------------------------------

    def parse(self) -> Node:
        if self.peek().kind == lx.END:
            raise ExpressionError("expected an expression", self.peek().offset)
        node = self.parse_or()
        token = self.peek()
        if token.kind != lx.END:
            raise self.unexpected(token)
        return node

    def parse_or(self) -> Node:
        first = self.parse_and()
        if not (self.peek().kind == lx.OP and self.peek().text == "||"):
            return first
        offset = self.peek().offset
        operands = [first]
        while self.peek().kind == lx.OP and self.peek().text == "||":
            self.advance()
            operands.append(self.parse_and())
        return Or(offset, tuple(operands), depth=self.deeper(offset, *operands))

    def parse_and(self) -> Node:
        first = self.parse_binary(_EQUALITIES)
        if not (self.peek().kind == lx.OP and self.peek().text == "&&"):
            return first
        offset = self.peek().offset
        operands = [first]
        while self.peek().kind == lx.OP and self.peek().text == "&&":
            self.advance()
            operands.append(self.parse_binary(_EQUALITIES))
        return And(offset, tuple(operands), depth=self.deeper(offset, *operands))

    def parse_binary(self, ops: frozenset[str]) -> Node:
        below = self.parse_unary if ops is _COMPARISONS else self.parse_comparison
        left = below()
        while self.peek().kind == lx.OP and self.peek().text in ops:
            op = self.advance()
            right = below()
            left = Compare(
                op.offset, op.text, left, right, depth=self.deeper(op.offset, left, right)
            )
        return left

    def parse_comparison(self) -> Node:
        return self.parse_binary(_COMPARISONS)

    def parse_unary(self) -> Node:
        token = self.peek()
        if token.kind == lx.OP and token.text == "!":
            self.advance()
            self.enter(token.offset)
            operand = self.parse_unary()
            self.nesting -= 1
            return Not(token.offset, operand, depth=self.deeper(token.offset, operand))
        return self.parse_postfix()

    def parse_postfix(self) -> Node:
        node, is_literal = self.parse_primary()
        while True:
            token = self.peek()
            if token.kind == lx.DOT:
                if is_literal:
                    raise self.unexpected(token)
                self.advance()
                name = self.advance()
                if name.kind == lx.STAR:
                    node = Wildcard(name.offset, node, depth=self.deeper(name.offset, node))
                elif name.kind == lx.IDENT:
                    node = Member(
                        name.offset, node, name.text, depth=self.deeper(name.offset, node)
                    )
                else:
                    raise ExpressionError(
                        "expected a property name or '*' after '.'"
                        + ("" if name.kind == lx.END else f", found {lx.describe(name)}"),
                        name.offset,
                    )
            elif token.kind == lx.LBRACKET:
                if is_literal:
                    raise self.unexpected(token)
                self.advance()
                if self.peek().kind == lx.STAR:
                    star = self.advance()
                    self.expect_close(lx.RBRACKET, token)
                    node = Wildcard(star.offset, node, depth=self.deeper(star.offset, node))
                else:
                    self.enter(token.offset)
                    index = self.parse_or()
                    self.nesting -= 1
                    self.expect_close(lx.RBRACKET, token)
                    node = Index(
                        token.offset, node, index, depth=self.deeper(token.offset, node, index)
                    )
            else:
                return node
            is_literal = False

    def parse_primary(self) -> tuple[Node, bool]:
        token = self.advance()
        kind = token.kind
        if kind == lx.STRING or kind == lx.NUMBER:
            return Literal(token.offset, token.value), True
        if kind == lx.IDENT:
            if token.text in _KEYWORDS:
                return Literal(token.offset, _KEYWORDS[token.text]), True
            if self.peek().kind == lx.LPAREN:
                return self.parse_call(token), False
            return ContextRef(token.offset, token.text), False
        if kind == lx.LPAREN:
            self.enter(token.offset)
            node = self.parse_or()
            self.nesting -= 1
            self.expect_close(lx.RPAREN, token)
            return node, False
        raise self.unexpected(token)

    def parse_call(self, name: lx.Token) -> Node:
        spec = FUNCTIONS.get(name.text.lower())
        if spec is None:
            raise ExpressionError(f"unknown function {name.text!r}", name.offset)
        opener = self.advance()
        self.enter(opener.offset)
        args: list[Node] = []
        if self.peek().kind != lx.RPAREN:
            while True:
                args.append(self.parse_or())
                if self.peek().kind != lx.COMMA:
                    break
                self.advance()
        self.nesting -= 1
        self.expect_close(lx.RPAREN, opener)
        if not spec.min_args <= len(args) <= spec.max_args:
            raise ExpressionError(arity_message(spec, len(args)), name.offset)
        depth = self.deeper(name.offset, *args) if args else 1
        return Call(name.offset, spec.key, tuple(args), depth=depth)


def parse_ast(source: str, base: int = 0) -> Node:
    """Parse expression text (without ``${{ }}``). Offsets are ``base`` + position."""
    return _Parser(lx.tokenize(source, base)).parse()
