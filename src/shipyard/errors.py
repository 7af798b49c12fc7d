"""The one exception root of Shipyard.

::

    ShipyardError
    ├── LocatedError               an error in a user's file, with file:line:col
    │   └── ExpressionError        a bad ``${{ }}`` expression (workflow.expressions)
    ├── ValidationError            one or more LocatedErrors found in a file
    ├── WorkflowError              a workflow cannot be planned or run as written
    │   └── ActionError            a built-in or composite action failed to set up
    ├── ExecutorError              an executor cannot be used here (no bwrap, no Docker)
    └── StoreError                 an artifact or cache store refused: name taken, entry corrupt

Services map this tree to HTTP statuses in one handler; the CLI prints the message
(never a traceback) and exits non-zero.
"""

from __future__ import annotations

from dataclasses import dataclass


class ShipyardError(Exception):
    """Root of every error Shipyard raises on purpose."""


@dataclass(frozen=True, slots=True)
class Location:
    """A place in a user's file. ``line`` and ``col`` are 1-based."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


class LocatedError(ShipyardError):
    """An error a user can fix at one place in a file."""

    def __init__(self, message: str, location: Location | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.location = location

    def __str__(self) -> str:
        if self.location is None:
            return self.message
        return f"{self.location}: {self.message}"


class ValidationError(ShipyardError):
    """All the errors found in one or more files, in file order."""

    def __init__(self, errors: list[LocatedError]) -> None:
        super().__init__("\n".join(str(e) for e in errors))
        self.errors = errors


class WorkflowError(ShipyardError):
    """A workflow cannot be planned or run as written."""


class ActionError(WorkflowError):
    """An action (built-in or composite) could not be set up or failed its inputs."""


class ExecutorError(ShipyardError):
    """The requested executor cannot run here."""


class StoreError(ShipyardError):
    """A store cannot do what was asked: a name taken, an entry missing or corrupt."""
