"""The runner protocol of docs/api.md, spoken over one shared ``httpx.Client``.

Every call maps the answer to the error tree: a server that does not answer, answers
5xx or 429, or answers 2xx with a body the runner cannot read raises
:class:`~shipyard.errors.UnavailableError` (worth retrying); any other 4xx raises the
matching :class:`~shipyard.errors.RequestError` (retrying will not help). A 409 from
the log endpoint is :class:`LogOffsetError`, which carries the size the server holds.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from shipyard.errors import ConflictError, UnavailableError
from shipyard.service import raise_for_response

__all__ = [
    "Backoff",
    "BadResponseError",
    "LogOffsetError",
    "Registration",
    "RunnerApi",
]

# A claim long-polls for up to ``wait`` seconds; the read may take that much longer.
_CLAIM_SLACK = 15.0


class BadResponseError(UnavailableError):
    """A 2xx answer the runner cannot read (not JSON, fields missing or of the wrong type)."""


class LogOffsetError(ConflictError):
    """The log append started past the end of the server's log; ``size`` is that end."""

    def __init__(self, message: str, size: int) -> None:
        super().__init__(message)
        self.size = size


@dataclass(frozen=True, slots=True)
class Registration:
    """What ``POST /runners/register`` answered."""

    id: int
    token: str
    heartbeat_interval: float
    claim_wait: float


class Backoff:
    """Growing, jittered delays between retries; :meth:`wait` returns early on ``stop``."""

    def __init__(self, first: float = 0.2, limit: float = 10.0, factor: float = 2.0) -> None:
        self.first = first
        self.limit = limit
        self.factor = factor
        self.delay = first
        self.failures = 0

    def reset(self) -> None:
        self.delay = self.first
        self.failures = 0

    def next_delay(self) -> float:
        """The next delay to sleep (counting one more failure)."""
        self.failures += 1
        delay = self.delay * random.uniform(0.8, 1.2)
        self.delay = min(self.delay * self.factor, self.limit)
        return delay

    def wait(self, stop: threading.Event | None = None) -> bool:
        """Sleep the next delay; True when ``stop`` was set meanwhile."""
        delay = self.next_delay()
        if stop is None:
            threading.Event().wait(delay)
            return False
        return stop.wait(delay)


def _json(response: httpx.Response, what: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise BadResponseError(f"{what}: the server answered something that is not JSON") from None
    if not isinstance(body, dict):
        raise BadResponseError(f"{what}: the server answered {type(body).__name__}, not an object")
    return body


def _field(body: dict[str, Any], name: str, kind: type, what: str) -> Any:
    value = body.get(name)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise BadResponseError(f"{what}: the answer has no valid '{name}'")
    return value


class RunnerApi:
    """The runner's calls, relative to the API base URL (``<server>/api/v1``)."""

    def __init__(self, http: httpx.Client, api_url: str, *, timeout: float = 30.0) -> None:
        self.http = http
        self.api_url = api_url.rstrip("/")
        self.timeout = timeout

    def _send(
        self, method: str, path: str, token: str, what: str, *, timeout: float | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        try:
            response = self.http.request(
                method,
                self.api_url + path,
                headers={"Authorization": f"Bearer {token}"},
                timeout=timeout if timeout is not None else self.timeout,
                **kwargs,
            )
        except httpx.HTTPError as err:  # refused, reset, timed out, malformed answer
            raise UnavailableError(f"{what}: {self.api_url} did not answer: {err}") from None
        except RuntimeError as err:  # the client was closed: the agent is stopping
            raise UnavailableError(f"{what}: {err}") from None
        status = response.status_code
        if status >= 500 or status == 429:
            raise UnavailableError(f"{what}: HTTP {status}: {response.text.strip()[:300]}")
        raise_for_response(response, what)
        return response

    # -- the runner ----------------------------------------------------------------

    def register(
        self, token: str, *, name: str, labels: list[str], concurrency: int, executor: str,
        version: str,
    ) -> Registration:
        what = "registering the runner"
        body = {
            "name": name, "labels": labels, "concurrency": concurrency, "executor": executor,
            "version": version,
        }
        data = _json(self._send("POST", "/runners/register", token, what, json=body), what)
        interval = data.get("heartbeat_interval", 10.0)
        wait = data.get("claim_wait", 25.0)
        if not isinstance(interval, int | float) or isinstance(interval, bool) or interval <= 0:
            raise BadResponseError(f"{what}: the answer has no valid 'heartbeat_interval'")
        if not isinstance(wait, int | float) or isinstance(wait, bool) or wait < 0:
            raise BadResponseError(f"{what}: the answer has no valid 'claim_wait'")
        return Registration(
            id=_field(data, "id", int, what),
            token=_field(data, "token", str, what),
            heartbeat_interval=float(interval),
            claim_wait=float(wait),
        )

    def claim(
        self, token: str, *, wait: float, slots: int, claim_id: str | None = None,
        again: bool = False,
    ) -> dict[str, Any] | None:
        """The next assignment (unparsed), or ``None`` when none came within ``wait``.

        ``claim_id`` names the claim; ``again`` says the last try of it got no answer, so
        a job ci handed to it meanwhile comes back (see docs/api.md).
        """
        what = "claiming a job"
        body: dict[str, Any] = {"wait": wait, "slots": slots}
        if claim_id is not None:
            body.update(claim_id=claim_id, again=again)
        response = self._send(
            "POST", "/runners/claim", token, what, json=body, timeout=wait + _CLAIM_SLACK,
        )
        if response.status_code == 204 or not response.content:
            return None
        return _json(response, what)

    def drain(self, token: str, *, timeout: float | None = None) -> None:
        """Tell ci the runner stops: its pending claim ends now (204) and none gets a job."""
        self._send("POST", "/runners/drain", token, "draining the runner", json={},
                   timeout=timeout)

    def resume(self, token: str) -> None:
        """Undo a drain: the runner's claims get jobs again (an agent starting on its token)."""
        self._send("POST", "/runners/resume", token, "resuming the runner", json={})

    def heartbeat(self, token: str, job_id: int, *, timeout: float | None = None) -> bool:
        """Report the job alive; True when the server asks to cancel it."""
        what = f"heartbeat of job {job_id}"
        response = self._send("POST", f"/jobs/{job_id}/heartbeat", token, what, timeout=timeout)
        data = _json(response, what)
        return data.get("cancel") is True

    # -- one job -------------------------------------------------------------------

    def append_log(
        self, token: str, job_id: int, offset: int, data: bytes | Sequence[bytes]
    ) -> int:
        """Append ``data`` (bytes, or pieces sent one after the other without joining
        them) at ``offset``; returns the log's size after it."""
        what = f"uploading the log of job {job_id}"
        headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/octet-stream",
        }
        content: bytes | Iterator[bytes]
        if isinstance(data, bytes):
            content = data
        elif len(data) == 1:
            content = data[0]
        else:
            # A stated length: sent as it is (not chunked), each piece written uncopied.
            headers["Content-Length"] = str(sum(len(piece) for piece in data))
            content = iter(data)
        try:
            response = self.http.post(
                f"{self.api_url}/jobs/{job_id}/log",
                params={"offset": offset},
                content=content,
                headers=headers,
                timeout=max(self.timeout, 60.0),
            )
        except httpx.HTTPError as err:
            raise UnavailableError(f"{what}: {self.api_url} did not answer: {err}") from None
        except RuntimeError as err:  # the client was closed: the agent is stopping
            raise UnavailableError(f"{what}: {err}") from None
        if response.status_code == 409:
            try:
                body = response.json()
                size = body["size"]
            except (ValueError, KeyError, TypeError):
                size = None
            if isinstance(size, int) and not isinstance(size, bool) and size >= 0:
                raise LogOffsetError(f"{what}: offset {offset} is past the log's end", size)
        if response.status_code >= 500 or response.status_code == 429:
            raise UnavailableError(f"{what}: HTTP {response.status_code}")
        raise_for_response(response, what)
        size = _json(response, what).get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise BadResponseError(f"{what}: the answer has no valid 'size'")
        return size

    def update_steps(self, token: str, job_id: int, steps: list[dict[str, Any]]) -> None:
        self._send("POST", f"/jobs/{job_id}/steps", token, f"updating steps of job {job_id}",
                   json={"steps": steps})

    def complete(self, token: str, job_id: int, body: dict[str, Any]) -> None:
        """End the job; an answer that is not the job (JSON) counts as no answer."""
        what = f"completing job {job_id}"
        _json(self._send("POST", f"/jobs/{job_id}/complete", token, what, json=body), what)
