"""Built-in stand-ins for the common marketplace actions, and the stores they use.

A workflow's ``uses: actions/checkout@v4`` (any version) runs :class:`Checkout` here,
with no download. ``BUILTIN_ACTIONS`` maps each lowercase ``owner/repo[/path]`` to its
implementation; the job runner validates ``with:`` against ``inputs`` and calls ``run``.

- ``actions/checkout`` — the run's commit into the workspace with real git
- ``actions/setup-python`` — an installed interpreter first on PATH, optional pip cache
- ``actions/cache``, ``actions/cache/restore``, ``actions/cache/save``
- ``actions/upload-artifact``, ``actions/download-artifact`` (v4 semantics)

``host.services`` is a :class:`RunServices`: an :class:`ArtifactStore` and a
:class:`CacheStore`, kept on disk by :class:`LocalArtifactStore` and
:class:`LocalCacheStore`. :func:`hash_files` is the ``hashFiles()`` expression function.
"""

from __future__ import annotations

from shipyard.workflow.actions._artifact_store import (
    LocalArtifactStore,
    build_zip,
    check_artifact_name,
    check_member,
    extract_zip,
)
from shipyard.workflow.actions._artifacts import DownloadArtifact, UploadArtifact
from shipyard.workflow.actions._base import ActionInputDef, BuiltinAction, RunServices
from shipyard.workflow.actions._cache import Cache, CacheRestore, CacheSave
from shipyard.workflow.actions._cache_store import LocalCacheStore, check_cache_key
from shipyard.workflow.actions._checkout import Checkout
from shipyard.workflow.actions._hashfiles import hash_files
from shipyard.workflow.actions._setup_python import SetupPython
from shipyard.workflow.actions._stores import (
    Artifact,
    ArtifactStore,
    CacheEntry,
    CacheStore,
    StoreError,
)

__all__ = [
    "BUILTIN_ACTIONS",
    "ActionInputDef",
    "Artifact",
    "ArtifactStore",
    "BuiltinAction",
    "CacheEntry",
    "CacheStore",
    "LocalArtifactStore",
    "LocalCacheStore",
    "RunServices",
    "StoreError",
    "build_zip",
    "check_artifact_name",
    "check_cache_key",
    "check_member",
    "extract_zip",
    "hash_files",
]


def _builtins() -> dict[str, BuiltinAction]:
    actions: list[BuiltinAction] = [
        Checkout(),
        SetupPython(),
        Cache(),
        CacheRestore(),
        CacheSave(),
        UploadArtifact(),
        DownloadArtifact(),
    ]
    return {a.name: a for a in actions}


BUILTIN_ACTIONS: dict[str, BuiltinAction] = _builtins()
"""Every built-in action by lowercase ``owner/repo[/path]``, without the ``@version``."""
