"""The ``docker`` executor: job containers and service containers on a Docker engine.

Like GitHub's hosted runners: a job with ``container:`` runs every step inside that
container (kept alive with ``tail -f /dev/null``; each step is a ``docker exec``), with
the workspace at ``/__w/<repo>/<repo>`` and the temp dir at ``/__w/_temp``. A job
without ``container:`` runs its steps on the host. ``services:`` start on a network of
the job's own, reachable by their service name from the job container and at
``localhost:<mapped port>`` from the host. Everything is removed when the job ends.

The engine must be local: workspaces are bind-mounted from this host and a step that
times out is killed through its host process group.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shipyard.errors import ExecutorError
from shipyard.workflow.executors._base import ContainerSpec, JobSpec
from shipyard.workflow.executors._container_options import parse_options, parse_port
from shipyard.workflow.executors._docker_exec import DockerProcess
from shipyard.workflow.executors._local import HostProcess, _CommandCache

_HEALTH_WAIT_LIMIT = 900.0
_LABEL = "io.shipyard.job"
_ROOT_LABEL = "io.shipyard.job-dir"  # tells apart jobs of the same name on one engine


def _safe(text: str) -> str:
    out = "".join(c if c.isalnum() or c in "_.-" else "-" for c in text.lower())
    return out.strip("-.")[:40] or "job"


def _socket_answers(url: str) -> bool:
    """Whether something listens on a unix-socket engine URL (other URLs: assume so)."""
    import socket
    from urllib.parse import urlparse

    parsed = urlparse(url)
    if parsed.scheme not in ("unix", "http+unix"):
        return True
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        try:
            sock.connect(parsed.path)
        except OSError:
            return False
    return True


class DockerSession:
    """Containers and network of one job; steps run in the job container or on the host."""

    def __init__(self, executor: DockerExecutor, spec: JobSpec) -> None:
        self._executor = executor
        self._api: Any = executor.api
        self.spec = spec
        self._tag = f"shipyard-{_safe(spec.key)}-{secrets.token_hex(4)}"
        self._containers: list[str] = []
        self._network: str | None = None
        self.container_id: str | None = None
        self.job_context: dict[str, Any] = {"container": {}, "services": {}}
        self.base_env: Mapping[str, str] = executor.host_env
        self._mounts: list[tuple[str, str]] = []
        self._commands: dict[str, bool] = {}
        self._labels = {_LABEL: spec.key, _ROOT_LABEL: str(spec.paths.root)}
        try:
            self._start()
        except BaseException:
            self.close()
            raise

    # -- setup -----------------------------------------------------------------

    def _start(self) -> None:
        spec = self.spec
        if spec.container is None and not spec.services:
            return
        network_name = f"{self._tag}-net"
        net = self._call(
            "create the job network",
            self._api.create_network,
            network_name,
            driver="bridge",
            internal=not self._executor.network,
            labels=self._labels,
        )
        self._network = net["Id"]
        for service_id, svc in spec.services.items():
            self.job_context["services"][service_id] = self._start_service(service_id, svc)
        for service_id in spec.services:
            self._wait_healthy(service_id, self.job_context["services"][service_id]["id"])
        if spec.container is not None:
            self._start_job_container(spec.container)

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        import docker.errors

        try:
            return fn(*args, **kwargs)
        except docker.errors.APIError as err:
            reason = err.explanation or str(err)
            raise ExecutorError(f"docker: cannot {what}: {reason}") from None
        except docker.errors.DockerException as err:
            raise ExecutorError(f"docker: cannot {what}: {err}") from None

    def _ensure_image(self, image: str, credentials: Mapping[str, str]) -> None:
        import docker.errors

        try:
            self._api.inspect_image(image)
            return
        except docker.errors.ImageNotFound:
            pass
        except docker.errors.APIError as err:
            raise ExecutorError(f"docker: cannot inspect image '{image}': {err}") from None
        repo, tag = image, "latest"
        if "@" not in image and ":" in image.rsplit("/", 1)[-1]:
            repo, tag = image.rsplit(":", 1)
        auth = None
        if credentials.get("username"):
            auth = {
                "username": credentials["username"],
                "password": credentials.get("password", ""),
            }
        try:
            self._api.pull(repo, tag=tag, auth_config=auth)
        except docker.errors.DockerException as err:
            raise ExecutorError(
                f"image '{image}' is not available locally and could not be pulled: {err}"
            ) from None

    def _create(
        self,
        name: str,
        spec: ContainerSpec,
        *,
        aliases: list[str],
        binds: list[str],
        entrypoint: list[str] | None = None,
        command: list[str] | None = None,
        extra_env: Mapping[str, str] | None = None,
        workdir: str | None = None,
        init: bool = False,
    ) -> str:
        opts = parse_options(spec.options)
        self._ensure_image(spec.image, spec.credentials)
        ports: dict[str, Any] = {}
        for p in spec.ports:
            container_port, host = parse_port(p)
            ports[container_port] = host
        host_config = self._api.create_host_config(
            binds=[*binds, *spec.volumes] or None,
            port_bindings=ports or None,
            init=opts.host_config.pop("init", init) or None,
            **opts.host_config,
        )
        networking = self._api.create_networking_config(
            {
                self._network: self._api.create_endpoint_config(aliases=[*aliases, *opts.aliases]),
            }
        )
        healthcheck = None
        if opts.no_healthcheck:
            healthcheck = {"test": ["NONE"]}
        elif opts.healthcheck:
            healthcheck = opts.healthcheck
        env = {**(extra_env or {}), **spec.env, **opts.env}
        created = self._call(
            f"create container from image '{spec.image}'",
            self._api.create_container,
            spec.image,
            command=command,
            name=name,
            environment=env or None,
            entrypoint=opts.entrypoint or entrypoint,
            working_dir=opts.workdir or workdir,
            user=opts.user,
            hostname=opts.hostname,
            ports=list(ports) or None,
            host_config=host_config,
            networking_config=networking,
            healthcheck=healthcheck,
            labels=self._labels,
            detach=True,
        )
        cid: str = created["Id"]
        self._containers.append(cid)
        self._call(f"start container from image '{spec.image}'", self._api.start, cid)
        return cid

    def _start_service(self, service_id: str, svc: ContainerSpec) -> dict[str, Any]:
        cid = self._create(f"{self._tag}-{_safe(service_id)}", svc, aliases=[service_id], binds=[])
        info = self._api.inspect_container(cid)
        ports: dict[str, str] = {}
        for key, bindings in (info["NetworkSettings"].get("Ports") or {}).items():
            if bindings:
                ports[key.split("/")[0]] = bindings[0]["HostPort"]
        return {"id": cid, "network": self._network, "ports": ports}

    def _wait_healthy(self, service_id: str, cid: str) -> None:
        deadline = time.monotonic() + _HEALTH_WAIT_LIMIT
        delay = 0.1
        while True:
            state = self._api.inspect_container(cid)["State"]
            if not state.get("Running"):
                raise ExecutorError(
                    f"service '{service_id}' stopped (exit code {state.get('ExitCode')})"
                    f"{self._logs_tail(cid)}"
                )
            health = state.get("Health")
            status = health.get("Status") if health else None
            if status in (None, "healthy"):
                return
            if status == "unhealthy" or time.monotonic() > deadline:
                last = (health.get("Log") or [{}])[-1].get("Output", "").strip()
                raise ExecutorError(
                    f"service '{service_id}' is {status}"
                    + (f": health check said: {last}" if last else "")
                    + self._logs_tail(cid)
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 1.0)

    def _logs_tail(self, cid: str) -> str:
        try:
            raw = self._api.logs(cid, tail=20)
        except Exception:
            return ""
        text = raw.decode("utf-8", "replace").strip() if isinstance(raw, bytes) else ""
        return f"\ncontainer log (last lines):\n{text}" if text else ""

    def _start_job_container(self, container: ContainerSpec) -> None:
        paths = self.spec.paths
        repo = (self.spec.repository.rsplit("/", 1)[-1] or "workspace").strip() or "workspace"
        workspace = f"/__w/{repo}/{repo}"
        self._mounts = [
            (str(paths.workspace), workspace),
            (str(paths.temp), "/__w/_temp"),
            (str(paths.home), "/github/home"),
            (str(paths.tool_cache), "/__t"),
        ]
        binds = [f"{src}:{dst}" for src, dst in self._mounts]
        cid = self._create(
            f"{self._tag}-job",
            container,
            aliases=[],
            binds=binds,
            entrypoint=["tail"],
            command=["-f", "/dev/null"],
            extra_env={"HOME": "/github/home"},
            workdir=workspace,
            init=True,
        )
        self.container_id = cid
        info = self._api.inspect_container(cid)
        env: dict[str, str] = {}
        for item in info["Config"].get("Env") or []:
            k, _, v = item.partition("=")
            env[k] = v
        env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        self.base_env = env
        self.job_context["container"] = {"id": cid, "network": self._network}

    # -- running ---------------------------------------------------------------

    def spawn(
        self, argv: list[str], cwd: str, env: Mapping[str, str]
    ) -> HostProcess | DockerProcess:
        if self.container_id is None:
            return HostProcess(argv, cwd, env)
        return DockerProcess(self._executor, self.container_id, argv, cwd, env)

    def translate_path(self, host_path: str | Path) -> str:
        text = str(host_path)
        for src, dst in self._mounts:
            if text == src or text.startswith(src + "/"):
                return dst + text[len(src) :]
        return text

    def has_command(self, name: str) -> bool:
        if self.container_id is None:
            return self._executor.host_commands.has(name)
        found = self._commands.get(name)
        if found is None:
            proc = DockerProcess(
                self._executor, self.container_id, ["sh", "-c", f'command -v "{name}"'], "/", {}
            )
            try:
                found = proc.wait(30) == 0
            finally:
                proc.close()
            self._commands[name] = found
        return found

    def close(self) -> None:
        for cid in reversed(self._containers):
            with contextlib.suppress(Exception):
                self._api.remove_container(cid, force=True, v=True)
        self._containers.clear()
        if self._network is not None:
            with contextlib.suppress(Exception):
                self._api.remove_network(self._network)
            self._network = None


class DockerExecutor:
    """Runs container jobs and service containers on the Docker engine at ``base_url``."""

    name = "docker"

    def __init__(
        self,
        *,
        network: bool = True,
        base_url: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        try:
            import docker
        except ImportError:  # pragma: no cover - a declared dependency
            raise ExecutorError(
                "the docker executor needs the Python package 'docker': pip install docker"
            ) from None
        self.network = network
        self.host_env = dict(os.environ if env is None else env)
        self.host_commands = _CommandCache(self.host_env.get("PATH"))
        url = base_url or self.host_env.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        self.base_url = url
        unreachable = ExecutorError(
            f"no Docker engine is reachable at {url}: start dockerd or choose --executor local"
        )
        if not _socket_answers(url):
            raise unreachable
        api: Any = None
        try:
            api = docker.APIClient(base_url=url, version="auto", timeout=120)
            api.ping()
        except Exception:
            if api is not None:
                api.close()
            raise unreachable from None
        self.api = api

    def close(self) -> None:
        """Close the connections to the engine."""
        self.api.close()

    def start_job(self, spec: JobSpec) -> DockerSession:
        if spec.container is None and not self.network:
            raise ExecutorError(
                f"job '{spec.key}' has no 'container:', so its steps would run on the host: "
                "--no-network needs a job container with the docker executor (or use "
                "--executor sandbox)"
            )
        return DockerSession(self, spec)
