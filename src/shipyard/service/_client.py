"""HTTP clients for one service to call another (and for the CLI and runners).

Errors come back as the same :class:`~shipyard.errors.RequestError` subclasses the
server raised, carrying the server's message, so a caller handles a 404 from another
service exactly like one of its own; a service that does not answer is
:class:`~shipyard.errors.UnavailableError`.
"""

from __future__ import annotations

from typing import Any, NoReturn

import httpx

from shipyard.errors import (
    AuthError,
    ConflictError,
    ForbiddenError,
    InvalidRequestError,
    NotFoundError,
    RequestError,
    TooLargeError,
    UnavailableError,
)

__all__ = ["ServiceClient", "raise_for_response"]

_BY_STATUS: dict[int, type[RequestError]] = {
    400: InvalidRequestError,
    401: AuthError,
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
    413: TooLargeError,
    422: InvalidRequestError,
    503: UnavailableError,
}


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500] or response.reason_phrase
    if isinstance(body, dict):
        for key in ("error", "detail", "message"):
            if key in body:
                return str(body[key])
    return str(body)[:500]


def raise_for_response(response: httpx.Response, what: str = "") -> None:
    """Raise the :class:`RequestError` matching a 4xx/5xx response (read it first)."""
    if response.status_code < 400:
        return
    message = _message(response)
    if what:
        message = f"{what}: {message}"
    cls = _BY_STATUS.get(response.status_code)
    if cls is None:
        cls = UnavailableError if response.status_code >= 500 else InvalidRequestError
        message = f"{message} (HTTP {response.status_code})"
    raise cls(message)


class ServiceClient:
    """A JSON client for one service's base URL, holding a token."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=timeout, transport=transport
        )

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TransportError as err:
            self.transport_failed(err)
        raise_for_response(response)
        return response

    def transport_failed(self, err: httpx.TransportError) -> NoReturn:
        """Raise the error for a request that got no answer (subclasses word it)."""
        raise UnavailableError(f"{self.base_url} did not answer: {err}") from None

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs).json()

    def post(self, path: str, json: Any = None, **kwargs: Any) -> Any:
        response = self.request("POST", path, json=json, **kwargs)
        return response.json() if response.content else None

    def put(self, path: str, json: Any = None, **kwargs: Any) -> Any:
        response = self.request("PUT", path, json=json, **kwargs)
        return response.json() if response.content else None

    def delete(self, path: str, **kwargs: Any) -> Any:
        response = self.request("DELETE", path, **kwargs)
        return response.json() if response.content else None

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> ServiceClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
