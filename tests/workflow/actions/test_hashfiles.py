"""hashFiles() and the glob rules it shares with cache and upload-artifact."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from shipyard.workflow.actions import hash_files
from shipyard.workflow.actions._globs import glob


def write(root: Path, rel: str, content: str = "x") -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    return path


def expected(*files: Path) -> str:
    total = hashlib.sha256()
    for f in files:
        total.update(hashlib.sha256(f.read_bytes()).digest())
    return total.hexdigest()


class TestHashFiles:
    def test_nothing_matching_gives_an_empty_string(self, tmp_path: Path) -> None:
        """hashFiles of a pattern with no match is '' (GitHub's behaviour)."""
        write(tmp_path, "a.txt")
        assert hash_files(tmp_path, ["**/*.lock"]) == ""

    def test_hash_is_sha256_of_each_files_sha256_in_walk_order(self, tmp_path: Path) -> None:
        """Files are hashed depth-first with siblings in byte order: a/x before a.txt."""
        ax = write(tmp_path, "a/x", "1")
        atxt = write(tmp_path, "a.txt", "2")
        b = write(tmp_path, "b", "3")
        assert hash_files(tmp_path, ["**"]) == expected(ax, atxt, b)
        assert hash_files(tmp_path, ["**"]) != expected(atxt, ax, b)

    def test_single_file_pattern(self, tmp_path: Path) -> None:
        """A literal path hashes just that file."""
        f = write(tmp_path, "pyproject.toml", "[project]")
        write(tmp_path, "other.toml")
        assert hash_files(tmp_path, ["pyproject.toml"]) == expected(f)

    def test_negation_excludes_and_later_patterns_reinclude(self, tmp_path: Path) -> None:
        """'!' removes matches; a later include brings them back; order of patterns matters."""
        keep = write(tmp_path, "req/a.txt", "a")
        drop = write(tmp_path, "req/b.txt", "b")
        assert hash_files(tmp_path, ["req/*.txt", "!req/b.txt"]) == expected(keep)
        assert hash_files(tmp_path, ["req/*.txt\n!req/b.txt"]) == expected(keep)
        assert hash_files(tmp_path, ["req/*.txt", "!req/b.txt", "req/b.txt"]) == expected(keep, drop)

    def test_globstar_matches_any_depth_and_star_stays_in_one_segment(self, tmp_path: Path) -> None:
        """'**/x' finds x at every depth including the top; '*/x' only one level down."""
        top = write(tmp_path, "requirements.txt", "0")
        one = write(tmp_path, "a/requirements.txt", "1")
        two = write(tmp_path, "a/b/requirements.txt", "2")
        assert hash_files(tmp_path, ["**/requirements.txt"]) == expected(two, one, top)
        assert hash_files(tmp_path, ["*/requirements.txt"]) == expected(one)

    def test_directory_pattern_hashes_everything_below(self, tmp_path: Path) -> None:
        """A pattern naming a directory matches all files under it (implicit descendants)."""
        f1 = write(tmp_path, "src/pkg/__init__.py", "i")
        f2 = write(tmp_path, "src/pkg/mod.py", "m")
        assert hash_files(tmp_path, ["src"]) == expected(f1, f2)

    def test_dot_files_match_stars(self, tmp_path: Path) -> None:
        """'*' matches names starting with a dot, as minimatch's dot option does."""
        f = write(tmp_path, ".python-version", "3.12")
        assert hash_files(tmp_path, ["*"]) == expected(f)

    def test_files_outside_the_workspace_are_ignored(self, tmp_path: Path) -> None:
        """Absolute or ../ patterns outside the workspace contribute nothing."""
        ws = tmp_path / "ws"
        ws.mkdir()
        write(tmp_path, "outside.txt")
        assert hash_files(ws, ["../outside.txt"]) == ""
        assert hash_files(ws, [str(tmp_path / "outside.txt")]) == ""

    def test_symlinked_directories_are_not_followed(self, tmp_path: Path) -> None:
        """hashFiles does not walk into symlinked directories."""
        real = write(tmp_path, "real/a.txt")
        os.symlink(tmp_path / "real", tmp_path / "link")
        assert hash_files(tmp_path, ["**/*.txt"]) == expected(real)

    def test_content_change_changes_the_hash(self, tmp_path: Path) -> None:
        """The hash follows the contents."""
        f = write(tmp_path, "a.txt", "one")
        before = hash_files(tmp_path, ["a.txt"])
        f.write_text("two")
        assert hash_files(tmp_path, ["a.txt"]) != before


class TestGlob:
    def test_search_paths_are_literal_prefixes_without_nested_ones(self, tmp_path: Path) -> None:
        """Search paths stop at the first wildcard; a path under another is dropped."""
        result = glob(["dist/*.whl", "dist/sub/*.txt", "reports/"], tmp_path)
        root = Path(os.path.realpath(tmp_path))
        assert result.search_paths == [root / "dist", root / "reports"]

    def test_trailing_slash_matches_directories_only(self, tmp_path: Path) -> None:
        """'name/' matches a directory called name but not a file."""
        write(tmp_path, "a/file")
        write(tmp_path, "b")
        result = glob(["a/", "b/"], tmp_path, implicit_descendants=False)
        assert [p.name for p in result.matches] == ["a"]

    def test_hidden_files_excluded_on_request(self, tmp_path: Path) -> None:
        """exclude_hidden drops dot files and whole dot directories."""
        write(tmp_path, "out/.env")
        write(tmp_path, "out/.git/config")
        write(tmp_path, "out/ok.txt")
        result = glob(["out"], tmp_path, exclude_hidden=True, match_directories=False)
        assert [p.name for p in result.matches] == ["ok.txt"]

    def test_character_classes_and_question_marks(self, tmp_path: Path) -> None:
        """'?' is one character and '[...]' a set, as in minimatch."""
        for name in ("a1", "a2", "ab", "a12"):
            write(tmp_path, name)
        assert [p.name for p in glob(["a?"], tmp_path).matches] == ["a1", "a2", "ab"]
        assert [p.name for p in glob(["a[0-9]"], tmp_path).matches] == ["a1", "a2"]
        assert [p.name for p in glob(["a[!0-9]"], tmp_path).matches] == ["ab"]

    def test_tilde_is_the_home_directory(self, tmp_path: Path) -> None:
        """'~/x' is resolved against the given home."""
        home = tmp_path / "home"
        write(home, ".cache/pip/http/a")
        result = glob(["~/.cache/pip"], tmp_path / "ws", home=str(home), implicit_descendants=False)
        assert result.matches == [home / ".cache" / "pip"]
