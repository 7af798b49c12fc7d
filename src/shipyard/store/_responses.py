"""Serving blob bytes: ``Range`` headers, and a response that checks what it sends.

:class:`BlobResponse` streams a blob (or one range of it) a chunk at a time from a
worker thread. A whole-blob response is hashed as it goes and the last chunk is held
back until the digest is known: when the bytes turn out not to match, the blob is
quarantined and the response is cut short, so the client sees fewer bytes than
``Content-Length`` announced and never takes a corrupt blob for a good one.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import anyio
import anyio.to_thread
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from shipyard.errors import InvalidRequestError
from shipyard.store._blobs import CHUNK, BlobReader

__all__ = ["BlobResponse", "ByteRange", "RangeNotSatisfiable", "parse_range"]

log = logging.getLogger("shipyard.store")

_RANGE = re.compile(r"(\d*)-(\d*)")


@dataclass(frozen=True, slots=True)
class ByteRange:
    """Bytes ``start`` to ``end`` of a blob, both included."""

    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1


class RangeNotSatisfiable(Exception):
    """The ``Range`` asked for cannot be served (416)."""


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The range a ``Range`` header asks of a ``size``-byte blob; None for the whole blob.

    Supports one range of the ``bytes`` unit: ``a-b``, ``a-`` and ``-n`` (the last n
    bytes). Another unit is ignored, as RFC 9110 says. Raises
    :class:`RangeNotSatisfiable` for a range outside the blob or for several ranges, and
    :class:`InvalidRequestError` for a malformed header.
    """
    if header is None or not header.strip():
        return None
    unit, sep, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes":
        return None
    if not sep:
        raise InvalidRequestError(f"malformed Range header {header!r}: expected bytes=START-END")
    if "," in spec:
        raise RangeNotSatisfiable("only one byte range per request is supported")
    match = _RANGE.fullmatch(spec.strip())
    if match is None or match.group(1) == match.group(2) == "":
        raise InvalidRequestError(
            f"malformed Range header {header!r}: expected bytes=START-END, bytes=START- or bytes=-COUNT"
        )
    first, last = match.group(1), match.group(2)
    if first == "":
        count = int(last)
        if count == 0 or size == 0:
            raise RangeNotSatisfiable(f"range {spec} selects no bytes of a {size}-byte blob")
        return ByteRange(max(0, size - count), size - 1)
    start = int(first)
    end = int(last) if last else size - 1
    if start >= size:
        raise RangeNotSatisfiable(f"range {spec} starts past the end of a {size}-byte blob")
    if end < start:
        raise RangeNotSatisfiable(f"range {spec} ends before it starts")
    return ByteRange(start, min(end, size - 1))


class BlobResponse(Response):
    """The bytes of one blob, or of one range of it.

    ``on_corrupt(reason)`` runs (in a worker thread) when the bytes read are not the
    blob's: fewer than recorded, or, for a whole blob, another digest.
    """

    media_type = "application/octet-stream"

    def __init__(
        self,
        reader: BlobReader,
        *,
        digest: str,
        size: int,
        byte_range: ByteRange | None,
        on_corrupt: Callable[[str], None],
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
    ) -> None:
        self.reader = reader
        self.digest = digest
        self.size = size
        self.byte_range = byte_range
        self.on_corrupt = on_corrupt
        self.background = None
        if media_type is not None:
            self.media_type = media_type
        all_headers = {"accept-ranges": "bytes", **(headers or {})}
        if byte_range is None:
            self.status_code = 200
            self.length = size
        else:
            self.status_code = 206
            self.length = byte_range.length
            all_headers["content-range"] = f"bytes {byte_range.start}-{byte_range.end}/{size}"
        all_headers["content-length"] = str(self.length)
        self.init_headers(all_headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as tg:

                async def watch_disconnect() -> None:
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    tg.cancel_scope.cancel()  # stop reading a blob nobody will receive

                tg.start_soon(watch_disconnect)
                await self._stream(send)
                tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self.reader.close)

    async def _stream(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        hasher = hashlib.sha256() if self.byte_range is None else None
        remaining = self.length

        def read() -> bytes:
            data = self.reader.read(min(CHUNK, remaining))
            if hasher is not None:
                hasher.update(data)
            return data

        while remaining > 0:
            chunk = await anyio.to_thread.run_sync(read)
            if not chunk:
                await self._corrupt(f"{remaining} byte(s) fewer than its recorded {self.size}")
                return
            remaining -= len(chunk)
            if remaining > 0:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                continue
            if hasher is not None and hasher.hexdigest() != self.digest:
                # The last chunk stays unsent: the client sees the response cut short.
                await self._corrupt(f"its bytes hash to {hasher.hexdigest()}")
                return
            await send({"type": "http.response.body", "body": chunk, "more_body": False})
            return
        if hasher is not None and hasher.hexdigest() != self.digest:
            await self._corrupt(f"its bytes hash to {hasher.hexdigest()}")
            return
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _corrupt(self, reason: str) -> None:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self.on_corrupt, reason)
        # Returning without the final body message makes the server close the
        # connection: the response stays incomplete on the client's side.
