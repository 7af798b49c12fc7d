"""The docker executor: job containers, service containers, health checks, clean-up."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from shipyard.errors import ExecutorError
from shipyard.workflow._runtime import Conclusion
from tests.helpers.docker_images import docker_executor, ensure_busybox_image, ensure_httpd_image
from tests.helpers.jobrun import run_job

pytestmark = pytest.mark.docker

LABEL = "io.shipyard.job"


@pytest.fixture(scope="module")
def executor():  # type: ignore[no-untyped-def]
    executor = docker_executor()
    yield executor
    executor.close()


@pytest.fixture(scope="module")
def busybox(executor) -> str:  # type: ignore[no-untyped-def]
    return ensure_busybox_image()


@pytest.fixture(scope="module")
def httpd(executor) -> str:  # type: ignore[no-untyped-def]
    return ensure_httpd_image()


def _leftovers(executor, tmp_path: Path) -> tuple[list[str], list[str]]:  # type: ignore[no-untyped-def]
    """Containers and networks still there from jobs run under ``tmp_path``."""
    api = executor.api

    def mine(labels: dict[str, str] | None) -> bool:
        return (labels or {}).get("io.shipyard.job-dir", "").startswith(str(tmp_path))

    containers = api.containers(all=True, filters={"label": LABEL})
    networks = api.networks(filters={"label": LABEL})
    return (
        [c["Id"] for c in containers if mine(c.get("Labels"))],
        [n["Id"] for n in networks if mine(n.get("Labels"))],
    )


def test_steps_run_inside_the_job_container(tmp_path: Path, executor, busybox: str) -> None:  # type: ignore[no-untyped-def]
    result, rep = run_job(
        f"""
        on: push
        jobs:
          build:
            runs-on: ubuntu-latest
            container:
              image: {busybox}
              env:
                FROM_CONTAINER: yes
            steps:
              - id: where
                run: |
                  echo "$0" | grep -q '\\.sh$' && echo script-is-sh
                  echo "ws=$GITHUB_WORKSPACE pwd=$PWD home=$HOME temp=$RUNNER_TEMP"
                  echo "container=$FROM_CONTAINER"
                  test -f "$GITHUB_EVENT_PATH" && echo event-ok
                  echo built > artifact.txt
                  echo "answer=42" >> "$GITHUB_OUTPUT"
                  echo "LATER=exported" >> "$GITHUB_ENV"
                  echo "## from the container" >> "$GITHUB_STEP_SUMMARY"
              - run: echo "${{{{ steps.where.outputs.answer }}}} $LATER ${{{{ job.container.id != '' }}}}"
        """,
        tmp_path, executor=executor,
    )
    assert result.conclusion is Conclusion.SUCCESS, [s.error for s in result.steps]
    assert rep.step_lines(0) == [
        "script-is-sh",
        "ws=/__w/widgets/widgets pwd=/__w/widgets/widgets home=/github/home temp=/__w/_temp",
        "container=yes",
        "event-ok",
    ]
    assert rep.step_lines(1) == ["42 exported true"]
    assert result.summary == "## from the container\n"
    workspace = next((tmp_path / "work").glob("*/workspace"))
    assert (workspace / "artifact.txt").read_text() == "built\n"
    assert _leftovers(executor, tmp_path) == ([], [])


def test_services_are_reachable_by_name_after_their_health_check(
    tmp_path: Path, executor, busybox: str, httpd: str,  # type: ignore[no-untyped-def]
) -> None:
    started = time.monotonic()
    result, rep = run_job(
        f"""
        on: push
        jobs:
          build:
            runs-on: ubuntu-latest
            container: {busybox}
            services:
              web:
                image: {httpd}
                env:
                  START_DELAY: "1.5"
                options: >-
                  --health-cmd "wget -q -O /dev/null http://localhost/ || exit 1"
                  --health-interval 300ms --health-retries 30
            steps:
              - run: wget -q -O - http://web/index.html
              - run: echo "${{{{ job.services.web.id != '' }}}} ${{{{ job.services.web.network == job.container.network }}}}"
        """,
        tmp_path, executor=executor,
    )
    assert result.conclusion is Conclusion.SUCCESS, [s.error for s in result.steps]
    assert rep.step_lines(0) == ["hello from the web service"]
    assert rep.step_lines(1) == ["true true"]
    assert time.monotonic() - started > 1.5
    assert _leftovers(executor, tmp_path) == ([], [])


def test_an_unhealthy_service_fails_the_job_before_any_step(
    tmp_path: Path, executor, httpd: str,  # type: ignore[no-untyped-def]
) -> None:
    result, _ = run_job(
        f"""
        on: push
        jobs:
          build:
            runs-on: ubuntu-latest
            services:
              broken:
                image: {httpd}
                options: --health-cmd "echo nope; exit 1" --health-interval 200ms --health-retries 2
            steps:
              - run: echo never
        """,
        tmp_path, executor=executor,
    )
    assert result.conclusion is Conclusion.FAILURE
    assert (result.error or "").startswith("service 'broken' is unhealthy: health check said: nope")
    assert result.steps == []
    assert _leftovers(executor, tmp_path) == ([], [])


def test_host_steps_reach_services_on_mapped_ports(
    tmp_path: Path, executor, httpd: str,  # type: ignore[no-untyped-def]
) -> None:
    result, rep = run_job(
        f"""
        on: push
        jobs:
          build:
            runs-on: ubuntu-latest
            services:
              web:
                image: {httpd}
                ports:
                  - 80
            steps:
              - shell: python
                run: |
                  import time, urllib.request
                  url = "http://127.0.0.1:${{{{ job.services.web.ports['80'] }}}}/"
                  for _ in range(50):
                      try:
                          print(urllib.request.urlopen(url, timeout=2).read().decode().strip())
                          break
                      except OSError:
                          time.sleep(0.1)
        """,
        tmp_path, executor=executor,
    )
    assert result.conclusion is Conclusion.SUCCESS, [s.error for s in result.steps]
    assert rep.step_lines(0) == ["hello from the web service"]


def test_step_timeout_kills_processes_in_the_container(
    tmp_path: Path, executor, busybox: str,  # type: ignore[no-untyped-def]
) -> None:
    started = time.monotonic()
    result, rep = run_job(
        f"""
        on: push
        jobs:
          build:
            runs-on: ubuntu-latest
            container: {busybox}
            steps:
              - timeout-minutes: 0.01
                run: |
                  sleep 301 &
                  sleep 302
              - if: always()
                run: ps -o args | grep -c 'sleep 30[12]' || true
        """,
        tmp_path, executor=executor,
    )
    assert result.steps[0].error == "The step timed out after 0.01 minutes."
    assert time.monotonic() - started < 15
    assert rep.step_lines(1) == ["0"]


def test_unknown_images_and_options_fail_the_job_clearly(tmp_path: Path, executor, busybox: str) -> None:  # type: ignore[no-untyped-def]
    result, _ = run_job(
        """
        on: push
        jobs:
          build:
            runs-on: ubuntu-latest
            container: 127.0.0.1:9/shipyard-test/does-not-exist:1
            steps:
              - run: "true"
        """,
        tmp_path, executor=executor,
    )
    assert (result.error or "").startswith(
        "image '127.0.0.1:9/shipyard-test/does-not-exist:1' is not available locally and could not be pulled"
    )
    result, _ = run_job(
        f"""
        on: push
        jobs:
          build:
            runs-on: ubuntu-latest
            container:
              image: {busybox}
              options: --gpus all
            steps:
              - run: "true"
        """,
        tmp_path, executor=executor,
    )
    assert (result.error or "").startswith("unsupported container option '--gpus'")
    assert _leftovers(executor, tmp_path) == ([], [])


def test_unreachable_engine_is_explained() -> None:
    from shipyard.workflow.executors._docker import DockerExecutor

    with pytest.raises(ExecutorError) as info:
        DockerExecutor(base_url="unix:///nonexistent/docker.sock")
    assert str(info.value) == (
        "no Docker engine is reachable at unix:///nonexistent/docker.sock: start dockerd or "
        "choose --executor local"
    )


def test_no_network_puts_the_job_on_an_internal_network(tmp_path: Path, busybox: str) -> None:
    from shipyard.workflow.executors import ContainerSpec, JobPaths, JobSpec

    offline = docker_executor(network=False)
    paths = JobPaths.under(tmp_path / "job", tmp_path / "tools")
    paths.create()
    try:
        with pytest.raises(ExecutorError, match="--no-network needs a job container"):
            offline.start_job(JobSpec(key="k", paths=paths))
        session = offline.start_job(
            JobSpec(key="k", paths=paths, container=ContainerSpec(image=busybox))
        )
        try:
            network = session.job_context["container"]["network"]
            assert offline.api.inspect_network(network)["Internal"] is True
        finally:
            session.close()
        assert _leftovers(offline, tmp_path) == ([], [])
    finally:
        offline.close()
