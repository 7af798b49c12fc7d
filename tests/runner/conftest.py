"""Fixtures of the runner tests: the job-endpoint double on real HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from shipyard.runner import RunnerApi
from tests.helpers.servers import serve_app
from tests.runner.jobserver import JobServer


@pytest.fixture
def jobserver() -> Iterator[tuple[JobServer, RunnerApi]]:
    """The double served on loopback, with a RunnerApi pointed at it."""
    server = JobServer()
    with serve_app(server.app) as url, httpx.Client() as http:
        yield server, RunnerApi(http, url)
