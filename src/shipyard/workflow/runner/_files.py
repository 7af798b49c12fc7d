"""Runner files: ``GITHUB_OUTPUT``, ``GITHUB_ENV``, ``GITHUB_PATH``, ``GITHUB_STEP_SUMMARY``, ``GITHUB_STATE``.

A job's steps run one after another, so one set of files serves them all: created
empty when the job starts, read after each step (only when non-empty, so a quiet step
costs five ``stat`` calls) and emptied again. Creating files is the slow part on many
filesystems; emptying an existing one is not.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from shipyard.errors import WorkflowError

# GitHub refuses step summaries above 1 MiB.
SUMMARY_LIMIT = 1024 * 1024

_FILES = (
    ("GITHUB_OUTPUT", "set_output"),
    ("GITHUB_ENV", "set_env"),
    ("GITHUB_PATH", "add_path"),
    ("GITHUB_STEP_SUMMARY", "step_summary"),
    ("GITHUB_STATE", "save_state"),
)
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC


def parse_key_values(text: str, variable: str) -> list[tuple[str, str]]:
    """``name=value`` lines and ``name<<DELIMITER`` heredocs, as GitHub reads them."""
    pairs: list[tuple[str, str]] = []
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    i = 0
    while i < len(lines):
        line = lines[i].removesuffix("\r")
        i += 1
        if not line:
            continue
        eq = line.find("=")
        heredoc = line.find("<<")
        if eq >= 0 and (heredoc < 0 or eq < heredoc):
            name, value = line[:eq], line[eq + 1 :]
            if not name:
                raise WorkflowError(f"{variable}: invalid format '{line}': name must not be empty")
            pairs.append((name, value))
        elif heredoc >= 0:
            name, delimiter = line[:heredoc], line[heredoc + 2 :]
            if not name:
                raise WorkflowError(f"{variable}: invalid format '{line}': name must not be empty")
            if not delimiter:
                raise WorkflowError(
                    f"{variable}: invalid format '{line}': delimiter must not be empty"
                )
            body: list[str] = []
            while True:
                if i >= len(lines):
                    raise WorkflowError(f"{variable}: matching delimiter not found '{delimiter}'")
                current = lines[i].removesuffix("\r")
                i += 1
                if current == delimiter:
                    break
                body.append(current)
            pairs.append((name, "\n".join(body)))
        else:
            raise WorkflowError(f"{variable}: invalid format '{line}'")
    return pairs


@dataclass(slots=True)
class FileResults:
    """What a step wrote to its runner files."""

    outputs: dict[str, str] = field(default_factory=dict)
    env: list[tuple[str, str]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    summary: str = ""
    state: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def _empty(path: str) -> None:
    with contextlib.suppress(OSError):
        os.truncate(path, 0)


class StepFiles:
    """The runner files of a job's steps, in the job's file-commands dir."""

    __slots__ = ("paths", "view")

    def __init__(self, directory: Path, view: str, suffix: str) -> None:
        self.paths: dict[str, str] = {}  # variable -> host path
        self.view: dict[str, str] = {}  # variable -> path as the step's process sees it
        for variable, prefix in _FILES:
            path = f"{directory}/{prefix}_{suffix}"
            os.close(os.open(path, _CREATE, 0o666))
            self.paths[variable] = path
            self.view[variable] = f"{view}/{prefix}_{suffix}"

    def collect(self) -> FileResults:
        """Read what the step wrote, then empty the files for the next step."""
        result = FileResults()
        for variable, path in self.paths.items():
            try:
                size = os.stat(path).st_size
            except FileNotFoundError:
                continue
            if size == 0:
                continue
            if variable == "GITHUB_STEP_SUMMARY" and size > SUMMARY_LIMIT:
                result.errors.append(
                    f"$GITHUB_STEP_SUMMARY upload aborted, supports content up to a size of "
                    f"{SUMMARY_LIMIT // 1024}k, got {size // 1024}k"
                )
                _empty(path)
                continue
            with open(path, encoding="utf-8", errors="replace", newline="") as f:
                text = f.read()
            _empty(path)
            try:
                self._apply(variable, text, result)
            except WorkflowError as err:
                result.errors.append(str(err))
        return result

    @staticmethod
    def _apply(variable: str, text: str, result: FileResults) -> None:
        if variable == "GITHUB_OUTPUT":
            result.outputs.update(parse_key_values(text, variable))
        elif variable == "GITHUB_ENV":
            result.env.extend(parse_key_values(text, variable))
        elif variable == "GITHUB_STATE":
            result.state.update(parse_key_values(text, variable))
        elif variable == "GITHUB_PATH":
            result.paths.extend(line.strip("\r") for line in text.split("\n") if line.strip())
        else:
            result.summary = text
