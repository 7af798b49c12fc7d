"""A job's artifact and cache stores: the store service, reached with the job's token."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from shipyard.runner._assignment import Assignment
from shipyard.store import RemoteArtifactStore, RemoteCacheStore, StoreClient
from shipyard.store._client import RUNNER_RETRY_DELAYS
from shipyard.workflow.actions import RunServices

__all__ = ["store_services"]


def store_services(
    http: httpx.Client, api_url: str, assignment: Assignment, scratch_dir: Path | None = None
) -> RunServices:
    """``RunServices`` on the store at ``api_url`` (the gateway's ``/api/v1``), as the job.

    The job token allows the pipeline's artifacts (``pipeline:<id>``) and the
    repository's caches (``cache:<repo>``); zips and archives are staged under
    ``scratch_dir``.
    """
    # A store restarting under a busy pipeline costs the job a few seconds, not a failure.
    client = StoreClient(api_url, assignment.token, http=http, retry_delays=RUNNER_RETRY_DELAYS)
    # In a re-run (attempt 2 and later) the job's uploads replace what its earlier
    # attempt stored under the same names, as the artifacts of a re-run job do on GitHub.
    replaces_before = time.time() if assignment.attempt > 1 else None
    return RunServices(
        artifacts=RemoteArtifactStore(
            client, scratch_dir=scratch_dir, replaces_before=replaces_before
        ),
        caches=RemoteCacheStore(client, assignment.repo, scratch_dir=scratch_dir),
    )
