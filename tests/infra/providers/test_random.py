"""The random provider: ids, strings, passwords and integers drawn once and kept."""

from __future__ import annotations

import base64
import string
from pathlib import Path
from typing import Any

import pytest

from shipyard.errors import ProviderError
from shipyard.infra._registry import Registry
from shipyard.infra._types import parse_type
from shipyard.infra.provider import REQUIRED, Context, ResourceType
from shipyard.infra.providers.random import (
    RandomId,
    RandomInteger,
    RandomPassword,
    RandomProvider,
    RandomString,
)
from tests.infra.providers._helpers import defaults

ID = RandomId()
STRING = RandomString()
PASSWORD = RandomPassword()
INTEGER = RandomInteger()
SPECIAL = "!@#$%&*()-_=+[]{}<>:?"


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    return Context(config={}, stack_dir=tmp_path, data_dir=tmp_path / "data")


class TestSchema:
    @pytest.mark.parametrize(
        "name", ["random_id", "random_string", "random_password", "random_integer"]
    )
    def test_registered_under_its_type_name(self, name: str) -> None:
        """Each type resolves through the registry to this provider's class."""
        rtype = Registry.default().resource_type(name)
        assert rtype.name == name
        assert type(rtype) in RandomProvider.resource_types

    @pytest.mark.parametrize("rtype", [ID, STRING, PASSWORD, INTEGER], ids=lambda t: t.name)
    def test_every_property_replaces_and_types_parse(self, rtype: ResourceType) -> None:
        """Random values are never updated in place: any change draws a new one."""
        assert not rtype.updatable
        for prop in rtype.properties.values():
            assert prop.replace
            spec = parse_type(prop.type)
            if prop.default is not REQUIRED and prop.default is not None:
                assert spec.check(prop.default) is None

    def test_only_the_password_is_sensitive(self) -> None:
        """random_password's result is sensitive; random_string's is not."""
        assert PASSWORD.attributes["result"].sensitive
        assert not STRING.attributes["result"].sensitive


class TestRandomId:
    def test_encodings_agree(self, ctx: Context) -> None:
        """hex, b64_url, b64_std and dec encode the same bytes; the id is the b64_url."""
        created = ID.create(ctx, defaults(ID, byte_length=8))
        data = bytes.fromhex(created.attributes["hex"])
        assert len(data) == 8
        assert created.id == created.attributes["b64_url"]
        assert base64.urlsafe_b64decode(created.id + "=" * (-len(created.id) % 4)) == data
        assert base64.b64decode(created.attributes["b64_std"]) == data
        assert int(created.attributes["dec"]) == int.from_bytes(data, "big")

    def test_prefix_goes_before_every_encoding(self, ctx: Context) -> None:
        """The prefix is put before each attribute, not into the id."""
        created = ID.create(ctx, defaults(ID, byte_length=4, prefix="web-"))
        for key in ("hex", "b64_url", "b64_std", "dec"):
            assert created.attributes[key].startswith("web-")
        assert not created.id.startswith("web-")

    def test_values_differ(self, ctx: Context) -> None:
        """Two creates draw different bytes."""
        assert (
            ID.create(ctx, defaults(ID, byte_length=16)).id
            != ID.create(ctx, defaults(ID, byte_length=16)).id
        )

    def test_read_returns_the_state(self, ctx: Context) -> None:
        """Nothing exists outside the state: read reports it unchanged."""
        props = defaults(ID, byte_length=4)
        created = ID.create(ctx, props)
        observed = ID.read(ctx, created.id, props, created.attributes)
        assert (observed.properties, observed.attributes) == (props, created.attributes)

    def test_import_by_b64_url_with_and_without_prefix(self, ctx: Context) -> None:
        """Import takes the b64_url (optionally `PREFIX,`) and recovers the byte length."""
        created = ID.create(ctx, defaults(ID, byte_length=6, prefix="p-"))
        observed = ID.import_(ctx, f"p-,{created.id}")
        assert observed.properties == {"byte_length": 6, "prefix": "p-"}
        assert observed.attributes == created.attributes
        plain = ID.import_(ctx, created.id)
        assert plain.properties == {"byte_length": 6, "prefix": ""}
        assert plain.attributes["hex"] == created.attributes["hex"][2:]

    def test_import_by_hex(self, ctx: Context) -> None:
        """`hex:` and the hex digits import the same bytes."""
        observed = ID.import_(ctx, "hex:00ff10")
        assert observed.properties["byte_length"] == 3
        assert observed.attributes["dec"] == str(0x00FF10)
        assert observed.attributes["b64_url"] == "AP8Q"

    @pytest.mark.parametrize("bad", ["", "not base64!", "hex:zz", "AP8Q=", "hex:"])
    def test_import_rejects_what_is_not_an_id(self, ctx: Context, bad: str) -> None:
        """Malformed or empty ids are refused with the expected forms."""
        with pytest.raises(ProviderError, match="random_id"):
            ID.import_(ctx, bad)

    def test_validation(self) -> None:
        """A byte length below 1 is located at byte_length."""
        assert ID.validate(defaults(ID, byte_length=0)) == [("byte_length", "must be at least 1")]
        assert ID.validate(defaults(ID, byte_length=1)) == []
        assert ID.validate({}) == []  # nothing known yet: nothing to say


class TestRandomText:
    def test_default_classes_and_length(self, ctx: Context) -> None:
        """By default all four classes may appear and the length is exact."""
        created = STRING.create(ctx, defaults(STRING, length=200))
        result = created.attributes["result"]
        assert len(result) == 200
        assert set(result) <= set(string.ascii_letters + string.digits + SPECIAL)
        assert created.id == result

    def test_minimums_are_met(self, ctx: Context) -> None:
        """Each min_* is honoured even when the length leaves no room for chance."""
        props = defaults(STRING, length=8, min_upper=2, min_lower=2, min_numeric=2, min_special=2)
        for _ in range(50):
            result = STRING.create(ctx, props).attributes["result"]
            assert sum(c.isupper() for c in result) == 2
            assert sum(c.islower() for c in result) == 2
            assert sum(c.isdigit() for c in result) == 2
            assert sum(c in SPECIAL for c in result) == 2

    def test_minimums_are_shuffled(self, ctx: Context) -> None:
        """The required characters are not always at the front."""
        props = defaults(STRING, length=10, upper=False, special=False, numeric=True, min_numeric=1)
        firsts = {STRING.create(ctx, props).attributes["result"][0].isdigit() for _ in range(100)}
        assert firsts == {True, False}

    def test_disabled_classes_never_appear(self, ctx: Context) -> None:
        """Only enabled classes are used; override_special replaces the special set."""
        props = defaults(STRING, length=300, upper=False, numeric=False, override_special="_")
        result = STRING.create(ctx, props).attributes["result"]
        assert set(result) <= set(string.ascii_lowercase + "_")
        assert "_" in result

    def test_password_id_does_not_reveal_it(self, ctx: Context) -> None:
        """A password's id is unrelated to the password."""
        created = PASSWORD.create(ctx, defaults(PASSWORD, length=24))
        assert len(created.attributes["result"]) == 24
        assert created.id != created.attributes["result"]
        assert created.attributes["result"] not in created.id

    def test_string_import_takes_the_text(self, ctx: Context) -> None:
        """random_string imports its value; only the length is known from it."""
        observed = STRING.import_(ctx, "abc-123")
        assert observed.properties == {"length": 7}
        assert observed.attributes == {"result": "abc-123"}

    def test_password_import_is_refused(self, ctx: Context) -> None:
        """A password cannot be imported, as its id would be kept in plain text."""
        with pytest.raises(ProviderError, match="plain text"):
            PASSWORD.import_(ctx, "hunter2")

    @pytest.mark.parametrize(
        ("values", "expected"),
        [
            ({"length": 0}, [("length", "must be at least 1")]),
            (
                {"length": 3, "min_upper": 2, "min_lower": 2},
                [("length", "must be at least the sum of the min_* (4)")],
            ),
            ({"length": 8, "min_numeric": -1}, [("min_numeric", "must not be negative")]),
            (
                {"length": 8, "upper": False, "min_upper": 1},
                [("min_upper", "asks for upper characters, but upper is false")],
            ),
            (
                {"length": 8, "override_special": "", "min_special": 1},
                [("min_special", "asks for special characters, but override_special is empty")],
            ),
            (
                {"length": 8, "upper": False, "lower": False, "numeric": False, "special": False},
                [("upper", "no characters are allowed: set one of upper, lower, numeric, special")],
            ),
            (
                {
                    "length": 8,
                    "upper": False,
                    "lower": False,
                    "numeric": False,
                    "override_special": "",
                },
                [("upper", "no characters are allowed: set one of upper, lower, numeric, special")],
            ),
            ({"length": 8}, []),
        ],
    )
    def test_validation(self, values: dict[str, Any], expected: list[tuple[str, str]]) -> None:
        """Impossible settings are reported at the property at fault."""
        assert STRING.validate(defaults(STRING, **values)) == expected
        assert PASSWORD.validate(defaults(PASSWORD, **values)) == expected

    def test_validation_skips_unknown_values(self) -> None:
        """Properties not known yet are absent and not judged."""
        assert STRING.validate({"min_upper": 3}) == []


class TestRandomInteger:
    def test_result_is_within_bounds_and_covers_them(self, ctx: Context) -> None:
        """min and max are both reachable; the id is the result as text."""
        props = defaults(INTEGER, min=1, max=3)
        seen = set()
        for _ in range(200):
            created = INTEGER.create(ctx, props)
            assert created.id == str(created.attributes["result"])
            seen.add(created.attributes["result"])
        assert seen == {1, 2, 3}

    def test_single_value_range(self, ctx: Context) -> None:
        """min == max gives that value."""
        assert INTEGER.create(ctx, defaults(INTEGER, min=-5, max=-5)).attributes["result"] == -5

    def test_validation(self) -> None:
        """max below min is located at max."""
        assert INTEGER.validate(defaults(INTEGER, min=5, max=4)) == [
            ("max", "must be at least min (5)")
        ]
        assert INTEGER.validate({"max": 4}) == []

    def test_import(self, ctx: Context) -> None:
        """Import takes RESULT,MIN,MAX."""
        observed = INTEGER.import_(ctx, "15390,1,50000")
        assert observed.properties == {"min": 1, "max": 50000}
        assert observed.attributes == {"result": 15390}

    @pytest.mark.parametrize("bad", ["15390", "a,b,c", "9,10,20", "1,2"])
    def test_import_rejects_malformed_ids(self, ctx: Context, bad: str) -> None:
        """Ids that are not RESULT,MIN,MAX with the result in range are refused."""
        with pytest.raises(ProviderError, match="random_integer"):
            INTEGER.import_(ctx, bad)

    def test_delete_is_a_no_op(self, ctx: Context) -> None:
        """Deleting forgets the value: nothing to do outside the state."""
        INTEGER.delete(ctx, "7", defaults(INTEGER, min=1, max=9), {"result": 7})
