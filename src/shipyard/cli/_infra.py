"""``shipyard infra``: plan, apply, destroy, drift, import, state, output, graph.

Exit codes: ``plan`` and ``drift`` exit 0 when there is nothing to do, 2 when there
are changes (drift), 1 on an error; every other command exits 0 on success and 1 on an
error. Errors print ``error: ...`` (never a traceback). This module imports only Typer
at load time: the engine is imported by each command, so ``shipyard infra`` starts fast;
:func:`shipyard.cli._infra_fast.main` (what the ``shipyard`` entry point runs for
``infra``) spares it Typer's option checking too when it can.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

if TYPE_CHECKING:
    from shipyard.infra._engine import Engine
    from shipyard.infra._render import Painter

__all__ = ["infra_app"]

infra_app = typer.Typer(
    name="infra",
    help="Infrastructure as code: plan and apply a stack of resources, keep its state.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
state_app = typer.Typer(
    name="state",
    help="Read and edit the recorded state (list, show, rm, mv, versions, restore).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
infra_app.add_typer(state_app, name="state")

Dir = Annotated[Path, typer.Option("--dir", "-d", help="The stack folder.")]
StateDir = Annotated[
    Path | None, typer.Option("--state-dir", help="Where the state lives (default: <dir>/.shipyard/state).")
]
Var = Annotated[
    list[str] | None, typer.Option("--var", "-var", help="Set a variable: NAME=VALUE (repeatable).")
]
VarFile = Annotated[
    list[Path] | None,
    typer.Option("--var-file", "-var-file", help="Read variables from a YAML or JSON file (repeatable)."),
]
Target = Annotated[
    list[str] | None,
    typer.Option("--target", "-target", help="Only this resource or module, and what it depends on (repeatable)."),
]
LockTimeout = Annotated[
    float, typer.Option("--lock-timeout", help="Wait this many seconds for the state's lease.", min=0)
]
ForceUnlock = Annotated[
    bool, typer.Option("--force-unlock", help="Take the state's lease even if someone holds it.")
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON.")]
Yes = Annotated[
    bool, typer.Option("--yes", "-y", "--auto-approve", "-auto-approve", help="Do not ask for confirmation.")
]
Parallelism = Annotated[
    int, typer.Option("--parallelism", "-parallelism", help="How many changes may run at once.", min=1)
]


def _painter(stream: Any = None) -> Painter:
    from shipyard.infra._render import Painter

    stream = stream or sys.stdout
    return Painter(stream.isatty() and not os.environ.get("NO_COLOR"))


def _fail(message: str) -> NoReturn:
    paint = _painter(sys.stderr)
    sys.stderr.write(f"{paint('error:', 'red')} {message}\n")
    raise typer.Exit(1)


@contextmanager
def _errors() -> Iterator[None]:
    """Shipyard errors as ``error: ...`` and exit 1; Ctrl-C as exit 130."""
    from shipyard.errors import ShipyardError, ValidationError

    try:
        yield
    except ValidationError as err:
        paint = _painter(sys.stderr)
        for e in err.errors:
            sys.stderr.write(f"{paint('error', 'red')} {e}\n")
        n = len(err.errors)
        sys.stderr.write(paint(f"{n} error{'s' if n != 1 else ''}", "red") + "\n")
        raise typer.Exit(1) from None
    except ShipyardError as err:
        _fail(str(err))
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        raise typer.Exit(130) from None


def _noticed(session: Any) -> None:
    """Tell the user how the state's lease was taken, when there is something to say
    (a lease taken over from a process that is gone)."""
    notice = session.notice
    if notice:
        sys.stderr.write(f"{_painter(sys.stderr)('warning:', 'yellow')} {notice}\n")


def _log(address: str, message: str) -> None:
    sys.stderr.write(f"{address}: {message}\n")


def _engine(directory: Path, state_dir: Path | None, var: list[str] | None = None,
            var_file: list[Path] | None = None, *, variables: bool = True) -> Engine:
    from shipyard.infra._engine import Engine
    from shipyard.infra._variables import parse_variables

    engine = Engine(directory, state_dir=state_dir)
    # What providers report while planning (apply shows it with the progress).
    engine.sink.target = _log
    if variables and (var or var_file or any(k.startswith("SHIPYARD_VAR_") for k in os.environ)):
        engine.variables = parse_variables(engine.stack(), var or (), var_file or (), os.environ)
    return engine


def _out(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _confirm(question: str) -> bool:
    if not sys.stdin.isatty():
        _fail("refusing to change anything without --yes: stdin is not a terminal to confirm on")
    sys.stdout.write(f"{question}\n  Only 'yes' is accepted: ")
    sys.stdout.flush()
    answer = sys.stdin.readline().strip()
    return answer == "yes"


# ---------------------------------------------------------------------- plan/apply


@infra_app.command()
def plan(
    directory: Dir = Path("."),
    var: Var = None,
    var_file: VarFile = None,
    out: Annotated[Path | None, typer.Option("--out", "-out", help="Save the plan to this file.")] = None,
    target: Target = None,
    refresh: Annotated[bool, typer.Option("--refresh/--no-refresh", help="Read the real world first.")] = True,
    destroy: Annotated[bool, typer.Option("--destroy", help="Plan to destroy everything.")] = False,
    as_json: Json = False,
    parallelism: Parallelism = 10,
    lock_timeout: LockTimeout = 0.0,
    force_unlock: ForceUnlock = False,
    state_dir: StateDir = None,
) -> None:
    """Show what apply would change. Exit 0: nothing; 2: changes; 1: error."""
    from shipyard.infra._render import render_plan

    with _errors():
        engine = _engine(directory, state_dir, var, var_file)
        with engine.operation("plan", wait=lock_timeout, force_unlock=force_unlock) as op:
            _noticed(op.session)
            result = op.plan(targets=target or (), refresh=refresh, destroy=destroy, parallelism=parallelism)
        if out is not None:
            engine.save_plan(result, out)
        if as_json:
            _out(json.dumps(result.to_json(), indent=2) + "\n")
        else:
            _out(render_plan(result, _painter()))
            if out is not None:
                _out(f"\nSaved the plan to {out}: `shipyard infra apply {out}` applies exactly this.\n")
    raise typer.Exit(2 if result.has_changes else 0)


def _run_apply(engine: Engine, *, plan_file: Path | None, targets: list[str], destroy: bool,
               yes: bool, refresh: bool, parallelism: int, lock_timeout: float, force_unlock: bool) -> None:
    from shipyard.infra._render import ProgressPrinter, render_apply, render_outputs, render_plan

    paint = _painter()
    operation = "destroy" if destroy else "apply"
    with engine.operation(operation, wait=lock_timeout, force_unlock=force_unlock) as op:
        _noticed(op.session)
        if plan_file is not None:
            the_plan = op.load_saved(plan_file, parallelism=parallelism)
        else:
            the_plan = op.plan(targets=targets, refresh=refresh, destroy=destroy, parallelism=parallelism)
            _out(render_plan(the_plan, paint))
            if not the_plan.has_changes:
                return
            if not yes and not _confirm(
                f"\nDo you want to {'destroy these resources' if destroy else 'apply these changes'}?"
            ):
                _fail(f"{operation} cancelled")
            _out("\n")
        printer = ProgressPrinter(sys.stdout, paint)
        try:
            result = op.apply(the_plan, reporter=printer, parallelism=parallelism)
        finally:
            printer.close()
    _out(render_apply(result, paint, destroy=the_plan.destroy))
    if result.outputs and not the_plan.destroy:
        _out("\nOutputs:\n" + render_outputs(result.outputs, paint))
    if not result.ok:
        raise typer.Exit(130 if result.interrupted else 1)


@infra_app.command()
def apply(
    plan_file: Annotated[Path | None, typer.Argument(metavar="PLAN", help="A plan saved by plan -out.")] = None,
    directory: Dir = Path("."),
    var: Var = None,
    var_file: VarFile = None,
    yes: Yes = False,
    target: Target = None,
    refresh: Annotated[bool, typer.Option("--refresh/--no-refresh", help="Read the real world first.")] = True,
    parallelism: Parallelism = 10,
    lock_timeout: LockTimeout = 0.0,
    force_unlock: ForceUnlock = False,
    state_dir: StateDir = None,
) -> None:
    """Make the real world match the stack (asks first unless --yes, or given a saved PLAN)."""
    with _errors():
        if plan_file is not None and (var or var_file or target):
            _fail("a saved plan carries its own variables and targets: give only the PLAN file")
        engine = _engine(directory, state_dir, var, var_file)
        _run_apply(engine, plan_file=plan_file, targets=target or [], destroy=False, yes=yes,
                   refresh=refresh, parallelism=parallelism, lock_timeout=lock_timeout,
                   force_unlock=force_unlock)


@infra_app.command()
def destroy(
    directory: Dir = Path("."),
    var: Var = None,
    var_file: VarFile = None,
    yes: Yes = False,
    target: Target = None,
    parallelism: Parallelism = 10,
    lock_timeout: LockTimeout = 0.0,
    force_unlock: ForceUnlock = False,
    state_dir: StateDir = None,
) -> None:
    """Destroy every resource of the stack (or the targets and what depends on them)."""
    with _errors():
        engine = _engine(directory, state_dir, var, var_file)
        _run_apply(engine, plan_file=None, targets=target or [], destroy=True, yes=yes,
                   refresh=True, parallelism=parallelism, lock_timeout=lock_timeout,
                   force_unlock=force_unlock)


@infra_app.command()
def drift(
    directory: Dir = Path("."),
    var: Var = None,
    var_file: VarFile = None,
    as_json: Json = False,
    parallelism: Parallelism = 10,
    state_dir: StateDir = None,
) -> None:
    """Report what changed outside the stack (writes nothing). Exit 0: none; 2: drift; 1: error."""
    from shipyard.infra._render import render_drift

    with _errors():
        engine = _engine(directory, state_dir, var, var_file)
        report = engine.drift(parallelism=parallelism)
        if as_json:
            _out(json.dumps(report.to_json(), indent=2) + "\n")
        else:
            _out(render_drift(report, _painter()))
    raise typer.Exit(2 if report.has_drift else 0)


@infra_app.command("import")
def import_(
    address: Annotated[str, typer.Argument(help="The declared resource: web, web[0], modules.api.db, or TYPE.NAME.")],
    id: Annotated[str, typer.Argument(help="The provider's id of the existing thing.")],
    directory: Dir = Path("."),
    var: Var = None,
    var_file: VarFile = None,
    lock_timeout: LockTimeout = 0.0,
    force_unlock: ForceUnlock = False,
    state_dir: StateDir = None,
) -> None:
    """Adopt an existing thing as a declared resource (nothing is changed outside)."""
    with _errors():
        engine = _engine(directory, state_dir, var, var_file)
        with engine.operation("import", wait=lock_timeout, force_unlock=force_unlock) as op:
            _noticed(op.session)
            entry = op.import_(address, id)
        _out(f"Imported {entry.address} ({entry.type}) [id={entry.id}].\n"
             "Run `shipyard infra plan` to see how it differs from the stack.\n")


# ---------------------------------------------------------------------- reads


@infra_app.command()
def output(
    name: Annotated[str | None, typer.Argument(help="One output; its value is printed alone.")] = None,
    directory: Dir = Path("."),
    as_json: Json = False,
    state_dir: StateDir = None,
) -> None:
    """Print the stack's outputs as last applied (sensitive ones masked unless named)."""
    from shipyard.infra._render import render_outputs

    with _errors():
        outputs = _engine(directory, state_dir, variables=False).outputs()
        if name is not None:
            found = outputs.get(name)
            if found is None:
                _fail(f"no output named '{name}' (outputs: {', '.join(outputs) or 'none'})")
            if as_json or not isinstance(found.value, str):
                _out(json.dumps(found.value, indent=2 if as_json else None) + "\n")
            else:
                _out(found.value + "\n")
        elif as_json:
            _out(json.dumps({n: {"value": o.value, "sensitive": o.sensitive} for n, o in outputs.items()},
                            indent=2) + "\n")
        else:
            _out(render_outputs(outputs, _painter()))


@infra_app.command()
def graph(
    directory: Dir = Path("."),
    var: Var = None,
    var_file: VarFile = None,
    state_dir: StateDir = None,
) -> None:
    """Print the resource graph as Graphviz DOT (pipe it to `dot -Tsvg`)."""
    with _errors():
        _out(_engine(directory, state_dir, var, var_file).graph())


@infra_app.command()
def validate(directory: Dir = Path(".")) -> None:
    """Check the stack files and report every mistake as file:line:col: message."""
    from shipyard.infra._engine import Engine

    with _errors():
        stack = Engine(directory).stack()
        n, m = len(stack.resources), len(stack.modules)
        _out(f"{_painter()('✓', 'green')} the stack is valid: {n} resource{'s' if n != 1 else ''},"
             f" {m} module{'s' if m != 1 else ''}.\n")


@infra_app.command()
def providers(
    name: Annotated[str | None, typer.Argument(help="Show one provider only.")] = None,
    as_json: Json = False,
) -> None:
    """List the installed providers, their resource types and properties."""
    from shipyard.infra._registry import Registry
    from shipyard.infra._render import describe_providers, render_providers

    with _errors():
        info = describe_providers(Registry.default(), name)
        _out(json.dumps(info, indent=2) + "\n" if as_json else render_providers(info, _painter()))


# ---------------------------------------------------------------------- state


@state_app.command("list")
def state_list(
    addresses: Annotated[list[str] | None, typer.Argument(help="Only these resources or modules.")] = None,
    directory: Dir = Path("."),
    as_json: Json = False,
    state_dir: StateDir = None,
) -> None:
    """List the recorded resources."""
    from shipyard.infra._finish import match_targets

    with _errors():
        from shipyard.infra._render import address_order

        state = _engine(directory, state_dir, variables=False).state()
        names = sorted(state.resources, key=address_order)
        if addresses:
            try:
                chosen, _ = match_targets(addresses, names)
            except ValueError as err:
                _fail(str(err))
            names = [a for a in names if a in chosen]
        if as_json:
            rows = [{"address": a, "type": state.resources[a].type, "id": state.resources[a].id,
                     "tainted": state.resources[a].tainted} for a in names]
            _out(json.dumps(rows, indent=2) + "\n")
        else:
            _out("".join(a + "\n" for a in names))


@state_app.command("show")
def state_show(
    address: Annotated[str, typer.Argument(help="The resource instance.")],
    directory: Dir = Path("."),
    as_json: Json = False,
    state_dir: StateDir = None,
) -> None:
    """Show one recorded resource (sensitive values masked)."""
    from shipyard.infra._changes import masked
    from shipyard.infra._render import render_entry

    with _errors():
        state = _engine(directory, state_dir, variables=False).state()
        entry = state.resources.get(address)
        if entry is None:
            _fail(f"the state has no {address} (see `shipyard infra state list`)")
        if as_json:
            data = entry.to_json()
            secret = frozenset(entry.sensitive)
            data["properties"] = masked(entry.properties, secret, json=True)
            data["attributes"] = masked(entry.attributes, secret, json=True)
            _out(json.dumps(data, indent=2) + "\n")
        else:
            _out(render_entry(entry))


def _edit(directory: Path, state_dir: Path | None, what: str, lock_timeout: float, force_unlock: bool,
          action: Callable[[Any], None]) -> None:
    from shipyard.infra._engine import Engine

    with _errors():
        engine = Engine(directory, state_dir=state_dir)
        with engine.backend.session(engine.owner, what, wait=lock_timeout, force_unlock=force_unlock) as session:
            from shipyard.infra._engine import Operation

            _noticed(session)
            action(Operation(engine, session))


@state_app.command("rm")
def state_rm(
    addresses: Annotated[list[str], typer.Argument(help="Resources or modules to forget.")],
    directory: Dir = Path("."),
    lock_timeout: LockTimeout = 0.0,
    force_unlock: ForceUnlock = False,
    state_dir: StateDir = None,
) -> None:
    """Forget resources: the state stops managing them; the real things are left alone."""
    def run(op: Any) -> None:
        for address in op.state_remove(addresses):
            _out(f"Removed {address}\n")

    _edit(directory, state_dir, "state rm", lock_timeout, force_unlock, run)


@state_app.command("mv")
def state_mv(
    source: Annotated[str, typer.Argument(help="The recorded address.")],
    destination: Annotated[str, typer.Argument(help="The new address.")],
    directory: Dir = Path("."),
    lock_timeout: LockTimeout = 0.0,
    force_unlock: ForceUnlock = False,
    state_dir: StateDir = None,
) -> None:
    """Rename recorded resources (an instance, a resource's instances, or a module's)."""
    def run(op: Any) -> None:
        for old, new in op.state_move(source, destination):
            _out(f"Moved {old} to {new}\n")

    _edit(directory, state_dir, "state mv", lock_timeout, force_unlock, run)


@state_app.command("versions")
def state_versions(
    directory: Dir = Path("."),
    as_json: Json = False,
    state_dir: StateDir = None,
) -> None:
    """List the stored versions of the state (the last 100 are kept)."""
    with _errors():
        versions = _engine(directory, state_dir, variables=False).backend.versions()
        if as_json:
            _out(json.dumps([{"serial": v.serial, "time": v.time.isoformat(), "operation": v.operation,
                              "resources": v.resources, "size": v.size, "owner": v.owner}
                             for v in versions], indent=2) + "\n")
            return
        lines = [f"{'SERIAL':>6}  {'TIME':<19}  {'OPERATION':<20}  {'RESOURCES':>9}  {'SIZE':>9}  OWNER"]
        for v in versions:
            when = v.time.astimezone().strftime("%Y-%m-%d %H:%M:%S")
            lines.append(f"{v.serial:>6}  {when:<19}  {v.operation:<20}  {v.resources:>9}  {v.size:>9}  {v.owner}")
        _out("\n".join(lines) + "\n")


@state_app.command("restore")
def state_restore(
    serial: Annotated[int, typer.Argument(help="The version to go back to (see state versions).")],
    directory: Dir = Path("."),
    lock_timeout: LockTimeout = 0.0,
    force_unlock: ForceUnlock = False,
    state_dir: StateDir = None,
) -> None:
    """Make the state what version N recorded (stored as a new version)."""
    def run(op: Any) -> None:
        op.restore(serial)
        _out(f"Restored version {serial}: {len(op.state.resources)} resources.\n")

    _edit(directory, state_dir, "state restore", lock_timeout, force_unlock, run)
