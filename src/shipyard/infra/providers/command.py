"""The ``command`` provider: a resource managed by scripts (create, update, delete, read).

For whatever has no provider of its own: the ``create`` script makes the thing and
prints what others need (JSON is decoded, so ``resources.x.output.url`` works),
``delete`` removes it, ``update`` (optional) changes it in place, and ``read`` (optional)
reports what exists now so that drift can be seen. Without an ``update`` script, a
change of what the thing is made from (``create``, ``interpreter``, ``environment``,
``sensitive_environment``, ``working_dir``) replaces it: delete, then create. Changes of
``update``, ``delete``, ``read`` and ``timeout`` are recorded without running anything;
a change of ``triggers`` always replaces.

Each script runs as ``interpreter + [script]`` in its own process group, in
``working_dir``, with the environment of the apply plus ``environment``,
``sensitive_environment`` and these variables:

=========================  ====================================================
``SHIPYARD_OPERATION``     ``create``, ``update``, ``delete`` or ``read``
``SHIPYARD_ID``            the resource's id (a fresh UUID for create)
``SHIPYARD_PROPERTIES``    JSON of the properties (without sensitive_environment)
``SHIPYARD_PRIOR_PROPERTIES``  update only: JSON of the properties before the change
``SHIPYARD_TRIGGERS``      JSON of ``triggers``
``SHIPYARD_OUTPUT``        update, delete, read: the output of the last create or
                           update (the text itself when it is a string, else JSON)
``SHIPYARD_STACK_DIR``     the folder of the stack that declares the resource
``SHIPYARD_DATA_DIR``      a folder for runtime files, private to the stack's state
=========================  ====================================================

Standard input is empty; standard error is passed to the log line by line; standard
output (at most 1 MiB) becomes ``output``. A script exiting non-zero is a ProviderError
with its status and the last lines of its standard error. After ``timeout`` seconds the
script's whole process group gets SIGTERM, then SIGKILL once the script has exited or
after a grace period.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import selectors
import signal
import subprocess
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from shipyard.infra.provider import (
    REQUIRED,
    Attribute,
    Context,
    Created,
    Observed,
    Property,
    Provider,
    ProviderError,
    ResourceType,
)

from ._files import resolve

__all__ = ["Command", "CommandProvider", "decode_output"]

# Changing one of these changes what the thing is: update script, or replacement.
_ACTIONS: Final = (
    "create",
    "interpreter",
    "environment",
    "sensitive_environment",
    "working_dir",
)
_OUTPUT_LIMIT: Final = 1 << 20
_STDERR_LINES: Final = 20
_STDERR_TAIL_CHARS: Final = 4000
# How long to keep reading after the script exits while a process it left in the
# background still holds its output open (such a process should redirect its output).
_LINGER: Final = 1.0
# How long a timed-out script may take to exit after SIGTERM before SIGKILL.
_GRACE: Final = 5.0
_POLL: Final = 0.1
_RESERVED_PREFIX: Final = "SHIPYARD_"
_PROVIDED: Final = (
    "SHIPYARD_OPERATION",
    "SHIPYARD_ID",
    "SHIPYARD_PROPERTIES",
    "SHIPYARD_PRIOR_PROPERTIES",
    "SHIPYARD_TRIGGERS",
    "SHIPYARD_OUTPUT",
    "SHIPYARD_STACK_DIR",
    "SHIPYARD_DATA_DIR",
)


def decode_output(stdout: bytes) -> Any:
    """What a script printed: its JSON value when it is JSON, else the text.

    Trailing newlines are dropped (``echo`` adds one).
    """
    text = stdout.decode("utf-8", errors="replace").rstrip("\r\n")
    try:
        return json.loads(text)
    except ValueError:
        return text


def _encode_output(output: Any) -> str:
    return output if isinstance(output, str) else json.dumps(output)


@dataclass(frozen=True, slots=True)
class _Result:
    status: int | None  # None when it timed out
    stdout: bytes
    stderr_tail: list[str]
    truncated: bool


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the script's process group, then SIGKILL what is left of it.

    Called while the script (the group's leader) is not yet reaped. It is waited for
    without being reaped, so that its group id cannot be reused by an unrelated process
    before the SIGKILL.
    """
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    end = time.monotonic() + _GRACE
    while time.monotonic() < end:
        try:
            exited = os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            break
        if exited is not None:
            break
        time.sleep(0.01)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _run(
    argv: list[str],
    env: dict[str, str],
    cwd: str,
    timeout: float | None,
    log: Callable[[str], None],
) -> _Result:
    try:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=env,
            start_new_session=True,  # its own process group, to kill it whole
        )
    except FileNotFoundError:
        raise ProviderError(f"interpreter {argv[0]!r} not found") from None
    except PermissionError:
        raise ProviderError(f"interpreter {argv[0]!r} cannot be executed") from None
    assert process.stdout is not None and process.stderr is not None
    out = bytearray()
    truncated = False
    tail: deque[str] = deque(maxlen=_STDERR_LINES)
    partial = b""
    deadline = math.inf if timeout is None else time.monotonic() + timeout
    linger_until = math.inf
    timed_out = False

    def stderr_line(raw: bytes) -> None:
        line = raw.decode("utf-8", errors="replace").rstrip("\r")
        tail.append(line)
        log(line)

    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ, "out")
        selector.register(process.stderr, selectors.EVENT_READ, "err")
        try:
            while selector.get_map():
                now = time.monotonic()
                if linger_until == math.inf and process.poll() is not None:
                    linger_until = now + _LINGER
                    deadline = math.inf  # it finished in time
                if now >= deadline:
                    timed_out = True
                    _kill_group(process)
                    deadline = math.inf
                    linger_until = time.monotonic() + _LINGER
                if now >= linger_until:
                    break
                wait = min(deadline, linger_until) - now
                if process.returncode is None:
                    wait = min(wait, _POLL)
                for key, _ in selector.select(max(wait, 0.0)):
                    chunk = os.read(key.fd, 65536)
                    if not chunk:
                        selector.unregister(key.fileobj)
                    elif key.data == "out":
                        if len(out) + len(chunk) > _OUTPUT_LIMIT:
                            truncated = True
                        else:
                            out += chunk
                    else:
                        lines = (partial + chunk).split(b"\n")
                        partial = lines.pop()
                        for raw in lines:
                            stderr_line(raw)
            if partial:
                stderr_line(partial)
            if process.returncode is None and not timed_out:
                # The script closed its output but goes on: wait for it, still in time.
                remaining = None if deadline == math.inf else max(deadline - time.monotonic(), 0)
                try:
                    process.wait(remaining)
                except subprocess.TimeoutExpired:
                    timed_out = True
                    _kill_group(process)
        finally:
            if process.poll() is None:
                _kill_group(process)  # interrupted: leave nothing running
            process.stdout.close()
            process.stderr.close()
    status = None if timed_out else process.returncode
    return _Result(status, bytes(out), list(tail), truncated)


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _map_path(name: str, key: str) -> str:
    return f"{name}.{key}" if key.isidentifier() else f"{name}[{json.dumps(key)}]"


class Command(ResourceType):
    """``command``: a thing made and removed by scripts."""

    name = "command"
    description = (
        "A resource managed by scripts: `create` (required), `update`, `delete` and "
        "`read`; stdout becomes `output` (decoded when it is JSON). Import adopts an id "
        "without running anything."
    )
    properties = {
        "create": Property(
            type="string",
            default=REQUIRED,
            description="Makes the thing; its standard output becomes `output`.",
        ),
        "update": Property(
            type="string",
            description="Changes the thing in place; without it, changes replace the resource.",
        ),
        "delete": Property(
            type="string",
            description="Removes the thing; must succeed when it is already gone.",
        ),
        "read": Property(
            type="string",
            description="Prints the thing's current output (nothing at all: it is gone); "
            "a different output than recorded is drift.",
        ),
        "interpreter": Property(
            type="list(string)",
            default=["/bin/sh", "-c"],
            description="The program and arguments each script is appended to.",
        ),
        "environment": Property(
            type="map(string)", description="Extra environment variables for the scripts."
        ),
        "sensitive_environment": Property(
            type="map(string)",
            sensitive=True,
            description="Extra environment variables whose values are secret.",
        ),
        "working_dir": Property(
            type="string",
            description="Where the scripts run, relative to the stack's folder (default: it).",
        ),
        "timeout": Property(
            type="number",
            description="Seconds a script may run before its process group is killed "
            "(default: no limit).",
        ),
        "triggers": Property(
            type="any", replace=True, description="Any value; a change replaces the resource."
        ),
    }
    attributes = {
        "output": Attribute(
            type="any",
            description="Standard output of the last create or update (JSON decoded).",
        ),
        "exit_code": Attribute(type="integer", description="Exit status of that script."),
    }

    def validate(self, properties: Mapping[str, Any]) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        if properties.get("create") == "":
            problems.append(("create", "must not be empty"))
        interpreter = properties.get("interpreter")
        if isinstance(interpreter, list):
            if not interpreter:
                problems.append(("interpreter", "must name a program"))
            elif interpreter[0] == "":
                problems.append(("interpreter[0]", "must name a program"))
        for name in ("environment", "sensitive_environment"):
            variables = properties.get(name)
            if not isinstance(variables, Mapping):
                continue
            for raw in variables:
                key = str(raw)
                if not key or "=" in key or "\0" in key:
                    problems.append((_map_path(name, key), "is not a valid variable name"))
                elif key.upper().startswith(_RESERVED_PREFIX):
                    problems.append(
                        (
                            _map_path(name, key),
                            f"names starting with {_RESERVED_PREFIX} are reserved for Shipyard",
                        )
                    )
                elif "\0" in str(variables[raw]):
                    problems.append((_map_path(name, key), "must not contain a NUL character"))
        timeout = properties.get("timeout")
        if isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and timeout <= 0:
            problems.append(("timeout", "must be more than 0 seconds"))
        if properties.get("working_dir") == "":
            problems.append(("working_dir", "must name a folder"))
        return problems

    def requires_replace(self, prior: Mapping[str, Any], desired: Mapping[str, Any]) -> list[str]:
        if desired.get("update") is not None:
            return []
        return [key for key in _ACTIONS if prior.get(key) != desired.get(key)]

    def _script(
        self,
        ctx: Context,
        operation: str,
        script: str,
        id: str,
        properties: Mapping[str, Any],
        *,
        output: Any = None,
        prior: Mapping[str, Any] | None = None,
    ) -> _Result:
        env = dict(os.environ)
        for name in _PROVIDED:
            env.pop(name, None)  # from an enclosing run: never let them leak through
        for name in ("environment", "sensitive_environment"):
            env.update({str(k): str(v) for k, v in (properties.get(name) or {}).items()})
        public = {k: v for k, v in properties.items() if k != "sensitive_environment"}
        env.update(
            SHIPYARD_OPERATION=operation,
            SHIPYARD_ID=id,
            SHIPYARD_PROPERTIES=_json(public),
            SHIPYARD_TRIGGERS=_json(properties.get("triggers")),
            SHIPYARD_STACK_DIR=str(ctx.stack_dir),
            SHIPYARD_DATA_DIR=str(ctx.data_dir),
        )
        if operation != "create":
            env["SHIPYARD_OUTPUT"] = _encode_output(output)
        if prior is not None:
            env["SHIPYARD_PRIOR_PROPERTIES"] = _json(
                {k: v for k, v in prior.items() if k != "sensitive_environment"}
            )
        working_dir = properties.get("working_dir")
        cwd = resolve(ctx, str(working_dir)) if working_dir else ctx.stack_dir
        if not cwd.is_dir():
            raise ProviderError(f"working_dir {cwd} is not a folder")
        interpreter = [str(part) for part in properties.get("interpreter") or ["/bin/sh", "-c"]]
        timeout = properties.get("timeout")
        seconds = None if timeout is None else float(timeout)
        result = _run([*interpreter, script], env, str(cwd), seconds, ctx.log)
        if result.status is None:
            raise ProviderError(
                f"{operation} script did not finish within {seconds:g} s; its process "
                "group was killed" + _tail(result)
            )
        if result.status < 0:
            try:
                name = signal.Signals(-result.status).name
            except ValueError:
                name = str(-result.status)
            raise ProviderError(f"{operation} script was killed by {name}" + _tail(result))
        if result.status != 0:
            raise ProviderError(
                f"{operation} script exited with status {result.status}" + _tail(result)
            )
        if result.truncated:
            raise ProviderError(
                f"{operation} script printed more than {_OUTPUT_LIMIT >> 20} MiB on standard "
                "output, too much to keep as its output; write large data to a file"
            )
        return result

    def create(self, ctx: Context, properties: Mapping[str, Any]) -> Created:
        id = str(uuid.uuid4())
        result = self._script(ctx, "create", str(properties["create"]), id, properties)
        return Created(id, {"output": decode_output(result.stdout), "exit_code": 0})

    def read(
        self,
        ctx: Context,
        id: str,
        properties: Mapping[str, Any],
        attributes: Mapping[str, Any],
    ) -> Observed | None:
        script = properties.get("read")
        if script is None:
            return Observed(dict(properties), dict(attributes))
        recorded = attributes.get("output")
        result = self._script(ctx, "read", str(script), id, properties, output=recorded)
        if not result.stdout.strip():
            return None
        output = decode_output(result.stdout)
        notes: tuple[str, ...] = ()
        if output != recorded:
            notes = (f"the read script reports {_short(output)}, not {_short(recorded)}",)
        return Observed(dict(properties), {**attributes, "output": output}, notes)

    def update(
        self,
        ctx: Context,
        id: str,
        prior: Mapping[str, Any],
        properties: Mapping[str, Any],
        attributes: Mapping[str, Any],
    ) -> dict[str, Any]:
        script = properties.get("update")
        if script is None or all(prior.get(k) == properties.get(k) for k in _ACTIONS):
            # Only the scripts or the timeout changed: nothing to run.
            return dict(attributes)
        result = self._script(
            ctx,
            "update",
            str(script),
            id,
            properties,
            output=attributes.get("output"),
            prior=prior,
        )
        return {"output": decode_output(result.stdout), "exit_code": 0}

    def delete(
        self,
        ctx: Context,
        id: str,
        properties: Mapping[str, Any],
        attributes: Mapping[str, Any],
    ) -> None:
        script = properties.get("delete")
        if script is not None:
            self._script(
                ctx, "delete", str(script), id, properties, output=attributes.get("output")
            )

    def import_(self, ctx: Context, id: str) -> Observed:
        # Adopt what the user says exists; the stack's properties are taken as they are,
        # and the read script (if any) fills in the output at the next refresh.
        if not id:
            raise ProviderError("the id of an imported command must not be empty")
        return Observed({}, {"output": None, "exit_code": 0})


def _tail(result: _Result) -> str:
    if not result.stderr_tail:
        return " (no standard error)"
    text = "\n".join(result.stderr_tail)[-_STDERR_TAIL_CHARS:]
    return f"; last lines of standard error:\n{text}"


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


class CommandProvider(Provider):
    """Resources managed by scripts."""

    name = "command"
    description = "Resources made, changed, read and removed by scripts."
    resource_types = (Command,)
