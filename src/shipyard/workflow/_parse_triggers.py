"""The ``on:`` section: events, their filters, dispatch/call inputs and cron schedules."""

from __future__ import annotations

from shipyard.workflow._globs import glob_error
from shipyard.workflow._model import (
    InputSpec,
    InputType,
    RefFilter,
    Schedule,
    Triggers,
    Value,
    WorkflowCall,
)
from shipyard.workflow._parse_common import Reader, node_kind, scalar_string
from shipyard.workflow._schema import (
    CALL_INPUT_KEYS,
    DISPATCH_INPUT_KEYS,
    EVENT_TYPES,
    IDENTIFIER_RE,
    PR_FILTERS,
    PUSH_FILTERS,
    did_you_mean,
)
from shipyard.workflow._yaml import MappingNode, Node, ScalarNode, SequenceNode

_EVENTS = sorted(EVENT_TYPES)
_REF_EVENTS = ("push", "pull_request", "pull_request_target")

_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
# (name, low, high, names for values from `low`)
_CRON_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 6, _DAYS),
)


def cron_error(expr: str) -> str | None:
    """Why ``expr`` is not a cron schedule GitHub accepts, or ``None``.

    GitHub takes POSIX cron: exactly five fields, each a ``*``, numbers, ranges, lists
    and ``/step``s, with JAN-DEC and SUN-SAT names. Anything it would refuse is refused
    here with the field at fault; croniter then checks the whole expression.
    """
    fields = expr.split()
    if len(fields) != 5:
        return f"expected 5 fields, got {len(fields)}"
    for text, (name, low, high, names) in zip(fields, _CRON_FIELDS, strict=True):
        problem = _cron_field_error(text, name, low, high, names)
        if problem:
            return problem
    try:
        from croniter import croniter  # type: ignore[import-untyped, unused-ignore]

        if not croniter.is_valid(expr):
            return "not a valid schedule"
    except ImportError:  # pragma: no cover - croniter is a dependency
        pass
    return None


def _cron_value(text: str, low: int, names: tuple[str, ...]) -> int | None:
    if text.isdigit() and text.isascii():
        return int(text)
    upper = text.upper()
    if upper in names:
        return names.index(upper) + low
    return None


def _cron_field_error(
    text: str, name: str, low: int, high: int, names: tuple[str, ...]
) -> str | None:
    allowed = f"{name} must be {low}-{high}" + (f" or {names[0]}-{names[-1]}" if names else "")
    for item in text.split(","):
        base, slash, step = item.partition("/")
        if slash and (not (step.isdigit() and step.isascii()) or int(step) == 0):
            return f"invalid step '{step}' in {name}"
        if base == "*":
            continue
        start, dash, end = base.partition("-")
        first = _cron_value(start, low, names)
        if first is None or not low <= first <= high:
            return allowed
        if dash:
            last = _cron_value(end, low, names)
            if last is None or not low <= last <= high:
                return allowed
            if last < first:
                return f"invalid range '{base}' in {name}"
    return None


class TriggerParser:
    """Reads ``on:`` into :class:`Triggers`."""

    def __init__(self, reader: Reader) -> None:
        self.r = reader

    def parse(self, node: Node) -> Triggers:
        r = self.r
        configs: dict[str, tuple[ScalarNode, Node | None]] = {}
        if isinstance(node, ScalarNode) and isinstance(node.value, str):
            configs[node.value] = (node, None)
        elif isinstance(node, SequenceNode):
            if not node.items:
                r.error(node, "'on' must name at least one event")
            for item in node.items:
                if not isinstance(item, ScalarNode) or not isinstance(item.value, str):
                    r.error(item, f"expected an event name, got {node_kind(item)}")
                elif item.value in configs:
                    r.error(item, f"event '{item.value}' is listed twice")
                else:
                    configs[item.value] = (item, None)
        elif isinstance(node, MappingNode):
            if not node.items:
                r.error(node, "'on' must name at least one event")
            for key, value in node.items:
                configs[key.text] = (key, value)
        else:
            r.error(node, f"expected an event name, a list or a mapping, got {node_kind(node)}")
        events: set[str] = set()
        filters: dict[str, RefFilter] = {}
        activity: dict[str, tuple[str, ...]] = {}
        dispatch: dict[str, InputSpec] | None = None
        call: WorkflowCall | None = None
        schedules: tuple[Schedule, ...] = ()
        for event, (key, config) in configs.items():
            if event not in EVENT_TYPES:
                r.error(key, f"unknown event '{event}'{did_you_mean(event, _EVENTS)}")
                continue
            events.add(event)
            if event == "schedule":
                schedules = self._schedule(key, config)
                continue
            # `push:` with nothing after it is the same as no settings at all.
            settings = None
            if config is not None and not (isinstance(config, ScalarNode) and config.value is None):
                settings = r.mapping(config)
            if event in _REF_EVENTS:
                filters[event] = self._ref_filter(event, settings)
            elif event == "workflow_dispatch":
                dispatch = self._dispatch(settings)
            elif event == "workflow_call":
                call = self._call(settings)
            elif settings is not None:
                types = self._other(event, settings)
                if types is not None:
                    activity[event] = types
        return Triggers(
            events=frozenset(events),
            push=filters.get("push"),
            pull_request=filters.get("pull_request"),
            pull_request_target=filters.get("pull_request_target"),
            workflow_dispatch=dispatch,
            workflow_call=call,
            schedule=schedules,
            activity_types=activity,
        )

    # -- filters ---------------------------------------------------------------

    def _patterns(self, node: Node, what: str) -> tuple[str, ...]:
        r = self.r
        items = r.string_list(node, f"'{what}'")
        if isinstance(node, SequenceNode) and not node.items:
            r.error(node, f"'{what}' must list at least one pattern")
        out: list[str] = []
        for item, text in items:
            problem = glob_error(text)
            if problem:
                r.error(item, f"invalid pattern '{text}' in '{what}': {problem}")
                continue
            out.append(text)
        return tuple(out)

    def _types(self, event: str, node: Node) -> tuple[str, ...]:
        r = self.r
        known = EVENT_TYPES[event] or ()
        out: list[str] = []
        for item, text in r.string_list(node, "'types'"):
            if known and text not in known:
                hint = did_you_mean(text, known)
                r.error(item, f"unknown activity type '{text}' for '{event}'{hint}")
                continue
            out.append(text)
        return tuple(out)

    def _ref_filter(self, event: str, config: MappingNode | None) -> RefFilter:
        if config is None:
            return RefFilter()
        r = self.r
        allowed = PUSH_FILTERS if event == "push" else PR_FILTERS
        entries = r.entries(config, allowed, f" in 'on.{event}'")
        for a, b in (
            ("branches", "branches-ignore"),
            ("tags", "tags-ignore"),
            ("paths", "paths-ignore"),
        ):
            if a in entries and b in entries:
                r.error(entries[b][0], f"'{a}' and '{b}' cannot be used together for '{event}'")
        values: dict[str, tuple[str, ...]] = {}
        for name, (_, value) in entries.items():
            if name == "types":
                values[name] = self._types(event, value)
            else:
                values[name] = self._patterns(value, name)
        return RefFilter(
            branches=values.get("branches"),
            branches_ignore=values.get("branches-ignore"),
            tags=values.get("tags"),
            tags_ignore=values.get("tags-ignore"),
            paths=values.get("paths"),
            paths_ignore=values.get("paths-ignore"),
            types=values.get("types"),
        )

    def _other(self, event: str, config: MappingNode) -> tuple[str, ...] | None:
        r = self.r
        allowed: tuple[str, ...] = () if EVENT_TYPES[event] is None else ("types",)
        if event == "workflow_run":
            allowed = ("types", "workflows", "branches", "branches-ignore")
        entries = r.entries(config, allowed, f" in 'on.{event}'")
        if event == "workflow_run":
            if "branches" in entries and "branches-ignore" in entries:
                r.error(
                    entries["branches-ignore"][0],
                    f"'branches' and 'branches-ignore' cannot be used together for '{event}'",
                )
            for name in ("branches", "branches-ignore"):
                if name in entries:
                    self._patterns(entries[name][1], name)
            if r.require(entries, "workflows", config):
                r.string_list(entries["workflows"][1], "'workflows'")
        if "types" in entries:
            return self._types(event, entries["types"][1])
        return None

    # -- schedule --------------------------------------------------------------

    def _schedule(self, key: ScalarNode, config: Node | None) -> tuple[Schedule, ...]:
        r = self.r
        if config is None or not isinstance(config, SequenceNode) or not config.items:
            r.error(config or key, "'schedule' needs a list of '- cron: ...' entries")
            return ()
        out: list[Schedule] = []
        for item in config.items:
            mapping = r.mapping(item)
            if mapping is None:
                continue
            entries = r.entries(mapping, ("cron",), " in 'on.schedule'")
            if not r.require(entries, "cron", mapping):
                continue
            cron_node = entries["cron"][1]
            text = r.literal(cron_node, "'cron'")
            if text is None:
                continue
            problem = cron_error(text)
            if problem:
                r.error(cron_node, f"invalid cron expression '{text}': {problem}")
                continue
            out.append(Schedule(" ".join(text.split()), r.loc(cron_node)))
        return tuple(out)

    # -- inputs ----------------------------------------------------------------

    def _dispatch(self, config: MappingNode | None) -> dict[str, InputSpec]:
        if config is None:
            return {}
        r = self.r
        entries = r.entries(config, ("inputs",), " in 'on.workflow_dispatch'")
        node = entries["inputs"][1] if "inputs" in entries else None
        if node is None or (isinstance(node, ScalarNode) and node.value is None):
            return {}
        return self._inputs(node, "workflow_dispatch")

    def _call(self, config: MappingNode | None) -> WorkflowCall:
        if config is None:
            return WorkflowCall()
        r = self.r
        entries = r.entries(config, ("inputs", "outputs", "secrets"), " in 'on.workflow_call'")
        inputs = self._inputs(entries["inputs"][1], "workflow_call") if "inputs" in entries else {}
        outputs: dict[str, Value] = {}
        if "outputs" in entries:
            mapping = r.mapping(entries["outputs"][1])
            for name_node, spec_node in mapping.items if mapping else []:
                spec = r.mapping(spec_node)
                if spec is None:
                    continue
                where = f" in output '{name_node.text}' of 'on.workflow_call'"
                fields = r.entries(spec, ("description", "value"), where)
                if r.require(fields, "value", name_node):
                    value = r.value(
                        fields["value"][1], "on.workflow_call.outputs.<output_id>.value"
                    )
                    if value is not None:
                        outputs[name_node.text] = value
        secrets: dict[str, bool] = {}
        if "secrets" in entries:
            mapping = r.mapping(entries["secrets"][1])
            for name_node, spec_node in mapping.items if mapping else []:
                required = False
                if not (isinstance(spec_node, ScalarNode) and spec_node.value is None):
                    spec = r.mapping(spec_node)
                    where = f" in secret '{name_node.text}' of 'on.workflow_call'"
                    fields = r.entries(spec, ("description", "required"), where) if spec else {}
                    if "required" in fields:
                        required = r.boolean(fields["required"][1]) or False
                secrets[name_node.text] = required
        return WorkflowCall(inputs=inputs, outputs=outputs, secrets=secrets)

    def _inputs(self, node: Node, event: str) -> dict[str, InputSpec]:
        r = self.r
        out: dict[str, InputSpec] = {}
        mapping = r.mapping(node)
        if mapping is None:
            return out
        for name_node, spec_node in mapping.items:
            name = name_node.text
            if not IDENTIFIER_RE.match(name):
                r.error(
                    name_node,
                    f"invalid input name '{name}': use letters, digits, '-' and '_',"
                    " starting with a letter or '_'",
                )
                continue
            spec = self._input(name_node, spec_node, event)
            if spec is not None:
                out[name] = spec
        return out

    def _input(self, name_node: ScalarNode, node: Node, event: str) -> InputSpec | None:
        r = self.r
        name = name_node.text
        if isinstance(node, ScalarNode) and node.value is None and event == "workflow_dispatch":
            return InputSpec(name=name, location=r.loc(name_node))
        mapping = r.mapping(node)
        if mapping is None:
            return None
        allowed = DISPATCH_INPUT_KEYS if event == "workflow_dispatch" else CALL_INPUT_KEYS
        where = f" in input '{name}' of 'on.{event}'"
        fields = r.entries(mapping, allowed, where)
        ok = True
        kinds = ("string", "boolean", "number") + (
            ("choice", "environment") if event == "workflow_dispatch" else ()
        )
        input_type = InputType.STRING
        if "type" in fields:
            type_node = fields["type"][1]
            text = r.literal(type_node, "'type'")
            if text is not None and text not in kinds:
                shown = ", ".join(kinds[:-1]) + f" or {kinds[-1]}"
                r.error(type_node, f"unknown input type '{text}' (expected {shown})")
                ok = False
            elif text is not None:
                input_type = InputType(text)
        elif event == "workflow_call":
            r.error(name_node, f"'type' is required for input '{name}'")
            ok = False
        required = False
        if "required" in fields:
            required = bool(r.boolean(fields["required"][1]))
        description = None
        if "description" in fields:
            description = r.text(fields["description"][1])
        options: tuple[str, ...] = ()
        if "options" in fields:
            options_node = fields["options"][1]
            if input_type is not InputType.CHOICE:
                r.error(fields["options"][0], "'options' is only valid for inputs of type choice")
            elif not isinstance(options_node, SequenceNode) or not options_node.items:
                r.error(options_node, f"'options' of input '{name}' must be a non-empty list")
                ok = False
            else:
                options = tuple(text for _, text in r.string_list(options_node, "'options'"))
        elif input_type is InputType.CHOICE:
            r.error(name_node, f"input '{name}' of type choice needs 'options'")
            ok = False
        default: object = None
        if "default" in fields:
            default = self._default(name, input_type, fields["default"][1], options, event)
            if default is _BAD:
                ok = False
                default = None
        if not ok:
            return None
        return InputSpec(
            name=name,
            type=input_type,
            description=description,
            required=required,
            default=default,
            options=options,
            location=r.loc(name_node),
        )

    def _default(
        self,
        name: str,
        input_type: InputType,
        node: Node,
        options: tuple[str, ...],
        event: str,
    ) -> object:
        r = self.r
        if not isinstance(node, ScalarNode):
            r.error(node, f"default of input '{name}' must be a scalar, got {node_kind(node)}")
            return _BAD
        value = node.value
        is_expr = isinstance(value, str) and "${{" in value
        if input_type is InputType.BOOLEAN:
            if isinstance(value, bool):
                return value
            if is_expr and event == "workflow_call":
                return r.scalar_value(node, "on.workflow_call.inputs.<inputs_id>.default")
            r.error(node, f"default of boolean input '{name}' must be true or false")
            return _BAD
        if input_type is InputType.NUMBER:
            if isinstance(value, int | float) and not isinstance(value, bool):
                return value
            if is_expr and event == "workflow_call":
                return r.scalar_value(node, "on.workflow_call.inputs.<inputs_id>.default")
            r.error(node, f"default of number input '{name}' must be a number")
            return _BAD
        text = scalar_string(node)
        if input_type is InputType.CHOICE and options and text not in options:
            r.error(node, f"default '{text}' of input '{name}' is not one of its options")
            return _BAD
        if is_expr:
            if event == "workflow_call":
                checked = r.scalar_value(node, "on.workflow_call.inputs.<inputs_id>.default")
                return _BAD if checked is None else checked
            r.error(node, "expressions are not allowed in workflow_dispatch defaults")
            return _BAD
        return text


_BAD = object()
