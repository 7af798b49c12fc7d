"""The positioned YAML loader: GitHub's scalar rules, aliases, and located failures."""

from __future__ import annotations

import pytest

from shipyard.workflow._yaml import (
    MAX_DEPTH,
    MappingNode,
    ScalarNode,
    SequenceNode,
    SourceText,
    load_yaml,
)


def root_of(text: str | bytes) -> MappingNode:
    doc = load_yaml(text, "f.yml")
    assert doc.errors == [], [str(e) for e in doc.errors]
    assert isinstance(doc.root, MappingNode)
    return doc.root


def values(text: str) -> dict[str, object]:
    out = {}
    for key, node in root_of(text).items:
        assert isinstance(node, ScalarNode)
        out[key.text] = node.value
    return out


def errors(text: str | bytes) -> list[str]:
    return [str(e) for e in load_yaml(text, "f.yml").errors]


class TestScalars:
    def test_core_schema_only_true_and_false_are_booleans(self) -> None:
        got = values("a: yes\nb: no\nc: on\nd: off\ne: true\nf: False\ng: TRUE\nh: y\n")
        assert got == {
            "a": "yes", "b": "no", "c": "on", "d": "off",
            "e": True, "f": False, "g": True, "h": "y",
        }  # fmt: skip

    def test_on_is_a_string_key(self) -> None:
        assert [k.text for k, _ in root_of("on: push\n").items] == ["on"]

    def test_numbers_and_nulls(self) -> None:
        got = values(
            "a: 1\nb: -2\nc: 1.0\nd: 0x1F\ne: 0o17\nf: 1e3\ng: ~\nh:\ni: null\nj: 017\nk: .inf\n"
        )
        assert got == {
            "a": 1, "b": -2, "c": 1.0, "d": 31, "e": 15, "f": 1000.0,
            "g": None, "h": None, "i": None, "j": 17, "k": float("inf"),
        }  # fmt: skip

    def test_numbers_keep_the_text_they_were_written_as(self) -> None:
        node = root_of("v: 3.10\n").items[0][1]
        assert isinstance(node, ScalarNode) and node.value == 3.1 and node.text == "3.10"

    def test_quoted_scalars_are_strings(self) -> None:
        assert values("a: 'true'\nb: \"1\"\nc: !!str 2\nd: ! 3\n") == {
            "a": "true", "b": "1", "c": "2", "d": "3",
        }  # fmt: skip

    def test_explicit_tags(self) -> None:
        assert values("a: !!int '7'\nb: !!bool 'true'\nc: !!float 1\n") == {
            "a": 7,
            "b": True,
            "c": 1.0,
        }

    def test_huge_integers_stay_text(self) -> None:
        assert values("a: " + "9" * 5000 + "\n") == {"a": "9" * 5000}

    def test_block_scalar_styles(self) -> None:
        node = root_of("a: |\n  x\n  y\nb: >-\n  x\n  y\n")
        a, b = node.items[0][1], node.items[1][1]
        assert isinstance(a, ScalarNode) and a.value == "x\ny\n" and a.style == "|"
        assert isinstance(b, ScalarNode) and b.value == "x y" and b.style == ">"


class TestStructure:
    def test_positions_are_one_based(self) -> None:
        root = root_of("jobs:\n  build:\n    steps:\n      - run: x\n")
        jobs = root.items[0][1]
        assert isinstance(jobs, MappingNode)
        key, build = jobs.items[0]
        assert (key.line, key.col) == (2, 3)
        assert isinstance(build, MappingNode)
        steps = build.items[0][1]
        assert isinstance(steps, SequenceNode)
        step = steps.items[0]
        assert isinstance(step, MappingNode) and (step.line, step.col) == (4, 9)

    def test_aliases_share_the_anchored_node(self) -> None:
        root = root_of("a: &x [1, 2]\nb: *x\n")
        assert root.items[0][1] is root.items[1][1]

    def test_alias_to_an_undefined_anchor(self) -> None:
        assert errors("a: *nope\n") == ["f.yml:1:4: unknown alias 'nope'"]

    def test_alias_inside_its_own_anchor_is_refused(self) -> None:
        assert errors("a: &x [1, *x]\n") == ["f.yml:1:11: unknown alias 'x'"]

    def test_merge_keys_and_duplicates_are_located_but_the_rest_is_kept(self) -> None:
        doc = load_yaml("base: &b {x: 1}\nm:\n  <<: *b\n  y: 1\n  y: 2\n", "f.yml")
        assert [str(e) for e in doc.errors] == [
            "f.yml:3:3: merge keys ('<<') are not supported",
            "f.yml:5:3: duplicate key 'y'",
        ]
        assert isinstance(doc.root, MappingNode) and not doc.fatal

    def test_quoted_merge_key_is_an_ordinary_key(self) -> None:
        assert values("'<<': 1\n") == {"<<": 1}

    def test_non_scalar_keys(self) -> None:
        assert errors("? [a]\n: 1\n") == ["f.yml:1:3: mapping keys must be strings"]

    def test_unsupported_tags(self) -> None:
        assert errors("a: !Ref x\nb: !!binary eA==\nc: !!set {a}\n") == [
            "f.yml:1:4: unsupported YAML tag '!Ref'",
            "f.yml:2:4: unsupported YAML tag '!!binary'",
            "f.yml:3:4: unsupported YAML tag '!!set'",
        ]


class TestFailures:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("a: b: c\n", "f.yml:1:5: mapping values are not allowed here"),
            ("a: 'open\n", "f.yml:1:4: unterminated quoted string"),
            ("k: [a, b\n", "f.yml:2:1: did not find expected ',' or ']' in a flow sequence"),
            ("a:\n\tb: 1\n", "f.yml:2:1: tabs cannot be used for indentation"),
            ("a: 1\n---\nb: 2\n", "f.yml:2:1: expected a single YAML document, found another one"),
            ("ab: c\x00d\n", "f.yml:1:6: character U+0000 is not allowed in YAML"),
            ("é: \x07\n", "f.yml:1:4: character U+0007 is not allowed in YAML"),
            ("x: \ud800\n", "f.yml:1:4: character U+D800 is not allowed in YAML"),
        ],
    )
    def test_syntax_errors_are_one_clean_located_line(self, text: str, expected: str) -> None:
        doc = load_yaml(text, "f.yml")
        assert doc.fatal and doc.root is None
        assert [str(e) for e in doc.errors] == [expected]

    def test_invalid_utf8_points_at_the_bad_byte(self) -> None:
        assert errors(b"a: 1\nb: caf\xe9\n") == ["f.yml:2:7: file is not valid UTF-8 (byte 0xe9)"]

    def test_utf16_with_bom_is_decoded(self) -> None:
        assert values(("\ufeffa: 1\n").encode("utf-16")) == {"a": 1}

    def test_deep_nesting_is_refused_before_any_recursion(self) -> None:
        doc = load_yaml("[" * 5000 + "]" * 5000, "f.yml")
        assert doc.fatal
        assert (
            doc.errors[0].message == f"document is nested too deeply (more than {MAX_DEPTH} levels)"
        )

    def test_aliases_cannot_rebuild_deep_nesting(self) -> None:
        lines = ["a0: &a0 [x]"]
        for i in range(1, 40):
            lines.append(f"a{i}: &a{i} [[[*a{i - 1}]]]")
        doc = load_yaml("\n".join(lines) + "\n", "f.yml")
        assert doc.fatal and "nested too deeply" in doc.errors[0].message

    def test_alias_bombs_are_refused(self) -> None:
        lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
        for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
            lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 10) + "]")
        doc = load_yaml("\n".join(lines) + "\n", "f.yml")
        assert doc.fatal and "too large once aliases are expanded" in doc.errors[0].message

    def test_empty_input_has_no_root_and_no_error(self) -> None:
        doc = load_yaml("", "f.yml")
        assert doc.root is None and doc.errors == [] and not doc.fatal


class TestLocateInScalar:
    def locate(self, text: str, offset: int) -> tuple[int, int]:
        root = root_of(text)
        node = root.items[0][1]
        assert isinstance(node, ScalarNode)
        return SourceText(text).locate_in_scalar(node, offset)

    def test_plain_multiline(self) -> None:
        text = "k: first\n  second third\n"
        assert self.locate(text, 0) == (1, 4)
        assert self.locate(text, len("first second")) == (2, 9)

    def test_literal_block_skips_the_header_and_its_comment(self) -> None:
        text = "k: | # x\n  one\n  two\n"
        assert self.locate(text, 0) == (2, 3)
        assert self.locate(text, len("one\nt")) == (3, 4)

    def test_folded_block(self) -> None:
        text = "k: >\n  one\n  two\n"
        assert self.locate(text, len("one t")) == (3, 4)

    def test_double_quoted_escapes(self) -> None:
        text = 'k: "a\\tb\\u00e9c"\n'
        assert self.locate(text, 2) == (1, 8)  # 'b'
        assert self.locate(text, 4) == (1, 15)  # 'c'

    def test_single_quoted_doubled_quote(self) -> None:
        text = "k: 'it''s x'\n"
        assert self.locate(text, len("it's ")) == (1, 11)

    def test_crlf_line_endings(self) -> None:
        text = "k: |\r\n  one\r\n  two\r\n"
        assert self.locate(text, len("one\nt")) == (3, 4)
