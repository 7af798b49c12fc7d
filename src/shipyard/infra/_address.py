"""Addresses: how one resource instance (or module) of a stack is named.

::

    web                  a resource
    web[0]               instance 0 of a resource with count
    web["a"]             instance "a" of a resource with for_each (JSON string)
    modules.api          a module
    modules.api.web      resource web inside module api
    modules.api[0].web["a"]

Keys are written in double quotes with JSON escapes; :func:`parse_address` also
accepts single quotes (``web['a']``, as in expressions, ``''`` for a quote), and
:func:`format_address` always writes the canonical double-quoted form, so a parsed and
formatted address reads the same everywhere (state, plans, the CLI).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

__all__ = ["Address", "Key", "format_address", "parse_address"]

# An instance key: a count index, a for_each key, or None for a single instance.
Key = int | str | None

_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_DIGITS: Final = re.compile(r"[0-9]+")
_DECODER: Final = json.JSONDecoder()


@dataclass(frozen=True, slots=True)
class Address:
    """A parsed address.

    ``module`` is the path of module instances from the root stack, outermost first,
    each ``(name, key)``. ``name``/``key`` name the resource instance in that module;
    ``name`` is None when the address names a module (instance) itself, whose key is
    then the last step of ``module``.
    """

    name: str | None
    key: Key = None
    module: tuple[tuple[str, Key], ...] = ()

    @property
    def is_module(self) -> bool:
        return self.name is None

    def __str__(self) -> str:
        return format_address(self.name, self.key, self.module)


def _key_text(key: Key) -> str:
    if key is None:
        return ""
    if isinstance(key, int):
        return f"[{key}]"
    return "[" + json.dumps(key, ensure_ascii=False) + "]"


def format_address(
    name: str | None, key: Key = None, module: Sequence[tuple[str, Key]] = ()
) -> str:
    """``format_address("web", "a", [("api", 0)])`` -> ``modules.api[0].web["a"]``.

    With ``name`` None the address is the module path itself (``modules.api[0]``).
    """
    parts = [f"modules.{m}{_key_text(k)}" for m, k in module]
    if name is not None:
        parts.append(name + _key_text(key))
    return ".".join(parts)


def parse_address(text: str) -> Address:
    """Read an address; raises ValueError saying what is wrong and where."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("an address cannot be empty")
    return _Parser(text).parse()


class _Parser:
    __slots__ = ("pos", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, what: str) -> ValueError:
        hint = ""
        if self.text.startswith("module."):
            hint = " (modules are written modules.NAME)"
        shown = self.text if len(self.text) <= 80 else self.text[:77] + "..."
        return ValueError(f"invalid address {shown!r}: {what} at column {self.pos + 1}{hint}")

    def parse(self) -> Address:
        module: list[tuple[str, Key]] = []
        while True:
            name = self.name()
            if name == "modules":
                if not self.text.startswith(".", self.pos):
                    raise self.fail("expected '.NAME' after 'modules'")
                self.pos += 1
                module_name = self.name()
                module.append((module_name, self.key()))
                if self.pos == len(self.text):
                    return Address(None, None, tuple(module))
            else:
                key = self.key()
                if self.pos != len(self.text):
                    raise self.fail(f"unexpected {self.text[self.pos]!r} after the resource")
                return Address(name, key, tuple(module))
            if not self.text.startswith(".", self.pos):
                raise self.fail(f"expected '.' after the module, found {self.text[self.pos]!r}")
            self.pos += 1

    def name(self) -> str:
        match = _NAME.match(self.text, self.pos)
        if match is None:
            found = self.text[self.pos] if self.pos < len(self.text) else "the end"
            raise self.fail(
                f"expected a name, found {found!r}" if found != "the end" else "expected a name"
            )
        self.pos = match.end()
        return match.group()

    def key(self) -> Key:
        text = self.text
        if not text.startswith("[", self.pos):
            return None
        self.pos += 1
        key: Key
        digits = _DIGITS.match(text, self.pos)
        if digits is not None:
            key = int(digits.group())
            self.pos = digits.end()
        elif text.startswith('"', self.pos):
            try:
                value, end = _DECODER.raw_decode(text, self.pos)
            except ValueError:
                raise self.fail('unterminated or invalid "key"') from None
            assert isinstance(value, str)
            key = value
            self.pos = end
        elif text.startswith("'", self.pos):
            key = self.single_quoted()
        else:
            raise self.fail('expected a number or a "key" inside [ ]')
        if not text.startswith("]", self.pos):
            raise self.fail("expected ']'")
        self.pos += 1
        return key

    def single_quoted(self) -> str:
        text = self.text
        i = self.pos + 1
        chunks: list[str] = []
        while True:
            quote = text.find("'", i)
            if quote < 0:
                raise self.fail("unterminated 'key'")
            chunks.append(text[i:quote])
            if text.startswith("''", quote):
                chunks.append("'")
                i = quote + 2
                continue
            self.pos = quote + 1
            return "".join(chunks)
