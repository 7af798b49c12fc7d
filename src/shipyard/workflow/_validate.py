"""``shipyard validate``: check workflow files and composite actions without running them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from shipyard.errors import LocatedError
from shipyard.workflow._parser import check_composite_action, check_workflow, discover_workflows

__all__ = ["validate_paths"]

_ACTION_NAMES = ("action.yml", "action.yaml")


def _files_of(directory: Path) -> list[Path]:
    """A repository root's workflows, else an action folder's action.yml, else its YAML files."""
    found = discover_workflows(directory)
    if found:
        return found
    for name in _ACTION_NAMES:
        if (directory / name).is_file():
            return [directory / name]
    return sorted(p for p in directory.iterdir() if p.suffix in (".yml", ".yaml") and p.is_file())


def _check_file(path: Path) -> list[LocatedError]:
    if path.name in _ACTION_NAMES:
        return check_composite_action(path)[1]
    return check_workflow(path)[1]


def validate_paths(paths: Sequence[Path]) -> list[LocatedError]:
    """Every error in the given workflow files, action files and directories.

    A directory is a repository root (its ``.github/workflows`` and
    ``.shipyard/workflows``), an action folder (its ``action.yml``) or a folder of YAML
    files. Errors come file by file, each file's sorted by position.
    """
    errors: list[LocatedError] = []
    for path in paths:
        if path.is_dir():
            files = _files_of(path)
            if not files:
                errors.append(LocatedError(f"{path}: no workflow or action files found"))
            for file in files:
                errors.extend(_check_file(file))
        elif path.is_file():
            errors.extend(_check_file(path))
        else:
            errors.append(LocatedError(f"{path}: no such file or directory"))
    return errors
