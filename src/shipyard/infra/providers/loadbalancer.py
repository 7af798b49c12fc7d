"""The ``loadbalancer`` provider: one HAProxy per resource, reloaded without dropping a request.

Each resource is an HAProxy (Debian's 2.6 at /usr/sbin/haproxy, or the provider's
``haproxy`` setting) in master-worker mode, detached from the CLI that started it, in a
folder of its own under the provider's data folder (see ``_haproxy_runtime``).

Every change is checked first: ``validate`` catches what the properties alone show
(unknown backends, duplicate names, weights outside 0-256, one port bound twice), then
``haproxy -c`` runs on the new file before the running instance is touched, so a bad
configuration never takes the balancer down. A change of weights only goes through the
runtime API (``set weight``, no reload); any other change rewrites the file and reloads
seamlessly through the master CLI. The file on disk always matches what runs.

Drift: ``read`` reports the instance not running (``running: false``), the file edited
by hand (``config_digest`` differs from the digest of the generated file), and weights
changed through the runtime API (``backends.*.servers[*].weight``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Mapping
from typing import Any

from shipyard.infra.provider import (
    REQUIRED,
    Attribute,
    Context,
    Created,
    Observed,
    Property,
    Provider,
    ProviderError,
    ResourceType,
)
from shipyard.infra.providers._haproxy_config import (
    bind_address,
    digest,
    render,
    url_host,
    validate,
    weights,
    without_weights,
)
from shipyard.infra.providers._haproxy_runtime import Instance
from shipyard.infra.providers._supervisor_proc import is_running, read_json, tail_lines, write_json

__all__ = ["LoadBalancer", "LoadBalancerProvider"]

_SPEC_KEYS = ("frontends", "backends", "stats")


def _binary(ctx: Context) -> str:
    name = str(ctx.config.get("haproxy") or "haproxy")
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin"])
    found = shutil.which(name, path=search)
    if found is None:
        raise ProviderError(f"{name} is not installed (Debian: apt-get install haproxy)")
    return found


def _spec(props: Mapping[str, Any]) -> dict[str, Any]:
    """The properties HAProxy's configuration is made of (not the derived ones)."""
    return {key: props.get(key) for key in _SPEC_KEYS}


class LoadBalancer(ResourceType):
    """``loadbalancer``: an HAProxy with frontends, backends and an optional stats page."""

    name = "loadbalancer"
    description = (
        "An HAProxy load balancer (master-worker, detached): frontends bound to ports, "
        "backends of weighted servers with health checks; changes reload it without "
        "refusing a connection, weight changes go through the runtime API."
    )
    properties = {
        "frontends": Property(
            type="list(map(any))", default=REQUIRED,
            description="[{name, bind: \"host:port\" or a port (127.0.0.1), mode: http|tcp "
            "(default http), backend}]",
        ),
        "backends": Property(
            type="map(map(any))", default=REQUIRED,
            description="name -> {balance (default roundrobin), servers: [{name, address "
            "\"host:port\", weight 0-256 (default 1)}], health_check: {path, interval}}",
        ),
        "stats": Property(type="integer", default=None, description="Port of HAProxy's stats page (127.0.0.1)."),
        "config_digest": Property(
            type="string", derived=True,
            description="sha256 of the generated haproxy.cfg; differs in a refresh when it was edited by hand.",
        ),
        "running": Property(
            type="boolean", derived=True,
            description="Always true; false in a refresh when HAProxy is not running.",
        ),
    }
    attributes = {
        "pid": Attribute(type="integer", description="The HAProxy master's pid (kept across reloads)."),
        "config_path": Attribute(type="string", description="The haproxy.cfg in use.", stable=True),
        "urls": Attribute(type="map(string)", description="Frontend name -> http:// or tcp:// URL."),
        "stats_url": Attribute(type="string", description="The stats page, when `stats` is set."),
    }

    def validate(self, properties: Mapping[str, Any]) -> list[tuple[str, str]]:
        return validate(properties)

    def prepare(self, ctx: Context, properties: Mapping[str, Any]) -> dict[str, Any]:
        if validate(properties):
            return {**properties, "config_digest": None, "running": True}  # create/update will say why
        return {**properties, "config_digest": digest(render(properties)), "running": True}

    def _checked(self, props: Mapping[str, Any]) -> str:
        problems = validate(props)
        if problems:
            raise ProviderError("; ".join(f"{path}: {message}" for path, message in problems))
        return render(props)

    # ---- operations -----------------------------------------------------------------

    def create(self, ctx: Context, properties: Mapping[str, Any]) -> Created:
        text = self._checked(properties)
        lb = f"lb-{uuid.uuid4().hex[:12]}"
        instance = Instance(ctx.data_dir / lb, _binary(ctx))
        try:
            instance.check(text)
            instance.install()
            self._save(instance, properties, text, None, pending=True)
            pid, started = instance.start()
        except BaseException:
            shutil.rmtree(instance.dir, ignore_errors=True)
            raise
        self._save(instance, properties, text, (pid, started))
        ctx.log(f"haproxy {lb} started (pid {pid})")
        return Created(lb, self._attributes(instance, properties, pid))

    def find(self, ctx: Context, properties: Mapping[str, Any]) -> Created | None:
        """The instance an interrupted ``create`` of ``properties`` left, if any."""
        if not ctx.data_dir.is_dir():
            return None
        for folder in sorted(ctx.data_dir.iterdir()):
            meta = read_json(folder / "instance.json")
            if isinstance(meta, dict) and meta.get("pending") and meta.get("properties") == _spec(properties):
                instance = Instance(folder, _binary(ctx))
                pid = meta.get("pid")
                if not is_running(pid, meta.get("start_time")):
                    shutil.rmtree(folder, ignore_errors=True)  # it never came up: make it again
                    return None
                meta["pending"] = False
                write_json(instance.meta, meta)
                return Created(folder.name, self._attributes(instance, properties, pid))
        return None

    def read(
        self, ctx: Context, id: str, properties: Mapping[str, Any], attributes: Mapping[str, Any]
    ) -> Observed | None:
        instance = Instance(ctx.data_dir / id, _binary(ctx))
        meta = read_json(instance.meta)
        if not isinstance(meta, dict) or not instance.dir.is_dir():
            return None
        recorded = meta.get("properties")
        applied: dict[str, Any] = recorded if isinstance(recorded, dict) else _spec(properties)
        try:
            on_disk: str | None = instance.config.read_text()
        except OSError:
            on_disk = None
        notes: list[str] = []
        observed: dict[str, Any] = {**applied}
        observed["config_digest"] = digest(on_disk) if on_disk is not None else None
        if on_disk is None:
            notes.append(f"{instance.config} is missing")
        elif digest(on_disk) != meta.get("digest"):
            notes.append(f"{instance.config} was edited by hand (it differs from the generated one)")
        pid = meta.get("pid")
        running = is_running(pid, meta.get("start_time"))
        if running:
            try:
                live = instance.server_weights()
            except OSError as err:
                running = False
                notes.append(f"haproxy (pid {pid}) runs but its master CLI does not answer: {err}")
            else:
                observed["backends"] = self._live_backends(applied.get("backends") or {}, live, notes)
        else:
            alerts = [line for line in tail_lines(instance.log, 10) if "ALERT" in line]
            notes.append(f"haproxy (pid {pid}) is not running" + (f"; its last alert: {alerts[-1]}" if alerts else ""))
        observed["running"] = running
        return Observed(observed, self._attributes(instance, applied, pid if running else None), tuple(notes))

    @staticmethod
    def _live_backends(
        backends: Mapping[str, Any], live: Mapping[tuple[str, str], int], notes: list[str]
    ) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for name, backend in backends.items():
            servers = []
            for server in backend.get("servers", []):
                want = server.get("weight", 1)
                now = live.get((name, server["name"]))
                if now is not None and now != want:
                    notes.append(
                        f"server {name}/{server['name']} has weight {now} in the running haproxy "
                        f"(changed through the runtime API), {want} in the configuration"
                    )
                    server = {**server, "weight": now}
                servers.append(server)
            result[name] = {**backend, "servers": servers}
        return result

    def update(
        self, ctx: Context, id: str, prior: Mapping[str, Any],
        properties: Mapping[str, Any], attributes: Mapping[str, Any],
    ) -> dict[str, Any]:
        text = self._checked(properties)
        instance = Instance(ctx.data_dir / id, _binary(ctx))
        instance.check(text)  # a refused configuration stops here: nothing was touched
        meta = read_json(instance.meta)
        meta = meta if isinstance(meta, dict) else {}
        pid, started = meta.get("pid"), meta.get("start_time")
        if not is_running(pid, started):
            instance.stop(pid, started)
            instance.install()
            self._save(instance, properties, text, None)
            pid, started = instance.start()
            ctx.log(f"haproxy {id} was not running: started it (pid {pid})")
        else:
            try:
                self._change_running(ctx, id, instance, meta, properties)
            except OSError as err:
                raise ProviderError(f"haproxy {id} (pid {pid}) does not answer on its master CLI: {err}") from None
        assert isinstance(pid, int)  # running, or just started
        self._save(instance, properties, text, (pid, int(started or 0)))
        return self._attributes(instance, properties, pid)

    def _change_running(
        self, ctx: Context, id: str, instance: Instance, meta: Mapping[str, Any], properties: Mapping[str, Any]
    ) -> None:
        """Apply the checked candidate to a running instance: weights only through the
        runtime API, anything else by a reload (the file restored if the reload fails)."""
        try:
            previous: str | None = instance.config.read_text()
        except OSError:
            previous = None
        hand_edited = previous is None or digest(previous) != meta.get("digest")
        instance.install()
        if not hand_edited and meta.get("structure") == digest(without_weights(properties)):
            self._set_weights(instance, properties)
            ctx.log(f"haproxy {id}: weights set through the runtime API")
            return
        try:
            instance.reload()
        except ProviderError:
            if previous is not None:
                instance.config.write_text(previous)  # the file matches what runs
            raise
        self._set_weights(instance, properties)  # weights set at run time before the reload
        ctx.log(f"haproxy {id}: reloaded")

    @staticmethod
    def _set_weights(instance: Instance, properties: Mapping[str, Any]) -> None:
        live = instance.server_weights()
        for (backend, server), weight in weights(properties).items():
            if live.get((backend, server)) != weight:
                instance.set_weight(backend, server, weight)

    def delete(
        self, ctx: Context, id: str, properties: Mapping[str, Any], attributes: Mapping[str, Any]
    ) -> None:
        folder = ctx.data_dir / id
        if not folder.is_dir():
            return
        meta = read_json(folder / "instance.json")
        instance = Instance(folder, _binary(ctx))
        if isinstance(meta, dict):
            instance.stop(meta.get("pid"), meta.get("start_time"))
        shutil.rmtree(folder, ignore_errors=True)

    def import_(self, ctx: Context, id: str) -> Observed:
        observed = self.read(ctx, id, {}, {})
        if observed is None:
            raise ProviderError(f"no load balancer {id!r} in {ctx.data_dir}")
        return observed

    # ---- bookkeeping ----------------------------------------------------------------

    @staticmethod
    def _save(
        instance: Instance, properties: Mapping[str, Any], text: str,
        master: tuple[int, int] | None, *, pending: bool = False,
    ) -> None:
        meta: dict[str, Any] = {
            "pid": master[0] if master else None,
            "start_time": master[1] if master else None,
            "digest": digest(text),
            "structure": digest(without_weights(properties)),
            "properties": _spec(properties),
            "pending": pending,
        }
        with contextlib.suppress(FileNotFoundError):
            write_json(instance.meta, meta)

    @staticmethod
    def _attributes(instance: Instance, properties: Mapping[str, Any], pid: int | None) -> dict[str, Any]:
        urls: dict[str, str] = {}
        for frontend in properties.get("frontends") or []:
            address = bind_address(frontend["bind"])
            port = address.rpartition(":")[2]
            scheme = "tcp" if frontend.get("mode") == "tcp" else "http"
            urls[frontend["name"]] = f"{scheme}://{url_host(address)}:{port}"
        stats = properties.get("stats")
        return {
            "pid": pid,
            "config_path": str(instance.config),
            "urls": urls,
            "stats_url": f"http://127.0.0.1:{stats}/" if stats is not None else None,
        }


class LoadBalancerProvider(Provider):
    """HAProxy load balancers (``loadbalancer``)."""

    name = "loadbalancer"
    description = "HAProxy load balancers, reloaded seamlessly."
    config = {
        "haproxy": Property(type="string", default="haproxy", description="The HAProxy program (name or path)."),
    }
    resource_types = (LoadBalancer,)
