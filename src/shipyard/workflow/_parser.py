"""Reading and checking workflow files and composite actions.

Every problem of a file is reported at once, each at its ``file:line:col``, sorted by
position; nothing a user writes makes these functions raise anything but
:class:`~shipyard.errors.ValidationError`.
"""

from __future__ import annotations

from pathlib import Path

from shipyard._graphs import shortest_cycle, strongly_connected
from shipyard.errors import LocatedError, Location, ValidationError
from shipyard.workflow._model import (
    CompositeAction,
    Concurrency,
    Job,
    RunDefaults,
    Triggers,
    Value,
    Workflow,
)
from shipyard.workflow._parse_action import parse_action
from shipyard.workflow._parse_common import Reader
from shipyard.workflow._parse_jobs import (
    JobParser,
    check_permissions,
    parse_concurrency,
    parse_run_defaults,
)
from shipyard.workflow._parse_triggers import TriggerParser
from shipyard.workflow._schema import WORKFLOW_KEYS
from shipyard.workflow._yaml import MappingNode, Node, ScalarNode, load_yaml

__all__ = ["check_workflow", "discover_workflows", "load_composite_action", "load_workflow"]


def _read(path: str | Path, text: str | bytes | None, file: str) -> str | bytes | LocatedError:
    if text is not None:
        return text
    try:
        return Path(path).read_bytes()
    except OSError as err:
        return LocatedError(f"cannot read file: {err.strerror or err}", Location(file, 1, 1))


def _sorted(errors: list[LocatedError]) -> list[LocatedError]:
    return sorted(errors, key=lambda e: (e.location.line, e.location.col) if e.location else (0, 0))


def check_workflow(
    path: str | Path, text: str | bytes | None = None, *, display_path: str | None = None
) -> tuple[Workflow | None, list[LocatedError]]:
    """Parse a workflow; returns it (``None`` if the file is unusable) and all its errors.

    ``text`` overrides reading ``path``; messages name ``display_path`` (default: ``path``
    as given).
    """
    file = display_path if display_path is not None else str(path)
    data = _read(path, text, file)
    if isinstance(data, LocatedError):
        return None, [data]
    doc = load_yaml(data, file)
    if doc.fatal:
        return None, doc.errors
    reader = Reader(file, doc.source)
    reader.errors.extend(doc.errors)
    root = doc.root
    if root is None or (isinstance(root, ScalarNode) and root.value is None):
        reader.error_at(1, 1, "the workflow file is empty")
        return None, _sorted(reader.errors)
    mapping = reader.mapping(root)
    if mapping is None:
        return None, _sorted(reader.errors)
    e = reader.entries(mapping, WORKFLOW_KEYS)
    triggers = Triggers()
    if reader.require(e, "on", mapping):
        triggers = TriggerParser(reader).parse(e["on"][1])
    name = reader.text(e["name"][1]) if "name" in e else None
    if "permissions" in e:
        check_permissions(reader, e["permissions"][1])
    env = reader.env(e["env"][1], "env") if "env" in e else {}
    defaults = (
        parse_run_defaults(reader, e["defaults"][1], "defaults.run", "")
        if "defaults" in e
        else RunDefaults()
    )
    concurrency: Concurrency | None = None
    if "concurrency" in e:
        concurrency = parse_concurrency(reader, e["concurrency"][1], "concurrency")
    run_name: Value | None = None
    if "run-name" in e:
        run_name = reader.value(e["run-name"][1], "run-name")
    jobs: dict[str, Job] = {}
    if reader.require(e, "jobs", mapping):
        jobs = _jobs(reader, e["jobs"][1])
    workflow = Workflow(
        path=file,
        name=name,
        on=triggers,
        jobs=jobs,
        run_name=run_name,
        env=env,
        defaults=defaults,
        concurrency=concurrency,
        source=doc.source.text,
    )
    return workflow, _sorted(reader.errors)


def _jobs(reader: Reader, node: Node) -> dict[str, Job]:
    mapping = reader.mapping(node)
    if mapping is None:
        return {}
    if not mapping.items:
        reader.error(mapping, "'jobs' must contain at least one job")
        return {}
    parser = JobParser(reader)
    jobs: dict[str, Job] = {}
    keys: dict[str, ScalarNode] = {}
    needs: dict[str, list[tuple[ScalarNode, str]]] = {}
    for key, value in mapping.items:
        job = parser.parse(key, value)
        keys[key.text] = key
        if isinstance(value, MappingNode):
            needs[key.text] = parser.needs_nodes(value)
        if job is not None:
            jobs[job.id] = job
    _check_graph(reader, keys, needs)
    return jobs


def _check_graph(
    reader: Reader, keys: dict[str, ScalarNode], needs: dict[str, list[tuple[ScalarNode, str]]]
) -> None:
    """Unknown ``needs`` and dependency cycles (each cycle named once, in file order)."""
    graph: dict[str, list[str]] = {}
    for job_id, items in needs.items():
        edges: list[str] = []
        for node, name in items:
            if name not in keys:
                reader.error(node, f"job '{job_id}' needs '{name}', which does not exist")
            elif name not in edges:
                edges.append(name)
        graph[job_id] = edges
    order = {job_id: i for i, job_id in enumerate(keys)}
    for component in strongly_connected(list(keys), graph):
        if len(component) == 1:
            only = next(iter(component))
            if only not in graph.get(only, ()):
                continue
        start = min(component, key=order.__getitem__)
        cycle = shortest_cycle(start, graph, set(component))
        reader.error(keys[start], "dependency cycle: " + " -> ".join(cycle))


def load_workflow(
    path: str | Path, text: str | bytes | None = None, *, display_path: str | None = None
) -> Workflow:
    """Parse and check a workflow; raises ValidationError listing every error of the file."""
    workflow, errors = check_workflow(path, text, display_path=display_path)
    if errors or workflow is None:
        raise ValidationError(errors)
    return workflow


def load_composite_action(
    path: str | Path, text: str | bytes | None = None, *, display_path: str | None = None
) -> CompositeAction:
    """Parse an ``action.yml`` with ``runs.using: composite``; raises ValidationError."""
    action, errors = check_composite_action(path, text, display_path=display_path)
    if errors or action is None:
        raise ValidationError(errors)
    return action


def check_composite_action(
    path: str | Path, text: str | bytes | None = None, *, display_path: str | None = None
) -> tuple[CompositeAction | None, list[LocatedError]]:
    """Like :func:`check_workflow`, for a composite action."""
    file = display_path if display_path is not None else str(path)
    data = _read(path, text, file)
    if isinstance(data, LocatedError):
        return None, [data]
    doc = load_yaml(data, file)
    if doc.fatal:
        return None, doc.errors
    r = Reader(file, doc.source)
    r.errors.extend(doc.errors)
    if doc.root is None or (isinstance(doc.root, ScalarNode) and doc.root.value is None):
        r.error_at(1, 1, "the action file is empty")
        return None, _sorted(r.errors)
    mapping = r.mapping(doc.root)
    if mapping is None:
        return None, _sorted(r.errors)
    action = parse_action(r, mapping, file)
    return action, _sorted(r.errors)


def discover_workflows(root: Path) -> list[Path]:
    """The workflow files of a repository: ``.github/workflows`` and ``.shipyard/workflows``."""
    found: list[Path] = []
    for folder in (root / ".github" / "workflows", root / ".shipyard" / "workflows"):
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            if path.suffix in (".yml", ".yaml") and path.is_file():
                found.append(path)
    return sorted(found)
