"""Workflow commands: ``::name key=value,...::data`` lines in a step's output."""

from __future__ import annotations

from dataclasses import dataclass, field

from shipyard.workflow._runtime import Annotation

# Commands Shipyard acts on. Any other ``::word::`` line is ordinary output.
KNOWN = frozenset(
    {
        "add-mask",
        "group",
        "endgroup",
        "error",
        "warning",
        "notice",
        "debug",
        "stop-commands",
        "set-output",
        "save-state",
        "set-env",
        "add-path",
        "echo",
        "add-matcher",
        "remove-matcher",
    }
)


@dataclass(slots=True)
class Command:
    name: str
    properties: dict[str, str] = field(default_factory=dict)
    data: str = ""


def unescape_data(text: str) -> str:
    if "%" not in text:
        return text
    return text.replace("%0D", "\r").replace("%0A", "\n").replace("%25", "%")


def unescape_property(text: str) -> str:
    if "%" not in text:
        return text
    return (
        text.replace("%0D", "\r")
        .replace("%0A", "\n")
        .replace("%3A", ":")
        .replace("%2C", ",")
        .replace("%25", "%")
    )


def parse_command(line: str) -> Command | None:
    """The command on ``line``, or ``None`` when the line is not a known command.

    Like GitHub, surrounding whitespace is ignored and the command name is not
    case-sensitive. ``%25``, ``%0D`` and ``%0A`` are unescaped in the data; properties
    also unescape ``%3A`` and ``%2C``.
    """
    text = line.strip()
    if not text.startswith("::"):
        return None
    end = text.find("::", 2)
    if end < 0:
        return None
    info = text[2:end]
    name, _, props_text = info.partition(" ")
    name = name.lower()
    if name not in KNOWN:
        return None
    props: dict[str, str] = {}
    if props_text:
        for item in props_text.split(","):
            key, eq, value = item.partition("=")
            key = key.strip()
            if eq and key:
                props[key] = unescape_property(value)
    return Command(name, props, unescape_data(text[end + 2 :]))


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        return None


def annotation_from(command: Command) -> Annotation:
    """An ``::error``/``::warning``/``::notice`` command as an annotation."""
    p = command.properties
    return Annotation(
        level=command.name,
        message=command.data,
        file=p.get("file") or None,
        line=_int(p.get("line")),
        col=_int(p.get("col")),
        end_line=_int(p.get("endLine")),
        end_col=_int(p.get("endColumn")),
        title=p.get("title") or None,
    )


def format_annotation(a: Annotation) -> str:
    """An annotation as the command line that would have produced it (for the log)."""
    props = []
    for key, value in (
        ("file", a.file),
        ("line", a.line),
        ("col", a.col),
        ("endLine", a.end_line),
        ("endColumn", a.end_col),
        ("title", a.title),
    ):
        if value is not None:
            text = (
                str(value)
                .replace("%", "%25")
                .replace("\r", "%0D")
                .replace("\n", "%0A")
                .replace(":", "%3A")
                .replace(",", "%2C")
            )
            props.append(f"{key}={text}")
    data = a.message.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    head = f"{a.level} {','.join(props)}" if props else a.level
    return f"::{head}::{data}"
