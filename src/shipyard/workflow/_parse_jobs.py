"""Jobs: runner selection, strategy and matrix, containers, reusable-workflow calls."""

from __future__ import annotations

import re

from shipyard.workflow._model import (
    Concurrency,
    Container,
    Environment,
    Job,
    RunDefaults,
    Step,
    Strategy,
    Tree,
    Value,
)
from shipyard.workflow._parse_common import Reader, node_kind
from shipyard.workflow._parse_steps import StepParser
from shipyard.workflow._schema import (
    CALLER_JOB_KEYS,
    CONTAINER_KEYS,
    IDENTIFIER_RE,
    JOB_KEYS,
    PERMISSION_SCOPES,
    did_you_mean,
)
from shipyard.workflow._yaml import MappingNode, Node, ScalarNode, SequenceNode

_REUSABLE_LOCAL = re.compile(r"\./\.github/workflows/[^/@\s]+\.ya?ml\Z")
_REUSABLE_REMOTE = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9_.-]+/\.github/workflows/[^/@\s]+\.ya?ml@[^@\s]+\Z"
)


def check_permissions(r: Reader, node: Node) -> None:
    """``permissions:``: ``read-all``, ``write-all``, ``{}`` or scope -> read/write/none."""
    if isinstance(node, ScalarNode):
        if node.value not in ("read-all", "write-all"):
            r.error(node, "permissions must be 'read-all', 'write-all' or a mapping of scopes")
        return
    mapping = r.mapping(node)
    if mapping is None:
        return
    for key, value in mapping.items:
        allowed = PERMISSION_SCOPES.get(key.text)
        if allowed is None:
            hint = did_you_mean(key.text, sorted(PERMISSION_SCOPES))
            r.error(key, f"unknown permission scope '{key.text}'{hint}")
        elif not isinstance(value, ScalarNode) or value.value not in allowed:
            shown = "', '".join(allowed[:-1]) + f"' or '{allowed[-1]}"
            r.error(value, f"permission '{key.text}' must be '{shown}'")


def parse_concurrency(r: Reader, node: Node, key: str) -> Concurrency | None:
    if isinstance(node, ScalarNode):
        group = r.value(node, key)
        return Concurrency(group=group) if group is not None else None
    mapping = r.mapping(node)
    if mapping is None:
        return None
    e = r.entries(mapping, ("group", "cancel-in-progress"), " in 'concurrency'")
    if not r.require(e, "group", mapping):
        return None
    group = r.value(e["group"][1], key)
    cancel: bool | Value = False
    if "cancel-in-progress" in e:
        cancel = r.bool_or_expr(e["cancel-in-progress"][1], key) or False
    return Concurrency(group=group, cancel_in_progress=cancel) if group is not None else None


def parse_run_defaults(r: Reader, node: Node, key: str, where: str) -> RunDefaults:
    mapping = r.mapping(node)
    if mapping is None:
        return RunDefaults()
    e = r.entries(mapping, ("run",), f" in 'defaults'{where}")
    if "run" not in e:
        return RunDefaults()
    run = r.mapping(e["run"][1])
    if run is None:
        return RunDefaults()
    f = r.entries(run, ("shell", "working-directory"), f" in 'defaults.run'{where}")
    shell = r.shell(f["shell"][1]) if "shell" in f else None
    wd = r.value(f["working-directory"][1], key) if "working-directory" in f else None
    return RunDefaults(shell=shell, working_directory=wd)


class JobParser:
    """Reads one entry of ``jobs:``."""

    def __init__(self, reader: Reader) -> None:
        self.r = reader
        self.steps = StepParser(reader)

    def parse(self, key: ScalarNode, node: Node) -> Job | None:
        r = self.r
        job_id = key.text
        if not IDENTIFIER_RE.match(job_id):
            r.error(
                key,
                f"invalid job id '{job_id}': use letters, digits, '-' and '_',"
                " starting with a letter or '_'",
            )
            return None
        mapping = r.mapping(node)
        if mapping is None:
            return None
        where = f" in job '{job_id}'"
        e = r.entries(mapping, JOB_KEYS, where)
        caller = "uses" in e
        if caller:
            for name, (name_node, _) in e.items():
                if name not in CALLER_JOB_KEYS:
                    r.error(
                        name_node,
                        f"'{name}' cannot be used in a job that calls a reusable workflow ('uses')",
                    )
        else:
            for name in ("with", "secrets"):
                if name in e:
                    r.error(
                        e[name][0],
                        f"'{name}' is only valid in a job that calls a reusable workflow ('uses')",
                    )
            r.require(e, "runs-on", key)
            r.require(e, "steps", key)
        if "permissions" in e:
            check_permissions(r, e["permissions"][1])
        needs: list[str] = []
        if "needs" in e:
            for _item, name in r.string_list(e["needs"][1], "'needs'"):
                if name not in needs:
                    needs.append(name)
        uses = self._uses(e["uses"][1]) if caller else None
        runs_on: Tree = None
        if "runs-on" in e and not caller:
            runs_on = self._runs_on(e["runs-on"][1])
        steps: tuple[Step, ...] = ()
        if "steps" in e and not caller:
            steps = self.steps.parse(e["steps"][1], f" of job '{job_id}'")
        timeout: Value | float = 360
        if "timeout-minutes" in e:
            parsed = r.number_or_expr(e["timeout-minutes"][1], "jobs.<id>.timeout-minutes")
            timeout = parsed if parsed is not None else 360
        continue_on_error: bool | Value = False
        if "continue-on-error" in e:
            coe = r.bool_or_expr(e["continue-on-error"][1], "jobs.<id>.continue-on-error")
            continue_on_error = False if coe is None else coe
        outputs: dict[str, Value] = {}
        if "outputs" in e:
            out_map = r.mapping(e["outputs"][1])
            for name_node, value_node in out_map.items if out_map else []:
                value = r.value(value_node, "jobs.<id>.outputs.<output_id>")
                if value is not None:
                    outputs[name_node.text] = value
        return Job(
            id=job_id,
            name=r.value(e["name"][1], "jobs.<id>.name") if "name" in e else None,
            needs=tuple(needs),
            runs_on=runs_on,
            condition=r.condition(e["if"][1], "jobs.<id>.if") if "if" in e else None,
            steps=steps,
            env=r.env(e["env"][1], "jobs.<id>.env") if "env" in e else {},
            defaults=(
                parse_run_defaults(
                    r, e["defaults"][1], "jobs.<id>.defaults.run", f" of job '{job_id}'"
                )
                if "defaults" in e
                else RunDefaults()
            ),
            outputs=outputs,
            strategy=self._strategy(e["strategy"][1], job_id) if "strategy" in e else None,
            timeout_minutes=timeout,
            continue_on_error=continue_on_error,
            container=self._container(e["container"][1], None) if "container" in e else None,
            services=self._services(e["services"][1]) if "services" in e else {},
            concurrency=(
                parse_concurrency(r, e["concurrency"][1], "jobs.<id>.concurrency")
                if "concurrency" in e
                else None
            ),
            environment=self._environment(e["environment"][1]) if "environment" in e else None,
            uses=uses,
            with_=self._with(e["with"][1]) if caller and "with" in e else {},
            secrets=self._secrets(e["secrets"][1]) if caller and "secrets" in e else None,
            location=r.loc(key),
        )

    def needs_nodes(self, node: MappingNode) -> list[tuple[ScalarNode, str]]:
        """The ``needs`` entries of a job mapping, for the graph checks."""
        for key, value in node.items:
            if key.text == "needs" and not isinstance(value, MappingNode):
                items = value.items if isinstance(value, SequenceNode) else [value]
                return [
                    (item, item.text)
                    for item in items
                    if isinstance(item, ScalarNode) and item.value is not None
                ]
        return []

    def _uses(self, node: Node) -> str | None:
        r = self.r
        uses = r.literal(node, "'uses'")
        if uses is None:
            return None
        if not (_REUSABLE_LOCAL.match(uses) or _REUSABLE_REMOTE.match(uses)):
            r.error(
                node,
                f"invalid reusable workflow reference '{uses}': expected"
                " './.github/workflows/<file>.yml' or"
                " '<owner>/<repo>/.github/workflows/<file>.yml@<ref>'",
            )
            return None
        return uses

    def _runs_on(self, node: Node) -> Tree:
        r = self.r
        key = "jobs.<id>.runs-on"
        if isinstance(node, ScalarNode):
            if node.value is None or node.text == "":
                r.error(node, "'runs-on' must not be empty")
                return None
            return r.value(node, key)
        if isinstance(node, SequenceNode):
            if not node.items:
                r.error(node, "'runs-on' must list at least one label")
            return [r.value(item, key) for item in node.items]
        mapping = r.mapping(node)
        if mapping is None:
            return None
        e = r.entries(mapping, ("group", "labels"), " in 'runs-on'")
        if not e:
            r.error(mapping, "'runs-on' needs 'group' or 'labels'")
        out: dict[str, Tree] = {}
        if "group" in e:
            out["group"] = r.value(e["group"][1], key)
        if "labels" in e:
            labels = e["labels"][1]
            if isinstance(labels, MappingNode):
                r.error(labels, "expected a string or a list, got a mapping")
            else:
                out["labels"] = r.tree(labels, key)
        return out

    def _strategy(self, node: Node, job_id: str) -> Strategy | None:
        r = self.r
        mapping = r.mapping(node)
        if mapping is None:
            return None
        key = "jobs.<id>.strategy"
        e = r.entries(
            mapping, ("matrix", "fail-fast", "max-parallel"), f" in 'strategy' of job '{job_id}'"
        )
        fail_fast: bool | Value = True
        if "fail-fast" in e:
            ff = r.bool_or_expr(e["fail-fast"][1], key)
            fail_fast = True if ff is None else ff
        max_parallel: Value | int | None = None
        if "max-parallel" in e:
            mp = r.number_or_expr(e["max-parallel"][1], key, integer=True)
            max_parallel = mp if not isinstance(mp, float) else int(mp)
        matrix = self._matrix(e["matrix"][1]) if "matrix" in e else None
        return Strategy(
            matrix=matrix, fail_fast=fail_fast, max_parallel=max_parallel, location=r.loc(mapping)
        )

    def _matrix(self, node: Node) -> Tree:
        r = self.r
        key = "jobs.<id>.strategy"
        if isinstance(node, ScalarNode) and isinstance(node.value, str) and "${{" in node.value:
            return r.expression_only(node, key)
        mapping = r.mapping(node)
        if mapping is None:
            return None
        if not mapping.items:
            r.error(mapping, "matrix must define at least one axis or 'include'")
            return None
        out: dict[str, Tree] = {}
        axes = [k.text for k, _ in mapping.items if k.text not in ("include", "exclude")]
        for name_node, value in mapping.items:
            name = name_node.text
            if (
                isinstance(value, ScalarNode)
                and isinstance(value.value, str)
                and "${{" in value.value
            ):
                out[name] = r.expression_only(value, key)
                continue
            if name in ("include", "exclude"):
                if not isinstance(value, SequenceNode) or not all(
                    isinstance(item, MappingNode) for item in value.items
                ):
                    r.error(value, f"matrix '{name}' must be a list of mappings")
                    continue
                if name == "exclude":
                    for item in value.items:
                        assert isinstance(item, MappingNode)
                        for k, _ in item.items:
                            if k.text not in axes:
                                r.error(k, f"matrix exclude names '{k.text}', which is not an axis")
                out[name] = r.tree(value, key)
                continue
            if not isinstance(value, SequenceNode):
                r.error(value, f"matrix axis '{name}' must be a list, got {node_kind(value)}")
                continue
            if not value.items:
                r.error(value, f"matrix axis '{name}' is empty")
                continue
            out[name] = r.tree(value, key)
        return out

    def _container(self, node: Node, service: str | None) -> Container | None:
        r = self.r
        if service is None:
            base, creds_key, env_key = (
                "jobs.<id>.container",
                "jobs.<id>.container.credentials",
                "jobs.<id>.container.env.<env_id>",
            )
            image_key = "jobs.<id>.container.image"
            where = " in 'container'"
        else:
            base = image_key = "jobs.<id>.services"
            creds_key = "jobs.<id>.services.<service_id>.credentials"
            env_key = "jobs.<id>.services.<service_id>.env.<env_id>"
            where = f" in service '{service}'"
        if isinstance(node, ScalarNode) and service is None:
            image = r.value(node, image_key)
            return Container(image=image, location=r.loc(node)) if image is not None else None
        mapping = r.mapping(node)
        if mapping is None:
            return None
        e = r.entries(mapping, CONTAINER_KEYS, where)
        if not r.require(e, "image", mapping):
            return None
        image = r.value(e["image"][1], image_key)
        credentials: dict[str, Value] = {}
        if "credentials" in e:
            cmap = r.mapping(e["credentials"][1])
            if cmap is not None:
                c = r.entries(cmap, ("username", "password"), f" in 'credentials' of{where[3:]}")
                for name, (_, value_node) in c.items():
                    value = r.value(value_node, creds_key)
                    if value is not None:
                        credentials[name] = value
        ports: list[Value] = []
        volumes: list[Value] = []
        for field_name, target in (("ports", ports), ("volumes", volumes)):
            if field_name in e:
                seq = r.sequence(e[field_name][1])
                for item in seq.items if seq else []:
                    value = r.value(item, base)
                    if value is not None:
                        target.append(value)
        options = r.value(e["options"][1], base) if "options" in e else None
        if image is None:
            return None
        return Container(
            image=image,
            env=r.env(e["env"][1], env_key) if "env" in e else {},
            ports=ports,
            volumes=volumes,
            options=options,
            credentials=credentials,
            location=r.loc(mapping),
        )

    def _services(self, node: Node) -> dict[str, Container]:
        r = self.r
        out: dict[str, Container] = {}
        mapping = r.mapping(node)
        for key, value in mapping.items if mapping else []:
            if not IDENTIFIER_RE.match(key.text):
                r.error(key, f"invalid service id '{key.text}'")
                continue
            container = self._container(value, key.text)
            if container is not None:
                out[key.text] = container
        return out

    def _environment(self, node: Node) -> Environment | None:
        r = self.r
        if isinstance(node, ScalarNode):
            name = r.value(node, "jobs.<id>.environment")
            return Environment(name=name) if name is not None else None
        mapping = r.mapping(node)
        if mapping is None:
            return None
        e = r.entries(mapping, ("name", "url"), " in 'environment'")
        if not r.require(e, "name", mapping):
            return None
        name = r.value(e["name"][1], "jobs.<id>.environment")
        url = r.value(e["url"][1], "jobs.<id>.environment.url") if "url" in e else None
        return Environment(name=name, url=url) if name is not None else None

    def _with(self, node: Node) -> dict[str, Value]:
        r = self.r
        out: dict[str, Value] = {}
        mapping = r.mapping(node)
        for key, value_node in mapping.items if mapping else []:
            if not isinstance(value_node, ScalarNode):
                r.error(
                    value_node,
                    f"input '{key.text}' must be a string, number or boolean,"
                    f" got {node_kind(value_node)}",
                )
                continue
            value = r.scalar_value(value_node, "jobs.<id>.with.<with_id>")
            if value is not None:
                out[key.text] = value
        return out

    def _secrets(self, node: Node) -> dict[str, Value] | str | None:
        r = self.r
        if isinstance(node, ScalarNode):
            if node.value == "inherit":
                return "inherit"
            r.error(node, "'secrets' must be 'inherit' or a mapping")
            return None
        mapping = r.mapping(node)
        out: dict[str, Value] = {}
        for key, value_node in mapping.items if mapping else []:
            value = r.value(value_node, "jobs.<id>.secrets.<secrets_id>")
            if value is not None:
                out[key.text] = value
        return out
