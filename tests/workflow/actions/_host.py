"""A small StepHost for driving built-in actions with real files, git and processes."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from shipyard.workflow._model import Job, Triggers, Workflow
from shipyard.workflow._runtime import (
    Annotation,
    CheckoutSource,
    Conclusion,
    JobRequest,
    StepHost,
)
from shipyard.workflow.actions import BUILTIN_ACTIONS, RunServices


class Host:
    """Records everything an action asks of its step; runs processes with subprocess."""

    def __init__(
        self,
        root: Path,
        services: RunServices,
        source: CheckoutSource | None = None,
        run_id: str = "1",
        github: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.workspace = root / "workspace"
        self.temp_dir = root / "temp"
        self.tool_cache = root / "tool-cache"
        for d in (self.workspace, self.temp_dir, self.tool_cache):
            d.mkdir(parents=True, exist_ok=True)
        self.env: dict[str, str] = dict(env or {"HOME": str(root / "home"), "PATH": "/usr/bin:/bin"})
        workflow = Workflow(path=".github/workflows/ci.yml", name=None, on=Triggers(), jobs={})
        job = Job(id="test", name=None, needs=(), runs_on=None, condition=None, steps=())
        contexts = {"github": dict(github or {"repository": "acme/app", "run_id": run_id})}
        self.request = JobRequest(
            workflow=workflow, job=job, key="test", name="test", contexts=contexts,
            source=source, run_id=run_id,
        )  # fmt: skip
        self.services = services
        self.lines: list[str] = []
        self.annotations: list[Annotation] = []
        self.outputs: dict[str, str] = {}
        self.exported: dict[str, str] = {}
        self.paths: list[str] = []
        self.masks: list[str] = []
        self.posts: list[tuple[str, Callable[[StepHost], None]]] = []
        self.status = Conclusion.SUCCESS

    def log(self, line: str) -> None:
        self.lines.append(line)

    def annotate(self, annotation: Annotation) -> None:
        self.annotations.append(annotation)

    def set_output(self, name: str, value: str) -> None:
        self.outputs[name] = value

    def export_env(self, name: str, value: str) -> None:
        self.exported[name] = value
        self.env[name] = value

    def add_path(self, directory: str) -> None:
        self.paths.insert(0, directory)
        self.env["PATH"] = directory + ":" + self.env.get("PATH", "")

    def add_mask(self, value: str) -> None:
        self.masks.append(value)

    def add_post_step(self, name: str, fn: Callable[[StepHost], None]) -> None:
        self.posts.append((name, fn))

    def job_status(self) -> Conclusion:
        return self.status

    def run_process(
        self, argv: list[str], cwd: Path | None = None, env: Mapping[str, str] | None = None
    ) -> int:
        proc = subprocess.run(
            argv, cwd=cwd or self.workspace, env=dict(env or self.env),
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        self.lines.extend((proc.stdout + proc.stderr).splitlines())
        return proc.returncode

    def run_posts(self) -> None:
        """Run post steps as the job runner does: at the end, in reverse order."""
        posts, self.posts = self.posts, []
        for _, fn in reversed(posts):
            fn(self)

    def uses(self, action: str, **with_: str) -> None:
        """Run a built-in action with ``with_`` inputs (underscores become dashes)."""
        impl = BUILTIN_ACTIONS[action]
        given = {k.replace("_", "-"): v for k, v in with_.items()}
        unknown = set(given) - set(impl.inputs)
        assert not unknown, f"{action} does not declare {unknown}"
        inputs = {name: spec.default or "" for name, spec in impl.inputs.items()}
        inputs.update(given)
        self.outputs = {}
        impl.run(self, inputs)

    def warnings(self) -> list[str]:
        return [a.message for a in self.annotations if a.level == "warning"]
