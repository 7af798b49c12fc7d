"""docker_container against the real Docker engine: ports over HTTP, env, volumes,
networks, health checks, drift and import."""

from __future__ import annotations

import urllib.request
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest

from shipyard.errors import ProviderError
from shipyard.infra.provider import Context
from shipyard.infra.providers.docker import DockerContainer, DockerNetwork
from tests.helpers.docker_images import ensure_busybox_image, ensure_httpd_image
from tests.infra.providers._helpers import defaults, unique

pytestmark = pytest.mark.docker

CONTAINER = DockerContainer()
NETWORK = DockerNetwork()
# Checks often so that tests wait for healthy in a fraction of a second.
FAST_HEALTH = {"interval": "100ms", "timeout": 2, "retries": 20}


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    return Context(config={}, stack_dir=tmp_path, data_dir=tmp_path / "data", log=lambda _: None)


def container(made: dict[str, list[str]], **values: Any) -> dict[str, Any]:
    """Properties of a container (named uniquely, stopped at once on delete)."""
    values.setdefault("name", unique("c"))
    values.setdefault("stop_timeout", 0)
    made["containers"].append(values["name"])
    return defaults(CONTAINER, **values)


def http_get(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:
        return str(response.read().decode())


class TestContainer:
    def test_httpd_with_published_port_and_health_check(
        self, ctx: Context, made: dict[str, list[str]]
    ) -> None:
        """Create waits for healthy; the published port answers over HTTP; no drift."""
        props = container(
            made,
            image=ensure_httpd_image(),
            env={"START_DELAY": "0.3"},
            ports=[{"internal": 80, "ip": "127.0.0.1"}],
            health_check={
                "test": ["wget", "-q", "-O", "/dev/null", "http://127.0.0.1/"],
                **FAST_HEALTH,
            },
            labels={"app": "web"},
        )
        created = CONTAINER.create(ctx, props)
        attributes = created.attributes
        assert attributes["status"] == "running"
        assert attributes["ip_address"]
        port = attributes["published_ports"]["80/tcp"]
        assert http_get(port) == "hello from the web service\n"
        observed = CONTAINER.read(ctx, created.id, props, attributes)
        assert observed is not None
        assert observed.properties == props
        assert observed.notes == ()

    def test_env_and_volumes(self, ctx: Context, made: dict[str, list[str]], api: Any) -> None:
        """Env reaches the process; host paths (relative to the stack) and volumes mount."""
        (ctx.stack_dir / "out").mkdir()
        (ctx.stack_dir / "ro").mkdir()
        (ctx.stack_dir / "ro" / "config").write_text("from the host")
        volume = unique("vol")
        made["volumes"].append(volume)
        script = (
            'echo "$GREETING" > /out/greeting; cat /ro/config > /out/config; '
            "touch /ro/x 2>/dev/null && echo writable > /out/ro || echo read-only > /out/ro; "
            "echo kept > /data/kept; touch /out/done; exec sleep 1000"
        )
        props = container(
            made,
            image=ensure_busybox_image(),
            command=["sh", "-c", script],
            env={"GREETING": "hello there"},
            volumes=[
                {"host_path": "out", "container_path": "/out"},
                {"host_path": "ro", "container_path": "/ro", "read_only": True},
                {"volume": volume, "container_path": "/data"},
            ],
            health_check={"test": "test -f /out/done", **FAST_HEALTH},
        )
        CONTAINER.create(ctx, props)
        out = ctx.stack_dir / "out"
        assert (out / "greeting").read_text() == "hello there\n"
        assert (out / "config").read_text() == "from the host"
        assert (out / "ro").read_text() == "read-only\n"
        assert api.inspect_volume(volume)["Name"] == volume

    def test_containers_reach_each_other_on_a_network(
        self, ctx: Context, made: dict[str, list[str]], api: Any
    ) -> None:
        """On a user network a container is reached by name; a network left by hand is
        drift that update repairs."""
        net_name = unique("net")
        made["networks"].append(net_name)
        net = NETWORK.create(ctx, defaults(NETWORK, name=net_name))
        web = container(made, image=ensure_httpd_image(), networks=[net.id])
        web_made = CONTAINER.create(ctx, web)
        subnet = api.inspect_network(net.id)["IPAM"]["Config"][0]["Subnet"]
        prefix = subnet.split(".")[0] + "." + subnet.split(".")[1] + "."
        assert web_made.attributes["ip_address"].startswith(prefix)
        client = container(
            made,
            image=ensure_busybox_image(),
            command=["sleep", "1000"],
            networks=[net_name],
            health_check={"test": f"wget -q -O /dev/null http://{web['name']}/", **FAST_HEALTH},
        )
        client_made = CONTAINER.create(ctx, client)
        observed = CONTAINER.read(ctx, client_made.id, client, client_made.attributes)
        assert observed is not None and observed.properties["networks"] == [net_name]

        api.disconnect_container_from_network(client_made.id, net_name)
        drifted = CONTAINER.read(ctx, client_made.id, client, client_made.attributes)
        assert drifted is not None and drifted.properties["networks"] == []
        CONTAINER.update(ctx, client_made.id, client, client, client_made.attributes)
        fixed = CONTAINER.read(ctx, client_made.id, client, client_made.attributes)
        assert fixed is not None and fixed.properties["networks"] == [net_name]

    def test_stopped_by_hand_is_drift_update_starts_it_removed_reads_gone(
        self, ctx: Context, made: dict[str, list[str]], api: Any
    ) -> None:
        props = container(made, image=ensure_busybox_image(), command=["sleep", "1000"])
        created = CONTAINER.create(ctx, props)
        api.stop(created.id, timeout=0)
        observed = CONTAINER.read(ctx, created.id, props, created.attributes)
        assert observed is not None
        assert observed.properties["must_run"] is False
        assert observed.attributes["status"] == "exited"
        assert any("exited with status 137" in note for note in observed.notes)
        attributes = CONTAINER.update(ctx, created.id, props, props, created.attributes)
        assert attributes["status"] == "running"
        running = CONTAINER.read(ctx, created.id, props, attributes)
        assert running is not None and running.properties == props

        api.remove_container(created.id, force=True)
        assert CONTAINER.read(ctx, created.id, props, attributes) is None
        CONTAINER.delete(ctx, created.id, props, attributes)  # already gone: quiet

    def test_must_run_false_tolerates_a_finished_container(
        self, ctx: Context, made: dict[str, list[str]], api: Any
    ) -> None:
        props = container(made, image=ensure_busybox_image(), command=["true"], must_run=False)
        created = CONTAINER.create(ctx, props)
        api.wait(created.id, timeout=30)
        observed = CONTAINER.read(ctx, created.id, props, created.attributes)
        assert observed is not None and observed.properties == props

    def test_health_check_none_disables_the_wait(
        self, ctx: Context, made: dict[str, list[str]]
    ) -> None:
        props = container(
            made,
            image=ensure_busybox_image(),
            command=["sleep", "1000"],
            health_check={"test": ["NONE"]},
        )
        assert CONTAINER.create(ctx, props).attributes["status"] == "running"

    def test_restart_policy_changes_in_place_and_drift(
        self, ctx: Context, made: dict[str, list[str]], api: Any
    ) -> None:
        props = container(made, image=ensure_busybox_image(), command=["sleep", "1000"])
        created = CONTAINER.create(ctx, props)
        changed = {**props, "restart": "on-failure:3"}
        CONTAINER.update(ctx, created.id, props, changed, created.attributes)
        policy = api.inspect_container(created.id)["HostConfig"]["RestartPolicy"]
        assert policy == {"Name": "on-failure", "MaximumRetryCount": 3}
        observed = CONTAINER.read(ctx, created.id, changed, created.attributes)
        assert observed is not None and observed.properties["restart"] == "on-failure:3"
        api.update_container(created.id, restart_policy={"Name": "always"})
        drifted = CONTAINER.read(ctx, created.id, changed, created.attributes)
        assert drifted is not None and drifted.properties["restart"] == "always"

    def test_unhealthy_container_fails_create_and_is_removed(
        self, ctx: Context, made: dict[str, list[str]], api: Any
    ) -> None:
        props = container(
            made,
            image=ensure_busybox_image(),
            command=["sleep", "1000"],
            health_check={
                "test": ["CMD", "sh", "-c", "echo not yet; exit 1"],
                "interval": 0.1,
                "retries": 2,
            },
        )
        with pytest.raises(ProviderError, match="unhealthy: last check exited 1: not yet"):
            CONTAINER.create(ctx, props)
        with pytest.raises(docker.errors.NotFound):
            api.inspect_container(props["name"])

    def test_exiting_container_fails_create_with_its_output(
        self, ctx: Context, made: dict[str, list[str]], api: Any
    ) -> None:
        props = container(
            made,
            image=ensure_busybox_image(),
            command=["sh", "-c", "echo cannot start >&2; exit 3"],
            health_check={"test": "true", **FAST_HEALTH},
        )
        with pytest.raises(ProviderError, match=r"(?s)exited with status 3.*cannot start"):
            CONTAINER.create(ctx, props)
        with pytest.raises(docker.errors.NotFound):
            api.inspect_container(props["name"])

    def test_name_taken_and_missing_image(self, ctx: Context, made: dict[str, list[str]]) -> None:
        props = container(made, image=ensure_busybox_image(), command=["sleep", "1000"])
        CONTAINER.create(ctx, props)
        with pytest.raises(ProviderError, match="already exists"):
            CONTAINER.create(ctx, props)
        missing = container(made, image=f"{unique('none')}:v1")
        with pytest.raises(ProviderError, match="not on the engine"):
            CONTAINER.create(ctx, missing)
        with pytest.raises(ProviderError, match="no network"):
            CONTAINER.create(
                ctx, container(made, image=ensure_busybox_image(), networks=[unique("n")])
            )

    def test_import_by_name_matches_what_created_it(
        self, ctx: Context, made: dict[str, list[str]]
    ) -> None:
        """Import reports the properties in the shape a stack writes them."""
        props = container(
            made,
            image=ensure_httpd_image(),
            env={"START_DELAY": "0"},
            ports=[{"internal": 53, "protocol": "udp"}, {"internal": 80, "ip": "127.0.0.1"}],
            health_check={"test": ["CMD", "true"], "interval": 0.1, "retries": 3},
            labels={"app": "web"},
            restart="unless-stopped",
        )
        created = CONTAINER.create(ctx, props)
        observed = CONTAINER.import_(ctx, props["name"])
        assert observed.properties == props
        assert observed.attributes["id"] == created.id
        with pytest.raises(ProviderError, match="no container"):
            CONTAINER.import_(ctx, unique("missing"))

    def test_validate(self) -> None:
        props = defaults(
            CONTAINER,
            name="bad name",
            image="x",
            command=[],
            ports=[{"internal": 0, "external": 70000, "protocol": "icmp", "extra": 1}],
            volumes=[{"host_path": "a", "volume": "b", "container_path": "rel"}],
            restart="sometimes",
            health_check={"test": [], "interval": "soon", "retries": -1},
            env={"A=B": "x"},
            stop_timeout=-1,
        )
        paths = {path for path, _ in CONTAINER.validate(props)}
        assert paths == {
            "name",
            "command",
            "ports[0].extra",
            "ports[0].internal",
            "ports[0].external",
            "ports[0].protocol",
            "volumes[0]",
            "volumes[0].container_path",
            "restart",
            "health_check.test",
            "health_check.interval",
            "health_check.retries",
            "env.A=B",
            "stop_timeout",
        }
        ok = defaults(
            CONTAINER, name="web-1", image="x", ports=[{"internal": 80}], restart="on-failure:2"
        )
        assert CONTAINER.validate(ok) == []
