"""GitHub's filter pattern syntax, checked against the examples of its cheat sheet."""

from __future__ import annotations

import pytest

from shipyard.workflow._globs import GlobError, compile_glob, glob_error, match_patterns

# (pattern, matches, does not match) — branch and tag names.
REF_CASES = [
    ("feature/*", ["feature/my-branch", "feature/your-branch"], ["feature/a/b", "feature"]),
    ("feature/**", ["feature/beta-a/my-branch", "feature/your-branch", "feature/mona/the/octocat"], ["features/x"]),
    ("main", ["main"], ["main2", "amain"]),
    ("releases/mona-the-octocat", ["releases/mona-the-octocat"], ["releases/mona"]),
    ("*", ["main", "releases"], ["releases/x", "a/b"]),
    ("**", ["all/the/branches", "every/tag", "main"], []),
    ("*feature", ["mona-feature", "feature", "ver-10-feature"], ["feature-x", "a/feature"]),
    ("v2*", ["v2", "v2.0", "v2.9"], ["v1", "v2/x"]),
    ("v[12].[0-9]+.[0-9]+", ["v1.10.1", "v2.0.0"], ["v3.0.0", "v1.x.1", "v1..1", "v1.0"]),
    ("*.jsx?", ["page.js", "page.jsx"], ["page.jsxx", "page.j"]),
    ("a+b", ["ab", "aab", "aaab"], ["b", "acb"]),
    ("[CB]at", ["Cat", "Bat"], ["cat", "Rat"]),
    ("[1-2]00", ["100", "200"], ["300", "00"]),
    ("Octo*", ["Octocat"], ["Octo/cat"]),
    ("Octo**", ["Octocat", "Octo/cat"], ["octocat"]),
    ("release-\\*", ["release-*"], ["release-1"]),
    ("v1.0", ["v1.0"], ["v1x0"]),
]  # fmt: skip

# Path examples of the cheat sheet.
PATH_CASES = [
    ("*", ["README.md", "server.rb"], ["docs/README.md"]),
    ("*.jsx?", ["page.js", "page.jsx"], ["src/page.js"]),
    ("**", ["all/the/files.md"], []),
    ("*.js", ["app.js", "index.js"], ["js/app.js"]),
    ("**.js", ["index.js", "js/index.js", "src/js/app.js"], ["index.ts"]),
    ("docs/*", ["docs/README.md", "docs/file.txt"], ["docs/a/b.md", "README.md"]),
    ("docs/**", ["docs/README.md", "docs/mona/octocat.txt"], ["README.md"]),
    ("docs/**/*.md", ["docs/README.md", "docs/mona/hello-world.md", "docs/a/markdown/file.md"], ["docs/a.txt"]),
    ("**/docs/**", ["docs/hello.md", "dir/docs/my-file.txt", "space/docs/plan/space.doc"], ["documents/x"]),
    ("**/README.md", ["README.md", "js/README.md"], ["README.txt"]),
    ("**/*src/**", ["a/src/app.js", "my-src/code/js/app.js"], ["src"]),
    ("**/*-post.md", ["my-post.md", "path/their-post.md"], ["post.md"]),
    ("**/migrate-*.sql", ["migrate-10909.sql", "db/migrate-v1.0.sql", "db/sept/migrate-v1.sql"], ["migrate.sql"]),
]  # fmt: skip


@pytest.mark.parametrize(("pattern", "good", "bad"), REF_CASES + PATH_CASES)
def test_pattern_semantics(pattern: str, good: list[str], bad: list[str]) -> None:
    regex = compile_glob(pattern)
    for name in good:
        assert regex.fullmatch(name), f"{pattern!r} should match {name!r}"
    for name in bad:
        assert not regex.fullmatch(name), f"{pattern!r} should not match {name!r}"


@pytest.mark.parametrize(
    ("patterns", "value", "selected"),
    [
        (["*.md", "!README.md"], "hello.md", True),
        (["*.md", "!README.md"], "README.md", False),
        (["*.md", "!README.md"], "docs/hello.md", False),
        (["*.md", "!README.md", "README*"], "README.md", True),
        (["*.md", "!README.md", "README*"], "README.doc", True),
        (["releases/**", "!releases/**-alpha"], "releases/10", True),
        (["releases/**", "!releases/**-alpha"], "releases/beta/3-alpha", False),
        (["!main"], "main", False),
        ([], "main", False),
        (["[bad", "main"], "main", True),
    ],
)
def test_last_matching_pattern_decides(patterns: list[str], value: str, selected: bool) -> None:
    assert match_patterns(patterns, value) is selected


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("release/[0-9", "unbalanced '['"),
        ("x[]", "empty '[]'"),
        ("[z-a]", "invalid range 'z-a'"),
        ("[a-Z]", "invalid range 'a-Z'"),
        ("[0-z]", "invalid range '0-z'"),
        ("?x", "'?' must follow a character"),
        ("!+x", "'+' must follow a character"),
        ("trailing\\", "pattern ends with an escape character '\\'"),
        ("", "empty pattern"),
        ("!", "empty pattern"),
    ],
)
def test_invalid_patterns_say_why(pattern: str, message: str) -> None:
    assert glob_error(pattern) == message


def test_valid_patterns_have_no_error() -> None:
    assert glob_error("!docs/**/*.md") is None
    assert glob_error("v[0-9a-z]+") is None


def test_compile_raises_for_invalid_patterns_and_caches_valid_ones() -> None:
    with pytest.raises(GlobError, match="unbalanced"):
        compile_glob("[x")
    assert compile_glob("feature/**") is compile_glob("feature/**")


def test_special_regex_characters_are_literal() -> None:
    regex = compile_glob("a.(b)|c^$")
    assert regex.fullmatch("a.(b)|c^$")
    assert not regex.fullmatch("aX(b)|c^$")
