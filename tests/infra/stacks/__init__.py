"""Providers and helpers for the stack loader's tests.

Two small providers that really manage something (files in a folder, entries of a JSON
file), so the loader is tested against implementations of the provider interface
rather than stand-ins: ``disk`` (types ``disk_file`` and ``disk_dir``, config
``root``) and ``kv`` (type ``kv``, config ``store``, required).
"""

from __future__ import annotations

import hashlib
import json
import textwrap
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shipyard.errors import ProviderError, ValidationError
from shipyard.infra._model import Stack
from shipyard.infra._registry import Registry
from shipyard.infra._stack import load_stack
from shipyard.infra.provider import (
    REQUIRED,
    Attribute,
    Context,
    Created,
    Observed,
    Property,
    Provider,
    ResourceType,
)

__all__ = [
    "REGISTRY",
    "DiskDir",
    "DiskFile",
    "DiskProvider",
    "KvEntry",
    "KvProvider",
    "load",
    "stack_errors",
    "write_stack",
]


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _root(ctx: Context) -> Path:
    return ctx.stack_dir / str(ctx.config.get("root") or ".")


class DiskFile(ResourceType):
    name = "disk_file"
    description = "A text file under the provider's root folder."
    properties = {
        "path": Property("string", REQUIRED, "Path under the root.", replace=True),
        "content": Property("string", ""),
        "mode": Property("integer", 0o644),
        "tags": Property("map(string)"),
        "lines": Property("list(string)"),
        "digest": Property("string", derived=True),
    }
    attributes = {
        "size": Attribute("integer"),
        "checksum": Attribute("string"),
    }

    def prepare(self, ctx: Context, properties: Mapping[str, Any]) -> dict[str, Any]:
        return {**properties, "digest": _digest(self._text(properties))}

    @staticmethod
    def _text(properties: Mapping[str, Any]) -> str:
        lines = properties.get("lines")
        return "\n".join(lines) if lines else str(properties.get("content") or "")

    def _write(self, ctx: Context, properties: Mapping[str, Any]) -> tuple[Path, dict[str, Any]]:
        path = _root(ctx) / properties["path"]
        path.parent.mkdir(parents=True, exist_ok=True)
        text = self._text(properties)
        path.write_text(text)
        path.chmod(int(properties.get("mode") or 0o644))
        return path, {"size": len(text.encode()), "checksum": _digest(text)}

    def create(self, ctx: Context, properties: Mapping[str, Any]) -> Created:
        path, attributes = self._write(ctx, properties)
        return Created(str(path), attributes)

    def read(
        self, ctx: Context, id: str, properties: Mapping[str, Any], attributes: Mapping[str, Any]
    ) -> Observed | None:
        path = Path(id)
        if not path.is_file():
            return None
        text = path.read_text()
        return Observed(
            {"content": text, "mode": path.stat().st_mode & 0o777},
            {"size": len(text.encode()), "checksum": _digest(text)},
        )

    def update(
        self,
        ctx: Context,
        id: str,
        prior: Mapping[str, Any],
        properties: Mapping[str, Any],
        attributes: Mapping[str, Any],
    ) -> dict[str, Any]:
        return self._write(ctx, properties)[1]

    def delete(
        self, ctx: Context, id: str, properties: Mapping[str, Any], attributes: Mapping[str, Any]
    ) -> None:
        Path(id).unlink(missing_ok=True)


class DiskDir(ResourceType):
    name = "disk_dir"
    description = "A folder under the provider's root folder."
    properties = {"path": Property("string", REQUIRED, replace=True)}
    updatable = False

    def create(self, ctx: Context, properties: Mapping[str, Any]) -> Created:
        path = _root(ctx) / properties["path"]
        path.mkdir(parents=True, exist_ok=True)
        return Created(str(path))

    def read(
        self, ctx: Context, id: str, properties: Mapping[str, Any], attributes: Mapping[str, Any]
    ) -> Observed | None:
        return Observed({"path": properties["path"]}) if Path(id).is_dir() else None

    def delete(
        self, ctx: Context, id: str, properties: Mapping[str, Any], attributes: Mapping[str, Any]
    ) -> None:
        path = Path(id)
        if path.is_dir():
            path.rmdir()


class DiskProvider(Provider):
    name = "disk"
    description = "Files and folders under a root folder."
    config = {"root": Property("string", ".")}
    resource_types = (DiskFile, DiskDir)


class KvEntry(ResourceType):
    """An entry of a JSON file (the provider's ``store``)."""

    name = "kv"
    description = "One entry of a JSON key-value file."
    properties = {
        "key": Property("string", REQUIRED, replace=True),
        "value": Property("any"),
        "ttl": Property("number"),
        "enabled": Property("boolean", False),
        "ports": Property("list(map(any))"),
    }
    attributes = {"version": Attribute("integer", stable=True)}
    _lock = threading.Lock()

    def _store(self, ctx: Context) -> Path:
        return ctx.stack_dir / str(ctx.config["store"])

    def _change(self, ctx: Context, key: str, entry: dict[str, Any] | None) -> int:
        with self._lock:
            store = self._store(ctx)
            data = json.loads(store.read_text()) if store.exists() else {}
            version = int(data.get(key, {}).get("version", 0)) + 1
            if entry is None:
                data.pop(key, None)
            else:
                data[key] = {**entry, "version": version}
            store.write_text(json.dumps(data))
            return version

    def create(self, ctx: Context, properties: Mapping[str, Any]) -> Created:
        version = self._change(ctx, properties["key"], dict(properties))
        return Created(properties["key"], {"version": version})

    def read(
        self, ctx: Context, id: str, properties: Mapping[str, Any], attributes: Mapping[str, Any]
    ) -> Observed | None:
        store = self._store(ctx)
        data = json.loads(store.read_text()) if store.exists() else {}
        entry = data.get(id)
        if entry is None:
            return None
        version = entry.pop("version")
        return Observed(entry, {"version": version})

    def update(
        self,
        ctx: Context,
        id: str,
        prior: Mapping[str, Any],
        properties: Mapping[str, Any],
        attributes: Mapping[str, Any],
    ) -> dict[str, Any]:
        return {"version": self._change(ctx, id, dict(properties))}

    def delete(
        self, ctx: Context, id: str, properties: Mapping[str, Any], attributes: Mapping[str, Any]
    ) -> None:
        self._change(ctx, id, None)

    def import_(self, ctx: Context, id: str) -> Observed:
        found = self.read(ctx, id, {}, {})
        if found is None:
            raise ProviderError(f"no entry '{id}' in {self._store(ctx)}")
        return found


class KvProvider(Provider):
    name = "kv"
    description = "Entries of a JSON file."
    config = {"store": Property("string", REQUIRED), "indent": Property("integer", 0)}
    resource_types = (KvEntry,)


REGISTRY = Registry(providers=[DiskProvider, KvProvider])


def write_stack(root: Path, files: Mapping[str, str]) -> Path:
    """Write ``files`` (names relative to ``root``, texts dedented); returns ``root``."""
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def load(root: Path, files: Mapping[str, str] | None = None) -> Stack:
    """Write ``files`` into ``root`` and load it as a stack with the test providers."""
    if files is not None:
        write_stack(root, files)
    return load_stack(root, REGISTRY)


def stack_errors(root: Path, files: Mapping[str, str] | None = None) -> list[str]:
    """The errors loading the stack gives, as ``file:line:col: message`` relative to root."""
    if files is not None:
        write_stack(root, files)
    try:
        load_stack(root, REGISTRY)
    except ValidationError as err:
        prefix = f"{root}/"
        return [str(e).removeprefix(prefix) for e in err.errors]
    raise AssertionError("the stack loaded without errors")
