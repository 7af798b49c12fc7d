"""The decoded text of a file, and how offsets in it map to lines and columns."""

from __future__ import annotations

import codecs
import re
from bisect import bisect_right
from typing import TYPE_CHECKING

from shipyard.errors import LocatedError, Location

if TYPE_CHECKING:
    from shipyard.workflow._yaml import ScalarNode

__all__ = ["SourceText", "byte_offset_position", "clean_message", "decode_source"]

_LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")


class SourceText:
    """The decoded text of a file, able to turn offsets into 1-based line/column."""

    __slots__ = ("_starts", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._starts: list[int] | None = None

    @property
    def line_starts(self) -> list[int]:
        if self._starts is None:
            self._starts = [0] + [m.end() for m in _LINE_BREAK.finditer(self.text)]
        return self._starts

    def index(self, line: int, col: int) -> int:
        """The character index of a 1-based line/column (clamped to the text)."""
        starts = self.line_starts
        line = min(max(line, 1), len(starts))
        return min(starts[line - 1] + col - 1, len(self.text))

    def position(self, index: int) -> tuple[int, int]:
        """The 1-based line/column of a character index."""
        starts = self.line_starts
        line = bisect_right(starts, index)
        return line, index - starts[line - 1] + 1

    def locate_in_scalar(self, node: ScalarNode, offset: int) -> tuple[int, int]:
        """Where the character at ``offset`` of a scalar's value sits in the file.

        Exact for plain and block scalars; quoted scalars are followed character by
        character, so escapes make it a close estimate rather than exact.
        """
        value = node.text
        offset = max(0, min(offset, len(value)))
        text = self.text
        if node.style in ("|", ">"):
            # Content starts on the line after the header (which may carry a comment).
            starts = self.line_starts
            j = starts[node.line] if node.line < len(starts) else len(text)
        else:
            j = self.index(node.line, node.col)
            if node.style in ("'", '"') and j < len(text) and text[j] == node.style:
                j += 1
        end = self.index(node.end_line, node.end_col)
        i = 0
        # Non-blank characters appear in the value in source order; only whitespace,
        # line folding, indentation and escapes differ, so walk both in step.
        style = node.style
        while i < offset and j < end:
            c = value[i]
            s = text[j]
            if style == '"' and s == "\\" and j + 1 < end:
                escape = text[j + 1]
                if escape in "\r\n":
                    # An escaped line break joins lines without adding a character.
                    j += 2
                    while j < end and text[j] in " \t\r\n":
                        j += 1
                    continue
                j += {"x": 4, "u": 6, "U": 10}.get(escape, 2)
                i += 1
            elif style == "'" and s == "'" and text[j + 1 : j + 2] == "'":
                j += 2
                i += 1
            elif c == s:
                i += 1
                j += 1
            elif s in " \t\r\n":
                j += 1
            elif c in " \n":
                i += 1
            else:
                j += 1
        if offset < len(value) and value[offset] not in " \n":
            while j < end and text[j] in " \t\r\n":
                j += 1
        return self.position(j)


def decode_source(data: str | bytes, file: str) -> tuple[str | None, LocatedError | None]:
    """Decode file bytes the way YAML does (BOM-aware UTF-8/16/32); locate bad bytes."""
    if isinstance(data, str):
        return (data[1:] if data.startswith("\ufeff") else data), None
    for bom, encoding in (
        (codecs.BOM_UTF32_LE, "utf-32-le"),
        (codecs.BOM_UTF32_BE, "utf-32-be"),
        (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
    ):
        if data.startswith(bom):
            body = data[len(bom) :]
            try:
                return body.decode(encoding), None
            except UnicodeDecodeError:
                return None, LocatedError(
                    f"file is not valid {encoding.upper()[:6]}", Location(file, 1, 1)
                )
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as err:
        head = data[: err.start]
        line = head.count(b"\n") + 1
        last = head.rfind(b"\n")
        col = len(head[last + 1 :].decode("utf-8", "replace")) + 1
        return None, LocatedError(
            f"file is not valid UTF-8 (byte 0x{data[err.start]:02x})", Location(file, line, col)
        )


def byte_offset_position(text: str, byte_offset: int) -> tuple[int, int]:
    head = text.encode("utf-8", "surrogatepass")[:byte_offset].decode("utf-8", "replace")
    line = len(_LINE_BREAK.findall(head)) + 1
    starts = [m.end() for m in _LINE_BREAK.finditer(head)]
    return line, len(head) - (starts[-1] if starts else 0) + 1


_CONTROL = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")
_MAX_MESSAGE = 400


def clean_message(message: str) -> str:
    """One printable line: control characters a user wrote are shown escaped."""
    message = _CONTROL.sub(lambda m: repr(m.group())[1:-1], message)
    if len(message) > _MAX_MESSAGE:
        message = message[: _MAX_MESSAGE - 3] + "..."
    return message
