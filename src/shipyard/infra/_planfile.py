"""Saved plans (``shipyard infra plan -out FILE``).

A saved plan records what the plan was computed from, so that ``apply FILE`` does
exactly what was reviewed or nothing: the digest of the stack files and variables, the
digest of the state, the variables themselves (sensitive ones encrypted with the state's
key), the targets, and what refreshing found (sensitive values encrypted). Applying
re-plans from those inputs, without reading the real world again, and refuses when the
stack or the state changed, or when the result differs from the saved changes.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from shipyard.errors import StateError
from shipyard.infra._changes import Action, Plan
from shipyard.infra._crypto import Keyring
from shipyard.infra._eval import Unknown
from shipyard.infra._model import Stack
from shipyard.infra._refresh import Refreshed
from shipyard.infra._state_model import ResourceState, canonical_json

__all__ = ["SavedPlan", "fingerprint", "load_plan", "plan_fingerprint", "save_plan", "stack_digest"]

FORMAT: Final = "shipyard-infra-plan"
VERSION: Final = 1


def _stack_files(stack: Stack, out: dict[Path, None]) -> None:
    for path in stack.files:
        out[path] = None
    for module in stack.modules.values():
        _stack_files(module.stack, out)


def stack_digest(stack: Stack, variables: dict[str, Any]) -> str:
    """SHA-256 of every file of the stack and its modules, and of the variables."""
    files: dict[Path, None] = {}
    _stack_files(stack, files)
    digest = hashlib.sha256()
    for path in sorted(files):
        try:
            relative = os.path.relpath(path, stack.dir)
            data = path.read_bytes()
        except OSError as err:
            raise StateError(f"cannot read {path}: {err}") from None
        digest.update(relative.encode() + b"\0" + str(len(data)).encode() + b"\0" + data)
    digest.update(b"variables\0" + canonical_json(variables))
    return digest.hexdigest()


def _plain(value: Any) -> Any:
    if isinstance(value, Unknown):
        return {"$unknown": True}
    if type(value) is dict:
        return {k: _plain(v) for k, v in value.items()}
    if type(value) is list:
        return [_plain(v) for v in value]
    return value


def fingerprint(plan: Plan) -> list[Any]:
    """What must be the same for a re-computed plan to be the saved one."""
    out: list[Any] = []
    for change in plan.changes:
        if change.action is Action.NOOP:
            continue
        out.append([change.address, change.action.value, _plain(change.after)])
    for fix in plan.fixes:
        if fix.visible:
            out.append(["state", fix.kind, fix.address, fix.source])
    for output in plan.outputs:
        if output.action is not Action.NOOP:
            out.append(["output", output.name, output.action.value])
    return out


@dataclass(slots=True)
class SavedPlan:
    """A plan file read back: what to re-plan from, and what to compare against."""

    stack_dir: str
    stack_digest: str
    state_digest: str
    variables: dict[str, Any]
    destroy: bool
    targets: tuple[str, ...]
    refresh: bool
    refreshed: dict[str, Refreshed]
    fingerprint: str
    summary: str


def _seal(keyring: Keyring, value: Any, aad: str) -> dict[str, str]:
    return {"$sealed": keyring.cipher().seal(canonical_json(value), aad.encode())}


def _open(keyring: Keyring, value: Any, aad: str, where: str) -> Any:
    if isinstance(value, dict) and set(value) == {"$sealed"}:
        return json.loads(keyring.cipher().open(value["$sealed"], aad.encode(), where))
    return value


def save_plan(path: Path, plan: Plan, *, stack_dir: Path, digest: str, variables: dict[str, Any],
              sensitive: set[str], refreshed: dict[str, Refreshed], keyring: Keyring) -> None:
    """Write ``plan`` to ``path`` (mode 0600, atomically)."""
    saved_vars = {
        name: _seal(keyring, value, f"plan-var\0{name}") if name in sensitive else value
        for name, value in variables.items()
    }
    saved_refresh: dict[str, Any] = {}
    for address, found in refreshed.items():
        entry: Any = None
        if found.entry is not None:
            entry = found.entry.to_json()
            if found.entry.sensitive:
                entry = _seal(keyring, entry, f"plan-entry\0{address}")
        saved_refresh[address] = {"entry": entry, "notes": list(found.notes), "adopted": found.adopted}
    document = {
        "format": FORMAT,
        "version": VERSION,
        "created": datetime.now(UTC).isoformat(),
        "stack_dir": str(stack_dir),
        "stack_digest": digest,
        "state_digest": plan.state_digest,
        "destroy": plan.destroy,
        "targets": list(plan.targets),
        "refresh": plan.refresh,
        "variables": saved_vars,
        "refreshed": saved_refresh,
        "fingerprint": plan_fingerprint(plan),
        "summary": plan.summary(),
        "plan": plan.to_json(),
    }
    data = json.dumps(document, indent=1, sort_keys=True).encode()
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)


def load_plan(path: Path, keyring: Keyring) -> SavedPlan:
    """Read a plan file; StateError when it is not one or cannot be decrypted."""
    try:
        document = json.loads(path.read_bytes())
    except OSError as err:
        raise StateError(f"cannot read the plan {path}: {err.strerror or err}") from None
    except ValueError:
        raise StateError(f"{path} is not a saved plan (not JSON)") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise StateError(f"{path} is not a saved plan of shipyard infra")
    if document.get("version") != VERSION:
        raise StateError(f"{path}: plan format version {document.get('version')} is not supported")
    where = str(path)
    try:
        variables = {
            name: _open(keyring, value, f"plan-var\0{name}", where)
            for name, value in document["variables"].items()
        }
        refreshed: dict[str, Refreshed] = {}
        for address, found in document["refreshed"].items():
            entry = _open(keyring, found["entry"], f"plan-entry\0{address}", where)
            refreshed[address] = Refreshed(
                None if entry is None else ResourceState(**entry),
                tuple(found["notes"]),
                bool(found["adopted"]),
            )
        return SavedPlan(
            stack_dir=str(document["stack_dir"]),
            stack_digest=str(document["stack_digest"]),
            state_digest=str(document["state_digest"]),
            variables=variables,
            destroy=bool(document["destroy"]),
            targets=tuple(document["targets"]),
            refresh=bool(document["refresh"]),
            refreshed=refreshed,
            fingerprint=str(document["fingerprint"]),
            summary=str(document.get("summary", "")),
        )
    except (KeyError, TypeError, AttributeError, ValueError) as err:
        raise StateError(f"{path}: the saved plan is damaged ({type(err).__name__}: {err})") from None


def plan_fingerprint(plan: Plan) -> str:
    return hashlib.sha256(canonical_json(fingerprint(plan))).hexdigest()

