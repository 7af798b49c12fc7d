"""How the CLI reaches a server: where it is, which token, and errors as one line.

The server and token come from, highest first: the ``--server``/``--token`` flags, the
``SHIPYARD_SERVER``/``SHIPYARD_TOKEN`` environment variables, then the config file
``$SHIPYARD_HOME/config.toml`` (default ``~/.shipyard/config.toml``) that
``shipyard login`` and ``shipyard up`` write::

    server = "http://127.0.0.1:8080"
    token = "sy_..."
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, NoReturn

import httpx
import typer
from rich.console import Console
from rich.markup import escape

from shipyard._userconfig import config_path, read_config, write_config
from shipyard.errors import AuthError, ShipyardError, UnavailableError
from shipyard.service import ServiceClient, raise_for_response

__all__ = [
    "DEFAULT_SERVER",
    "JsonOpt",
    "Remote",
    "ServerOpt",
    "ServerUnreachableError",
    "TokenOpt",
    "config_path",
    "connect",
    "print_json",
    "read_config",
    "reporting_errors",
    "write_config",
]

DEFAULT_SERVER = "http://127.0.0.1:8080"

ServerOpt = Annotated[
    str | None,
    typer.Option("--server", help="The server's URL (default: SHIPYARD_SERVER, then the config file).",
                 show_default=False),
]
TokenOpt = Annotated[
    str | None,
    typer.Option("--token", help="The token to use (default: SHIPYARD_TOKEN, then the config file).",
                  show_default=False),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the server's answer as JSON.")]

err_console = Console(stderr=True, highlight=False)


class ServerUnreachableError(UnavailableError):
    """Nothing answers at the server's URL."""


@dataclass(frozen=True)
class Target:
    """The server to talk to and the token to show it."""

    server: str
    token: str | None


def resolve(server: str | None, token: str | None) -> Target:
    """Flags, then environment, then the config file, then the local default."""
    config: dict[str, Any] | None = None

    def from_config(key: str) -> str | None:
        nonlocal config
        if config is None:
            config = read_config()
        value = config.get(key)
        return str(value) if value else None

    chosen_server = server or os.environ.get("SHIPYARD_SERVER") or from_config("server") or DEFAULT_SERVER
    chosen_token = token or os.environ.get("SHIPYARD_TOKEN") or from_config("token")
    return Target(chosen_server.rstrip("/"), chosen_token)


class Remote(ServiceClient):
    """The server's ``/api/v1``: a :class:`ServiceClient` that says plainly when no
    server answers, and can stream."""

    def __init__(self, target: Target, *, timeout: float = 30.0) -> None:
        super().__init__(f"{target.server}/api/v1", target.token, timeout=timeout)
        self.target = target
        self.server = target.server

    def transport_failed(self, err: httpx.TransportError) -> NoReturn:
        if isinstance(err, httpx.ConnectError | httpx.ConnectTimeout):
            raise ServerUnreachableError(
                f"the Shipyard server is not reachable at {self.server} ({type(err).__name__}); "
                "start one with `shipyard up`, or point --server or SHIPYARD_SERVER at it"
            ) from None
        raise UnavailableError(f"{self.server} did not answer: {err}") from None

    def delete(self, path: str, **kwargs: Any) -> None:
        self.request("DELETE", path, **kwargs)

    @contextlib.contextmanager
    def stream(self, path: str, **kwargs: Any) -> Iterator[httpx.Response]:
        """A streamed GET (no read timeout): the response, its status already checked."""
        try:
            with self.http.stream("GET", path, timeout=httpx.Timeout(30.0, read=None),
                                         **kwargs) as response:
                if response.status_code >= 400:
                    response.read()
                    raise_for_response(response)
                yield response
        except httpx.TransportError as err:
            self.transport_failed(err)


@contextlib.contextmanager
def connect(server: str | None, token: str | None) -> Iterator[Remote]:
    """A :class:`Remote` for the resolved server; errors become one line and exit 1."""
    with reporting_errors():
        remote = Remote(resolve(server, token))
        try:
            yield remote
        finally:
            remote.close()


def fail(message: str, *, code: int = 1) -> NoReturn:
    err_console.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code)


@contextlib.contextmanager
def reporting_errors() -> Iterator[None]:
    """Print a :class:`ShipyardError` as its message and exit 1; Ctrl-C exits 130."""
    try:
        yield
    except AuthError as err:
        fail(f"{err} (log in with `shipyard login --server URL --token TOKEN`)")
    except ShipyardError as err:
        fail(str(err))
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def print_json(data: Any) -> None:
    """JSON on stdout, for scripts."""
    print(json.dumps(data, indent=2, sort_keys=False))
