"""A client of the store for runners and other services: :class:`StoreClient`.

Blobs are streamed both ways (never held whole in memory) and checked: an upload is
hashed first and skipped when the store already has those bytes; a download goes to a
temporary file, is hashed as it arrives, and is renamed into place only when it matches.

Paths are relative to ``base_url``, which may be the store itself
(``http://127.0.0.1:8082``) or the gateway's API prefix
(``http://127.0.0.1:8080/api/v1``). Errors the store answers with are raised as the
matching :class:`~shipyard.errors.RequestError`; a store that does not answer is
:class:`~shipyard.errors.UnavailableError`; bytes that do not match their digest are
:class:`~shipyard.errors.StoreError`.

With ``retry_delays`` (a runner's client: 1, 2, 4 and 8 seconds), a request the store
did not answer, or answered 5xx/429 (a store restarting), is sent again after each
delay before :class:`~shipyard.errors.UnavailableError` is raised. Every request is safe
to repeat: blobs are put by digest, logs replaced whole, and an artifact whose first
recording was answered by nothing is found recorded, not refused as a duplicate.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import random
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import httpx

from shipyard.errors import ConflictError, NotFoundError, StoreError, UnavailableError
from shipyard.service import raise_for_response
from shipyard.store._blobs import CHUNK
from shipyard.store._models import ArtifactOut, CacheEntryOut, LogOut

__all__ = ["RUNNER_RETRY_DELAYS", "StoreClient", "file_digest"]

log = logging.getLogger("shipyard.store")

_PAGE = 500
RUNNER_RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0)


def file_digest(path: Path) -> tuple[str, int]:
    """The sha256 (hex) and size of a file, read in chunks."""
    with open(path, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
        return digest, f.tell()


def _chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk


class StoreClient:
    """The store's API for one token. ``http`` is an existing client to share (its
    base URL is not used: every request names its full URL)."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        http: httpx.Client | None = None,
        timeout: float = 300.0,
        retry_delays: Sequence[float] = (),
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retry_delays = tuple(retry_delays)
        self.retries = 0  # requests sent again so far
        self._owns_http = http is None
        self.http = http if http is not None else httpx.Client(
            timeout=httpx.Timeout(timeout, connect=10.0)
        )
        self._headers = {"Authorization": f"Bearer {token}"}

    def url(self, path: str) -> str:
        """The full URL of an API path such as ``blobs/<digest>``."""
        return f"{self.base_url}/{path.lstrip('/')}"

    def _again(self, err: UnavailableError, tries: int) -> bool:
        """After failed try number ``tries``: wait and say True, or False when no tries
        are left."""
        if tries > len(self.retry_delays):
            return False
        wait = self.retry_delays[tries - 1] * random.uniform(0.8, 1.2)
        log.warning("%s; trying again in %.1f s", err, wait)
        self.retries += 1
        time.sleep(wait)
        return True

    def _send(self, method: str, path: str, what: str = "", *, stream: bool = False,
              body: Callable[[], Any] | None = None, **kwargs: Any) -> httpx.Response:
        """One request, sent again after ``retry_delays`` while the store is unavailable
        (``body`` makes the content afresh for each try). ``stream``: the answer's body is
        left unread (the caller closes the response)."""
        headers = {**self._headers, **kwargs.pop("headers", {})}
        tries = 0
        while True:
            tries += 1
            if body is not None:
                kwargs["content"] = body()
            request = self.http.build_request(method, self.url(path), headers=headers, **kwargs)
            try:
                try:
                    response = self.http.send(request, stream=stream)
                except httpx.TransportError as err:
                    raise UnavailableError(
                        f"the store at {self.base_url} did not answer: {err}") from None
                if response.status_code >= 400:
                    response.read()
                    response.close()
                    raise_for_response(response, what)
                return response
            except UnavailableError as err:
                if not self._again(err, tries):
                    raise

    @contextlib.contextmanager
    def _stream(self, path: str, what: str, headers: dict[str, str] | None = None) -> Iterator[httpx.Response]:
        """A streamed GET (tried again, like any request, until its answer starts)."""
        response = self._send("GET", path, what, stream=True, headers=headers or {})
        try:
            yield response
        except httpx.TransportError as err:
            raise UnavailableError(f"the store at {self.base_url} did not answer: {err}") from None
        finally:
            response.close()

    # -- blobs -------------------------------------------------------------------------

    def blob_size(self, digest: str) -> int | None:
        """The size of a stored blob; None when the store does not have it."""
        try:
            response = self._send("HEAD", f"blobs/{digest}", f"blob {digest}")
        except NotFoundError:
            return None
        return int(response.headers["content-length"])

    def put_blob(self, path: Path, *, digest: str | None = None, force: bool = False) -> tuple[str, int]:
        """Upload a file as a blob; its (digest, size).

        The file is hashed first (unless ``digest`` is given) and not sent when the
        store already has it (unless ``force``).
        """
        path = Path(path)
        if digest is None:
            digest, size = file_digest(path)
        else:
            size = path.stat().st_size
        if not force and self.blob_size(digest) == size:
            return digest, size
        self._send(
            "PUT", f"blobs/{digest}", f"uploading {path.name}",
            body=lambda: _chunks(path),
            headers={"content-type": "application/octet-stream", "content-length": str(size)},
        )  # fmt: skip
        return digest, size

    def download_blob(self, digest: str, out: IO[bytes]) -> int:
        """Write blob ``digest`` to ``out``; its size. :class:`StoreError` when the bytes
        received are not the blob's (``out`` then holds them all the same)."""
        hasher = hashlib.sha256()
        size = 0
        with self._stream(f"blobs/{digest}", f"blob {digest}") as response:
            try:
                for chunk in response.iter_bytes(CHUNK):
                    hasher.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
            except httpx.TransportError as err:
                raise StoreError(
                    f"the download of blob {digest} was cut short after {size} bytes ({err}); "
                    "the store cuts a blob it finds corrupt"
                ) from None
        if hasher.hexdigest() != digest:
            raise StoreError(f"blob {digest} arrived corrupt: its bytes hash to {hasher.hexdigest()}")
        return size

    def get_blob(self, digest: str, dest_path: Path) -> int:
        """Download blob ``digest`` to ``dest_path`` (complete and checked, or not at all)."""
        dest_path = Path(dest_path)
        fd, name = tempfile.mkstemp(dir=dest_path.parent, prefix=f".{dest_path.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as f:
                size = self.download_blob(digest, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(name, dest_path)
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise
        return size

    # -- artifacts ---------------------------------------------------------------------

    def create_artifact(
        self,
        pipeline_id: int,
        name: str,
        digest: str,
        size: int,
        files: Sequence[str] = (),
        *,
        retention_days: int | None = None,
        overwrite: bool = False,
    ) -> ArtifactOut:
        """Record an uploaded blob as artifact ``name`` of a pipeline."""
        body: dict[str, Any] = {
            "pipeline_id": pipeline_id, "name": name, "digest": digest, "size": size,
            "files": list(files), "overwrite": overwrite,
        }  # fmt: skip
        if retention_days is not None:
            body["retention_days"] = retention_days
        retries = self.retries
        try:
            response = self._send("POST", "artifacts", f"artifact {name!r}", json=body)
        except ConflictError:
            # A try whose answer was lost may have recorded it: that is no duplicate.
            found = self.get_artifact(pipeline_id, name) if self.retries > retries else None
            if found is None or found.digest != digest or found.size != size:
                raise
            return found
        return ArtifactOut.model_validate(response.json())

    def list_artifacts(self, pipeline_id: int) -> list[ArtifactOut]:
        """Every unexpired artifact of a pipeline, oldest first."""
        found: list[ArtifactOut] = []
        after = 0
        while True:
            params: dict[str, Any] = {"pipeline_id": pipeline_id, "limit": _PAGE, "after": after}
            page = self._send("GET", "artifacts", params=params).json()
            found.extend(ArtifactOut.model_validate(a) for a in page)
            if len(page) < _PAGE:
                return found
            after = found[-1].id

    def get_artifact(self, pipeline_id: int, name: str) -> ArtifactOut | None:
        """Artifact ``name`` of a pipeline; None when there is none."""
        try:
            response = self._send("GET", f"artifacts/{pipeline_id}/{_quote(name)}")
        except NotFoundError:
            return None
        return ArtifactOut.model_validate(response.json())

    def delete_artifact(self, pipeline_id: int, name: str) -> bool:
        """Delete an artifact; false when there was none."""
        try:
            self._send("DELETE", f"artifacts/{pipeline_id}/{_quote(name)}")
        except NotFoundError:
            return False
        return True

    # -- caches ------------------------------------------------------------------------

    def lookup_cache(
        self, repo: str, key: str, restore_keys: Sequence[str], version: str
    ) -> CacheEntryOut | None:
        """The entry to restore by GitHub's rule (marked used); None when none matches."""
        params = {"repo": repo, "key": key, "version": version, "restore_keys": list(restore_keys)}
        response = self._send("GET", "caches/lookup", f"cache lookup of {key!r}", params=params)
        if response.status_code == 204:
            return None
        return CacheEntryOut.model_validate(response.json())

    def save_cache(self, repo: str, key: str, version: str, digest: str, size: int) -> CacheEntryOut:
        """Record an uploaded blob as a cache entry (:class:`ConflictError` when it exists)."""
        body = {"repo": repo, "key": key, "version": version, "digest": digest, "size": size}
        response = self._send("POST", "caches", f"cache {key!r}", json=body)
        return CacheEntryOut.model_validate(response.json())

    def list_caches(self, repo: str | None = None) -> list[CacheEntryOut]:
        """Every cache entry (of ``repo``, or of all), newest first."""
        found: list[CacheEntryOut] = []
        params: dict[str, Any] = {"limit": _PAGE}
        if repo is not None:
            params["repo"] = repo
        while True:
            page = self._send("GET", "caches", params=params).json()
            found.extend(CacheEntryOut.model_validate(c) for c in page)
            if len(page) < _PAGE:
                return found
            params["before"] = found[-1].id

    def delete_cache(self, entry_id: int) -> bool:
        """Delete a cache entry; false when there was none."""
        try:
            self._send("DELETE", f"caches/{entry_id}")
        except NotFoundError:
            return False
        return True

    # -- logs --------------------------------------------------------------------------

    def put_log(self, job_id: int, path: Path) -> LogOut:
        """Store a job's whole log from a file (replacing an earlier one)."""
        size = Path(path).stat().st_size
        response = self._send(
            "PUT", f"logs/{job_id}", f"log of job {job_id}",
            body=lambda: _chunks(Path(path)),
            headers={"content-type": "text/plain; charset=utf-8", "content-length": str(size)},
        )  # fmt: skip
        return LogOut.model_validate(response.json())

    def get_log(self, job_id: int, *, start: int = 0, end: int | None = None) -> bytes:
        """A job's log, or bytes ``start`` to ``end`` (included) of it."""
        headers = {}
        if start or end is not None:
            headers["range"] = f"bytes={start}-{'' if end is None else end}"
        try:
            response = self.http.get(self.url(f"logs/{job_id}"), headers={**self._headers, **headers})
        except httpx.TransportError as err:
            raise UnavailableError(f"the store at {self.base_url} did not answer: {err}") from None
        if response.status_code == 416 and start > 0:
            return b""  # nothing from ``start`` on: the log is shorter
        raise_for_response(response, f"log of job {job_id}")
        return response.content

    def close(self) -> None:
        """Close the HTTP client, when this client made it."""
        if self._owns_http:
            self.http.close()

    def __enter__(self) -> StoreClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _quote(name: str) -> str:
    return quote(name, safe="")
