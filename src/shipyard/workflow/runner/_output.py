"""A step's output on its way to the log: lines, workflow commands, masking.

Output arrives in large chunks. A chunk of whole lines with no line starting with
``::`` is masked in one pass and reported line by line, so a step printing hundreds
of megabytes costs little more than the reporter itself. Only chunks that hold a
command are walked line by line, since a command (``::add-mask::``) changes how the
lines after it are treated.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from shipyard.workflow._runtime import Annotation
from shipyard.workflow.runner._commands import annotation_from, parse_command
from shipyard.workflow.runner._masking import Masker

_COMMAND_START = re.compile(r"^[ \t]*::", re.M)

# A line longer than this is cut: holding unbounded text for one line would let a
# step without newlines exhaust memory.
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
    """Where a job's output goes: masked, to the reporter and the job's annotations."""

    key: str
    log: Callable[[str, int, str], None]  # reporter.log
    masker: Masker
    debug: bool = False
    annotations: list[Annotation] = field(default_factory=list)
    block: Callable[[str, int, str], None] | None = None  # reporter.log_block, if it has one

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
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._partial = ""
        self._stop_token: str | None = None
        self._echo = False
        self._warned: set[str] = set()

    def feed(self, data: bytes) -> None:
        """Take the next chunk of raw output."""
        text = self._decoder.decode(data)
        if not text:
            return
        if self._partial:
            text = self._partial + text
        cut = text.rfind("\n")
        if cut < 0:
            if len(text) >= MAX_LINE:
                self._partial = ""
                self._block(text)
            else:
                self._partial = text
            return
        self._partial = text[cut + 1 :]
        self._block(text[:cut])
        if len(self._partial) >= MAX_LINE:
            rest, self._partial = self._partial, ""
            self._block(rest)

    def finish(self) -> None:
        """The output ended: report a last line that had no newline."""
        text = self._partial + self._decoder.decode(b"", final=True)
        self._partial = ""
        if text:
            self._block(text)

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
