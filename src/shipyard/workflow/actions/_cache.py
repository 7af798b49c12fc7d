"""``actions/cache``, ``actions/cache/restore`` and ``actions/cache/save``.

As on GitHub: the cache *version* is a hash of the ``path`` lines and the compression,
so caches of different paths never collide; ``cache-hit`` is ``'true'`` only for an
exact key match; ``actions/cache`` saves in a post step, only when the job succeeded
(or ``save-always``) and the primary key was not hit exactly.

Archives are tar streams, compressed with ``zstd`` when the runner has it and gzip
otherwise. Members under the workspace are stored relative to it (``ws/...``), members
under the job's home relative to that (``home/...``) and others by absolute path
(``abs/...``), so a cache saved by one job restores into another job's workspace and
home, wherever those are: ``~/.cache/pip`` works as expected.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import tarfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO

from shipyard.errors import ActionError
from shipyard.workflow._runtime import Annotation, Conclusion, StepHost
from shipyard.workflow.actions._base import (
    ActionInputDef,
    RunServices,
    bool_input,
    home_dir,
    lines_input,
)
from shipyard.workflow.actions._globs import glob
from shipyard.workflow.actions._stores import StoreError

__all__ = ["Cache", "CacheRestore", "CacheSave", "cache_version", "restore_cache", "save_cache"]

_VERSION_SALT = "1.0"
_ZSTD = "zstd-without-long"
_GZIP = "gzip"


def _compression() -> str:
    return _ZSTD if shutil.which("zstd") else _GZIP


def cache_version(paths: list[str], cross_os: bool = False) -> str:
    """GitHub's cache version: the ``path`` lines as written, plus the compression.

    ``enableCrossOsArchive`` only changes the version on Windows, so not here.
    """
    del cross_os
    return hashlib.sha256("|".join([*paths, _compression(), _VERSION_SALT]).encode()).hexdigest()


def _check_key(key: str) -> None:
    if len(key) > 512:
        raise ActionError(f"Key Validation Error: {key} cannot be larger than 512 characters.")
    if "," in key:
        raise ActionError(f"Key Validation Error: {key} cannot contain commas.")


def _resolve(host: StepHost, paths: list[str]) -> list[Path]:
    home = os.path.realpath(home_dir(host))
    matches = glob(paths, host.workspace, implicit_descendants=False, home=home).matches
    # A directory is archived with everything in it: drop matches already inside one.
    result: list[Path] = []
    for path in sorted(set(matches)):
        if not any(parent in path.parents for parent in result if parent.is_dir()):
            result.append(path)
    return result


def _member_name(path: Path, workspace: str, home: str) -> str:
    text = str(path)
    for prefix, base in (("ws", workspace), ("home", home)):
        if text == base:
            return prefix
        if text.startswith(base + "/"):
            return prefix + "/" + text[len(base) + 1 :]
    return "abs/" + text.lstrip("/")


@contextlib.contextmanager
def _compressed_writer(dest: Path, compression: str) -> Iterator[IO[bytes]]:
    if compression == _ZSTD:
        with open(dest, "wb") as out:
            proc = subprocess.Popen(["zstd", "-q", "-T0", "-c"], stdin=subprocess.PIPE, stdout=out)
            assert proc.stdin is not None
            try:
                yield proc.stdin
            finally:
                proc.stdin.close()
                if proc.wait() != 0:
                    raise ActionError(f"zstd failed (exit {proc.returncode}) writing {dest}")
    else:
        import gzip

        with open(dest, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=3) as gz:
            yield gz  # type: ignore[misc]


def create_archive(paths: list[Path], workspace: Path, home: str, dest: Path) -> None:
    """Write ``paths`` (files or whole directories) to a compressed tar at ``dest``."""
    ws = os.path.realpath(workspace)
    home = os.path.realpath(home)
    with (
        _compressed_writer(dest, _compression()) as stream,
        tarfile.open(fileobj=stream, mode="w|") as tf,
    ):
        for path in paths:
            tf.add(str(path), arcname=_member_name(path, ws, home), recursive=True)


def _target_name(name: str, bases: dict[str, str]) -> str | None:
    """Where a member goes, relative to ``/``; ``None`` for a member to refuse."""
    parts = name.split("/")
    if ".." in parts:
        return None
    if parts[0] in bases:
        return "/".join([bases[parts[0]].lstrip("/"), *parts[1:]]).strip("/")
    if parts[0] == "abs" and len(parts) > 1:
        return "/".join(parts[1:])
    return None


def extract_archive(f: IO[bytes], workspace: Path, home: str, compression: str) -> None:
    """Restore an archive written by :func:`create_archive` into this job's places."""
    ws = {"ws": os.path.realpath(workspace), "home": os.path.realpath(home)}
    proc: subprocess.Popen[bytes] | None = None
    stream: IO[bytes] = f
    if compression == _ZSTD:
        proc = subprocess.Popen(["zstd", "-q", "-d", "-c"], stdin=f, stdout=subprocess.PIPE)
        assert proc.stdout is not None
        stream = proc.stdout
    try:
        with tarfile.open(fileobj=stream, mode="r|*") as tf:
            for member in tf:
                target = _target_name(member.name, ws)
                if target is None:
                    raise ActionError(f"cache archive holds an unexpected member: {member.name}")
                linkname = member.linkname
                if member.islnk():
                    link = _target_name(member.linkname, ws)
                    if link is None:
                        raise ActionError(
                            f"cache archive holds an unexpected link: {member.linkname}"
                        )
                    linkname = link
                renamed = member.replace(name=target, linkname=linkname, deep=False)
                tf.extract(renamed, path="/", filter="tar")
    finally:
        if proc is not None:
            assert proc.stdout is not None
            proc.stdout.close()
            if proc.wait() != 0:
                raise ActionError(f"zstd failed (exit {proc.returncode}) reading the cache")


def restore_cache(
    host: StepHost,
    key: str,
    restore_keys: list[str],
    paths: list[str],
    *,
    lookup_only: bool = False,
) -> str | None:
    """Find and restore a cache; return the key of the entry used, or ``None``."""
    _check_key(key)
    for k in restore_keys:
        _check_key(k)
    store = _services(host).caches
    version = cache_version(paths)
    entry = store.lookup(key, restore_keys, version)
    if entry is None:
        host.log(f"Cache not found for input keys: {', '.join([key, *restore_keys])}")
        return None
    if lookup_only:
        host.log(f"Cache found and can be restored from key: {entry.key}")
        return entry.key
    try:
        with store.open(entry) as f:
            extract_archive(f, host.workspace, home_dir(host), _compression())
    except StoreError as e:
        host.annotate(Annotation("warning", f"Failed to restore: {e}"))
        return None
    host.log(f"Cache restored from key: {entry.key}")
    return entry.key


def save_cache(host: StepHost, key: str, paths: list[str]) -> bool:
    """Archive ``paths`` and store them under ``key``; warn (never fail) when that can't be done."""
    _check_key(key)
    found = _resolve(host, paths)
    if not found:
        host.annotate(Annotation(
            "warning",
            "Path Validation Error: Path(s) specified in the action for caching do(es) not exist, "
            "hence no cache is being saved.",
        ))  # fmt: skip
        return False
    archive = host.temp_dir / f"cache-{hashlib.sha256(key.encode()).hexdigest()[:16]}.tar"
    try:
        create_archive(found, host.workspace, home_dir(host), archive)
        saved = _services(host).caches.save(key, cache_version(paths), archive)
    except (StoreError, OSError) as e:
        host.annotate(Annotation("warning", f"Failed to save: {e}"))
        return False
    finally:
        archive.unlink(missing_ok=True)
    if saved is None:
        host.annotate(Annotation(
            "warning",
            f"Failed to save: Unable to reserve cache with key {key}, another job may be creating this cache.",
        ))  # fmt: skip
        return False
    host.log(f"Cache saved with key: {key}")
    return True


def _services(host: StepHost) -> RunServices:
    services = host.services
    if not isinstance(services, RunServices):
        raise ActionError("this runner has no cache store")
    return services


def _d(description: str, default: str | None = None, required: bool = False) -> ActionInputDef:
    return ActionInputDef(required=required, default=default, description=description)


_PATH = _d("files, directories and wildcard patterns to cache, one per line", required=True)
_KEY = _d("an explicit key for the cache entry", required=True)
_RESTORE_KEYS = _d("ordered prefixes to restore from when the key has no exact match", "")
_CHUNK = _d("chunk size for uploads; has no effect on a local store", "")
_CROSS_OS = _d("allow restoring caches saved on another OS (only matters on Windows)", "false")
_FAIL_ON_MISS = _d("fail the step when no cache entry is found", "false")
_LOOKUP_ONLY = _d("only check whether an entry exists, without restoring it", "false")


class CacheRestore:
    """``actions/cache/restore``."""

    name: str = "actions/cache/restore"
    inputs: Mapping[str, ActionInputDef] = {
        "path": _PATH, "key": _KEY, "restore-keys": _RESTORE_KEYS,
        "enableCrossOsArchive": _CROSS_OS, "fail-on-cache-miss": _FAIL_ON_MISS,
        "lookup-only": _LOOKUP_ONLY,
    }  # fmt: skip
    outputs: tuple[str, ...] = ("cache-hit", "cache-primary-key", "cache-matched-key")

    def run(self, host: StepHost, inputs: dict[str, str]) -> None:
        """Restore at this step and set the outputs."""
        self._restore(host, inputs)

    def _restore(self, host: StepHost, inputs: dict[str, str]) -> tuple[str, str | None]:
        key = inputs.get("key", "").strip()
        paths = lines_input(inputs, "path")
        if not key:
            raise ActionError("Input required and not supplied: key")
        if not paths:
            raise ActionError("Input required and not supplied: path")
        restore_keys = lines_input(inputs, "restore-keys")
        if "cache-primary-key" in self.outputs:
            host.set_output("cache-primary-key", key)
        matched = restore_cache(
            host, key, restore_keys, paths, lookup_only=bool_input(inputs, "lookup-only")
        )
        if matched is None:
            if bool_input(inputs, "fail-on-cache-miss"):
                raise ActionError(
                    "Failed to restore cache entry. Exiting as fail-on-cache-miss is set. "
                    f"Input key: {key}"
                )
            return key, None
        host.set_output("cache-hit", "true" if matched == key else "false")
        if "cache-matched-key" in self.outputs:
            host.set_output("cache-matched-key", matched)
        return key, matched


class Cache(CacheRestore):
    """``actions/cache``: restore now, save at the end of a successful job."""

    name: str = "actions/cache"
    inputs: Mapping[str, ActionInputDef] = {
        "path": _PATH, "key": _KEY, "restore-keys": _RESTORE_KEYS, "upload-chunk-size": _CHUNK,
        "enableCrossOsArchive": _CROSS_OS, "fail-on-cache-miss": _FAIL_ON_MISS,
        "lookup-only": _LOOKUP_ONLY,
        "save-always": ActionInputDef(
            default="false",
            description="save the cache even when the job fails",
            deprecation="save-always does not work as intended and will be removed in a future "
            "release; use actions/cache/save with if: always() instead",
        ),
    }  # fmt: skip
    outputs: tuple[str, ...] = ("cache-hit",)

    def run(self, host: StepHost, inputs: dict[str, str]) -> None:
        """Restore now and register the post step that saves."""
        key, matched = self._restore(host, inputs)
        paths = lines_input(inputs, "path")
        always = bool_input(inputs, "save-always")

        def post(h: StepHost) -> None:
            if h.job_status() != Conclusion.SUCCESS and not always:
                h.log("Not saving cache: the job did not succeed")
                return
            if matched == key:
                h.log(f"Cache hit occurred on the primary key {key}, not saving cache.")
                return
            save_cache(h, key, paths)

        host.add_post_step("Post Cache", post)


class CacheSave:
    """``actions/cache/save``: save at this step."""

    name: str = "actions/cache/save"
    inputs: Mapping[str, ActionInputDef] = {
        "path": _PATH, "key": _KEY, "upload-chunk-size": _CHUNK, "enableCrossOsArchive": _CROSS_OS,
    }  # fmt: skip
    outputs: tuple[str, ...] = ()

    def run(self, host: StepHost, inputs: dict[str, str]) -> None:
        """Save now; an existing key is a warning, not a failure."""
        key = inputs.get("key", "").strip()
        paths = lines_input(inputs, "path")
        if not key:
            raise ActionError("Input required and not supplied: key")
        if not paths:
            raise ActionError("Input required and not supplied: path")
        save_cache(host, key, paths)
