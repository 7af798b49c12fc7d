"""``action.yml`` of a composite action: inputs, outputs and ``runs.steps``."""

from __future__ import annotations

from shipyard.workflow._model import ActionInput, CompositeAction, Step, Value
from shipyard.workflow._parse_common import Reader
from shipyard.workflow._parse_steps import StepParser
from shipyard.workflow._yaml import MappingNode, Node, ScalarNode

_ACTION_KEYS = ("name", "description", "author", "inputs", "outputs", "runs", "branding")
_INPUT_KEYS = ("description", "required", "default", "deprecationMessage")
# Every key `runs:` may have for any kind of action, so that a JavaScript or Docker
# action is refused for what it is rather than for its keys.
_RUNS_KEYS = (
    "using", "steps", "main", "pre", "post", "image", "args", "entrypoint", "env",
    "pre-if", "post-if", "pre-entrypoint", "post-entrypoint",
)  # fmt: skip


def _required(r: Reader, node: Node) -> bool:
    # GitHub reads action metadata leniently: many action.yml files quote booleans.
    if isinstance(node, ScalarNode) and node.value in ("true", "false"):
        return bool(node.value == "true")
    return bool(r.boolean(node))


def _inputs(r: Reader, node: Node) -> dict[str, ActionInput]:
    out: dict[str, ActionInput] = {}
    mapping = r.mapping(node)
    for key, value in mapping.items if mapping else []:
        spec = None
        if not (isinstance(value, ScalarNode) and value.value is None):
            spec = r.mapping(value)
        f = r.entries(spec, _INPUT_KEYS, f" in input '{key.text}'") if spec else {}
        out[key.text] = ActionInput(
            name=key.text,
            description=r.text(f["description"][1]) if "description" in f else None,
            required=_required(r, f["required"][1]) if "required" in f else False,
            default=r.value(f["default"][1], "inputs.<input_id>.default")
            if "default" in f
            else None,
        )
    return out


def _outputs(r: Reader, node: Node) -> dict[str, Value]:
    out: dict[str, Value] = {}
    mapping = r.mapping(node)
    for key, value in mapping.items if mapping else []:
        spec = r.mapping(value)
        if spec is None:
            continue
        f = r.entries(spec, ("description", "value"), f" in output '{key.text}'")
        if r.require(f, "value", key):
            parsed = r.value(f["value"][1], "outputs.<output_id>.value")
            if parsed is not None:
                out[key.text] = parsed
    return out


def _steps(r: Reader, node: Node) -> tuple[Step, ...]:
    runs = r.mapping(node)
    if runs is None:
        return ()
    f = r.entries(runs, _RUNS_KEYS, " in 'runs'")
    if not r.require(f, "using", runs):
        return ()
    using = f["using"][1]
    if not (isinstance(using, ScalarNode) and using.value == "composite"):
        r.error(using, "only composite actions are supported here")
        return ()
    for other in f:
        if other not in ("using", "steps"):
            r.error(f[other][0], f"'{other}' is not valid for a composite action")
    if not r.require(f, "steps", runs):
        return ()
    return StepParser(r, composite=True).parse(f["steps"][1], "")


def parse_action(r: Reader, mapping: MappingNode, file: str) -> CompositeAction:
    """The action described by the root mapping of an ``action.yml``."""
    e = r.entries(mapping, _ACTION_KEYS)
    steps: tuple[Step, ...] = ()
    if r.require(e, "runs", mapping):
        steps = _steps(r, e["runs"][1])
    return CompositeAction(
        path=file,
        name=r.text(e["name"][1]) if "name" in e else None,
        inputs=_inputs(r, e["inputs"][1]) if "inputs" in e else {},
        outputs=_outputs(r, e["outputs"][1]) if "outputs" in e else {},
        steps=steps,
    )
