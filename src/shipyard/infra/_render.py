"""Plans, drift reports and apply progress as text (ANSI colours on a terminal).

Values are shown as JSON (strings quoted); sensitive ones as ``(sensitive)``, values
known only after apply as ``(known after apply)``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable
from typing import Any, Final, TextIO

from shipyard.infra._apply import ApplyResult
from shipyard.infra._changes import (
    ABSENT,
    DEPOSED,
    SENSITIVE_TEXT,
    UNKNOWN_TEXT,
    Action,
    Change,
    Diff,
    Fix,
    Plan,
)
from shipyard.infra._drift import DriftReport
from shipyard.infra._eval import Unknown
from shipyard.infra._registry import Registry
from shipyard.infra._state_model import OutputState, ResourceState
from shipyard.infra._types import path_text

__all__ = [
    "Painter",
    "ProgressPrinter",
    "address_order",
    "describe_providers",
    "render_apply",
    "render_drift",
    "render_entry",
    "render_outputs",
    "render_plan",
    "render_providers",
    "value_text",
]

_CODES: Final = {
    "green": "32", "yellow": "33", "red": "31", "cyan": "36", "magenta": "35",
    "bold": "1", "dim": "2",
}
_LONG: Final = 200  # values longer than this are cut in plans


class Painter:
    """Wraps text in ANSI colours when ``enabled``."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, text: str, style: str) -> str:
        if not self.enabled:
            return text
        return f"\x1b[{_CODES[style]}m{text}\x1b[0m"


def address_order(address: str) -> tuple[Any, ...]:
    """A sort key putting ``web[2]`` before ``web[10]``, modules after their parents."""
    from shipyard.infra._address import parse_address

    try:
        parsed = parse_address(address.removesuffix(DEPOSED))
    except ValueError:
        return (1, (), address)
    steps = tuple(
        (name, (0, key, "") if isinstance(key, int) else (1, 0, key or ""))
        for name, key in (*parsed.module, (parsed.name or "", parsed.key))
    )
    return (0, steps, address)


def value_text(value: Any, sensitive: bool = False, *, limit: int = _LONG) -> str:
    """A value as a plan shows it."""
    if isinstance(value, Unknown):
        return UNKNOWN_TEXT
    if value is ABSENT:
        return "(none)"
    if sensitive and value is not None:
        return SENSITIVE_TEXT
    try:
        text = json.dumps(_plain(value), ensure_ascii=False, separators=(", ", ": "))
    except (TypeError, ValueError):
        text = repr(value)
    if limit and len(text) > limit:
        text = text[: limit - 3] + "..."
    return text


def _plain(value: Any) -> Any:
    if isinstance(value, Unknown):
        return UNKNOWN_TEXT
    if type(value) is dict:
        return {k: _plain(v) for k, v in value.items()}
    if type(value) is list:
        return [_plain(v) for v in value]
    return value


_HEADS: Final = {
    Action.CREATE: ("+", "green", "will be created"),
    Action.UPDATE: ("~", "yellow", "will be updated in place"),
    Action.DELETE: ("-", "red", "will be destroyed"),
}


def _diff_line(d: Diff, sensitive: frozenset[str], paint: Painter) -> str:
    secret = bool(d.path) and d.path[0] in sensitive
    name = path_text(d.path)
    if d.before is ABSENT:
        line = f"      {paint('+', 'green')} {name} = {value_text(d.after, secret)}"
    elif d.after is ABSENT:
        line = f"      {paint('-', 'red')} {name} = {value_text(d.before, secret)}"
    else:
        line = (f"      {paint('~', 'yellow')} {name} = {value_text(d.before, secret)}"
                f" → {value_text(d.after, secret)}")
    if d.forces_replacement:
        line += paint("  # forces replacement", "red")
    return line


def _change_lines(change: Change, paint: Painter) -> list[str]:
    lines: list[str] = []
    action = change.action
    sensitive = change.sensitive
    if action is Action.REPLACE:
        mark = "+/-" if change.create_before_destroy else "-/+"
        why = "; ".join(change.reasons)
        order = "created before the old one is destroyed" if change.create_before_destroy else "destroyed, then created"
        lines.append(paint(f"  # {change.address} must be replaced ({order}): {why}", "bold"))
        if change.note:
            lines.append(paint(f"  # ({change.note})", "bold"))
        lines.append(f"{paint(mark, 'magenta')} {change.address} ({change.type})")
    else:
        sign, color, words = _HEADS[action]
        head = f"  # {change.address} {words}"
        if change.note:
            head += f" ({change.note})"
        lines.append(paint(head, "bold"))
        lines.append(f"  {paint(sign, color)} {change.address} ({change.type})")
    if change.moved_from:
        lines.append(paint(f"      # moved from {change.moved_from}", "dim"))
    if action is Action.CREATE:
        after = change.after or {}
        for name, value in after.items():
            if value is None:
                continue
            lines.append(f"      {paint('+', 'green')} {name} = {value_text(value, name in sensitive)}")
    elif action is Action.DELETE:
        if change.prior is not None and change.prior.id:
            lines.append(paint(f"      id = {change.prior.id}", "dim"))
    else:
        lines.extend(_diff_line(d, sensitive, paint) for d in change.diffs)
    return lines


def render_plan(plan: Plan, paint: Painter) -> str:
    """The plan as ``shipyard infra plan`` prints it."""
    lines: list[str] = []
    for warning in plan.warnings:
        lines.append(paint(f"warning: {warning}", "yellow"))
    actions = plan.actions
    outside = [f for f in plan.fixes if f.kind == "refresh"]
    fixes = [f for f in plan.fixes if f.visible and f.kind != "refresh"]
    outputs = [o for o in plan.outputs if o.action is not Action.NOOP]
    if not actions and not fixes and not outputs and not outside:
        lines.append(paint("No changes.", "green") + " The real world matches the stack.")
        return "\n".join(lines) + "\n"
    if outside:
        lines.append("Objects have changed outside of Shipyard (apply records them in the state as"
                     " they are now; nothing else is done to them):")
        lines.append("")
        for fix in outside:
            lines.extend(_outside_lines(fix, paint))
            lines.append("")
    if actions:
        lines.append("Shipyard will perform these actions:")
        lines.append("")
        for change in actions:
            lines.extend(_change_lines(change, paint))
            lines.append("")
    for fix in fixes:
        if fix.kind == "move":
            lines.append(paint(f"  # {fix.source} has moved to {fix.address}", "cyan"))
        elif fix.kind == "forget":
            lines.append(paint(f"  # {fix.address} will be removed from the state: {fix.note}", "cyan"))
        else:
            lines.append(paint(f"  # {fix.address}: {fix.note}", "cyan"))
    if fixes:
        lines.append("")
    if outputs:
        lines.append("Changes to outputs:")
        for out in outputs:
            if out.action is Action.DELETE:
                lines.append(f"  {paint('-', 'red')} {out.name}")
            elif out.action is Action.CREATE:
                lines.append(f"  {paint('+', 'green')} {out.name} = {value_text(out.after, out.sensitive)}")
            else:
                before = value_text(out.before.value if out.before else None, out.sensitive)
                lines.append(f"  {paint('~', 'yellow')} {out.name} = {before} → {value_text(out.after, out.sensitive)}")
        lines.append("")
    summary = plan.summary()
    if outside:
        n = len(outside)
        summary += f" {n} object{'s' if n != 1 else ''} changed outside of Shipyard to record in the state."
    lines.append(paint(summary, "bold"))
    return "\n".join(lines) + "\n"


def _outside_lines(fix: Fix, paint: Painter) -> list[str]:
    entry = fix.entry
    where = f"  [id={entry.id}]" if entry is not None and entry.id else ""
    lines = [paint(f"  # {fix.address} changed outside of Shipyard", "bold") + where]
    for d in fix.diffs:
        lines.append(_diff_line(d, fix.sensitive, paint))
    for d in fix.attribute_diffs:
        lines.append(_diff_line(d, fix.sensitive, paint) + paint("  (attribute)", "dim"))
    lines.extend(paint(f"      note: {note}", "dim") for note in fix.notes)
    return lines


def render_drift(report: DriftReport, paint: Painter) -> str:
    """A drift report as ``shipyard infra drift`` prints it."""
    if not report.has_drift:
        return paint("No drift.", "green") + f" {report.checked} resources match the state.\n"
    lines: list[str] = []
    for item in report.items:
        if item.kind == "gone":
            lines.append(paint(f"  - {item.address} ({item.type}) no longer exists", "red") + f"  [id={item.id}]")
        elif item.kind == "interrupted":
            lines.append(paint(f"  ! {item.address} ({item.type}): a create was interrupted", "yellow"))
        else:
            lines.append(paint(f"  ~ {item.address} ({item.type}) changed outside this stack", "yellow")
                         + f"  [id={item.id}]")
            for diffs, what in ((item.diffs, ""), (item.attribute_diffs, " (attribute)")):
                for d in diffs:
                    secret = bool(d.path) and d.path[0] in item.sensitive
                    lines.append(f"      {path_text(d.path)}{what}: state {value_text(d.before, secret)},"
                                 f" real {value_text(d.after, secret)}")
        lines.extend(paint(f"      note: {note}", "dim") for note in item.notes)
    n = len(report.items)
    lines.append("")
    lines.append(paint(f"Drift: {n} of {report.checked} resource{'s' if report.checked != 1 else ''}"
                       " differ from the state. `shipyard infra apply` brings them back.", "bold"))
    return "\n".join(lines) + "\n"


def render_outputs(outputs: dict[str, OutputState], paint: Painter) -> str:
    lines = [f"{name} = {value_text(out.value, out.sensitive, limit=0)}" for name, out in outputs.items()]
    return "\n".join(lines) + ("\n" if lines else "")


def render_entry(entry: ResourceState) -> str:
    """A state entry as ``state show`` prints it (sensitive values masked)."""
    sensitive = set(entry.sensitive)
    lines = [f"# {entry.address}", f"type = {entry.type}", f"id = {entry.id or '(unknown)'}"]
    if entry.tainted:
        lines.append("tainted = true" + ("  (a create that never finished)" if not entry.id else ""))
    if entry.dir != ".":
        lines.append(f"dir = {entry.dir}")
    if entry.dependencies:
        lines.append("dependencies = " + ", ".join(entry.dependencies))
    for title, values in (("properties", entry.properties), ("attributes", entry.attributes)):
        if values:
            lines.append(f"{title}:")
            for name, value in values.items():
                lines.append(f"  {name} = {value_text(value, name in sensitive, limit=0)}")
    return "\n".join(lines) + "\n"


def render_apply(result: ApplyResult, paint: Painter, *, destroy: bool = False) -> str:
    """The summary after an apply, or (``destroy``) after a destroy: "Destroy complete:
    6 destroyed in 0.31s." when it had nothing else to do."""
    lines: list[str] = []
    if result.failures or result.skipped:
        lines.append("")
    for failure in result.failures:
        lines.append(paint("error:", "red") + f" {failure}")
    skipped = [a for a, _ in result.skipped]
    if skipped:
        lines.append(paint("not attempted", "yellow") + f" ({len(skipped)}): " + _short(skipped))
    word = "Destroy" if destroy else "Apply"
    if destroy and not (result.added or result.changed or result.replaced):
        counts = f"{result.destroyed} destroyed"
    else:
        counts = (f"{result.added} added, {result.changed} changed, {result.replaced} replaced,"
                  f" {result.destroyed} destroyed")
    if result.refreshed:
        counts += f", {result.refreshed} changed outside of Shipyard recorded"
    counts += f" in {result.seconds:.2f}s"
    if result.interrupted:
        lines.append(paint(f"{word} interrupted: ", "yellow") + counts + ".")
    elif result.failures or result.skipped:
        n = len(result.failures)
        lines.append(paint(f"{word} failed ({n} error{'s' if n != 1 else ''}): ", "red") + counts + ".")
    else:
        lines.append(paint(f"{word} complete: ", "green") + counts + ".")
    return "\n".join(lines) + "\n"


def _short(items: Iterable[str], limit: int = 20) -> str:
    shown = list(items)
    text = ", ".join(shown[:limit])
    if len(shown) > limit:
        text += f" and {len(shown) - limit} more"
    return text


_VERBS: Final = {
    "create": ("creating", "created"),
    "update": ("updating", "updated"),
    "destroy": ("destroying", "destroyed"),
    "create (replace)": ("creating the replacement", "replacement created"),
    "destroy (replace)": ("destroying for replacement", "destroyed for replacement"),
    "destroy (deposed)": ("destroying the replaced object", "replaced object destroyed"),
}


class ProgressPrinter:
    """Prints one line per operation as it starts and finishes (an apply Reporter).

    Lines are collected and written at most every 0.2 s (by whoever writes next, or by
    a background flush when nothing else happens), so a log follows an apply closely
    while thousands of quick operations cost little. Call :meth:`close` at the end.
    """

    def __init__(self, stream: TextIO, paint: Painter) -> None:
        self.stream = stream
        self.paint = paint
        self._flushed = time.monotonic()
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def _write(self, line: str) -> None:
        with self._lock:
            self._lines.append(line)
            if self._ticker is None:
                self._ticker = threading.Thread(target=self._tick, name="infra-progress", daemon=True)
                self._ticker.start()
            if time.monotonic() - self._flushed < 0.2:
                return
        self.flush()

    def _tick(self) -> None:
        while not self._stop.wait(0.2):
            if self._lines:
                self.flush()

    def flush(self) -> None:
        with self._lock:
            if self._lines:
                self.stream.write("\n".join(self._lines) + "\n")
                self._lines.clear()
            self.stream.flush()
            self._flushed = time.monotonic()

    def close(self) -> None:
        """Write what is left and stop the background flush."""
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        self.flush()

    def starting(self, address: str, action: str) -> None:
        self._write(f"{address}: {_VERBS.get(action, (action, action))[0]}...")

    def finished(self, address: str, action: str, seconds: float, detail: str) -> None:
        done = _VERBS.get(action, (action, action))[1]
        extra = f" {detail}" if detail else ""
        self._write(f"{address}: {self.paint(done, 'green')} in {seconds:.2f}s{extra}")

    def failed(self, address: str, action: str, seconds: float, message: str) -> None:
        verb = action.split(" ")[0]
        self._write(f"{address}: {self.paint(f'{verb} failed', 'red')} after {seconds:.2f}s: {message}")

    def skipped(self, address: str, reason: str) -> None:
        self._write(f"{address}: {self.paint(reason, 'yellow')}")

    def log(self, address: str, message: str) -> None:
        # From provider threads: one write call per line keeps lines whole.
        self._write(f"{address}: {self.paint(message, 'dim')}")


def describe_providers(registry: Registry, name: str | None = None) -> list[dict[str, Any]]:
    """The providers (or the one named), their types, properties and attributes, as
    plain data. Imports every provider listed."""
    from shipyard.errors import InfraError

    names = registry.provider_names()
    if name is not None:
        if name not in names:
            raise InfraError(f"no provider named '{name}' (installed: {', '.join(names) or 'none'})")
        names = [name]
    out: list[dict[str, Any]] = []
    for provider_name in names:
        try:
            provider = registry.provider(provider_name)
        except InfraError as err:
            out.append({"name": provider_name, "error": str(err), "config": {}, "types": []})
            continue
        types = []
        for cls in provider.resource_types:
            types.append({
                "name": cls.name,
                "description": cls.description,
                "updatable": cls.updatable,
                "external": cls.external,
                "finds": cls.can_find(),
                "properties": {
                    n: {"type": p.type, "required": p.required,
                        "default": None if p.required else p.default, "description": p.description,
                        "replace": p.replace, "sensitive": p.sensitive, "derived": p.derived}
                    for n, p in cls.properties.items()
                },
                "attributes": {
                    n: {"type": a.type, "description": a.description, "sensitive": a.sensitive,
                        "stable": a.stable}
                    for n, a in cls.attributes.items()
                },
            })
        out.append({
            "name": provider.name,
            "description": provider.description,
            "config": {
                n: {"type": p.type, "required": p.required, "default": None if p.required else p.default,
                    "description": p.description, "sensitive": p.sensitive}
                for n, p in provider.config.items()
            },
            "types": types,
        })
    return out


def render_providers(info: list[dict[str, Any]], paint: Painter) -> str:
    """``describe_providers`` as text."""
    lines: list[str] = []
    for provider in info:
        lines.append(paint(f"{provider['name']}", "bold") + (f": {provider.get('description')}" if provider.get("description") else ""))
        if provider.get("error"):
            lines.append(paint(f"  cannot be loaded: {provider['error']}", "red"))
        for key, prop in provider["config"].items():
            lines.append(f"  config {key} ({prop['type']}{', required' if prop['required'] else ''})"
                         + (f": {prop['description']}" if prop["description"] else ""))
        for rtype in provider["types"]:
            lines.append(f"  {paint(rtype['name'], 'cyan')}: {rtype['description']}")
            for key, prop in rtype["properties"].items():
                flags = [prop["type"]]
                if prop["required"]:
                    flags.append("required")
                elif prop["default"] is not None:
                    flags.append(f"default {json.dumps(prop['default'])}")
                for flag in ("replace", "sensitive", "derived"):
                    if prop[flag]:
                        flags.append("forces replacement" if flag == "replace" else flag)
                text = f"    {key} ({', '.join(flags)})"
                lines.append(text + (f": {prop['description']}" if prop["description"] else ""))
            for key, attr in rtype["attributes"].items():
                flags = [attr["type"], "attribute"] + (["sensitive"] if attr["sensitive"] else [])
                text = f"    {key} ({', '.join(flags)})"
                lines.append(text + (f": {attr['description']}" if attr["description"] else ""))
        lines.append("")
    return "\n".join(lines)
