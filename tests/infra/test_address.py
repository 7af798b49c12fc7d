"""Addresses of resource instances and modules: parsed and formatted one way."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shipyard.infra._address import Address, format_address, parse_address


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("web", Address("web")),
        ("web[0]", Address("web", 0)),
        ("web[12]", Address("web", 12)),
        ('web["a"]', Address("web", "a")),
        ('web["a \\"b\\" é"]', Address("web", 'a "b" é')),
        ("my-db_2", Address("my-db_2")),
        ("modules.api", Address(None, None, (("api", None),))),
        ("modules.api[0]", Address(None, None, (("api", 0),))),
        ("modules.api.web", Address("web", None, (("api", None),))),
        (
            'modules.api[0].modules.db["x"].web["a"]',
            Address("web", "a", (("api", 0), ("db", "x"))),
        ),
    ],
)
def test_addresses_parse_and_format_back_the_same(text: str, address: Address) -> None:
    assert parse_address(text) == address
    assert str(address) == text
    assert format_address(address.name, address.key, address.module) == text


def test_json_escapes_in_keys_are_read() -> None:
    assert parse_address('web["\\u00e9\\n"]') == Address("web", "é\n")
    assert str(Address("web", "é\n")) == 'web["é\\n"]'


def test_single_quoted_keys_are_accepted_and_formatted_with_double_quotes() -> None:
    """Keys as expressions write them (``web['a']``, ``''`` for a quote) are read too."""
    assert parse_address("web['it''s']") == Address("web", "it's")
    assert str(parse_address("modules.m['k'].web")) == 'modules.m["k"].web'


def test_module_addresses_know_they_name_modules() -> None:
    assert parse_address("modules.api[1]").is_module
    assert not parse_address("modules.api.web").is_module


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "an address cannot be empty"),
        ("web[", 'expected a number or a "key" inside [ ] at column 5'),
        ("web[0", "expected ']' at column 6"),
        ("web[-1]", 'expected a number or a "key" inside [ ] at column 5'),
        ('web["a]', 'unterminated or invalid "key" at column 5'),
        ("web['a]", "unterminated 'key' at column 5"),
        ("web.x", "unexpected '.' after the resource at column 4"),
        ("web[0][1]", "unexpected '[' after the resource at column 7"),
        ("modules", "expected '.NAME' after 'modules' at column 8"),
        ("modules[0].web", "expected '.NAME' after 'modules' at column 8"),
        ("modules.api web", "expected '.' after the module, found ' ' at column 12"),
        ("1web", "expected a name, found '1' at column 1"),
        ("modules.", "expected a name at column 9"),
        ("module.api.web", "(modules are written modules.NAME)"),
    ],
)
def test_bad_addresses_raise_value_error_saying_what_and_where(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_address(text)
    assert message in str(info.value)
    if text:
        assert repr(text) in str(info.value)


NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_-]{0,8}", fullmatch=True).filter(
    lambda n: n != "modules"
)
KEYS = st.one_of(st.none(), st.integers(min_value=0, max_value=10**6), st.text(max_size=10))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(NAMES, KEYS), max_size=3),
    st.one_of(st.none(), NAMES),
    KEYS,
)
def test_every_address_survives_format_then_parse(
    module: list[tuple[str, int | str | None]], name: str | None, key: int | str | None
) -> None:
    if name is None:
        if not module:
            return
        key = None
    address = Address(name, key, tuple(module))
    assert parse_address(str(address)) == address


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=30))
def test_any_text_parses_or_raises_value_error(text: str) -> None:
    try:
        address = parse_address(text)
    except ValueError:
        return
    assert parse_address(str(address)) == address
