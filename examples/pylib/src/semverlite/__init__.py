"""Parse, compare and bump Semantic Versioning 2.0.0 version numbers."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import total_ordering

__all__ = ["InvalidVersion", "Version", "parse"]
__version__ = "1.0.0"

_PATTERN = re.compile(
    r"^(?P<major>0|[1-9]\d*)\.(?P<minor>0|[1-9]\d*)\.(?P<patch>0|[1-9]\d*)"
    r"(?:-(?P<pre>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
    r"(?:\+(?P<build>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$"
)


class InvalidVersion(ValueError):
    """The text is not a semantic version."""


def _check_identifiers(parts: tuple[str, ...], text: str) -> None:
    for part in parts:
        if part.isdigit() and len(part) > 1 and part.startswith("0"):
            raise InvalidVersion(f"{text!r}: numeric identifier {part!r} has a leading zero")


@total_ordering
@dataclass(frozen=True)
class Version:
    """A semantic version. Build metadata is kept but ignored when comparing."""

    major: int
    minor: int
    patch: int
    prerelease: tuple[str, ...] = ()
    build: tuple[str, ...] = field(default=(), compare=False)

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += "-" + ".".join(self.prerelease)
        if self.build:
            text += "+" + ".".join(self.build)
        return text

    def _key(self) -> tuple[object, ...]:
        # A release sorts after all of its pre-releases; numeric identifiers sort below
        # alphanumeric ones and compare as numbers.
        pre = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in self.prerelease)
        return (self.major, self.minor, self.patch, not self.prerelease, pre)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() < other._key()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    @property
    def is_prerelease(self) -> bool:
        """Whether this is a pre-release (``1.0.0-rc.1``)."""
        return bool(self.prerelease)

    def bump(self, part: str) -> Version:
        """The next version: ``part`` is ``major``, ``minor``, ``patch`` or ``prerelease``."""
        if part == "major":
            return Version(self.major + 1, 0, 0)
        if part == "minor":
            return Version(self.major, self.minor + 1, 0)
        if part == "patch":
            if self.prerelease:
                return Version(self.major, self.minor, self.patch)
            return Version(self.major, self.minor, self.patch + 1)
        if part == "prerelease":
            if not self.prerelease:
                return Version(self.major, self.minor, self.patch + 1, ("0",))
            *head, last = self.prerelease
            if last.isdigit():
                return Version(self.major, self.minor, self.patch, (*head, str(int(last) + 1)))
            return Version(self.major, self.minor, self.patch, (*self.prerelease, "0"))
        raise ValueError(f"unknown version part {part!r}")


def parse(text: str) -> Version:
    """Parse ``text`` (an optional leading ``v`` is allowed) into a :class:`Version`."""
    stripped = text.strip()
    if stripped[:1] in ("v", "V"):
        stripped = stripped[1:]
    match = _PATTERN.match(stripped)
    if match is None:
        raise InvalidVersion(f"{text!r} is not a semantic version")
    pre = tuple(match["pre"].split(".")) if match["pre"] else ()
    build = tuple(match["build"].split(".")) if match["build"] else ()
    _check_identifiers(pre, text)
    return Version(int(match["major"]), int(match["minor"]), int(match["patch"]), pre, build)
