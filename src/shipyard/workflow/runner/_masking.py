"""Hiding secrets in everything a job prints."""

from __future__ import annotations

import re

MASK = "***"

# Below this many values one ``str.replace`` per value beats a regex pass.
_REGEX_FROM = 8


class Masker:
    """Replaces every registered value with ``***``.

    A value spanning several lines is registered line by line, because output is masked
    one line (or one block of whole lines) at a time. Longer values are replaced first,
    so a secret that contains another secret leaves nothing of itself behind.
    """

    __slots__ = ("_pattern", "_values")

    def __init__(self, values: list[str] | None = None) -> None:
        self._values: list[str] = []
        self._pattern: re.Pattern[str] | None = None
        for value in values or ():
            self.add(value)

    def add(self, value: str) -> None:
        """Mask ``value`` (each of its lines) from now on; blank values are ignored."""
        changed = False
        for line in value.replace("\r\n", "\n").split("\n"):
            line = line.strip("\r")
            if line.strip() and line not in self._values:
                self._values.append(line)
                changed = True
        if changed:
            self._values.sort(key=len, reverse=True)
            self._pattern = None
            if len(self._values) >= _REGEX_FROM:
                self._pattern = re.compile("|".join(re.escape(v) for v in self._values))

    def __bool__(self) -> bool:
        return bool(self._values)

    def __contains__(self, text: str) -> bool:
        """Whether ``text`` shows any masked value."""
        return any(v in text for v in self._values)

    def mask(self, text: str) -> str:
        """``text`` with every masked value replaced."""
        if self._pattern is not None:
            return self._pattern.sub(MASK, text)
        for value in self._values:
            if value in text:
                text = text.replace(value, MASK)
        return text
