"""A stack of docker resources through the engine: build, run, serve, rebuild on an
edit, drift, destroy."""

from __future__ import annotations

import contextlib
import os
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest

from shipyard.infra import Engine, LocalBackend
from shipyard.infra.provider import Context
from shipyard.infra.providers.docker import DockerContainer, DockerImage, DockerNetwork
from tests.helpers.docker_images import ensure_busybox_image

pytestmark = pytest.mark.docker

STACK = """\
resources:
  site:
    type: docker_image
    properties: {{ name: {name}, context: site }}
  net:
    type: docker_network
    properties: {{ name: {name} }}
  web:
    type: docker_container
    properties:
      name: {name}-web
      image: ${{{{ resources.site.image_id }}}}
      networks: ['${{{{ resources.net.id }}}}']
      ports: [{{ internal: 80, ip: 127.0.0.1 }}]
      stop_timeout: 0
      health_check:
        test: [wget, -q, -O, /dev/null, 'http://127.0.0.1/']
        interval: 100ms
outputs:
  port:
    value: ${{{{ resources.web.published_ports['80/tcp'] }}}}
"""

DOCKERFILE = """\
FROM {base}
COPY index.html /www/index.html
CMD ["httpd", "-f", "-p", "80", "-h", "/www"]
"""


def actions(plan: Any) -> dict[str, str]:
    return {change.address: str(change.action) for change in plan.changes}


def fetch(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:
        return str(response.read().decode())


def test_build_serve_rebuild_on_edit_drift_and_destroy(tmp_path: Path) -> None:
    name = f"shipyard-t-stack-{uuid.uuid4().hex[:10]}"
    stack = tmp_path / "stack"
    (stack / "site").mkdir(parents=True)
    (stack / "site" / "Dockerfile").write_text(DOCKERFILE.format(base=ensure_busybox_image()))
    (stack / "site" / "index.html").write_text("first")
    (stack / "main.yaml").write_text(STACK.format(name=name))
    eng = Engine(stack, backend=LocalBackend(tmp_path / "state", key=os.urandom(32)))
    api = docker.APIClient(version="auto")
    try:
        result = eng.apply()
        assert result.ok and result.added == 3
        assert fetch(result.outputs["port"].value) == "first"
        assert set(actions(eng.plan()).values()) == {"no-op"}

        (stack / "site" / "index.html").write_text("second")
        plan = eng.plan()
        assert actions(plan) == {"site": "replace", "net": "no-op", "web": "replace"}
        result = eng.apply()
        assert result.ok
        assert fetch(result.outputs["port"].value) == "second"

        api.stop(f"{name}-web", timeout=0)
        drift = {item.address: item for item in eng.drift().items}
        assert list(drift) == ["web"]
        assert [diff.text for diff in drift["web"].diffs] == ["must_run"]
        assert actions(eng.plan())["web"] == "update"
        result = eng.apply()
        assert result.ok and result.changed == 1

        api.remove_container(f"{name}-web", force=True)
        assert actions(eng.plan())["web"] == "create"

        assert eng.destroy().ok
        for inspect in (api.inspect_image, api.inspect_network):
            with pytest.raises(docker.errors.NotFound):
                inspect(name)
    finally:
        for remove in (
            lambda: api.remove_container(f"{name}-web", force=True),
            lambda: api.remove_network(name),
            lambda: api.remove_image(name, force=True),
        ):
            with contextlib.suppress(docker.errors.NotFound):
                remove()
        api.close()


def test_find_adopts_what_an_interrupted_create_made(tmp_path: Path) -> None:
    """After a create that died before its id was recorded, find locates the thing."""
    ctx = Context(config={}, stack_dir=tmp_path, data_dir=tmp_path, log=lambda _: None)
    name = f"shipyard-t-find-{uuid.uuid4().hex[:10]}"
    (tmp_path / "Dockerfile").write_text(f"FROM {ensure_busybox_image()}\nLABEL x=1\n")
    images, networks, containers = DockerImage(), DockerNetwork(), DockerContainer()
    image = images.prepare(
        ctx,
        {
            "name": name,
            "tag": "latest",
            "context": ".",
            "dockerfile": "Dockerfile",
            "labels": {},
            "build_args": {},
        },
    )
    network = {"name": name, "driver": "bridge", "internal": False, "labels": {}}
    container = {
        "name": name,
        "image": name + ":latest",
        "command": ["sleep", "1000"],
        "networks": [],
        "stop_timeout": 0,
        "must_run": True,
    }
    assert images.find(ctx, image) is None
    assert networks.find(ctx, network) is None
    assert containers.find(ctx, container) is None
    api = docker.APIClient(version="auto")
    try:
        built = images.create(ctx, image)
        net = networks.create(ctx, network)
        made = containers.create(ctx, container)
        assert images.find(ctx, image) == built
        assert networks.find(ctx, network) == net
        found = containers.find(ctx, container)
        assert found is not None and found.id == made.id
        assert images.find(ctx, {**image, "context_digest": "sha256:other"}) is None
        assert containers.find(ctx, {**container, "image": "other"}) is None
    finally:
        for remove in (
            lambda: api.remove_container(name, force=True),
            lambda: api.remove_network(name),
            lambda: api.remove_image(name, force=True),
        ):
            with contextlib.suppress(docker.errors.NotFound):
                remove()
        api.close()
