"""The one exception root of Shipyard.

::

    ShipyardError
    ├── LocatedError               an error in a user's file, with file:line:col
    │   └── ExpressionError        a bad ``${{ }}`` expression (workflow.expressions)
    ├── ValidationError            one or more LocatedErrors found in a file
    ├── WorkflowError              a workflow cannot be planned or run as written
    │   └── ActionError            a built-in or composite action failed to set up
    ├── ExecutorError              an executor cannot be used here (no bwrap, no Docker)
    ├── StoreError                 an artifact or cache store refused: name taken, entry corrupt
    ├── ConfigError                settings that cannot be used (bad file, bad value)
    ├── InfraError                 the infra engine cannot converge a stack as asked
    │   ├── ProviderError          a provider failed on the real thing (names the cause)
    │   ├── LockedError            another operation holds the state's lease (names it)
    │   └── StateError             the state is corrupt, or a saved plan is stale
    └── RequestError               a request a service refuses; carries its HTTP status
        ├── InvalidRequestError    400: the request is malformed or asks for the impossible
        ├── AuthError              401: no token, or a forged or expired one
        ├── ForbiddenError         403: the token does not allow this
        ├── NotFoundError          404: no such repository, pipeline, job, blob ...
        ├── ConflictError          409: the state does not allow it (already exists, finished)
        ├── TooLargeError          413: the body is over the limit
        └── UnavailableError       503: a service this one needs is down

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


class ConfigError(ShipyardError):
    """Settings that cannot be used: an unreadable file, a value of the wrong type."""


class InfraError(ShipyardError):
    """The infra engine cannot do what was asked with this stack and state."""


class ProviderError(InfraError):
    """A provider could not do what was asked; the message says why, for a user."""


class LockedError(InfraError):
    """Another operation holds the lease on the state; the message names the holder."""


class StateError(InfraError):
    """The state cannot be used: corrupt, truncated, or changed since a plan was made."""


class RequestError(ShipyardError):
    """A request a service refuses. ``status`` is the HTTP status it answers with."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequestError(RequestError):
    """The request is malformed or asks for something impossible."""

    status = 400


class AuthError(RequestError):
    """No token, or a forged or expired one."""

    status = 401


class ForbiddenError(RequestError):
    """The token is valid but does not allow this."""

    status = 403


class NotFoundError(RequestError):
    """What the request names does not exist."""

    status = 404


class ConflictError(RequestError):
    """The current state does not allow it: it already exists, it has finished."""

    status = 409


class TooLargeError(RequestError):
    """The request body is over the limit."""

    status = 413


class UnavailableError(RequestError):
    """A service this one needs did not answer."""

    status = 503
