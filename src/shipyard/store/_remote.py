"""The workflow library's artifact and cache stores, kept by the store service.

:class:`RemoteArtifactStore` and :class:`RemoteCacheStore` implement
:class:`~shipyard.workflow.actions.ArtifactStore` and
:class:`~shipyard.workflow.actions.CacheStore` on a :class:`StoreClient`, so the
built-in ``upload-artifact``, ``download-artifact`` and ``cache`` actions behave on a
runner as they do with ``shipyard run``'s local stores. Names, keys and zip members are
checked by the local stores' own functions, and zips are built by the local artifact
store's code, so both kinds of store accept and produce the same things.

Every failure (the store refused, did not answer, sent corrupt bytes) is a
:class:`~shipyard.errors.StoreError`, which the actions turn into a step error or a
warning.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, TypeVar

from shipyard.errors import ConflictError, InvalidRequestError, RequestError, StoreError
from shipyard.store._client import StoreClient, file_digest
from shipyard.store._models import ArtifactOut, CacheEntryOut
from shipyard.workflow.actions import (
    build_zip,
    check_artifact_name,
    check_cache_key,
    check_member,
    extract_zip,
)
from shipyard.workflow.actions._stores import Artifact, CacheEntry

__all__ = ["RemoteArtifactStore", "RemoteCacheStore"]

_CHUNK = 1 << 20
T = TypeVar("T")


@contextlib.contextmanager
def _as_store_errors(what: str) -> Iterator[None]:
    try:
        yield
    except RequestError as err:
        raise StoreError(f"{what}: {err.message}") from None


def _record_with_blob(client: StoreClient, path: Path, digest: str, record: Callable[[], T]) -> T:
    """Upload ``path`` (skipped when stored) and run ``record``, which refers to it.

    The store may collect an unreferenced blob between our upload (or our finding it
    there) and ``record``: it answers 400 and the blob is gone. Then upload it again and
    retry once; a fresh blob is safe for the collector's grace period.
    """
    client.put_blob(path, digest=digest)
    try:
        return record()
    except InvalidRequestError:
        if client.blob_size(digest) is not None:
            raise
    client.put_blob(path, digest=digest, force=True)
    return record()


class RemoteArtifactStore:
    """An :class:`ArtifactStore` on the store service. ``run_id`` is the pipeline id.

    Zips are built and downloads staged in temporary files under ``scratch_dir`` (the
    system's temporary directory when None).
    """

    def __init__(
        self, client: StoreClient, *, scratch_dir: Path | None = None,
        replaces_before: float | None = None,
    ) -> None:
        self.client = client
        self.scratch_dir = scratch_dir
        # A re-run job uploads under the names its earlier attempt used: an artifact
        # created before this time (by an earlier attempt) is replaced, not a conflict.
        self.replaces_before = replaces_before

    @staticmethod
    def _pipeline(run_id: str) -> int:
        try:
            pipeline_id = int(run_id)
        except ValueError:
            pipeline_id = 0
        if pipeline_id < 1:
            raise StoreError(f"run id {run_id!r} is not a pipeline id of the store")
        return pipeline_id

    @staticmethod
    def _artifact(out: ArtifactOut) -> Artifact:
        return Artifact(
            id=out.id, run_id=str(out.pipeline_id), name=out.name, size=out.size,
            digest=out.digest, created_at=out.created_at, expires_at=out.expires_at,
            files=tuple(out.files),
        )  # fmt: skip

    def upload(
        self,
        run_id: str,
        name: str,
        files: Iterable[tuple[str, Path]],
        *,
        overwrite: bool = False,
        retention_days: int | None = None,
        compression_level: int = 6,
    ) -> Artifact:
        """See :meth:`ArtifactStore.upload`."""
        check_artifact_name(name)
        if not 0 <= compression_level <= 9:
            raise StoreError(f"compression level must be 0-9, got {compression_level}")
        pipeline_id = self._pipeline(run_id)
        members = [(check_member(rel), Path(src)) for rel, src in files]
        if not overwrite and (existing := self.get(run_id, name)) is not None:
            overwrite = self.replaces_before is not None and existing.created_at < self.replaces_before
        if not overwrite and existing is not None:
            # Fail before zipping and uploading; the store checks again when recording.
            raise StoreError(
                f"an artifact named {name!r} already exists in run {run_id}; "
                "choose another name or set overwrite: true"
            )
        with (
            tempfile.TemporaryDirectory(dir=self.scratch_dir, prefix="artifact-") as scratch,
            _as_store_errors(f"cannot upload artifact {name!r}"),
        ):
            # The local store's zip writer, so both stores make the same zips.
            zip_path = Path(scratch) / "artifact.zip"
            digest, size = build_zip(members, compression_level, zip_path)
            out = _record_with_blob(
                self.client, zip_path, digest,
                lambda: self.client.create_artifact(
                    pipeline_id, name, digest, size, [rel for rel, _ in members],
                    retention_days=retention_days, overwrite=overwrite,
                ),
            )  # fmt: skip
        return self._artifact(out)

    def list(self, run_id: str) -> list[Artifact]:
        """See :meth:`ArtifactStore.list`."""
        with _as_store_errors(f"cannot list the artifacts of run {run_id}"):
            return [self._artifact(a) for a in self.client.list_artifacts(self._pipeline(run_id))]

    def get(self, run_id: str, name: str) -> Artifact | None:
        """See :meth:`ArtifactStore.get`."""
        with _as_store_errors(f"cannot look up artifact {name!r}"):
            out = self.client.get_artifact(self._pipeline(run_id), name)
        return None if out is None else self._artifact(out)

    def download(self, run_id: str, name: str, dest: Path) -> Artifact:
        """See :meth:`ArtifactStore.download`."""
        artifact = self.get(run_id, name)
        if artifact is None:
            raise StoreError(f"Artifact not found for name: {name} (run {run_id})")
        with (
            tempfile.TemporaryFile(dir=self.scratch_dir, prefix="artifact-") as f,
            _as_store_errors(f"cannot download artifact {name!r}"),
        ):
            self.client.download_blob(artifact.digest, f)
            f.seek(0)
            extract_zip(f, dest)
        return artifact

    def delete(self, run_id: str, name: str) -> bool:
        """See :meth:`ArtifactStore.delete`."""
        with _as_store_errors(f"cannot delete artifact {name!r}"):
            return self.client.delete_artifact(self._pipeline(run_id), name)


class RemoteCacheStore:
    """A :class:`CacheStore` on the store service, for the caches of repository ``repo``.

    Archives are downloaded into temporary files under ``scratch_dir`` (the system's
    temporary directory when None), deleted when closed.
    """

    def __init__(self, client: StoreClient, repo: str, *, scratch_dir: Path | None = None) -> None:
        self.client = client
        self.repo = repo
        self.scratch_dir = scratch_dir

    @staticmethod
    def _entry(out: CacheEntryOut) -> CacheEntry:
        return CacheEntry(
            key=out.key, version=out.version, size=out.size, digest=out.digest,
            created_at=out.created_at, last_accessed_at=out.last_accessed_at, seq=out.id,
        )  # fmt: skip

    def lookup(self, key: str, restore_keys: Sequence[str], version: str) -> CacheEntry | None:
        """See :meth:`CacheStore.lookup` (the store marks the entry used)."""
        with _as_store_errors(f"cannot look up cache {key!r}"):
            out = self.client.lookup_cache(self.repo, key, restore_keys, version)
        return None if out is None else self._entry(out)

    def open(self, entry: CacheEntry) -> IO[bytes]:
        """See :meth:`CacheStore.open`: the archive, downloaded and checked."""
        f = tempfile.TemporaryFile(dir=self.scratch_dir, prefix="cache-")  # noqa: SIM115 - returned
        try:
            with _as_store_errors(f"cannot download cache {entry.key!r}"):
                self.client.download_blob(entry.digest, f)
        except BaseException:
            f.close()
            raise
        f.seek(0)
        return f

    def save(self, key: str, version: str, archive: Path) -> CacheEntry | None:
        """See :meth:`CacheStore.save`; None when (key, version) is already saved."""
        check_cache_key(key)
        digest, size = file_digest(archive)
        try:
            out = _record_with_blob(
                self.client, archive, digest,
                lambda: self.client.save_cache(self.repo, key, version, digest, size),
            )  # fmt: skip
        except ConflictError:
            return None  # saved meanwhile by another job: entries are immutable
        except RequestError as err:
            raise StoreError(f"cannot save cache {key!r}: {err.message}") from None
        return self._entry(out)

    def entries(self) -> list[CacheEntry]:
        """See :meth:`CacheStore.entries`."""
        with _as_store_errors(f"cannot list the caches of {self.repo}"):
            found = self.client.list_caches(self.repo)
        return sorted((self._entry(e) for e in found), key=lambda e: e.seq)
