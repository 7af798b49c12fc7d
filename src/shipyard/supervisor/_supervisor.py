"""``shipyard up``: start every service and the local runners, keep them running, stop them.

Start: take the data dir's lock, make sure the signing secret and the admin token
exist, pick free loopback ports for git, store and ci, start the four services at once
(each ``python -m shipyard.service <svc>``), wait until each answers ``/healthz``, then
start the runners (one process, ``python -m shipyard.runner._host``). Supervise: a child that dies is started again after a backoff
(1 s doubling to 30 s). Stop (SIGINT, SIGTERM, SIGHUP): runners first, then the gateway,
ci, store and git, each given 10 s after SIGTERM before SIGKILL; a second signal skips
the waiting.
"""

from __future__ import annotations

import dataclasses
import http.client
import os
import re
import signal
import socket
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from rich.console import Console
from rich.markup import escape

from shipyard import _hugepages
from shipyard.errors import ConfigError
from shipyard.service import SERVICES, Settings, TokenSigner
from shipyard.supervisor._child import Child, ChildSpec, RotatingLog, describe_exit
from shipyard.supervisor._files import (
    DataDirLock,
    child_mark,
    ensure_admin_token,
    kill_marked,
    reap_leftovers,
)

__all__ = ["ReadyInfo", "Supervisor", "UpOptions", "runner_available"]

#: Seconds a child gets to stop after SIGTERM before SIGKILL.
STOP_TIMEOUT = 10.0
#: Seconds the services get to become healthy at start.
START_TIMEOUT = 120.0
_TICK = 0.2
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def runner_available() -> bool:
    """True when this installation has the runner agent (``shipyard runner``)."""
    import importlib.util

    # Looked up as a file: finding the submodule would import the package, and with it
    # the agent's modules, into this long-lived process.
    spec = importlib.util.find_spec("shipyard.runner")
    return spec is not None and any(
        (Path(folder) / "_host.py").is_file() for folder in spec.submodule_search_locations or ()
    )


@dataclass(frozen=True)
class UpOptions:
    """What ``shipyard up`` was asked for (``settings`` already merged from every source)."""

    settings: Settings
    config_file: Path | None = None
    verbose: bool = False
    start_timeout: float = START_TIMEOUT


@dataclass(frozen=True)
class ReadyInfo:
    """Told to ``on_ready`` once everything is healthy."""

    url: str
    admin_token: str
    token_file: Path
    token_is_new: bool
    data_dir: Path
    started_in: float
    runners: int


def _listen(host: str, port: int = 0) -> socket.socket:
    """A listening socket on ``host:port`` (0: any free port), for a service to inherit.

    ``up`` holds every service's socket for as long as it runs and hands it to each
    start of the service (``--fd``): no other program can take a service's port between
    choosing it and the service binding it, and while a service restarts, connections
    wait in the socket's backlog instead of being refused.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as err:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host or '0.0.0.0'}:{port}: {err.strerror or err}; "
            "stop what uses it or choose another port with --port"
        ) from None
    return sock


def _url_host(host: str) -> str:
    if host in ("", "0.0.0.0", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


class _Stop:
    """Signals received, set from the signal handler, read by the main loop."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.count = 0

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        self.event.set()


class Supervisor:
    """Runs one installation from a data dir until told to stop. See the module doc."""

    def __init__(
        self,
        options: UpOptions,
        console: Console,
        *,
        on_ready: Callable[[ReadyInfo], None] | None = None,
    ) -> None:
        settings = options.settings
        self.options = options
        self.settings = settings.model_copy(update={"data_dir": settings.data_dir.expanduser().resolve()})
        self.console = console
        self.on_ready = on_ready
        self.data_dir = self.settings.data_dir
        self.run_dir = self.data_dir / "run"
        self.log_dir = self.data_dir / "logs"
        self.lock = DataDirLock(self.data_dir)
        self.services: dict[str, Child] = {}
        self.runners: list[Child] = []
        self.stop = _Stop()
        self._own_log: RotatingLog | None = None
        self._signer: TokenSigner | None = None
        self.gateway_port = 0
        self.local_url = ""
        self.service_ports: dict[str, int] = {}
        self.listeners: dict[str, socket.socket] = {}  # each service's, see _listen
        self._signals_at_stop = 0

    # ---- output ---------------------------------------------------------------------

    def say(self, markup: str, plain: str | None = None) -> None:
        """Print a line (Rich markup) and keep it in ``logs/up.log``."""
        self.console.print(markup, highlight=False, soft_wrap=True)
        if self._own_log is not None:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            self._own_log.write(f"{stamp} {plain if plain is not None else markup}\n".encode())

    def _echo(self, name: str, line: str) -> None:
        self.console.print(f"[dim]{name:>9} │[/dim] {escape(line)}", highlight=False, soft_wrap=True)

    # ---- the whole run ----------------------------------------------------------------

    def run(self) -> int:
        """Start, supervise until a signal, stop; the process exit code."""
        started = time.monotonic()
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self.log_dir.mkdir(exist_ok=True)
            self.lock.acquire()
        except OSError as err:
            raise ConfigError(f"cannot use {self.data_dir} as the data dir: {err.strerror or err}") from None
        previous = {
            # Under nohup SIGHUP is ignored on purpose, and stays so.
            sig: signal.signal(sig, self.stop)
            for sig in _STOP_SIGNALS
            if not (sig == signal.SIGHUP and signal.getsignal(sig) == signal.SIG_IGN)
        }
        try:
            self._own_log = RotatingLog(self.log_dir / "up.log")
            return self._run(started)
        finally:
            self._stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            for child in self._children():
                child.log.close()
            if self._own_log is not None:
                self._own_log.close()
            for sock in self.listeners.values():
                sock.close()
            self.lock.release()

    def _run(self, started: float) -> int:
        reap_leftovers(self.data_dir, lambda m: self.say(f"[yellow]{escape(m)}[/yellow]", m))
        key = self.settings.ensure_signing_key()
        self._signer = TokenSigner(key)
        token_file = self.data_dir / "admin.token"
        admin_token, token_is_new = ensure_admin_token(token_file, self._signer)
        host = self.settings.host
        self.listeners["gateway"] = _listen(host, self.settings.port)
        self.gateway_port = self.listeners["gateway"].getsockname()[1]
        self.local_url = f"http://{_url_host(host)}:{self.gateway_port}"
        public_url = self.settings.public_url or self.local_url

        self.say(f"Starting Shipyard in [bold]{escape(str(self.data_dir))}[/bold]",
                 f"starting Shipyard in {self.data_dir}")
        self._make_services(public_url)
        for child in self.services.values():
            child.start()
        if not self._wait_healthy(started):
            return 0 if self.stop.event.is_set() else 1

        if self.settings.runners and not runner_available():
            self.say("[yellow]no runner agent in this installation: starting none[/yellow]",
                     "no runner agent in this installation: starting none")
        elif self.settings.runners:
            self._make_runners()
            for runner in self.runners:
                self._start_runner(runner)
        ready = ReadyInfo(
            url=public_url, admin_token=admin_token, token_file=token_file,
            token_is_new=token_is_new, data_dir=self.data_dir,
            started_in=time.monotonic() - started,
            runners=self.settings.runners if self.runners else 0,
        )
        if self._own_log is not None:
            self._own_log.write(f"ready at {public_url} in {ready.started_in:.2f} s\n".encode())
        if self.on_ready is not None:
            self.on_ready(ready)
        self._supervise()
        return 0

    # ---- children -------------------------------------------------------------------

    def _children(self) -> Iterable[Child]:
        yield from self.runners
        yield from self.services.values()

    def _child(self, spec: ChildSpec) -> Child:
        mark, _, value = child_mark(self.data_dir, spec.name).partition("=")
        spec = dataclasses.replace(spec, env={**spec.env, mark: value})  # services share one env
        log = RotatingLog(self.log_dir / f"{spec.name}.log")
        return Child(spec, log, self.run_dir, echo=self._echo if self.options.verbose else None)

    def _base_env(self) -> dict[str, str]:
        # Children get settings explicitly below, never by inheriting SHIPYARD_* (runners
        # must not see the secret or the database URL: jobs run under them).
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
        if "SHIPYARD_HOME" in os.environ:
            env["SHIPYARD_HOME"] = os.environ["SHIPYARD_HOME"]
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def _make_services(self, public_url: str) -> None:
        for name in SERVICES:
            if name not in self.listeners:
                self.listeners[name] = _listen("127.0.0.1")
        ports = {name: sock.getsockname()[1] for name, sock in self.listeners.items()}
        self.service_ports = ports
        env = self._base_env()
        for name, value in self.settings.model_dump(mode="json").items():
            if value not in ("", None):
                env[f"SHIPYARD_{name.upper()}"] = str(value)
        for name in ("git", "store", "ci"):
            env[f"SHIPYARD_{name.upper()}_URL"] = f"http://127.0.0.1:{ports[name]}"
        env["SHIPYARD_PUBLIC_URL"] = public_url
        if self.options.config_file is not None:
            env["SHIPYARD_CONFIG"] = str(self.options.config_file.resolve())
        for name in SERVICES:
            host = self.settings.host if name == "gateway" else "127.0.0.1"
            url_host = _url_host(host)
            # Not ``shipyard serve``: this entry point leaves the CLI's modules unloaded.
            fd = self.listeners[name].fileno()
            argv = [sys.executable, "-m", "shipyard.service", name, "--port", str(ports[name]),
                    "--host", host, "--fd", str(fd)]
            spec = ChildSpec(name, argv, env, health_url=f"http://{url_host}:{ports[name]}/healthz",
                             pass_fds=(fd,))
            self.services[name] = self._child(spec)

    def _make_runners(self) -> None:
        # The local agents run in one process, as gitlab-runner serves the runners of a
        # host (shipyard.runner._host says why). Their names are [A-Za-z0-9][A-Za-z0-9._-]*,
        # stable across restarts; agent i works in runners/<i>.
        hostname = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname().split(".")[0]).lstrip("._-") or "local"
        work_dir = self.data_dir / "runners"
        work_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            sys.executable, "-m", "shipyard.runner._host",
            "--server", self.local_url,
            # Local agents talk to ci and store on loopback directly: a job's claim,
            # logs, heartbeats and completion skip a hop through the gateway.
            "--ci-url", f"http://127.0.0.1:{self.service_ports['ci']}",
            "--store-url", f"http://127.0.0.1:{self.service_ports['store']}",
            "--name", hostname,
            "--agents", str(self.settings.runners),
            "--concurrency", str(self.settings.runner_concurrency),
            "--executor", self.settings.runner_executor,
            "--work-dir", str(work_dir),
        ]
        # Huge pages for the output of steps that print at memory speed (see _hugepages).
        env = _hugepages.environment(self._base_env())
        self.runners.append(self._child(ChildSpec("runners", argv, env)))

    def _start_runner(self, runner: Child) -> None:
        # A fresh registration token at each start; it is passed in the environment, not
        # on the command line, where every user of the machine could read it.
        assert self._signer is not None
        token = self._signer.issue(f"up:{runner.name}", ["register"], ttl=3600)
        runner.spec.env["SHIPYARD_RUNNER_TOKEN"] = token
        runner.start()

    def _healthy(self, child: Child, timeout: float = 2.0) -> bool:
        # http.client rather than httpx: one GET on loopback now and then does not
        # justify the HTTP client's memory in a process that lives as long as the server.
        assert child.spec.health_url is not None
        url = urllib.parse.urlsplit(child.spec.health_url)
        conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=timeout)
        try:
            conn.request("GET", url.path or "/")
            return conn.getresponse().status == 200
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()

    def _wait_healthy(self, started: float) -> bool:
        pending = dict(self.services)
        spawned = time.monotonic()
        deadline = spawned + self.options.start_timeout
        with self.console.status("waiting for the services to answer…", spinner="dots"):
            while pending:
                if self.stop.event.is_set():
                    self.say("stopped before the services were ready")
                    return False
                for name, child in list(pending.items()):
                    code = child.poll()
                    if code is not None:
                        child.finish()
                        self._startup_failed(child, f"{name} exited with {describe_exit(code)} while starting")
                        return False
                    if self._healthy(child, timeout=1.0):
                        del pending[name]
                        took = time.monotonic() - spawned
                        port = child.spec.health_url.rsplit(":", 1)[1].split("/")[0] if child.spec.health_url else ""
                        self.say(
                            f"  [green]✓[/green] {name:<8} healthy in {took:4.1f} s  [dim]port {port}[/dim]",
                            f"{name} healthy in {took:.2f} s (port {port})",
                        )
                if pending and time.monotonic() > deadline:
                    names = ", ".join(pending)
                    self._startup_failed(next(iter(pending.values())),
                                         f"not healthy after {self.options.start_timeout:.0f} s: {names}")
                    return False
                if pending:
                    self.stop.event.wait(0.05)
        return True

    def _startup_failed(self, child: Child, message: str) -> None:
        self.say(f"[red]error:[/red] {escape(message)}", f"error: {message}")
        tail = child.log.tail(20)
        if tail:
            self.say(f"[dim]last lines of {escape(str(child.log.path))}:[/dim]",
                     f"last lines of {child.log.path}:")
            for line in tail:
                self.say(f"  {escape(line)}", f"  {line}")

    # ---- supervising ----------------------------------------------------------------

    def _supervise(self) -> None:
        next_health = 0.0
        while not self.stop.event.wait(_TICK):
            now = time.monotonic()
            for child in list(self._children()):
                if child.restart_at is None:
                    code = child.poll()
                    if code is not None:
                        child.kill_group()  # what it started dies with it (a runner's jobs)
                        # ...and what it started in sessions of their own (job steps, git
                        # http-backend), found by the mark they inherited.
                        orphans = kill_marked(child_mark(self.data_dir, child.name))
                        if orphans:
                            message = f"stopped {len(orphans)} process(es) {child.name} left running"
                            self.say(message, message)
                        child.finish()
                        delay = child.schedule_restart(now)
                        message = f"{child.name} exited with {describe_exit(code)}; restarting in {delay:.0f} s"
                        self.say(f"[yellow]{escape(message)}[/yellow]", message)
                elif now >= child.restart_at:
                    if child in self.runners:
                        self._start_runner(child)
                    else:
                        child.start()
                    child.awaiting_health = child.spec.health_url is not None
                    message = f"restarted {child.name} (pid {child.pid}, restart {child.restarts})"
                    self.say(escape(message), message)
            if now >= next_health:
                next_health = now + 0.5
                for child in self.services.values():
                    if child.awaiting_health and child.poll() is None and self._healthy(child, 0.5):
                        child.awaiting_health = False
                        took = time.monotonic() - child.started_at
                        message = f"{child.name} is healthy again ({took:.1f} s after its restart)"
                        self.say(f"[green]{escape(message)}[/green]", message)

    # ---- stopping -------------------------------------------------------------------

    def _stop_all(self) -> None:
        """Runners, then gateway, ci, store, git; SIGTERM, then SIGKILL after a while."""
        self._signals_at_stop = self.stop.count
        groups: list[list[Child]] = [self.runners]
        groups += [[self.services[n]] for n in reversed(SERVICES) if n in self.services]
        running = [c for g in groups for c in g if c.poll() is None and c.proc is not None]
        if running:
            names = ", ".join(c.name for c in running)
            hint = " [dim](Ctrl-C again to stop at once)[/dim]" if self.stop.count else ""
            self.say(f"Stopping {escape(names)}…{hint}", f"stopping {names}")
        for group in groups:
            self._stop_group(group, is_runners=group is self.runners)
        if running:
            self.say("Stopped.", "stopped")


    def _stop_group(self, group: list[Child], *, is_runners: bool) -> None:
        alive = [c for c in group if c.proc is not None and c.poll() is None]
        began = time.monotonic()
        for child in alive:
            child.signal(signal.SIGTERM)
        self._wait_all(alive, STOP_TIMEOUT)
        if is_runners:
            # A runner's first SIGTERM lets running jobs finish; a second cancels them.
            late = [c for c in alive if c.poll() is None]
            for child in late:
                child.signal(signal.SIGTERM)
            self._wait_all(late, 5.0)
        for child in alive:
            if child.poll() is None:
                message = f"{child.name} did not stop in time; killing it"
                self.say(f"[yellow]{escape(message)}[/yellow]", message)
                child.kill_group()
                child.wait(5)
        for child in group:
            if child.proc is not None:
                child.kill_group()  # anything the child started and left behind
                child.finish()
        for child in group:  # what they started in sessions of their own
            kill_marked(child_mark(self.data_dir, child.name))
        if alive:
            took = time.monotonic() - began
            names = ", ".join(c.name for c in alive)
            self.say(f"  [dim]✓ {escape(names)} stopped in {took:.1f} s[/dim]", f"{names} stopped in {took:.2f} s")

    def _hurry(self) -> bool:
        """True once a signal came after stopping began: stop waiting, kill."""
        return self.stop.count > self._signals_at_stop

    def _wait_all(self, children: list[Child], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for child in children:
            while child.poll() is None and time.monotonic() < deadline and not self._hurry():
                child.wait(0.1)
