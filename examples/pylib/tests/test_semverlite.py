"""Tests for semverlite, following the examples of the SemVer 2.0.0 specification."""

from __future__ import annotations

import pytest

from semverlite import InvalidVersion, Version, parse


def test_parse_full_version() -> None:
    v = parse("1.2.3-alpha.1+build.5")
    assert (v.major, v.minor, v.patch) == (1, 2, 3)
    assert v.prerelease == ("alpha", "1")
    assert v.build == ("build", "5")


def test_round_trip_to_string() -> None:
    for text in ("0.0.1", "1.0.0-rc.1", "2.3.4+sha.abc", "1.0.0-x.7.z.92+exp"):
        assert str(parse(text)) == text


def test_leading_v_is_accepted() -> None:
    assert parse("v1.4.0") == Version(1, 4, 0)


@pytest.mark.parametrize("text", ["1", "1.2", "01.2.3", "1.2.3-01", "1.2.3-", "a.b.c", ""])
def test_invalid_versions_are_rejected(text: str) -> None:
    with pytest.raises(InvalidVersion):
        parse(text)


def test_precedence_from_the_specification() -> None:
    ordered = [
        "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta",
        "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "2.0.0", "2.1.0", "2.1.1",
    ]
    versions = [parse(t) for t in ordered]
    assert sorted(reversed(versions)) == versions


def test_build_metadata_is_ignored_in_comparisons() -> None:
    assert parse("1.0.0+a") == parse("1.0.0+b")
    assert len({parse("1.0.0+a"), parse("1.0.0")}) == 1


def test_numeric_identifiers_compare_numerically() -> None:
    assert parse("1.0.0-2") < parse("1.0.0-10")


@pytest.mark.parametrize(
    ("start", "part", "expected"),
    [
        ("1.2.3", "major", "2.0.0"),
        ("1.2.3", "minor", "1.3.0"),
        ("1.2.3", "patch", "1.2.4"),
        ("1.2.3-rc.1", "patch", "1.2.3"),
        ("1.2.3", "prerelease", "1.2.4-0"),
        ("1.2.3-rc.1", "prerelease", "1.2.3-rc.2"),
        ("1.2.3-rc", "prerelease", "1.2.3-rc.0"),
    ],
)
def test_bump(start: str, part: str, expected: str) -> None:
    assert str(parse(start).bump(part)) == expected


def test_bump_unknown_part() -> None:
    with pytest.raises(ValueError, match="unknown version part"):
        parse("1.0.0").bump("micro")


def test_is_prerelease() -> None:
    assert parse("1.0.0-rc.1").is_prerelease
    assert not parse("1.0.0").is_prerelease


def test_comparison_with_other_types() -> None:
    assert parse("1.0.0") != "1.0.0"
    with pytest.raises(TypeError):
        _ = parse("1.0.0") < "2.0.0"  # type: ignore[operator]
