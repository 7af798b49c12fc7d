"""``shipyard infra``'s fast path: a plain command line parsed without Typer's pydantic.

Typer checks every option's value with a pydantic TypeAdapter: importing pydantic and
building the adapters take about 70 ms, a third of applying a thousand resources. The
infra commands take strings, paths, numbers, flags and lists of those, so a plain, valid
use of one is parsed here from the commands' own declarations and its function called
directly; anything else goes to Typer (see :func:`main`).
"""

from __future__ import annotations

import re
import sys
import types
import typing
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import typer
from typer.models import ArgumentInfo, OptionInfo

from shipyard.cli._infra import infra_app

__all__ = ["main", "parse_fast"]

def main(argv: Sequence[str]) -> None:
    """Run ``shipyard infra ARGV`` (what the ``shipyard`` entry point does for ``infra``).

    Typer checks every option's value with a pydantic TypeAdapter: importing pydantic
    and building the adapters take about 70 ms, a third of applying a thousand
    resources. The commands here take strings, paths, numbers, flags and lists of
    those, so a plain, valid use of one is parsed by :func:`parse_fast` from the same
    declarations and its function called directly. Anything else (help, a mistake, an
    option spelled in a way not read there, a ``state`` command) goes to Typer, which
    parses it as usual and prints its usual messages.
    """
    parsed = parse_fast(argv)
    if parsed is None:
        infra_app(args=list(argv), prog_name="shipyard infra")
        return
    function, values = parsed
    try:
        function(**values)
    except typer.Exit as done:
        sys.exit(done.exit_code)


_VALUE = object()  # an option that takes a value (not a flag)
_INTEGER = re.compile(r"[+-]?\d+")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _path(text: str) -> Path:
    if not text:
        raise ValueError("an empty path")
    return Path(text)


def _integer(text: str) -> int:
    if not _INTEGER.fullmatch(text):
        raise ValueError(text)
    return int(text)


def _number(text: str) -> float:
    if not _NUMBER.fullmatch(text):
        raise ValueError(text)
    return float(text)


_CONVERT: dict[Any, Callable[[str], Any]] = {str: str, Path: _path, int: _integer, float: _number}


class _Param:
    """One parameter of a command function, as the fast path reads it."""

    def __init__(self, name: str, convert: Callable[[str], Any], many: bool, minimum: float | None) -> None:
        self.name = name
        self.convert = convert
        self.many = many
        self.minimum = minimum


_Spec = tuple[dict[str, tuple[_Param, Any]], list[_Param], dict[str, Any]]


@cache
def _spec(function: Callable[..., Any]) -> _Spec | None:
    """The options (each spelling to its parameter and, for a flag, the value it
    sets), the positional arguments and the defaults (``...``: required) of a command
    function, read as Typer reads them; None if a parameter is of a kind the fast path
    does not read."""
    from typer.utils import get_params_from_function

    options: dict[str, tuple[_Param, Any]] = {}
    arguments: list[_Param] = []
    defaults: dict[str, Any] = {}
    for name, meta in get_params_from_function(function).items():
        info, base = meta.default, meta.annotation
        if isinstance(base, types.UnionType) and type(None) in typing.get_args(base):
            (base,) = [t for t in typing.get_args(base) if t is not type(None)]
        many = typing.get_origin(base) is list
        if many:
            (base,) = typing.get_args(base)
        if not isinstance(info, (OptionInfo, ArgumentInfo)) or any((
            info.callback, info.envvar, info.parser, info.is_eager, info.default_factory,
            info.max is not None, getattr(info, "prompt", False), getattr(info, "count", False),
        )):
            return None
        defaults[name] = info.default
        decls = info.param_decls or ()
        if base is bool:
            # A flag without its "--no-x" spelling sets True (Click flips one whose
            # default is True: not read here).
            if many or not isinstance(info, OptionInfo) or not decls or (
                info.default is not False and not any("/" in d for d in decls)
            ):
                return None
            flag = _Param(name, str, False, None)
            for decl in decls:
                on, _, off = decl.partition("/")
                options[on.strip()] = (flag, True)
                if off:
                    options[off.strip()] = (flag, False)
            continue
        convert = _CONVERT.get(base)
        if convert is None:
            return None
        param = _Param(name, convert, many, info.min)
        if isinstance(info, ArgumentInfo):
            arguments.append(param)
        elif not decls:
            return None
        else:
            options.update(dict.fromkeys(decls, (param, _VALUE)))
    return options, arguments, defaults


def parse_fast(argv: Sequence[str]) -> tuple[Callable[..., Any], dict[str, Any]] | None:
    """The command function ``argv`` names and the values Typer would call it with,
    when ``argv`` is a plain, valid use of it; None otherwise (Typer then takes over).

    Read: options by any of their declared spellings (``--name=value`` too), flags,
    repeated list options, positional arguments in order. Anything else returns None:
    ``--help``, an unknown or incomplete option, a value that does not convert or is
    out of range, grouped short options, ``--``, a sub-group (``state``).
    """
    if not argv:
        return None
    function = next((
        info.callback for info in infra_app.registered_commands
        if info.callback is not None
        and (info.name or info.callback.__name__.lower().replace("_", "-")) == argv[0]
    ), None)
    spec = _spec(function) if function is not None else None
    if function is None or spec is None:
        return None
    options, arguments, defaults = spec
    values = dict(defaults)
    lists: dict[str, list[Any]] = {}
    rest = list(argv[1:])
    given = 0
    while rest:
        token = rest.pop(0)
        if token.startswith("-") and token != "-":
            spelling, equals, text = token.partition("=") if token.startswith("--") else (token, "", "")
            found = options.get(spelling)
            if found is None:
                return None
            param, flag = found
            if flag is not _VALUE:
                if equals:
                    return None
                values[param.name] = flag
                continue
            if not equals:
                if not rest:
                    return None
                text = rest.pop(0)
        elif given < len(arguments):
            param, text = arguments[given], token
            given += 1
        else:
            return None
        try:
            value = param.convert(text)
        except ValueError:
            return None
        if param.minimum is not None and value < param.minimum:
            return None
        if param.many:
            lists.setdefault(param.name, []).append(value)
        else:
            values[param.name] = value
    values.update(lists)
    if any(value is ... for value in values.values()):
        return None  # a required argument is missing
    return function, values
