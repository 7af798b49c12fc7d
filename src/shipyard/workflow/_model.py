"""The parsed form of a workflow file.

The parser (``_parser.py``) turns YAML into these objects after checking it; nothing
here re-validates. Every string a user wrote that may hold ``${{ }}`` is kept as a
:class:`Value` (its compiled template and where it came from), so planning and running
evaluate it later with the right contexts and still report ``file:line:col``.

Lists and maps whose shape is only known after evaluation (a matrix built with
``fromJSON``, ``with:`` inputs, container options) are kept as a :data:`Tree`: plain
JSON-like data whose strings are :class:`Value`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Union

from shipyard.errors import Location
from shipyard.workflow.expressions import EvalContext, Expression, Template


@dataclass(frozen=True, slots=True)
class Value:
    """A string from the file that may contain ``${{ }}`` parts."""

    template: Template
    location: Location

    @property
    def source(self) -> str:
        return self.template.source

    def evaluate(self, ctx: EvalContext) -> Any:
        """The raw value when the string is exactly one expression, else a string."""
        return self.template.evaluate(ctx)

    def evaluate_str(self, ctx: EvalContext) -> str:
        return self.template.evaluate_str(ctx)


@dataclass(frozen=True, slots=True)
class Condition:
    """An ``if:`` value, compiled (implicit ``success() &&`` already applied)."""

    expression: Expression
    source: str
    location: Location


# JSON-like data whose strings may hold expressions: str leaves are Value.
Tree = Union["Value", int, float, bool, None, list["Tree"], dict[str, "Tree"]]


class Shell(enum.Enum):
    """How a ``run:`` script is executed; ``CUSTOM`` uses :attr:`Step.shell_template`."""

    BASH = "bash"
    SH = "sh"
    PYTHON = "python"
    PWSH = "pwsh"
    CUSTOM = "custom"


@dataclass(frozen=True, slots=True)
class RunDefaults:
    """``defaults.run`` at workflow or job level."""

    shell: str | None = None
    working_directory: Value | None = None


@dataclass(frozen=True, slots=True)
class Concurrency:
    """``concurrency:`` — parsed here, enforced by the ci service."""

    group: Value
    cancel_in_progress: Value | bool = False


@dataclass(frozen=True, slots=True)
class Environment:
    """``environment:`` of a job — used by deployments."""

    name: Value
    url: Value | None = None


@dataclass(frozen=True, slots=True)
class Container:
    """``container:`` or one of ``services:`` of a job (docker executor)."""

    image: Value
    env: dict[str, Value] = field(default_factory=dict)
    ports: list[Value] = field(default_factory=list)
    volumes: list[Value] = field(default_factory=list)
    options: Value | None = None
    credentials: dict[str, Value] = field(default_factory=dict)
    location: Location | None = None


@dataclass(frozen=True, slots=True)
class Strategy:
    """``strategy:`` of a job.

    ``matrix`` is either a Tree mapping (keys ``include``/``exclude`` or axis names) or a
    single Value (``matrix: ${{ fromJSON(...) }}``) evaluated at expansion time.
    """

    matrix: Tree | None = None
    fail_fast: Value | bool = True
    max_parallel: Value | int | None = None
    location: Location | None = None


@dataclass(frozen=True, slots=True)
class Step:
    """One step of a job (or of a composite action)."""

    index: int
    id: str | None
    name: Value | None
    condition: Condition | None
    uses: str | None
    run: Value | None
    shell: str | None
    with_: dict[str, Value] = field(default_factory=dict)
    env: dict[str, Value] = field(default_factory=dict)
    working_directory: Value | None = None
    continue_on_error: Value | bool = False
    timeout_minutes: Value | float | None = None
    location: Location | None = None

    def display_name(self) -> str:
        """The name shown before evaluation: ``name``, else ``Run <first line>``/the action."""
        if self.name is not None:
            return self.name.source
        if self.uses is not None:
            return f"Run {self.uses}"
        if self.run is not None:
            first = self.run.source.strip().splitlines()
            return f"Run {first[0]}" if first else "Run"
        return f"Step {self.index + 1}"


@dataclass(frozen=True, slots=True)
class Job:
    """One job of a workflow, before matrix expansion."""

    id: str
    name: Value | None
    needs: tuple[str, ...]
    runs_on: Tree
    condition: Condition | None
    steps: tuple[Step, ...]
    env: dict[str, Value] = field(default_factory=dict)
    defaults: RunDefaults = field(default_factory=RunDefaults)
    outputs: dict[str, Value] = field(default_factory=dict)
    strategy: Strategy | None = None
    timeout_minutes: Value | float = 360
    continue_on_error: Value | bool = False
    container: Container | None = None
    services: dict[str, Container] = field(default_factory=dict)
    concurrency: Concurrency | None = None
    environment: Environment | None = None
    # A reusable workflow call (``jobs.<id>.uses``) instead of steps.
    uses: str | None = None
    with_: dict[str, Value] = field(default_factory=dict)
    secrets: dict[str, Value] | str | None = None
    location: Location | None = None


class InputType(enum.Enum):
    STRING = "string"
    BOOLEAN = "boolean"
    NUMBER = "number"
    CHOICE = "choice"
    ENVIRONMENT = "environment"


@dataclass(frozen=True, slots=True)
class InputSpec:
    """An input of ``workflow_dispatch`` or ``workflow_call``."""

    name: str
    type: InputType = InputType.STRING
    description: str | None = None
    required: bool = False
    default: Any = None
    options: tuple[str, ...] = ()
    location: Location | None = None


@dataclass(frozen=True, slots=True)
class RefFilter:
    """Filters of a ``push`` / ``pull_request`` trigger. ``None`` means not given."""

    branches: tuple[str, ...] | None = None
    branches_ignore: tuple[str, ...] | None = None
    tags: tuple[str, ...] | None = None
    tags_ignore: tuple[str, ...] | None = None
    paths: tuple[str, ...] | None = None
    paths_ignore: tuple[str, ...] | None = None
    types: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class Schedule:
    cron: str
    location: Location | None = None


@dataclass(frozen=True, slots=True)
class WorkflowCall:
    inputs: dict[str, InputSpec] = field(default_factory=dict)
    outputs: dict[str, Value] = field(default_factory=dict)
    secrets: dict[str, bool] = field(default_factory=dict)  # name -> required


@dataclass(frozen=True, slots=True)
class Triggers:
    """``on:`` of a workflow. ``events`` holds every event named, filtered or not."""

    events: frozenset[str] = frozenset()
    push: RefFilter | None = None
    pull_request: RefFilter | None = None
    pull_request_target: RefFilter | None = None
    workflow_dispatch: dict[str, InputSpec] | None = None
    workflow_call: WorkflowCall | None = None
    schedule: tuple[Schedule, ...] = ()
    # ``types:`` of the other events that have activity types (issues, release, ...).
    activity_types: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Workflow:
    """A parsed, checked workflow file."""

    path: str
    name: str | None
    on: Triggers
    jobs: dict[str, Job]
    run_name: Value | None = None
    env: dict[str, Value] = field(default_factory=dict)
    defaults: RunDefaults = field(default_factory=RunDefaults)
    concurrency: Concurrency | None = None
    source: str = ""

    @property
    def display_name(self) -> str:
        return self.name or self.path


@dataclass(frozen=True, slots=True)
class ActionInput:
    name: str
    description: str | None = None
    required: bool = False
    default: Value | None = None


@dataclass(frozen=True, slots=True)
class CompositeAction:
    """A local ``action.yml`` with ``runs.using: composite``."""

    path: str
    name: str | None
    inputs: dict[str, ActionInput]
    outputs: dict[str, Value]
    steps: tuple[Step, ...]
