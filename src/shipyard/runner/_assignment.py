"""A claimed job (the protocol's ``Assignment``) and the ``JobRequest`` rebuilt from it.

ci sends the text of the workflow file the job is defined in rather than a parsed job,
so the runner parses it again with the same parser, as if the file were at
``workflow.path``: the job then runs exactly as ``shipyard run`` would run it.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shipyard.errors import WorkflowError
from shipyard.workflow._model import Workflow
from shipyard.workflow._parser import load_workflow
from shipyard.workflow._runtime import CheckoutSource, JobRequest

__all__ = ["Assignment", "WorkflowCache", "WorkflowFile", "build_job_request"]


class WorkflowFile(BaseModel):
    """The workflow file a job is defined in: its path in the repository and its text."""

    model_config = ConfigDict(frozen=True)

    path: str
    text: str


class Assignment(BaseModel):
    """What ``POST /runners/claim`` answers: one job to run (see docs/api.md)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    job_id: int
    pipeline_id: int
    attempt: int = 1
    key: str
    name: str
    repo: str
    sha: str
    ref: str
    clone_url: str
    token: str = Field(description="the job token: log, steps, complete, clone, store")
    workflow: WorkflowFile
    job: str
    contexts: dict[str, Any] = Field(default_factory=dict)
    labels: list[str] = Field(default_factory=list)
    continue_on_error: bool = False
    timeout_minutes: float | None = None
    run_id: str
    run_attempt: int = 1


_CONTEXTS = ("github", "needs", "matrix", "strategy", "inputs", "vars", "secrets", "env")


class WorkflowCache:
    """Parsed workflows by path and text, so jobs of one pipeline parse their file once.

    The job runner never changes a parsed :class:`Workflow`, so one can serve many jobs.
    """

    def __init__(self, size: int = 32) -> None:
        self.size = size
        self._items: OrderedDict[tuple[str, str], Workflow] = OrderedDict()
        self._lock = threading.Lock()

    def load(self, file: WorkflowFile) -> Workflow:
        key = (file.path, hashlib.sha256(file.text.encode("utf-8", "surrogatepass")).hexdigest())
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
                return found
        workflow = load_workflow(file.path, file.text, display_path=file.path)
        with self._lock:
            self._items[key] = workflow
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return workflow


def build_job_request(assignment: Assignment, cache: WorkflowCache | None = None) -> JobRequest:
    """The ``JobRequest`` the workflow library runs for ``assignment``.

    Raises :class:`~shipyard.errors.ValidationError` when the workflow text does not
    parse, :class:`~shipyard.errors.WorkflowError` when it has no such job. The job token
    is the checkout's token and, unless ci sent one, ``secrets.GITHUB_TOKEN`` (as on
    GitHub, where that secret is the job's own token).
    """
    workflow = (cache or WorkflowCache(0)).load(assignment.workflow)
    job = workflow.jobs.get(assignment.job)
    if job is None:
        raise WorkflowError(f"{assignment.workflow.path} has no job '{assignment.job}'")
    contexts: dict[str, Any] = {}
    for name, value in assignment.contexts.items():
        contexts[name] = dict(value) if isinstance(value, dict) else value
    for name in _CONTEXTS:
        if not isinstance(contexts.get(name), dict):
            contexts[name] = {}
    contexts["secrets"].setdefault("GITHUB_TOKEN", assignment.token)
    return JobRequest(
        workflow=workflow,
        job=job,
        key=assignment.key,
        name=assignment.name,
        contexts=contexts,
        source=CheckoutSource(
            url=assignment.clone_url, sha=assignment.sha, ref=assignment.ref,
            token=assignment.token,
        ),
        labels=tuple(assignment.labels),
        continue_on_error=assignment.continue_on_error,
        run_id=assignment.run_id,
        run_attempt=assignment.run_attempt,
    )
