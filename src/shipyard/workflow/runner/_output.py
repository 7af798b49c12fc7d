"""A step's output on its way to the log: lines, workflow commands, masking.

Output arrives in large chunks of bytes; a line cut by a chunk's end waits (as bytes)
for the rest of it, so every chunk is handled as whole lines. Lines can be cut only at
a newline, which never sits inside a UTF-8 character, so decoding whole lines gives
the same text as decoding the stream.

A chunk of whole lines that needs nothing done to it (valid UTF-8, no ``\r``, no line
starting with ``::``, no secret: all checked on the bytes, which is exact for UTF-8)
goes to a reporter with ``log_bytes`` as it is, never decoded. Any other chunk is
decoded (invalid UTF-8 replaced), masked in one pass and reported as text; only chunks
that hold a command are walked line by line, since a command (``::add-mask::``)
changes how the lines after it are treated. Either way the log gets the same bytes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from shipyard.workflow._runtime import Annotation
from shipyard.workflow.runner._commands import annotation_from, parse_command
from shipyard.workflow.runner._masking import Masker

_COMMAND_START = re.compile(r"^[ \t]*::", re.M)
_COMMAND_START_BYTES = re.compile(rb"^[ \t]*::", re.M)

# A line longer than this many bytes is cut (between characters): holding unbounded
# output for one line would let a step without newlines exhaust memory.
MAX_LINE = 1 << 20

_DEPRECATED = (
    "The `{name}` command is deprecated and will be disabled soon. "
    "Please upgrade to using Environment Files ({file})."
)
_DISABLED = (
    "Unable to process command '::{name} ...' successfully. The `{name}` command is "
    "disabled. Please upgrade to using Environment Files ({file})."
)


@dataclass(slots=True)
class JobLog:
    """Where a job's output goes: masked, to the reporter and the job's annotations.

    ``raw`` is the reporter's ``log_bytes``; when not given it is found on the reporter
    whose ``log_block`` is ``block`` (see :class:`~shipyard.workflow._runtime.BytesReporter`).
    """

    key: str
    log: Callable[[str, int, str], None]  # reporter.log
    masker: Masker
    debug: bool = False
    annotations: list[Annotation] = field(default_factory=list)
    block: Callable[[str, int, str], None] | None = None  # reporter.log_block, if it has one
    raw: Callable[[str, int, bytes], None] | None = None  # reporter.log_bytes, if it has one
    # The masked values as UTF-8 (how many there were, the values, a pattern for many).
    _secrets: tuple[int, tuple[bytes, ...], re.Pattern[bytes] | None] = field(
        default=(0, (), None), init=False, repr=False
    )

    def __post_init__(self) -> None:
        if self.raw is None and self.block is not None:
            self.raw = getattr(getattr(self.block, "__self__", None), "log_bytes", None)

    def shows_secret(self, data: bytes) -> bool:
        """Whether UTF-8 ``data`` holds a masked value (exact: UTF-8 is self-synchronising)."""
        values = self.masker._values  # same package: the masker's registered values
        if not values:
            return False
        count, encoded, pattern = self._secrets
        if count != len(values):  # values are only ever added
            encoded = tuple(v.encode("utf-8", "surrogatepass") for v in values)
            pattern = (
                re.compile(b"|".join(re.escape(v) for v in encoded)) if len(encoded) > 4 else None
            )
            self._secrets = (len(values), encoded, pattern)
        if pattern is not None:
            return pattern.search(data) is not None
        return any(v in data for v in encoded)

    def line(self, index: int, text: str) -> None:
        """Report one or more lines (``text`` may hold newlines), masked."""
        masked = self.masker.mask(text) if self.masker else text
        if self.block is not None:
            self.block(self.key, index, masked)
            return
        log, key = self.log, self.key
        for line in masked.split("\n"):
            log(key, index, line)

    def annotate(self, annotation: Annotation) -> Annotation:
        """Record an annotation with its message and title masked."""
        m = self.masker
        if m:
            annotation.message = m.mask(annotation.message)
            if annotation.title:
                annotation.title = m.mask(annotation.title)
        self.annotations.append(annotation)
        return annotation


@dataclass(slots=True)
class CommandEffects:
    """What a step's commands asked for, applied by the runner after the step."""

    outputs: dict[str, str] = field(default_factory=dict)
    state: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # commands that fail the step


class OutputProcessor:
    """Turns one step's raw output into log lines and command effects."""

    def __init__(self, job: JobLog, index: int, effects: CommandEffects | None = None) -> None:
        self.job = job
        self.index = index
        self.effects = effects if effects is not None else CommandEffects()
        self._pending = b""  # the start of a line whose newline has not come yet
        self._stop_token: str | None = None
        self._stop_bytes = b""  # ``::<token>::`` while commands are stopped
        self._echo = False
        self._warned: set[str] = set()

    def feed(self, data: bytes) -> None:
        """Take the next chunk of raw output."""
        cut = data.rfind(b"\n")
        if cut < 0:
            pending = self._pending + data
            if len(pending) < MAX_LINE:
                self._pending = pending
                return
            # No newline in sight: report what there is as a line (whole characters only).
            keep = _char_cut(pending)
            self._pending = pending[keep:]
            self._lines(pending[:keep] + b"\n")
            return
        end = cut + 1
        if self._pending:
            lines = b"".join((self._pending, memoryview(data)[:end]))
        else:
            lines = data if end == len(data) else data[:end]
        self._pending = data[end:]
        self._lines(lines)
        if len(self._pending) >= MAX_LINE:
            rest = self._pending
            keep = _char_cut(rest)
            self._pending = rest[keep:]
            self._lines(rest[:keep] + b"\n")

    def finish(self) -> None:
        """The output ended: report a last line that had no newline."""
        rest, self._pending = self._pending, b""
        if rest:
            self._lines(rest + b"\n")

    def _lines(self, data: bytes) -> None:
        """Whole lines, each ending with ``\n``: as bytes when nothing needs doing, else as text."""
        job = self.job
        raw = job.raw
        if (
            raw is not None
            and b"\r" not in data
            and (
                self._stop_bytes not in data
                if self._stop_token is not None
                # One colon is looked for with memchr, far faster than a pair.
                else b":" not in data or b"::" not in data
                or _COMMAND_START_BYTES.search(data) is None
            )
            and _is_utf8(data)
            and not job.shows_secret(data)
        ):
            raw(job.key, self.index, data)
            return
        self._block(data[:-1].decode("utf-8", "replace"))

    def _block(self, block: str) -> None:
        if "\r" in block:
            block = block.replace("\r\n", "\n")
            if block.endswith("\r"):  # the "\n" of this "\r\n" ended the chunk
                block = block[:-1]
        token = self._stop_token
        if (
            (f"::{token}::" not in block)
            if token is not None
            else ("::" not in block or _COMMAND_START.search(block) is None)
        ):
            self.job.line(self.index, block)
            return
        for line in block.split("\n"):
            self._line(line)

    def _line(self, line: str) -> None:
        job = self.job
        if self._stop_token is not None:
            if line.strip() == f"::{self._stop_token}::":
                self._stop_token = None
                self._stop_bytes = b""
                if self._echo:
                    job.line(self.index, line)
            else:
                job.line(self.index, line)
            return
        command = parse_command(line)
        if command is None:
            job.line(self.index, line)
            return
        name = command.name
        if name == "add-mask":
            job.masker.add(command.data)
            if self._echo:
                job.line(self.index, line)
        elif name in ("group", "endgroup"):
            job.line(self.index, line)
        elif name in ("error", "warning", "notice"):
            job.annotate(annotation_from(command))
            job.line(self.index, line)
        elif name == "debug":
            if job.debug or self._echo:
                job.line(self.index, line)
        elif name == "stop-commands":
            if command.data:
                self._stop_token = command.data
                self._stop_bytes = f"::{command.data}::".encode("utf-8", "surrogatepass")
            if self._echo:
                job.line(self.index, line)
        elif name in ("set-output", "save-state"):
            key = command.properties.get("name", "")
            target = self.effects.outputs if name == "set-output" else self.effects.state
            if key:
                target[key] = command.data
            if self._echo:
                job.line(self.index, line)
            if name not in self._warned:
                self._warned.add(name)
                file = "GITHUB_OUTPUT" if name == "set-output" else "GITHUB_STATE"
                self._warn(_DEPRECATED.format(name=name, file=file))
        elif name in ("set-env", "add-path"):
            file = "GITHUB_ENV" if name == "set-env" else "GITHUB_PATH"
            message = _DISABLED.format(name=name, file=file)
            self.effects.errors.append(message)
            job.annotate(Annotation(level="error", message=message))
            job.line(self.index, f"::error::{message}")
        elif name == "echo":
            mode = command.data.strip().lower()
            if mode in ("on", "off"):
                self._echo = mode == "on"
        # add-matcher / remove-matcher: problem matchers are not supported; the
        # annotations they would produce can be emitted with ::error:: instead.

    def _warn(self, message: str) -> None:
        self.job.annotate(Annotation(level="warning", message=message))
        self.job.line(self.index, f"::warning::{message}")


def _is_utf8(data: bytes) -> bool:
    if data.isascii():  # the common case, and far cheaper than decoding
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _char_cut(data: bytes) -> int:
    """Where to cut ``data`` without splitting a UTF-8 character: before an incomplete
    last character, else at the end."""
    n = len(data)
    i = n - 1
    stop = max(n - 4, -1)
    while i > stop and 0x80 <= data[i] < 0xC0:  # continuation bytes
        i -= 1
    if i > stop and data[i] >= 0xC0:
        need = 2 if data[i] < 0xE0 else 3 if data[i] < 0xF0 else 4
        if n - i < need:
            return i
    return n
