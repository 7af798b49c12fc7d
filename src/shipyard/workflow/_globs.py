"""GitHub's filter patterns for ``branches``, ``tags`` and ``paths``.

The syntax is GitHub's own, not shell globbing:

- ``*`` matches any run of characters except ``/``; ``**`` matches any run at all, and
  ``**/`` also matches no directory at all (``docs/**/*.md`` matches ``docs/a.md``);
- ``?`` makes the preceding character optional and ``+`` repeats it one or more times
  (``*.jsx?`` matches ``page.js`` and ``page.jsx``);
- ``[...]`` matches one listed character or one in a range (``a-z``, ``A-Z``, ``0-9``);
- ``\\`` escapes the next character;
- a leading ``!`` negates: in a list, the last pattern that matches decides.

Patterns compile to anchored regular expressions once and are cached.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

__all__ = ["GlobError", "compile_glob", "glob_error", "match_any", "match_patterns"]


class GlobError(ValueError):
    """A filter pattern that cannot be compiled; ``message`` says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _range_ok(lo: str, hi: str) -> bool:
    for first, last in (("0", "9"), ("a", "z"), ("A", "Z")):
        if first <= lo <= last and first <= hi <= last:
            return lo <= hi
    return False


def _translate(pattern: str) -> str:
    atoms: list[str] = []
    i = 0
    n = len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            if i + 1 >= n:
                raise GlobError("pattern ends with an escape character '\\'")
            atoms.append(re.escape(pattern[i + 1]))
            i += 2
        elif c == "*":
            if i + 1 < n and pattern[i + 1] == "*":
                if i + 2 < n and pattern[i + 2] == "/":
                    atoms.append("(?:.*/)?")
                    i += 3
                else:
                    atoms.append(".*")
                    i += 2
            else:
                atoms.append("[^/]*")
                i += 1
        elif c in "?+":
            if not atoms:
                raise GlobError(f"'{c}' must follow a character")
            atoms[-1] = f"(?:{atoms[-1]}){c}"
            i += 1
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                raise GlobError("unbalanced '['")
            body = pattern[i + 1 : end]
            if not body:
                raise GlobError("empty '[]'")
            parts: list[str] = []
            j = 0
            while j < len(body):
                if j + 2 < len(body) and body[j + 1] == "-":
                    lo, hi = body[j], body[j + 2]
                    if not _range_ok(lo, hi):
                        raise GlobError(f"invalid range '{lo}-{hi}'")
                    parts.append(f"{re.escape(lo)}-{re.escape(hi)}")
                    j += 3
                else:
                    parts.append(re.escape(body[j]))
                    j += 1
            atoms.append("[" + "".join(parts) + "]")
            i = end + 1
        else:
            atoms.append(re.escape(c))
            i += 1
    return "".join(atoms)


@lru_cache(maxsize=4096)
def _compile(pattern: str) -> re.Pattern[str] | GlobError:
    if not pattern:
        return GlobError("empty pattern")
    try:
        return re.compile(_translate(pattern), re.DOTALL)
    except GlobError as err:
        return err
    except re.error as err:  # pragma: no cover - _translate only emits valid regexes
        return GlobError(str(err))


def compile_glob(pattern: str) -> re.Pattern[str]:
    """The anchored regex for one pattern (without its leading ``!``); raises GlobError."""
    compiled = _compile(pattern)
    if isinstance(compiled, GlobError):
        raise compiled
    return compiled


def glob_error(pattern: str) -> str | None:
    """Why ``pattern`` (possibly ``!``-negated) is invalid, or ``None`` when it is fine."""
    body = pattern[1:] if pattern.startswith("!") else pattern
    compiled = _compile(body)
    return compiled.message if isinstance(compiled, GlobError) else None


def match_patterns(patterns: Sequence[str], value: str) -> bool:
    """Whether ``value`` is selected by ``patterns``: the last matching pattern decides.

    A positive pattern selects, a ``!`` pattern deselects; nothing matching means not
    selected. Invalid patterns never match (the parser reports them).
    """
    selected = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        compiled = _compile(pattern[1:] if negated else pattern)
        if isinstance(compiled, GlobError):
            continue
        if selected == negated and compiled.fullmatch(value) is not None:
            selected = not negated
    return selected


def match_any(patterns: Sequence[str], values: Sequence[str]) -> bool:
    """Whether at least one of ``values`` is selected by ``patterns``."""
    return any(match_patterns(patterns, v) for v in values)
