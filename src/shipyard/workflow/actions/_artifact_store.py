"""The artifact store kept in files: :class:`LocalArtifactStore`."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import asdict
from pathlib import Path
from typing import IO

from shipyard.workflow.actions._stores import (
    Artifact,
    StoreError,
    _read_json,
    _Root,
    _verified_open,
)

__all__ = ["LocalArtifactStore"]

_CHUNK = 1 << 20
_FORBIDDEN_NAME_CHARS = set('"<>|*?:\\/\r\n')


def check_artifact_name(name: str) -> None:
    if not name or name.strip() != name or name in (".", ".."):
        raise StoreError(f"invalid artifact name {name!r}")
    bad = sorted(set(name) & _FORBIDDEN_NAME_CHARS)
    if bad:
        shown = " ".join(repr(c) for c in bad)
        raise StoreError(f"invalid artifact name {name!r}: it may not contain {shown}")


def check_member(rel: str) -> str:
    rel = rel.replace("\\", "/")
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if not parts or rel.startswith("/") or ".." in parts:
        raise StoreError(f"invalid path in artifact: {rel!r}")
    return "/".join(parts)


def _dir_for(value: str) -> str:
    if re.fullmatch(r"[A-Za-z0-9._-]{1,64}", value) and value not in (".", ".."):
        return value
    return "h-" + hashlib.sha256(value.encode()).hexdigest()[:32]


class LocalArtifactStore:
    """An :class:`ArtifactStore` in files under ``root``.

    Layout: ``runs/<run>/<hash of name>.json`` (metadata, the entry's visible part) and
    ``blobs/<id>.zip``. ``clock`` is injectable for tests of retention.
    """

    def __init__(self, root: Path, *, clock: Callable[[], float] = time.time) -> None:
        self._fs = _Root(root)
        self._runs = self._fs.root / "runs"
        self._runs.mkdir(exist_ok=True)
        self._clock = clock

    def _meta_path(self, run_id: str, name: str) -> Path:
        return (
            self._runs
            / _dir_for(run_id)
            / (hashlib.sha256(name.encode()).hexdigest()[:40] + ".json")
        )

    def _load(self, path: Path) -> Artifact | None:
        data = _read_json(path)
        if data is None:
            return None
        data["files"] = tuple(data["files"])
        return Artifact(**data)

    def _live(self, artifact: Artifact | None) -> Artifact | None:
        if artifact is None or (
            artifact.expires_at is not None and artifact.expires_at <= self._clock()
        ):
            return None
        return artifact

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
        meta_path = self._meta_path(run_id, name)
        if not overwrite and self._live(self._load(meta_path)) is not None:
            raise self._taken(run_id, name)
        members = [(check_member(rel), Path(src)) for rel, src in files]
        tmp, digest, size = self._build_zip(members, compression_level)
        try:
            with self._fs.locked():
                old = self._load(meta_path)
                if old is not None and self._live(old) is not None and not overwrite:
                    raise self._taken(run_id, name)
                now = self._clock()
                artifact = Artifact(
                    id=self._fs.next_seq(),
                    run_id=run_id,
                    name=name,
                    size=size,
                    digest=digest,
                    created_at=now,
                    expires_at=now + retention_days * 86400 if retention_days else None,
                    files=tuple(rel for rel, _ in members),
                )
                self._fs.commit_blob(tmp, f"{artifact.id}.zip")
                meta_path.parent.mkdir(exist_ok=True)
                self._fs.write_atomic(meta_path, json.dumps(asdict(artifact)).encode())
                if old is not None:
                    (self._fs.blobs / f"{old.id}.zip").unlink(missing_ok=True)
                self._fs.sweep_temp(now)
        finally:
            tmp.unlink(missing_ok=True)
        return artifact

    @staticmethod
    def _taken(run_id: str, name: str) -> StoreError:
        return StoreError(
            f"an artifact named {name!r} already exists in run {run_id}; "
            "choose another name or set overwrite: true"
        )

    def _build_zip(self, members: list[tuple[str, Path]], level: int) -> tuple[Path, str, int]:
        fd, tmp = self._fs.temp_file()
        os.close(fd)
        digest, size = build_zip(members, level, tmp)
        return tmp, digest, size

    def list(self, run_id: str) -> list[Artifact]:
        """See :meth:`ArtifactStore.list`."""
        run_dir = self._runs / _dir_for(run_id)
        if not run_dir.is_dir():
            return []
        found = [self._live(self._load(p)) for p in run_dir.glob("*.json")]
        return sorted(
            (a for a in found if a is not None and a.run_id == run_id), key=lambda a: a.id
        )

    def get(self, run_id: str, name: str) -> Artifact | None:
        """See :meth:`ArtifactStore.get`."""
        artifact = self._live(self._load(self._meta_path(run_id, name)))
        return artifact if artifact is not None and artifact.name == name else None

    def download(self, run_id: str, name: str, dest: Path) -> Artifact:
        """See :meth:`ArtifactStore.download`."""
        artifact = self.get(run_id, name)
        if artifact is None:
            raise StoreError(f"Artifact not found for name: {name} (run {run_id})")
        blob = self._fs.blobs / f"{artifact.id}.zip"
        with _verified_open(blob, artifact.digest, f"artifact {name!r}") as f:
            extract_zip(f, dest)
        return artifact

    def delete(self, run_id: str, name: str) -> bool:
        """See :meth:`ArtifactStore.delete`."""
        meta_path = self._meta_path(run_id, name)
        with self._fs.locked():
            artifact = self._load(meta_path)
            if artifact is None:
                return False
            meta_path.unlink()
            (self._fs.blobs / f"{artifact.id}.zip").unlink(missing_ok=True)
        return True

    def purge_expired(self) -> int:
        """Delete every artifact past its retention; return how many."""
        count = 0
        now = self._clock()
        with self._fs.locked():
            for meta_path in self._runs.glob("*/*.json"):
                artifact = self._load(meta_path)
                if (
                    artifact is not None
                    and artifact.expires_at is not None
                    and artifact.expires_at <= now
                ):
                    meta_path.unlink()
                    (self._fs.blobs / f"{artifact.id}.zip").unlink(missing_ok=True)
                    count += 1
        return count


def build_zip(members: list[tuple[str, Path]], level: int, dest: Path) -> tuple[str, int]:
    """Write ``members`` (relative name, file) as a zip at ``dest``; its sha256 and size.

    Every artifact store makes its zips here, so a local and a remote artifact are
    byte-for-byte the same format. ``dest`` is removed when writing fails.
    """
    method = zipfile.ZIP_DEFLATED if level > 0 else zipfile.ZIP_STORED
    try:
        with zipfile.ZipFile(dest, "w", compression=method, compresslevel=level or None) as zf:
            for rel, src in members:
                zf.write(src, rel)
        with open(dest, "rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
            os.fsync(f.fileno())
    except FileNotFoundError as e:
        dest.unlink(missing_ok=True)
        raise StoreError(f"cannot upload {e.filename}: no such file") from None
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    return digest, dest.stat().st_size


def extract_zip(f: IO[bytes], dest: Path) -> None:
    """Extract an artifact zip into ``dest``, refusing members that would land outside it."""
    try:
        with zipfile.ZipFile(f) as zf:
            dest.mkdir(parents=True, exist_ok=True)
            for info in zf.infolist():
                if info.is_dir():
                    continue
                target = dest / check_member(info.filename)
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out, _CHUNK)
                mode = (info.external_attr >> 16) & 0o777
                if mode:
                    os.chmod(target, mode)
    except zipfile.BadZipFile as err:
        raise StoreError(f"the artifact is not a readable zip: {err}") from None
