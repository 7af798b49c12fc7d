"""Infrastructure as code: stack files, the resource graph, plan/apply/destroy, state.

A *stack* is a folder of YAML files declaring resources (of types that providers
implement), modules, variables and outputs. The :class:`Engine` plans a stack against
its recorded *state* (refreshed from the real world), applies plans in dependency
order, reports drift, imports existing things, and edits the state::

    from shipyard.infra import Engine

    engine = Engine(Path("infra"), variables={"replicas": 2})
    with engine.operation("apply") as op:
        plan = op.plan()
        result = op.apply(plan)

Importing this package is cheap: the engine's modules load on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shipyard.infra._apply import ApplyResult, Failure, Reporter
    from shipyard.infra._changes import Action, Change, Diff, Fix, OutputChange, Plan
    from shipyard.infra._drift import DriftItem, DriftReport
    from shipyard.infra._engine import Engine, Operation
    from shipyard.infra._eval import UNKNOWN
    from shipyard.infra._registry import Registry
    from shipyard.infra._state import LocalBackend
    from shipyard.infra._state_model import Backend, OutputState, ResourceState, State
    from shipyard.infra._variables import parse_variables

__all__ = [
    "UNKNOWN",
    "Action",
    "ApplyResult",
    "Backend",
    "Change",
    "Diff",
    "DriftItem",
    "DriftReport",
    "Engine",
    "Failure",
    "Fix",
    "LocalBackend",
    "Operation",
    "OutputChange",
    "OutputState",
    "Plan",
    "Registry",
    "Reporter",
    "ResourceState",
    "State",
    "parse_variables",
]

_HOMES = {
    "ApplyResult": "_apply", "Failure": "_apply", "Reporter": "_apply",
    "Action": "_changes", "Change": "_changes", "Diff": "_changes", "Fix": "_changes",
    "OutputChange": "_changes", "Plan": "_changes",
    "DriftItem": "_drift", "DriftReport": "_drift",
    "Engine": "_engine", "Operation": "_engine",
    "UNKNOWN": "_eval",
    "Registry": "_registry",
    "LocalBackend": "_state",
    "Backend": "_state_model", "OutputState": "_state_model", "ResourceState": "_state_model",
    "State": "_state_model",
    "parse_variables": "_variables",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"shipyard.infra.{home}"), name)
    globals()[name] = value
    return value
