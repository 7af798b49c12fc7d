"""Turn expression text into tokens."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Final

from ._errors import ExpressionError
from ._values import parse_number

__all__ = ["MAX_LENGTH", "Token", "describe", "tokenize"]

# GitHub refuses expressions longer than this.
MAX_LENGTH: Final = 21000

# Token kinds.
LPAREN: Final = "("
RPAREN: Final = ")"
LBRACKET: Final = "["
RBRACKET: Final = "]"
COMMA: Final = ","
DOT: Final = "."
STAR: Final = "*"
OP: Final = "op"  # ! != == < <= > >= && ||
STRING: Final = "string"
NUMBER: Final = "number"
IDENT: Final = "ident"
END: Final = "end"


@dataclass(frozen=True, slots=True)
class Token:
    kind: str
    text: str  # the source text of the token
    offset: int  # absolute offset (base + position in the text)
    value: Any = None  # the value of a string or number literal


_PUNCTUATION: Final = {
    "(": LPAREN,
    ")": RPAREN,
    "[": LBRACKET,
    "]": RBRACKET,
    ",": COMMA,
    "*": STAR,
}
# Characters that end a number or a word.
_BOUNDARY: Final = frozenset("()[],.!><=&|")
_IDENT_START: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_IDENT: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_SPACE: Final = re.compile(r"\s*")
# After these, a '.' starts a number (".5") rather than a property dereference.
_VALUE_START_CONTEXT: Final = frozenset({LPAREN, LBRACKET, COMMA, OP})
_INTEGER_TEXT: Final = frozenset("0123456789+-")


def describe(token: Token) -> str:
    """How an error message names a token."""
    if token.kind == END:
        return "end of expression"
    text = token.text if len(token.text) <= 30 else token.text[:27] + "..."
    return f"token {text!r}"


def _number_value(text: str) -> float | int | None:
    number = parse_number(text)
    if number != number:
        return None
    if number == 0 and text.startswith("-"):
        return -0.0
    if (
        math.isfinite(number)
        and abs(number) < 9_007_199_254_740_992
        and number == int(number)
        and (set(text) <= _INTEGER_TEXT or text.startswith(("0x", "0o")))
    ):
        return int(number)
    return number


def tokenize(source: str, base: int = 0) -> list[Token]:
    """Split ``source`` into tokens, ending with an END token.

    Offsets are ``base`` plus the position in ``source``. Raises ExpressionError.
    """
    if len(source) > MAX_LENGTH:
        raise ExpressionError(
            f"expression is too long ({len(source)} characters, the maximum is {MAX_LENGTH})",
            base,
        )
    tokens: list[Token] = []
    append = tokens.append
    n = len(source)
    i = 0
    last: str | None = None
    skip_space = _SPACE.match
    ident_end = _IDENT.match
    while True:
        i = skip_space(source, i).end()  # type: ignore[union-attr]
        if i >= n:
            append(Token(END, "", base + n))
            return tokens
        c = source[i]
        start = i
        kind = _PUNCTUATION.get(c)
        if kind is not None:
            append(Token(kind, c, base + i))
            i += 1
        elif c == "'":
            i += 1
            chunks: list[str] = []
            while True:
                quote = source.find("'", i)
                if quote < 0:
                    raise ExpressionError("unterminated string", base + start)
                chunks.append(source[i:quote])
                if quote + 1 < n and source[quote + 1] == "'":
                    chunks.append("'")
                    i = quote + 2
                    continue
                i = quote + 1
                break
            append(Token(STRING, source[start:i], base + start, "".join(chunks)))
        elif c in "!<>=&|":
            pair = source[i : i + 2]
            if pair in ("!=", "==", "<=", ">=", "&&", "||"):
                append(Token(OP, pair, base + i))
                i += 2
            elif c in "!<>":
                append(Token(OP, c, base + i))
                i += 1
            else:
                raise ExpressionError(
                    f"unexpected character {c!r} (did you mean {c * 2!r}?)", base + i
                )
        elif c == "." and last not in _VALUE_START_CONTEXT and last is not None:
            append(Token(DOT, c, base + i))
            i += 1
        elif c in "+-.0123456789":
            i += 1
            while i < n and (
                source[i] == "." or not (source[i] in _BOUNDARY or source[i].isspace())
            ):
                i += 1
            text = source[start:i]
            value = _number_value(text)
            if value is None:
                raise ExpressionError(f"invalid number {text!r}", base + start)
            append(Token(NUMBER, text, base + start, value))
        elif c in _IDENT_START:
            i = ident_end(source, i).end()  # type: ignore[union-attr]
            if i < n and not (source[i] in _BOUNDARY or source[i].isspace()):
                raise ExpressionError(f"unexpected character {source[i]!r}", base + i)
            append(Token(IDENT, source[start:i], base + start))
        else:
            raise ExpressionError(f"unexpected character {c!r}", base + i)
        last = tokens[-1].kind
