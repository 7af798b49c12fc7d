"""The null provider: a value in the state, replaced when its triggers change."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from shipyard.errors import ProviderError
from shipyard.infra._registry import Registry
from shipyard.infra._types import parse_type
from shipyard.infra.provider import Context
from shipyard.infra.providers.null import NullData, NullProvider

NULL = NullData()


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    return Context(config={}, stack_dir=tmp_path, data_dir=tmp_path / "data")


def props(**values: Any) -> dict[str, Any]:
    return {"input": None, "triggers_replace": None, **values}


class TestSchema:
    def test_registered_under_its_type_name(self) -> None:
        """The entry point finds the provider and `null` resolves to this type."""
        assert isinstance(Registry.default().resource_type("null"), NullData)
        assert NullProvider.resource_types == (NullData,)

    def test_types_parse_and_only_triggers_replace(self) -> None:
        """Every declared type is a valid type expression; input updates, triggers replace."""
        for prop in NULL.properties.values():
            parse_type(prop.type)
        assert not NULL.properties["input"].replace
        assert NULL.properties["triggers_replace"].replace
        assert NULL.updatable


class TestOperations:
    def test_create_mirrors_input_with_a_uuid_id(self, ctx: Context) -> None:
        """create returns a version-4 UUID id and `output` equal to `input`."""
        created = NULL.create(ctx, props(input={"a": [1, 2]}))
        assert uuid.UUID(created.id).version == 4
        assert str(uuid.UUID(created.id)) == created.id
        assert created.attributes == {"output": {"a": [1, 2]}}

    def test_ids_are_distinct(self, ctx: Context) -> None:
        """Every create draws a new id."""
        assert len({NULL.create(ctx, props()).id for _ in range(1000)}) == 1000

    def test_update_makes_output_follow_input(self, ctx: Context) -> None:
        """An input change is an update in place; output becomes the new input."""
        created = NULL.create(ctx, props(input="a"))
        attributes = NULL.update(
            ctx, created.id, props(input="a"), props(input="b"), created.attributes
        )
        assert attributes == {"output": "b"}

    def test_read_returns_the_state(self, ctx: Context) -> None:
        """read reports the recorded properties and attributes: nothing else exists."""
        created = NULL.create(ctx, props(input=3, triggers_replace=["x"]))
        observed = NULL.read(
            ctx, created.id, props(input=3, triggers_replace=["x"]), created.attributes
        )
        assert observed.properties == props(input=3, triggers_replace=["x"])
        assert observed.attributes == {"output": 3}
        assert observed.notes == ()

    def test_delete_is_idempotent(self, ctx: Context) -> None:
        """Deleting, even twice or an id never created, succeeds."""
        created = NULL.create(ctx, props())
        NULL.delete(ctx, created.id, props(), created.attributes)
        NULL.delete(ctx, created.id, props(), created.attributes)
        NULL.delete(ctx, "never-created", props(), {})

    def test_import_is_refused_with_guidance(self, ctx: Context) -> None:
        """There is nothing outside the state to adopt: import says what to do instead."""
        with pytest.raises(ProviderError, match=r"nothing to import.*moved"):
            NULL.import_(ctx, str(uuid.uuid4()))


def test_ten_thousand_creates_and_reads_take_well_under_a_tenth_of_a_second(
    ctx: Context,
) -> None:
    """10,000 creates then 10,000 reads in one thread: under 0.1 s (best of three runs)."""
    values = props(input={"name": "x", "n": 1})
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        created = [NULL.create(ctx, values) for _ in range(10_000)]
        for one in created:
            NULL.read(ctx, one.id, values, one.attributes)
        best = min(best, time.perf_counter() - start)
    assert best < 0.1, f"10,000 null create+read took {best:.3f} s"
