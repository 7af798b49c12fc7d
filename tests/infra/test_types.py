"""Type expressions: parsing, checking values, and reading ``-var`` strings."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shipyard.infra._types import TypeSpec, kind_name, parse_type, path_text


class TestParse:
    @pytest.mark.parametrize(
        ("text", "shown"),
        [
            ("string", "string"),
            ("number", "number"),
            ("integer", "integer"),
            ("boolean", "boolean"),
            ("any", "any"),
            ("list(string)", "list(string)"),
            (" map ( list ( integer ) ) ", "map(list(integer))"),
            ("list(map(any))", "list(map(any))"),
        ],
    )
    def test_valid_types_parse_and_print_canonically(self, text: str, shown: str) -> None:
        """Whitespace is free; str() gives the canonical form, which parses to the same."""
        spec = parse_type(text)
        assert str(spec) == shown
        assert parse_type(shown) == spec

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("strng", "unknown type 'strng' (did you mean 'string'?)"),
            ("int", "unknown type 'int' (did you mean 'integer'?)"),
            ("bool", "unknown type 'bool' (did you mean 'boolean'?)"),
            ("list", "list needs an element type, as in list(string)"),
            ("map(string", "expected ')' to close map("),
            ("list()", "unexpected ')'"),
            ("string string", "unexpected 'string' at column 8"),
            ("list(string))", "unexpected ')' at column 13"),
            ("", "a type cannot be empty"),
            ("   ", "a type cannot be empty"),
            ("3", "unexpected '3' at column 1"),
            ("list(" * 20 + "string" + ")" * 20, "nested too deeply"),
        ],
    )
    def test_invalid_types_raise_value_error_saying_why(self, text: str, message: str) -> None:
        with pytest.raises(ValueError, match=None) as info:
            parse_type(text)
        assert message in str(info.value)

    @settings(max_examples=200, deadline=None)
    @given(st.text(alphabet="listmapngr() ,aybo", max_size=30))
    def test_any_text_parses_or_raises_value_error(self, text: str) -> None:
        """Whatever the text, parse_type gives a TypeSpec or a ValueError, nothing else."""
        try:
            spec = parse_type(text)
        except ValueError:
            return
        assert parse_type(str(spec)) == spec


class TestCheck:
    @pytest.mark.parametrize(
        ("type_text", "value"),
        [
            ("string", "x"),
            ("number", 1),
            ("number", 1.5),
            ("integer", -3),
            ("boolean", False),
            ("any", {"a": [1, None]}),
            ("list(string)", ["a", "b"]),
            ("map(integer)", {"a": 1}),
            ("list(map(any))", [{"a": None}]),
            ("string", None),
            ("list(string)", None),
        ],
    )
    def test_values_of_the_type_pass(self, type_text: str, value: object) -> None:
        """Values of the type, and null at the top (no value), pass."""
        assert parse_type(type_text).check(value) is None

    @pytest.mark.parametrize(
        ("type_text", "value", "message"),
        [
            ("integer", "8080", "expected integer, got string"),
            ("integer", True, "expected integer, got boolean"),
            ("number", False, "expected number, got boolean"),
            ("integer", 1.5, "expected integer, got number 1.5"),
            ("integer", 3.0, "expected integer, got number 3.0"),
            ("number", float("inf"), "expected a finite number, got inf"),
            ("string", 3, "expected string, got number"),
            ("boolean", "true", "expected boolean, got string"),
            ("list(string)", {"a": 1}, "expected list(string), got map"),
            ("map(string)", ["a"], "expected map(string), got list"),
            ("list(string)", ["a", "b", True], "[2]: expected string, got boolean"),
            ("list(string)", ["a", None], "[1]: expected string, got null"),
            ("map(list(integer))", {"ports": [1, "x"]}, "ports[1]: expected integer, got string"),
            ("list(map(string))", [{"a b": 1}], '[0]["a b"]: expected string, got number'),
        ],
    )
    def test_mismatches_say_what_was_expected_and_where(
        self, type_text: str, value: object, message: str
    ) -> None:
        assert parse_type(type_text).check(value) == message

    def test_skipped_values_pass_anywhere(self) -> None:
        """Values not known yet (the engine's marker) are accepted at any depth."""
        marker = object()
        spec = parse_type("list(map(integer))")
        assert spec.check([{"a": marker}], skip=lambda v: v is marker) is None
        assert spec.check(marker, skip=lambda v: v is marker) is None
        assert spec.check([{"a": "x"}], skip=lambda v: v is marker) == (
            "[0].a: expected integer, got string"
        )

    def test_kind_names_and_paths(self) -> None:
        values: tuple[object, ...] = (None, True, 1, 1.0, "", [], {})
        assert [kind_name(v) for v in values] == [
            "null", "boolean", "number", "number", "string", "list", "map",
        ]  # fmt: skip
        assert path_text(("env", "PATH", 0, "a-b", "x y")) == 'env.PATH[0].a-b["x y"]'


class TestCoerceCli:
    @pytest.mark.parametrize(
        ("type_text", "text", "value"),
        [
            ("string", " 8080 ", " 8080 "),
            ("integer", "8080", 8080),
            ("integer", "-1", -1),
            ("number", "1.5", 1.5),
            ("number", "2", 2),
            ("number", "1e3", 1000.0),
            ("boolean", "true", True),
            ("boolean", "False", False),
            ("list(string)", "[a, 1, true]", ["a", "1", "true"]),
            ("list(integer)", "[1, 2]", [1, 2]),
            ("map(number)", '{"a": 1, b: 2.5}', {"a": 1, "b": 2.5}),
            ("list(map(any))", "[{a: [1]}]", [{"a": [1]}]),
            ("any", "3", 3),
            ("any", "true", True),
            ("any", "hello world", "hello world"),
            ("any", "[1, x]", [1, "x"]),
        ],
    )
    def test_cli_strings_become_values_of_the_type(
        self, type_text: str, text: str, value: object
    ) -> None:
        result = parse_type(type_text).coerce_cli(text)
        assert result == value
        assert type(result) is type(value)

    @pytest.mark.parametrize(
        ("type_text", "text", "message"),
        [
            ("integer", "1.5", "expected integer, got '1.5'"),
            ("integer", "x", "expected integer, got 'x'"),
            ("number", "nan", "expected number, got 'nan'"),
            ("number", "inf", "expected number, got 'inf'"),
            ("boolean", "yes", "expected boolean (true or false), got 'yes'"),
            ("list(string)", "a,b", "expected list(string) written as [a, b], got 'a,b'"),
            ("map(string)", "a=b", "expected map(string) written as {key: value}"),
            ("list(integer)", "[1, x]", "[1]: expected integer, got string"),
            ("list(string)", "[a, [b]]", "[1]: expected string, got list"),
            ("list(string)", "[a", "cannot read '[a' as list(string)"),
            ("map(string)", "[a]", "expected map(string), got list"),
        ],
    )
    def test_bad_cli_strings_raise_value_error(
        self, type_text: str, text: str, message: str
    ) -> None:
        with pytest.raises(ValueError) as info:
            parse_type(type_text).coerce_cli(text)
        assert message in str(info.value)

    @settings(max_examples=200, deadline=None)
    @given(
        st.sampled_from(
            ["string", "integer", "number", "boolean", "any", "list(any)", "map(string)"]
        ),
        st.text(max_size=30),
    )
    def test_coerce_gives_a_checked_value_or_value_error(self, type_text: str, text: str) -> None:
        """Whatever the text, the result has the type, or ValueError is raised."""
        spec = parse_type(type_text)
        try:
            value = spec.coerce_cli(text)
        except ValueError:
            return
        assert spec.check(value) is None

    def test_typespec_is_hashable_and_compares_by_structure(self) -> None:
        assert TypeSpec("list", TypeSpec("string")) == parse_type("list(string)")
        assert len({parse_type("map(any)"), parse_type("map( any )")}) == 1
