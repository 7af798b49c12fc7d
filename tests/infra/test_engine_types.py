"""A resource type whose real world is files in a folder, used by the engine tests.

``folder_item`` makes ``<root>/<name>`` holding ``content``. It is strict the way real
things are: creating a name that already exists fails and is recorded in
``<root>/.doubles`` (a double creation); every call is appended to ``<root>/.events``
(``create NAME``, ``update NAME``, ``delete NAME``, ``start create NAME`` ...) so tests
can check order; ``delay`` makes calls slow and the type records how many ran at once;
``fail`` makes create/update fail (after ``delay``). It implements the engine's optional
``find`` (adopting what an interrupted create made). The provider is also reachable as an
entry point (see :func:`plugin_path`) so the real ``shipyard`` command can use it.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shipyard.errors import ProviderError
from shipyard.infra import Engine, LocalBackend
from shipyard.infra._registry import Registry
from shipyard.infra.provider import (
    Attribute,
    Context,
    Created,
    Observed,
    Property,
    Provider,
    ResourceType,
)
from shipyard.infra.providers.null import NullProvider

_LOCK = threading.Lock()
ACTIVE: dict[str, int] = {}  # root -> calls running now
PEAK: dict[str, int] = {}  # root -> most calls ever running at once


def _root(ctx: Context) -> Path:
    root = Path(ctx.config["root"])
    return root if root.is_absolute() else ctx.stack_dir / root


def _event(root: Path, text: str) -> None:
    fd = os.open(root / ".events", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, (text + "\n").encode())
    finally:
        os.close(fd)


class _Call:
    """Counts the calls running at once for one root, and logs start/end."""

    def __init__(self, root: Path, what: str) -> None:
        self.root = root
        self.what = what

    def __enter__(self) -> None:
        key = str(self.root)
        with _LOCK:
            ACTIVE[key] = ACTIVE.get(key, 0) + 1
            PEAK[key] = max(PEAK.get(key, 0), ACTIVE[key])
        _event(self.root, f"start {self.what}")

    def __exit__(self, *exc: object) -> None:
        with _LOCK:
            ACTIVE[str(self.root)] -= 1


class FolderItem(ResourceType):
    """``folder_item``: the file ``<root>/<name>`` holding ``content``."""

    name = "folder_item"
    description = "A file in the provider's folder (for engine tests)."
    properties = {
        "name": Property(type="string", default=None, replace=True, description="The file name."),
        "content": Property(type="string", default=""),
        "delay": Property(type="number", default=0),
        "fail": Property(type="boolean", default=False),
        "secret": Property(type="string", default=None, sensitive=True),
    }
    attributes = {
        "path": Attribute(type="string", stable=True),
        "size": Attribute(type="integer"),
    }

    def validate(self, properties: Mapping[str, Any]) -> list[tuple[str, str]]:
        name = properties.get("name")
        if isinstance(name, str) and ("/" in name or name.startswith(".")):
            return [("name", "must be a plain file name")]
        return []

    def _slow(self, properties: Mapping[str, Any], verb: str) -> None:
        time.sleep(float(properties.get("delay") or 0))
        if properties.get("fail"):
            raise ProviderError(f"{verb} of {properties['name']} refused (fail is set)")

    def create(self, ctx: Context, properties: Mapping[str, Any]) -> Created:
        root = _root(ctx)
        name = str(properties["name"])
        with _Call(root, f"create {name}"):
            self._slow(properties, "create")
            try:
                fd = os.open(root / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                _event(root, f"double {name}")
                with open(root / ".doubles", "a", encoding="utf-8") as f:
                    f.write(name + "\n")
                raise ProviderError(f"{name} already exists") from None
            try:
                os.write(fd, str(properties.get("content") or "").encode())
            finally:
                os.close(fd)
            _event(root, f"create {name}")
        return Created(name, {"path": str(root / name), "size": len(str(properties.get("content") or ""))})

    def read(self, ctx: Context, id: str, properties: Mapping[str, Any],
             attributes: Mapping[str, Any]) -> Observed | None:
        path = _root(ctx) / id
        try:
            content = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        return Observed({"name": id, "content": content}, {"path": str(path), "size": len(content)})

    def update(self, ctx: Context, id: str, prior: Mapping[str, Any], properties: Mapping[str, Any],
               attributes: Mapping[str, Any]) -> dict[str, Any]:
        root = _root(ctx)
        with _Call(root, f"update {id}"):
            self._slow(properties, "update")
            (root / id).write_text(str(properties.get("content") or ""), encoding="utf-8")
            _event(root, f"update {id}")
        return {"size": len(str(properties.get("content") or ""))}

    def delete(self, ctx: Context, id: str, properties: Mapping[str, Any],
               attributes: Mapping[str, Any]) -> None:
        root = _root(ctx)
        with _Call(root, f"delete {id}"):
            time.sleep(float(properties.get("delay") or 0))
            (root / id).unlink(missing_ok=True)
            _event(root, f"delete {id}")

    def import_(self, ctx: Context, id: str) -> Observed:
        found = self.read(ctx, id, {}, {})
        if found is None:
            raise ProviderError(f"there is no {id} in {_root(ctx)}")
        return found

    def find(self, ctx: Context, properties: Mapping[str, Any]) -> Created | None:
        """What an interrupted create of ``properties`` left, if anything."""
        path = _root(ctx) / str(properties["name"])
        if not path.exists():
            return None
        return Created(path.name, {"path": str(path), "size": path.stat().st_size})


class FolderProvider(Provider):
    name = "folder"
    description = "Files in a folder, for the engine's tests."
    config = {"root": Property(type="string", description="The folder (relative to the stack).")}
    resource_types = (FolderItem,)


def registry() -> Registry:
    """The providers the engine tests use."""
    return Registry(providers=[NullProvider, FolderProvider])


KEY = os.urandom(32)


def make_engine(stack: Path, text: str | None = None, *, variables: dict[str, Any] | None = None,
                extra: dict[str, str] | None = None) -> Engine:
    """An engine on ``stack`` (``text`` written as its main.yaml, ``extra`` files beside it),
    with the test providers and its state next to the stack folder."""
    stack.mkdir(parents=True, exist_ok=True)
    if text is not None:
        (stack / "main.yaml").write_text(text)
    for name, content in (extra or {}).items():
        (stack / name).parent.mkdir(parents=True, exist_ok=True)
        (stack / name).write_text(content)
    backend = LocalBackend(stack.parent / f"{stack.name}-state", key=KEY)
    return Engine(stack, backend=backend, registry=registry(), variables=variables,
                  data_dir=stack.parent / f"{stack.name}-data")


def actions(plan: Any) -> dict[str, str]:
    """address -> action of every change of a plan (no-ops included)."""
    return {change.address: change.action.value for change in plan.changes}


def plugin_path(tmp: Path) -> Path:
    """A folder that, on PYTHONPATH, makes ``folder`` an installed provider (an entry
    point in a dist-info), so a real ``shipyard`` process can load it."""
    site = tmp / "site"
    info = site / "shipyard_test_folder-1.0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: shipyard-test-folder\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[shipyard.infra.providers]\nfolder = tests.infra.test_engine_types:FolderProvider\n"
    )
    return site


def events(root: Path) -> list[str]:
    path = root / ".events"
    return path.read_text().splitlines() if path.exists() else []


def doubles(root: Path) -> list[str]:
    path = root / ".doubles"
    return path.read_text().splitlines() if path.exists() else []


def files(root: Path) -> dict[str, str]:
    """The real world: every item file and its content."""
    return {p.name: p.read_text() for p in root.iterdir() if p.is_file() and not p.name.startswith(".")}


# ---------------------------------------------------------------------- the type itself


def _ctx(root: Path) -> Context:
    return Context({"root": str(root)}, root, root / ".data")


def test_folder_item_detects_double_creation(tmp_path: Path) -> None:
    """Creating a name twice fails and is recorded, as a real unique thing would."""
    item = FolderItem()
    item.create(_ctx(tmp_path), {"name": "a", "content": "x"})
    try:
        item.create(_ctx(tmp_path), {"name": "a", "content": "y"})
    except ProviderError as err:
        assert "already exists" in str(err)
    else:
        raise AssertionError("a double create succeeded")
    assert doubles(tmp_path) == ["a"]
    assert files(tmp_path) == {"a": "x"}


def test_folder_item_find_read_and_delete(tmp_path: Path) -> None:
    """find adopts an existing file, read observes it, delete removes it (idempotent)."""
    item = FolderItem()
    ctx = _ctx(tmp_path)
    assert item.find(ctx, {"name": "a"}) is None
    item.create(ctx, {"name": "a", "content": "hi"})
    found = item.find(ctx, {"name": "a"})
    assert found is not None and found.id == "a"
    observed = item.read(ctx, "a", {}, {})
    assert observed is not None and observed.properties == {"name": "a", "content": "hi"}
    item.delete(ctx, "a", {}, {})
    item.delete(ctx, "a", {}, {})
    assert item.read(ctx, "a", {}, {}) is None
    assert [e for e in events(tmp_path) if "delete" in e] == ["start delete a", "delete a"] * 2
