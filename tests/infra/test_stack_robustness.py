"""Whatever the files hold, loading gives a Stack or a ValidationError; and it is fast."""

from __future__ import annotations

import gc
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shipyard.errors import ValidationError
from shipyard.infra._model import Stack
from shipyard.infra._stack import load_stack
from tests.infra.stacks import REGISTRY

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

KEYS = [
    "variables", "providers", "resources", "modules", "outputs", "moved", "type", "default",
    "description", "sensitive", "validation", "condition", "message", "properties",
    "depends_on", "count", "for_each", "lifecycle", "prevent_destroy", "ignore_changes",
    "create_before_destroy", "source", "value", "from", "to", "path", "content", "mode",
    "tags", "lines", "digest", "key", "ports", "store", "root", "disk", "kv", "web", "db",
    "m", "port", "a", "modules.m", "1x", "${{ x }}",
]  # fmt: skip

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(
        [
            "disk_file", "disk_dir", "kv", "nope", "integer", "list(string)", "map(",
            "./m", ".", "../..", "/", "web", "web[0]", 'web["a"]', "modules.m", "modules.m.web",
            "${{ var.port }}", "${{ resources.web.id }}", "${{ resources.web[0].path }}",
            "${{ modules.m.outputs.x }}", "${{ count.index }}", "${{ each.key }}", "${{",
            "${{ var.port > 1 }}", "a ${{ resources.db.id }} b", "${{ resources.web.*.id }}",
            "${{ github.sha }}", "${{ hashFiles('x') }}", "*", "${{ 1 + }}", "${{ toJSON(var) }}",
        ]
    ),
    st.text(max_size=12),
)  # fmt: skip

TREES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.sampled_from(KEYS), children, max_size=5),
    ),
    max_leaves=40,
)

STACK_LIKE = st.dictionaries(
    st.sampled_from(["variables", "providers", "resources", "modules", "outputs", "moved"]),
    st.one_of(TREES, st.dictionaries(st.sampled_from(["web", "db", "m", "port", "a"]), TREES)),
    max_size=6,
)


def _load(files: dict[str, str | bytes]) -> Stack | ValidationError:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name, text in files.items():
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(text, bytes):
                path.write_bytes(text)
            else:
                path.write_text(text, errors="surrogatepass")
        try:
            return load_stack(root, REGISTRY)
        except ValidationError as err:
            for error in err.errors:
                assert error.location is not None and "\n" not in str(error)
            return err


def _dump(tree: Any) -> str:
    return yaml.safe_dump(tree, allow_unicode=True)


@SETTINGS
@given(st.text(max_size=300))
def test_any_text_gives_a_stack_or_a_validation_error(text: str) -> None:
    _load({"main.yaml": text})


@SETTINGS
@given(st.binary(max_size=200))
def test_any_bytes_give_a_stack_or_a_validation_error(data: bytes) -> None:
    _load({"main.yaml": data})


@SETTINGS
@given(STACK_LIKE, STACK_LIKE)
def test_any_stack_shaped_yaml_gives_a_stack_or_a_validation_error(
    main: dict[str, Any], module: dict[str, Any]
) -> None:
    """Stack-like trees, for the root and for a module folder it may use."""
    _load({"main.yaml": _dump(main), "m/main.yaml": _dump(module)})


def _best_of(runs: int, fn: Callable[[], object]) -> float:
    """The least CPU time of ``runs`` calls: other processes on a busy machine stretch wall
    time, not the work this one does."""
    best = float("inf")
    for _ in range(runs):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def _declarations(n: int, chained: bool) -> str:
    lines = ["resources:"]
    for i in range(n):
        lines += [f"  r{i}:", "    type: disk_file", "    properties:", f"      path: out/r{i}.txt"]
        if chained and i:
            lines.append(f'      content: "${{{{ resources.r{i - 1}.checksum }}}}"')
    return "\n".join(lines) + "\n"


def test_a_count_of_ten_thousand_loads_instantly(tmp_path: Path) -> None:
    (tmp_path / "main.yaml").write_text(
        "resources:\n  r:\n    type: disk_file\n    count: 10000\n"
        '    properties: {path: "out/${{ count.index }}"}\n'
    )
    assert load_stack(tmp_path, REGISTRY).resources["r"].count == 10000
    assert _best_of(3, lambda: load_stack(tmp_path, REGISTRY)) < 0.05


def test_a_thousand_declarations_load_well_under_300_ms(tmp_path: Path) -> None:
    """Independent and chained (each refers to the previous): measured ~0.03 s and ~0.05 s."""
    for chained in (False, True):
        (tmp_path / "main.yaml").write_text(_declarations(1000, chained))
        assert len(load_stack(tmp_path, REGISTRY).resources) == 1000
        assert _best_of(3, lambda: load_stack(tmp_path, REGISTRY)) < 0.3


def test_loading_time_grows_linearly(tmp_path: Path) -> None:
    """Four times the declarations take about four times as long (quadratic would be 16)."""
    small, large = tmp_path / "small", tmp_path / "large"
    for folder, n in ((small, 500), (large, 2000)):
        folder.mkdir()
        (folder / "main.yaml").write_text(_declarations(n, chained=True))
    # The collector's full passes grow with the whole heap of the test process; they are
    # the process's business (the CLI tunes them), not the loader's algorithm.
    gc.disable()
    try:
        ratio = _best_of(5, lambda: load_stack(large, REGISTRY)) / _best_of(
            5, lambda: load_stack(small, REGISTRY)
        )
    finally:
        gc.enable()
    assert ratio < 8


def test_many_errors_are_all_collected_quickly(tmp_path: Path) -> None:
    """A thousand broken declarations give a thousand located errors, fast."""
    text = "resources:\n" + "".join(
        f"  r{i}: {{type: disk_file, properties: {{path: 1, mode: x}}}}\n" for i in range(1000)
    )
    (tmp_path / "main.yaml").write_text(text)

    def load() -> None:
        try:
            load_stack(tmp_path, REGISTRY)
        except ValidationError as err:
            assert len(err.errors) == 1000
        else:
            raise AssertionError("loaded")

    assert _best_of(2, load) < 0.5
