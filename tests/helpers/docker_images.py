"""Small Docker images built locally for tests (there is no registry to pull from).

Both images are made from the host's static busybox (Debian's ``busybox-static``), so
building them needs no network.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from shipyard.errors import ExecutorError
from tests.helpers.jobrun import unavailable

_lock = threading.Lock()

BUSYBOX_DOCKERFILE = """\
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
ENV PATH=/usr/local/bin:/usr/bin:/bin
CMD ["sh"]
"""

HTTPD_DOCKERFILE = """\
FROM {base}
RUN mkdir -p /www && echo "hello from the web service" > /www/index.html
EXPOSE 80
CMD ["sh", "-c", "sleep ${{START_DELAY:-0}}; exec httpd -f -p 80 -h /www"]
"""


def docker_executor(network: bool = True) -> Any:
    """A DockerExecutor; the test fails, saying why, when no engine is reachable."""
    from shipyard.workflow.executors._docker import DockerExecutor

    try:
        return DockerExecutor(network=network)
    except ExecutorError as err:
        unavailable(str(err))


def _api() -> Any:
    import docker

    return docker.APIClient(version="auto")


def _exists(api: Any, tag: str) -> bool:
    import docker.errors

    try:
        api.inspect_image(tag)
    except docker.errors.ImageNotFound:
        return False
    return True


def _build(api: Any, tag: str, dockerfile: str, files: dict[str, Path]) -> None:
    with tempfile.TemporaryDirectory() as ctx:
        (Path(ctx) / "Dockerfile").write_text(dockerfile)
        for name, src in files.items():
            shutil.copy2(src, Path(ctx) / name)
        for chunk in api.build(path=ctx, tag=tag, rm=True, decode=True):
            if "error" in chunk:
                raise RuntimeError(f"building {tag} failed: {chunk['error']}")


def ensure_busybox_image(tag: str = "shipyard-test/busybox:latest") -> str:
    """A busybox image (no bash, no git): built once, then reused."""
    with _lock, _api() as api:
        if not _exists(api, tag):
            busybox = shutil.which("busybox") or "/bin/busybox"
            if not Path(busybox).exists():
                unavailable("busybox-static is not installed: apt-get install busybox-static")
            _build(api, tag, BUSYBOX_DOCKERFILE, {"busybox": Path(busybox)})
    return tag


def ensure_httpd_image(tag: str = "shipyard-test/httpd:latest") -> str:
    """Busybox httpd serving /www on port 80, after ``$START_DELAY`` seconds."""
    base = ensure_busybox_image()
    with _lock, _api() as api:
        if not _exists(api, tag):
            _build(api, tag, HTTPD_DOCKERFILE.format(base=base), {})
    return tag
