"""`shipyard run --executor sandbox|docker` from the command line, against the real thing."""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import pytest

from tests.cli.test_run import shipyard
from tests.helpers.docker_images import docker_executor, ensure_busybox_image, ensure_httpd_image
from tests.helpers.gitrepo import make_repo
from tests.helpers.jobrun import unavailable


@pytest.mark.docker
def test_docker_executor_runs_steps_in_the_job_container_with_a_service(tmp_path: Path):
    docker_executor()  # fails, saying why, when no engine is reachable
    busybox, httpd = ensure_busybox_image(), ensure_httpd_image()
    repo = make_repo(tmp_path / "p", {
        "hello.txt": "from the repository\n",
        ".github/workflows/c.yml": f"""\
            on: push
            jobs:
              inbox:
                runs-on: ubuntu-latest
                container: {busybox}
                services:
                  web:
                    image: {httpd}
                steps:
                  - uses: actions/checkout@v4
                  - run: cat hello.txt; echo "root=$(id -u) ws=$GITHUB_WORKSPACE"
                    shell: sh
                  - run: wget -q -O - http://web:80/
                    shell: sh
            """,
    })
    proc = shipyard(repo, "run", "-x", "docker", "--json", home=tmp_path / "home")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout)["conclusion"] == "success"
    assert "from the repository" in proc.stderr
    assert "hello from the web service" in proc.stderr


@pytest.mark.sandbox
def test_sandbox_executor_keeps_the_root_read_only_and_can_cut_the_network(tmp_path: Path):
    if shutil.which("bwrap") is None:
        unavailable("bubblewrap (bwrap) is not installed")
    outside = tmp_path / "outside.txt"
    server = socket.create_server(("127.0.0.1", 0))  # a listener on the host's loopback
    port = server.getsockname()[1]
    repo = make_repo(tmp_path / "p", {
        ".github/workflows/s.yml": f"""\
            on: push
            jobs:
              boxed:
                runs-on: ubuntu-latest
                steps:
                  - run: echo inside > in-workspace.txt && cat in-workspace.txt
                  - run: echo escaped > {outside} || echo "write refused"
                  - run: |
                      python3 -c "import socket; socket.create_connection(('127.0.0.1', {port}), 2)" \\
                        && echo "host reached" || echo "host unreachable"
            """,
    })
    with server:
        boxed = shipyard(repo, "run", "-x", "sandbox", "--no-network", home=tmp_path / "home")
        open_ = shipyard(repo, "run", "-x", "sandbox", home=tmp_path / "home")
    assert boxed.returncode == 0, boxed.stdout + boxed.stderr
    assert "inside" in boxed.stdout
    assert "write refused" in boxed.stdout
    assert not outside.exists()
    assert "host unreachable" in boxed.stdout
    assert "host reached" in open_.stdout


def test_unknown_executor_is_a_clear_error(tmp_path: Path):
    repo = make_repo(tmp_path / "p", {".github/workflows/a.yml": """\
        on: push
        jobs:
          a: {runs-on: x, steps: [{run: 'true'}]}
        """})
    proc = shipyard(repo, "run", "-x", "vm", home=tmp_path / "home")
    assert proc.returncode == 1
    assert "vm" in proc.stderr and "local" in proc.stderr
    assert "Traceback" not in proc.stderr
