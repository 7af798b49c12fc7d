"""The provider registry: explicit providers, lazily imported entry points, clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import ClassVar

import pytest

from shipyard.errors import InfraError, ProviderError
from shipyard.infra._registry import Registry
from shipyard.infra.provider import Context, Property, Provider
from tests.infra.stacks import DiskFile, DiskProvider, KvEntry, KvProvider

ROOT = Path(__file__).resolve().parents[2]


class TestExplicitProviders:
    def test_types_and_providers_are_found_by_name_once(self) -> None:
        registry = Registry(providers=[DiskProvider, KvProvider()])
        file_type = registry.resource_type("disk_file")
        assert isinstance(file_type, DiskFile)
        assert registry.resource_type("disk_file") is file_type
        assert isinstance(registry.resource_type("kv"), KvEntry)
        assert isinstance(registry.provider("disk"), DiskProvider)
        assert registry.provider_names() == ["disk", "kv"]
        assert registry.type_names() == ["disk_dir", "disk_file", "kv"]

    def test_unknown_names_raise_infra_error_naming_the_closest(self) -> None:
        registry = Registry(providers=[DiskProvider, KvProvider])
        with pytest.raises(InfraError) as info:
            registry.resource_type("disk_fiel")
        assert str(info.value) == (
            "unknown resource type 'disk_fiel' (did you mean 'disk_file'?);"
            " known types: disk_dir, disk_file, kv"
        )
        with pytest.raises(InfraError) as info:
            registry.resource_type("postgres_role")
        assert "unknown resource type 'postgres_role'; known types:" in str(info.value)
        with pytest.raises(InfraError) as info:
            registry.provider("dsk")
        assert str(info.value) == (
            "unknown provider 'dsk' (did you mean 'disk'?); known providers: disk, kv"
        )

    def test_providers_that_break_the_naming_or_types_are_refused(self) -> None:
        class Misnamed(DiskFile):
            name = "file_thing"

        class BadType(DiskFile):
            name = "bad_thing"
            properties: ClassVar = {"x": Property("lisst(string)")}

        class MisnamedProvider(Provider):
            name = "disk"
            resource_types = (Misnamed,)

        class BadProvider(Provider):
            name = "bad"
            resource_types = (BadType,)

        class TwiceProvider(Provider):
            name = "twice"

        with pytest.raises(InfraError, match=r"'file_thing' must be named 'disk' or 'disk_\.\.\.'"):
            Registry(providers=[MisnamedProvider])
        with pytest.raises(
            InfraError, match=r"'bad_thing\.x' has a bad type: unknown type 'lisst'"
        ):
            Registry(providers=[BadProvider])
        with pytest.raises(InfraError, match="provider 'twice' is registered twice"):
            Registry(providers=[TwiceProvider, TwiceProvider])


def _python(code: str, pythonpath: list[Path]) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in pythonpath)}
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
        check=True,
    )
    loaded: dict[str, object] = json.loads(result.stdout)
    return loaded


class TestEntryPoints:
    def test_entry_points_are_listed_without_importing_and_imported_one_by_one(self) -> None:
        """A stack of null resources imports the null provider only (never docker, psycopg)."""
        out = _python(
            """
            import json, sys, threading
            from shipyard.infra._registry import Registry
            registry = Registry.default()
            names = registry.provider_names()
            before = sorted(m for m in sys.modules if m.startswith("shipyard.infra.providers."))
            found = []
            threads = [
                threading.Thread(target=lambda: found.append(registry.resource_type("null")))
                for _ in range(8)
            ]
            for t in threads: t.start()
            for t in threads: t.join()
            after = sorted(m for m in sys.modules if m.startswith("shipyard.infra.providers."))
            heavy = sorted(m for m in ("docker", "psycopg", "httpx", "fastapi", "sqlalchemy") if m in sys.modules)
            print(json.dumps({"names": names, "before": before, "after": after, "heavy": heavy,
                              "same": len({id(t) for t in found}) == 1 and len(found) == 8}))
            """,
            [ROOT / "src", ROOT],
        )
        assert out["names"] == [
            "command", "docker", "file", "loadbalancer", "null", "postgres", "process",
            "random", "template",
        ]  # fmt: skip
        assert out["before"] == []
        assert out["after"] == ["shipyard.infra.providers.null"]
        assert out["heavy"] == []
        assert out["same"] is True

    def test_built_in_providers_are_found_without_reading_entry_points(self) -> None:
        """A stack of built-in types never reads the installed packages' metadata."""
        out = _python(
            """
            import json, sys
            from shipyard.infra._registry import Registry
            registry = Registry.default()
            registry.resource_type("null")
            registry.resource_type("random_id")
            print(json.dumps({"metadata": "importlib.metadata" in sys.modules}))
            """,
            [ROOT / "src", ROOT],
        )
        assert out == {"metadata": False}

    def test_the_built_in_table_is_what_pyproject_declares(self) -> None:
        """BUILT_IN (the fast path) names exactly the entry points pyproject.toml
        declares, and the installed metadata agrees."""
        import tomllib
        from importlib.metadata import entry_points

        from shipyard.infra._registry import BUILT_IN, ENTRY_POINT_GROUP

        declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]
        assert declared[ENTRY_POINT_GROUP] == BUILT_IN
        installed = {e.name: e.value for e in entry_points(group=ENTRY_POINT_GROUP)}
        assert {n: v for n, v in installed.items() if n in BUILT_IN} == BUILT_IN

    def test_third_party_providers_are_found_beside_the_built_in_ones(self, tmp_path: Path) -> None:
        """An installed provider with a name of its own is found through its entry
        point and listed; one reusing a built-in name does not replace the built-in."""
        dist = tmp_path / "site" / "extra_provider-1.0.dist-info"
        dist.mkdir(parents=True)
        (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: extra-provider\nVersion: 1.0\n")
        (dist / "entry_points.txt").write_text(
            "[shipyard.infra.providers]\n"
            "disk = tests.infra.stacks:DiskProvider\n"
            "null = tests.infra.stacks:KvProvider\n"
        )
        out = _python(
            """
            import json
            from shipyard.infra._registry import Registry
            registry = Registry.default()
            print(json.dumps({
                "disk": type(registry.resource_type("disk_file")).__name__,
                "null": type(registry.resource_type("null")).__name__,
                "names": registry.provider_names(),
            }))
            """,
            [tmp_path / "site", ROOT / "src", ROOT],
        )
        assert out["disk"] == "DiskFile" and out["null"] == "NullData"
        names = out["names"]
        assert isinstance(names, list) and "disk" in names and "null" in names

    def test_a_provider_that_cannot_be_imported_is_named_with_its_error(
        self, tmp_path: Path
    ) -> None:
        """A broken installed entry point is reported where a stack uses one of its types."""
        dist = tmp_path / "site" / "broken_provider-1.0.dist-info"
        dist.mkdir(parents=True)
        (dist / "METADATA").write_text(
            "Metadata-Version: 2.1\nName: broken-provider\nVersion: 1.0\n"
        )
        (dist / "entry_points.txt").write_text(
            "[shipyard.infra.providers]\n"
            "broken = no_such_module_for_shipyard_tests:BrokenProvider\n"
            "notone = json:JSONDecoder\n"
        )
        stack = tmp_path / "stack"
        stack.mkdir()
        (stack / "main.yaml").write_text("resources:\n  x: {type: broken_thing}\n")
        out = _python(
            f"""
            import json
            from pathlib import Path
            from shipyard.errors import InfraError, ProviderError, ValidationError
            from shipyard.infra._registry import Registry
            from shipyard.infra._stack import load_stack
            registry = Registry.default()
            messages = []
            for name in ("broken", "notone"):
                try:
                    registry.provider(name)
                except InfraError as err:
                    messages.append(str(err))
            try:
                load_stack(Path({str(stack)!r}), registry)
            except ValidationError as err:
                messages.append(str(err))
            types = registry.type_names()
            print(json.dumps({{"messages": messages, "has_null": "null" in types,
                              "has_broken": any(t.startswith("broken") for t in types)}}))
            """,
            [tmp_path / "site", ROOT / "src", ROOT],
        )
        assert out["messages"] == [
            "provider 'broken' cannot be loaded (no_such_module_for_shipyard_tests:BrokenProvider):"
            " ModuleNotFoundError: No module named 'no_such_module_for_shipyard_tests'",
            "provider 'notone' cannot be loaded (json:JSONDecoder): TypeError:"
            " json:JSONDecoder is not a Provider subclass",
            f"{stack}/main.yaml:2:13: provider 'broken' cannot be loaded"
            " (no_such_module_for_shipyard_tests:BrokenProvider): ModuleNotFoundError:"
            " No module named 'no_such_module_for_shipyard_tests'",
        ]
        assert out["has_null"] is True
        assert out["has_broken"] is False


def test_the_test_providers_manage_real_files(tmp_path: Path) -> None:
    """The providers these tests load stacks with do what their schemas say."""
    registry = Registry(providers=[DiskProvider, KvProvider])
    disk = Context(config={"root": "out"}, stack_dir=tmp_path, data_dir=tmp_path / "data")
    file_type = registry.resource_type("disk_file")
    props = file_type.prepare(disk, {"path": "a.txt", "content": "hi", "mode": 0o600})
    created = file_type.create(disk, props)
    assert (tmp_path / "out" / "a.txt").read_text() == "hi"
    observed = file_type.read(disk, created.id, props, created.attributes)
    assert observed is not None and observed.properties == {"content": "hi", "mode": 0o600}
    file_type.delete(disk, created.id, props, created.attributes)
    assert file_type.read(disk, created.id, props, created.attributes) is None

    kv = Context(config={"store": "kv.json"}, stack_dir=tmp_path, data_dir=tmp_path / "data")
    entry = registry.resource_type("kv")
    made = entry.create(kv, {"key": "k", "value": [1]})
    assert entry.update(kv, made.id, {}, {"key": "k", "value": 2}, made.attributes) == {
        "version": 2
    }
    assert entry.import_(kv, "k").properties == {"key": "k", "value": 2}
    entry.delete(kv, made.id, {}, {})
    with pytest.raises(ProviderError):
        entry.import_(kv, "k")
