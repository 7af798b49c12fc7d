"""Steps (of a job or of a composite action) and their ``uses:`` references."""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from shipyard.workflow._model import Step, Value
from shipyard.workflow._parse_common import Reader, node_kind
from shipyard.workflow._schema import IDENTIFIER_RE, STEP_KEYS, did_you_mean
from shipyard.workflow._yaml import MappingNode, Node, ScalarNode

_ACTION_RE = re.compile(
    r"([A-Za-z0-9][A-Za-z0-9_.-]*)/([A-Za-z0-9_.-]+)((?:/[^@\s]+)?)@([^@\s]+)\Z"
)

_WORKFLOW_KEYS = {
    "if": "jobs.<id>.steps.if",
    "name": "jobs.<id>.steps.name",
    "run": "jobs.<id>.steps.run",
    "with": "jobs.<id>.steps.with",
    "env": "jobs.<id>.steps.env",
    "working-directory": "jobs.<id>.steps.working-directory",
    "continue-on-error": "jobs.<id>.steps.continue-on-error",
    "timeout-minutes": "jobs.<id>.steps.timeout-minutes",
}
_ACTION_KEYS = {key: ("runs.steps.if" if key == "if" else "runs.steps") for key in _WORKFLOW_KEYS}


@lru_cache(maxsize=1)
def _builtin_actions() -> Mapping[str, Any] | None:
    # Imported lazily: the actions package imports the workflow model, not the reverse.
    try:
        from shipyard.workflow.actions import BUILTIN_ACTIONS
    except Exception:
        return None
    return BUILTIN_ACTIONS


def action_reference_error(uses: str) -> str | None:
    """Why a step's ``uses:`` is malformed, or ``None``."""
    if uses.startswith("docker://"):
        image = uses[len("docker://") :]
        return None if image and not any(c.isspace() for c in image) else "missing image"
    if uses.startswith("./") or uses.startswith("../"):
        return None if uses.strip("./") else "missing path"
    if _ACTION_RE.match(uses):
        return None
    if "@" not in uses and uses.count("/") >= 1:
        return "missing '@<ref>' (e.g. '@v4')"
    return "expected '<owner>/<repo>[/<path>]@<ref>', './<path>' or 'docker://<image>'"


class StepParser:
    """Reads a ``steps:`` list. ``composite`` selects action.yml rules and contexts."""

    def __init__(self, reader: Reader, *, composite: bool = False) -> None:
        self.r = reader
        self.composite = composite
        self.keys = _ACTION_KEYS if composite else _WORKFLOW_KEYS

    def parse(self, node: Node, owner: str) -> tuple[Step, ...]:
        """``owner`` names where the steps are, for messages: `` of job 'build'``."""
        r = self.r
        seq = r.sequence(node)
        if seq is None:
            return ()
        if not seq.items:
            r.error(seq, "'steps' must contain at least one step")
        steps: list[Step] = []
        ids: dict[str, ScalarNode] = {}
        for index, item in enumerate(seq.items):
            step = self._step(index, item, owner, ids)
            if step is not None:
                steps.append(step)
        return tuple(steps)

    def _step(self, index: int, node: Node, owner: str, ids: dict[str, ScalarNode]) -> Step | None:
        r = self.r
        mapping = r.mapping(node)
        if mapping is None:
            return None
        label = f"step {index + 1}{owner}"
        e = r.entries(mapping, STEP_KEYS, f" in {label}")
        keys = self.keys
        step_id: str | None = None
        if "id" in e:
            id_node = e["id"][1]
            step_id = r.literal(id_node, "step ids")
            if step_id is not None and not IDENTIFIER_RE.match(step_id):
                r.error(
                    id_node,
                    f"invalid step id '{step_id}': use letters, digits, '-' and '_',"
                    " starting with a letter or '_'",
                )
                step_id = None
            elif step_id is not None and step_id.lower() in ids:
                first = ids[step_id.lower()]
                r.error(
                    id_node,
                    f"step id '{step_id}' is already used"
                    f"{owner.replace(' of ', ' in ', 1)} (line {first.line})",
                )
                step_id = None
            elif step_id is not None and isinstance(id_node, ScalarNode):
                ids[step_id.lower()] = id_node
        uses: str | None = None
        run: Value | None = None
        if "uses" in e and "run" in e:
            r.error(e["run"][0], "a step cannot have both 'uses' and 'run'")
        elif "uses" not in e and "run" not in e:
            r.error(mapping, f"{label} must have 'uses' or 'run'")
        if "uses" in e:
            uses = self._uses(e["uses"][1], e.get("with"))
        if "run" in e and "uses" not in e:
            run_node = e["run"][1]
            if isinstance(run_node, ScalarNode) and run_node.value is None:
                r.error(run_node, "'run' must not be empty")
            else:
                run = r.value(run_node, keys["run"])
        shell = None
        if "shell" in e:
            if "run" not in e:
                r.error(e["shell"][0], "'shell' is only valid with 'run'")
            else:
                shell = r.shell(e["shell"][1])
        elif self.composite and "run" in e and "uses" not in e:
            r.error(e["run"][0], "'shell' is required for 'run' steps in composite actions")
        working_directory = None
        if "working-directory" in e:
            if "run" not in e:
                r.error(e["working-directory"][0], "'working-directory' is only valid with 'run'")
            else:
                working_directory = r.value(e["working-directory"][1], keys["working-directory"])
        with_: dict[str, Value] = {}
        if "with" in e:
            if "uses" not in e:
                r.error(e["with"][0], "'with' is only valid with 'uses'")
            else:
                with_ = self._with(e["with"][1])
        continue_on_error: bool | Value = False
        if "continue-on-error" in e:
            coe = r.bool_or_expr(e["continue-on-error"][1], keys["continue-on-error"])
            continue_on_error = False if coe is None else coe
        timeout: Value | float | None = None
        if "timeout-minutes" in e:
            timeout = r.number_or_expr(e["timeout-minutes"][1], keys["timeout-minutes"])
        return Step(
            index=index,
            id=step_id,
            name=r.value(e["name"][1], keys["name"]) if "name" in e else None,
            condition=r.condition(e["if"][1], keys["if"]) if "if" in e else None,
            uses=uses,
            run=run,
            shell=shell,
            with_=with_,
            env=r.env(e["env"][1], keys["env"]) if "env" in e else {},
            working_directory=working_directory,
            continue_on_error=continue_on_error,
            timeout_minutes=timeout,
            location=r.loc(mapping),
        )

    def _uses(self, node: Node, with_entry: tuple[ScalarNode, Node] | None) -> str | None:
        r = self.r
        uses = r.literal(node, "'uses'")
        if uses is None:
            return None
        problem = action_reference_error(uses)
        if problem:
            r.error(node, f"invalid action reference '{uses}': {problem}")
            return None
        self._check_inputs(node, uses, with_entry)
        return uses

    def _check_inputs(
        self, node: Node, uses: str, with_entry: tuple[ScalarNode, Node] | None
    ) -> None:
        builtins = _builtin_actions()
        if builtins is None or uses.startswith(("./", "../", "docker://")):
            return
        name = uses.split("@", 1)[0].lower()
        action = builtins.get(name)
        if action is None:
            return
        inputs = {k.lower(): v for k, v in action.inputs.items()}
        given: set[str] = set()
        if with_entry is not None and isinstance(with_entry[1], MappingNode):
            for key, _ in with_entry[1].items:
                lowered = key.text.lower()
                given.add(lowered)
                if lowered not in inputs:
                    hint = did_you_mean(key.text, sorted(action.inputs))
                    self.r.error(key, f"'{name}' has no input '{key.text}'{hint}")
        for input_name, spec in action.inputs.items():
            if spec.required and spec.default is None and input_name.lower() not in given:
                self.r.error(node, f"'{name}' requires input '{input_name}'")

    def _with(self, node: Node) -> dict[str, Value]:
        r = self.r
        out: dict[str, Value] = {}
        mapping = r.mapping(node)
        if mapping is None:
            return out
        for key, value_node in mapping.items:
            if not isinstance(value_node, ScalarNode):
                r.error(
                    value_node,
                    f"input '{key.text}' must be a string, number or boolean,"
                    f" got {node_kind(value_node)}",
                )
                continue
            value = r.scalar_value(value_node, self.keys["with"])
            if value is not None:
                out[key.text] = value
        return out
