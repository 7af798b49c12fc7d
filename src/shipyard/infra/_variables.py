"""Root variable values from the command line, variable files and the environment.

Precedence, lowest first (as Terraform): ``SHIPYARD_VAR_<name>`` environment
variables, then ``--var-file`` files in the order given, then ``-var name=value``
options in the order given. Strings from the command line and the environment are read
as the variable's declared type (``-var port=8080`` is the integer 8080 for an
``integer`` variable); values in files keep their YAML/JSON types.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from shipyard.errors import InfraError
from shipyard.infra._model import Stack
from shipyard.infra._types import parse_type
from shipyard.workflow._schema import did_you_mean

__all__ = ["ENV_PREFIX", "parse_variables"]

ENV_PREFIX: Final = "SHIPYARD_VAR_"


def _coerce(stack: Stack, name: str, text: str, source: str) -> Any:
    decl = stack.variables.get(name)
    if decl is None:
        declared = sorted(stack.variables)
        hint = did_you_mean(name, declared)
        raise InfraError(
            f"{source}: the stack has no variable '{name}'{hint}"
            f" (declared: {', '.join(declared) or 'none'})"
        )
    try:
        return parse_type(decl.type).coerce_cli(text)
    except ValueError as err:
        raise InfraError(f"{source}: variable '{name}': {err}") from None


def _read_file(path: Path) -> dict[str, Any]:
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise InfraError(f"--var-file {path}: {err.strerror or err}") from None
    try:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        data = yaml.load(text, Loader=loader)
    except yaml.YAMLError as err:
        raise InfraError(f"--var-file {path}: not YAML or JSON: {err}") from None
    if data is None:
        return {}
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise InfraError(f"--var-file {path}: expected a mapping of variable names to values")
    return data


def parse_variables(
    stack: Stack,
    assignments: Sequence[str] = (),
    files: Sequence[Path] = (),
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The root variables' values from ``-var`` texts, files and the environment."""
    values: dict[str, Any] = {}
    for key, text in (environ or {}).items():
        if key.startswith(ENV_PREFIX) and key[len(ENV_PREFIX):] in stack.variables:
            name = key[len(ENV_PREFIX):]
            values[name] = _coerce(stack, name, text, key)
    for path in files:
        for name, value in _read_file(path).items():
            if name not in stack.variables:
                hint = did_you_mean(name, stack.variables)
                raise InfraError(f"--var-file {path}: the stack has no variable '{name}'{hint}")
            values[name] = value
    for item in assignments:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise InfraError(f"-var expects NAME=VALUE, got {item!r}")
        values[name] = _coerce(stack, name, text, f"-var {name}")
    return values
