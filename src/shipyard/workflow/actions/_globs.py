"""File globbing with the semantics of GitHub's ``@actions/glob``.

``hashFiles()``, ``actions/cache`` and ``actions/upload-artifact`` all find files the
same way on GitHub, and workflows depend on the details:

- one pattern per line; blank lines and ``#`` comments are skipped; a leading ``!``
  excludes; patterns are evaluated in order, so a later include can re-include;
- ``*``, ``?`` and ``[...]`` match within one path segment (dot files included),
  ``**`` matches any number of segments; a trailing ``/`` matches directories only;
- relative patterns are relative to the working directory, ``~`` is the home directory;
- with *implicit descendants* (the default) a pattern matching a directory matches
  everything below it, for excludes too;
- the walk starts at each pattern's *search path* (its leading literal segments) and is
  depth-first with siblings in byte order, which fixes the order ``hashFiles`` hashes in.
"""

from __future__ import annotations

import enum
import fnmatch
import os
import re
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

__all__ = ["GlobResult", "glob", "split_lines"]


class _Kind(enum.IntFlag):
    NONE = 0
    DIRECTORY = 1
    FILE = 2
    ALL = 3


def _is_literal(segment: str) -> bool:
    return not any(c in segment for c in "*?[")


@lru_cache(maxsize=1024)
def _segment_regex(segment: str) -> re.Pattern[str]:
    # minimatch treats [!x] and [^x] alike; fnmatch only knows [!x].
    return re.compile(fnmatch.translate(segment.replace("[^", "[!")))


def _segment_matches(pattern: str, name: str) -> bool:
    if _is_literal(pattern):
        return pattern == name
    return _segment_regex(pattern).match(name) is not None


def _match_segments(pat: tuple[str, ...], item: tuple[str, ...], pi: int = 0, ii: int = 0) -> bool:
    while pi < len(pat):
        seg = pat[pi]
        if seg == "**":
            return any(_match_segments(pat, item, pi + 1, k) for k in range(ii, len(item) + 1))
        if ii >= len(item) or not _segment_matches(seg, item[ii]):
            return False
        pi += 1
        ii += 1
    return ii == len(item)


def _partial_segments(pat: tuple[str, ...], item: tuple[str, ...]) -> bool:
    """Whether something below ``item`` could still match ``pat``."""
    for pi, name in enumerate(item):
        if pi >= len(pat):
            return False
        if pat[pi] == "**":
            return True
        if not _segment_matches(pat[pi], name):
            return False
    return True


@dataclass(frozen=True)
class _Pattern:
    negate: bool
    segments: tuple[str, ...]  # absolute path, without the root
    directory_only: bool
    search_path: str

    def match(self, item: tuple[str, ...]) -> _Kind:
        if not _match_segments(self.segments, item):
            return _Kind.NONE
        return _Kind.DIRECTORY if self.directory_only else _Kind.ALL

    def partial(self, item: tuple[str, ...]) -> bool:
        return _partial_segments(self.segments, item)


def split_lines(text: str) -> list[str]:
    """The non-blank, non-comment lines of a multi-line path input, trimmed."""
    return [
        line.strip()
        for line in text.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]


def _segments(path: str) -> tuple[str, ...]:
    return tuple(p for p in path.split("/") if p)


def _parse(line: str, cwd: str, home: str) -> _Pattern:
    negate = False
    while line.startswith("!"):
        negate = not negate
        line = line[1:].strip()
    if line == "~" or line.startswith("~/"):
        line = home + line[1:]
    directory_only = line.endswith("/") and line.strip("/") != ""
    if not line.startswith("/"):
        line = cwd + "/" + line
    normalized = os.path.normpath(line)
    segments = _segments(normalized)
    literal: list[str] = []
    for seg in segments:
        if not _is_literal(seg):
            break
        literal.append(seg)
    return _Pattern(negate, segments, directory_only, "/" + "/".join(literal))


def _expand_patterns(patterns: list[_Pattern], implicit_descendants: bool) -> list[_Pattern]:
    result: list[_Pattern] = []
    for p in patterns:
        result.append(p)
        if implicit_descendants and (p.directory_only or not p.segments or p.segments[-1] != "**"):
            result.append(_Pattern(p.negate, (*p.segments, "**"), False, p.search_path))
    return result


def _search_paths(patterns: list[_Pattern]) -> list[str]:
    candidates = {p.search_path for p in patterns if not p.negate}
    included: list[str] = []
    for p in patterns:
        if p.negate or p.search_path in included:
            continue
        parent = os.path.dirname(p.search_path)
        current = p.search_path
        has_ancestor = False
        while parent != current:
            if parent in candidates:
                has_ancestor = True
                break
            current, parent = parent, os.path.dirname(parent)
        if not has_ancestor:
            included.append(p.search_path)
    return included


def _evaluate(patterns: list[_Pattern], item: tuple[str, ...]) -> _Kind:
    kind = _Kind.NONE
    for p in patterns:
        if p.negate:
            kind &= ~p.match(item)
        else:
            kind |= p.match(item)
    return kind


@dataclass
class GlobResult:
    """Matched paths in walk order, and the search paths the walk started from."""

    matches: list[Path] = field(default_factory=list)
    search_paths: list[Path] = field(default_factory=list)


def glob(
    lines: Iterable[str],
    cwd: Path,
    *,
    implicit_descendants: bool = True,
    follow_symlinks: bool = True,
    match_directories: bool = True,
    exclude_hidden: bool = False,
    home: str | None = None,
) -> GlobResult:
    """Find files (and directories, when ``match_directories``) matching ``lines``.

    ``~`` in a pattern stands for ``home`` (the current user's home by default).
    """
    base = os.path.realpath(cwd)
    home = home or os.path.expanduser("~")
    parsed = [
        _parse(line.strip(), base, home)
        for line in lines
        if line.strip() and not line.strip().startswith("#")
    ]
    patterns = _expand_patterns(parsed, implicit_descendants)
    search = _search_paths(patterns)
    result = GlobResult(search_paths=[Path(s) for s in search])
    includes = [p for p in patterns if not p.negate]
    for root in search:
        result.matches.extend(
            _walk(root, patterns, includes, follow_symlinks, match_directories, exclude_hidden)
        )
    return result


def _walk(
    root: str,
    patterns: list[_Pattern],
    includes: list[_Pattern],
    follow_symlinks: bool,
    match_directories: bool,
    exclude_hidden: bool,
) -> Iterator[Path]:
    if not os.path.lexists(root):
        return
    # Each entry carries the real paths of the directories above it, to stop at cycles.
    stack: list[tuple[str, tuple[str, ...]]] = [(root, ())]
    while stack:
        path, chain = stack.pop()
        item = _segments(path)
        kind = _evaluate(patterns, item)
        partial = any(p.partial(item) for p in includes)
        if not kind and not partial:
            continue
        if exclude_hidden and os.path.basename(path).startswith("."):
            continue
        try:
            st = os.stat(path) if follow_symlinks else os.lstat(path)
        except FileNotFoundError:
            continue  # a broken symlink: GitHub omits those
        if stat.S_ISDIR(st.st_mode):
            if kind & _Kind.DIRECTORY and match_directories:
                yield Path(path)
            if not partial:
                continue
            real = os.path.realpath(path) if follow_symlinks else path
            if real in chain:
                continue
            try:
                names = os.listdir(path)
            except PermissionError:
                continue
            names.sort(key=os.fsencode)
            stack.extend((path.rstrip("/") + "/" + n, (*chain, real)) for n in reversed(names))
        elif kind & _Kind.FILE:
            yield Path(path)
