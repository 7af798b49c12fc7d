"""The gateway as its own process (`shipyard serve gateway`): bodies are never held whole."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from tests.gateway._upstream import upstream_app
from tests.helpers.databases import TEST_SECRET
from tests.helpers.servers import free_port, serve_app


def _memory_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


@pytest.fixture(scope="module")
def gateway_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """`python -m shipyard serve gateway` in front of stand-in services; (URL, pid)."""
    with ExitStack() as stack:
        urls = {n: stack.enter_context(serve_app(upstream_app(n))) for n in ("git", "store", "ci")}
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
        env.update({
            "SHIPYARD_DATA_DIR": str(tmp_path_factory.mktemp("gw")),
            "SHIPYARD_SECRET": TEST_SECRET,
            **{f"SHIPYARD_{n.upper()}_URL": u for n, u in urls.items()},
        })
        proc = subprocess.Popen(
            [sys.executable, "-m", "shipyard", "serve", "gateway", "--port", str(port), "--host", "127.0.0.1"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert proc.poll() is None and time.monotonic() < deadline, "the gateway did not start"
                time.sleep(0.05)
            yield url, proc.pid
        finally:
            proc.terminate()
            _, err = proc.communicate(timeout=30)
            # uvicorn re-raises the signal once it has shut down cleanly.
            assert proc.returncode in (0, -signal.SIGTERM), err.decode()
            assert b"Traceback" not in err


def test_a_200_mb_upload_does_not_grow_the_gateway(gateway_process: tuple[str, int]):
    """The gateway's peak memory stays far below the body's size."""
    url, pid = gateway_process
    with httpx.Client(base_url=url, timeout=120) as c:  # warm up the code paths first
        c.post("/api/v1/blobs/upload", content=b"x" * 100_000)
    before = _memory_kib(pid, "VmRSS")
    size = 200 << 20
    block = os.urandom(1 << 20)
    digest = hashlib.sha256(block * (size // len(block))).hexdigest()

    def body() -> Iterator[bytes]:
        for _ in range(size // len(block)):
            yield block

    with httpx.Client(base_url=url, timeout=120) as c:
        r = c.post("/api/v1/blobs/upload", content=body())
    assert r.status_code == 200, r.text
    assert r.json()["sha256"] == digest
    peak_growth_mib = (_memory_kib(pid, "VmHWM") - before) / 1024
    assert peak_growth_mib < 40, f"the gateway grew by {peak_growth_mib:.0f} MiB for a 200 MiB body"


def test_serve_of_an_unknown_service_is_an_error(tmp_path: Path):
    proc = subprocess.run(
        [sys.executable, "-m", "shipyard", "serve", "deploy", "--port", "0"],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "SHIPYARD_DATA_DIR": str(tmp_path), "SHIPYARD_SECRET": TEST_SECRET},
    )
    assert proc.returncode == 1
    assert "unknown service 'deploy'" in proc.stderr
    assert "Traceback" not in proc.stderr
