"""``actions/setup-python``: put an installed Python first on PATH.

Nothing is downloaded: the highest installed interpreter matching ``python-version``
is used (see :mod:`._pyfind`), and a clear error lists what is installed when none
matches. ``check-latest`` and ``token`` only matter for downloads and are noted in the
log. ``cache: pip`` keeps pip's cache directory in the run's cache store, keyed by
``hashFiles`` of the dependency files, and saves it at the end of a successful job.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import subprocess
import threading
import tomllib
from collections.abc import Mapping
from pathlib import Path

from shipyard.errors import ActionError
from shipyard.workflow._runtime import Annotation, Conclusion, StepHost
from shipyard.workflow.actions._base import (
    ActionInputDef,
    bool_input,
    home_dir,
    lines_input,
    resolve_path,
)
from shipyard.workflow.actions._cache import restore_cache, save_cache
from shipyard.workflow.actions._hashfiles import hash_files
from shipyard.workflow.actions._pyfind import Interpreter, PythonFinder, VersionSpec, host_arch

__all__ = ["SetupPython"]

_PIP_PATTERNS = ["**/requirements.txt", "**/pyproject.toml"]


def _d(description: str, default: str | None = None) -> ActionInputDef:
    return ActionInputDef(default=default, description=description)


def _pep440_to_range(spec: str) -> str:
    """``>=3.10,<3.13`` (requires-python) as a setup-python range: ``>=3.10 <3.13``."""
    parts = []
    for clause in spec.split(","):
        clause = clause.strip().replace(" ", "")
        if clause.startswith("=="):
            parts.append(clause[2:].replace("*", "x"))
        elif clause.startswith("!="):
            continue  # an exclusion never picks a version; the remaining bounds do
        elif clause:
            parts.append(clause)
    return " ".join(parts) or "3"


def read_version_file(path: Path) -> list[str]:
    """The versions a ``.python-version``, ``.tool-versions`` or ``pyproject.toml`` names."""
    if not path.is_file():
        raise ActionError(f"The specified python version file at: {path} doesn't exist.")
    text = path.read_text()
    if path.name == "pyproject.toml":
        data = tomllib.loads(text)
        requires = data.get("project", {}).get("requires-python")
        if requires is None:
            requires = data.get("tool", {}).get("poetry", {}).get("dependencies", {}).get("python")
        if not isinstance(requires, str):
            raise ActionError(f"{path} names no Python version (project.requires-python)")
        return [_pep440_to_range(requires)]
    versions: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if path.name == ".tool-versions":
            words = line.split()
            if words[0] == "python":
                versions.extend(words[1:])
        else:
            versions.append(line)
    if not versions:
        raise ActionError(f"No Python version was found in {path}")
    return versions


def _script(path: Path, command: str) -> None:
    path.write_text(f"#!/bin/sh\n{command}\n")
    path.chmod(0o755)


class SetupPython:
    """``actions/setup-python``."""

    name: str = "actions/setup-python"
    inputs: Mapping[str, ActionInputDef] = {
        "python-version": _d(
            "version spec to use, e.g. 3.12, 3.x, >=3.10 <3.13, pypy3.10; one per line", ""
        ),
        "python-version-file": _d(
            "file to read the version from (.python-version, .tool-versions, pyproject.toml)", ""
        ),
        "cache": _d("package manager whose cache to keep: pip", ""),
        "architecture": _d("x64, x86 or arm64; this machine's when empty", ""),
        "check-latest": _d("look for a newer matching version (no effect offline)", "false"),
        "token": _d("token for downloading Python versions (unused offline)", ""),
        "cache-dependency-path": _d(
            "files whose hash keys the cache; default requirements.txt and pyproject.toml", ""
        ),
        "update-environment": _d(
            "put the interpreter on PATH and set pythonLocation and friends", "true"
        ),
        "allow-prereleases": _d(
            "let a version spec match an alpha, beta or release candidate", "false"
        ),
        "freethreaded": _d("use a free-threaded build", "false"),
        "pip-version": _d("pip version to install into the interpreter", ""),
        "pip-install": _d("arguments to pip install after setup", ""),
    }
    outputs: tuple[str, ...] = ("python-version", "python-path", "cache-hit")

    def __init__(self, finder: PythonFinder | None = None) -> None:
        self.finder = finder or PythonFinder()

    def run(self, host: StepHost, inputs: dict[str, str]) -> None:
        """Pick interpreters, set up the environment, restore the pip cache."""
        specs = self._specs(host, inputs)
        if not specs:
            host.annotate(Annotation(
                "warning",
                "Neither 'python-version' nor 'python-version-file' inputs were supplied and no "
                ".python-version file was found; the Python already on PATH will be used.",
            ))  # fmt: skip
            return
        arch = inputs.get("architecture", "").strip() or host_arch()
        if arch not in ("x64", "x86", "arm64"):
            raise ActionError(f"architecture {arch!r} is not one of x64, x86, arm64")
        if bool_input(inputs, "check-latest"):
            host.log("check-latest: Shipyard downloads nothing; using the newest installed match")
        allow_pre = bool_input(inputs, "allow-prereleases")
        freethreaded = bool_input(inputs, "freethreaded")
        found = self.finder.find_all(host.env, [host.tool_cache, *self._runner_tool_cache(host)])
        chosen: Interpreter | None = None
        for text in specs:
            spec = VersionSpec(text, allow_pre)
            spec.freethreaded = spec.freethreaded or freethreaded
            chosen = self.finder.best(found, spec, arch)
            if chosen is None:
                listing = (
                    ", ".join(i.describe() for i in sorted(found, key=lambda i: i.version))
                    or "none"
                )
                suffix = "" if arch == host_arch() else f" for {arch}"
                raise ActionError(
                    f"no installed Python matches {text!r}{suffix}; installed: {listing}"
                )
            self._activate(host, chosen, bool_input(inputs, "update-environment"))
        assert chosen is not None
        python = self._python_path(host, chosen)
        self._pip(host, python, inputs)
        cache = inputs.get("cache", "").strip()
        if cache:
            self._cache(host, chosen, python, cache, lines_input(inputs, "cache-dependency-path"))

    @staticmethod
    def _runner_tool_cache(host: StepHost) -> list[Path]:
        value = host.env.get("RUNNER_TOOL_CACHE") or os.environ.get("RUNNER_TOOL_CACHE")
        return [Path(value)] if value else []

    @staticmethod
    def _specs(host: StepHost, inputs: dict[str, str]) -> list[str]:
        versions = lines_input(inputs, "python-version")
        version_file = inputs.get("python-version-file", "").strip()
        if versions:
            if version_file:
                host.annotate(Annotation(
                    "warning",
                    "Both python-version and python-version-file inputs are specified, "
                    "only python-version will be used.",
                ))  # fmt: skip
            return versions
        if version_file:
            return read_version_file(resolve_path(host, version_file))
        default = host.workspace / ".python-version"
        return read_version_file(default) if default.is_file() else []

    # -- the environment ---------------------------------------------------------------

    def _bin_dir(self, host: StepHost, interp: Interpreter) -> Path:
        """A directory where python, python3, pythonX.Y, pip and pip3 are ``interp``."""
        own = Path(interp.executable).parent
        real = os.path.realpath(interp.executable)
        major, minor = interp.version[:2]
        pythons = ["python", "python3", f"python{major}.{minor}"]
        if all(os.path.realpath(own / n) == real for n in pythons) and all(
            (own / n).is_file() for n in ("pip", "pip3")
        ):
            return own
        tag = hashlib.sha256(interp.executable.encode()).hexdigest()[:8]
        shim = (
            host.tool_cache
            / "shipyard-python"
            / f"{interp.implementation}-{interp.version_string}-{tag}"
            / "bin"
        )
        if not shim.is_dir():
            self._write_shims(shim, interp, pythons)
        return shim

    @staticmethod
    def _write_shims(shim: Path, interp: Interpreter, pythons: list[str]) -> None:
        building = shim.parent / f".bin-{os.getpid()}-{threading.get_ident()}"
        building.mkdir(parents=True, exist_ok=True)
        exe = shlex.quote(interp.executable)
        for n in pythons:
            if interp.is_venv:
                # A virtual environment is recognised from the path it is started by, so
                # a symlink elsewhere would start the base interpreter instead.
                _script(building / n, f'exec {exe} "$@"')
            else:
                (building / n).symlink_to(interp.executable)
        for n in ("pip", "pip3"):
            _script(building / n, f'exec {exe} -m pip "$@"')
        try:
            building.rename(shim)
        except OSError:
            # Another job made the same shims first; theirs are as good as ours.
            for child in building.iterdir():
                child.unlink()
            building.rmdir()

    def _python_path(self, host: StepHost, interp: Interpreter) -> str:
        return str(self._bin_dir(host, interp) / "python")

    def _activate(self, host: StepHost, interp: Interpreter, update_environment: bool) -> None:
        bin_dir = self._bin_dir(host, interp)
        version = interp.version_string
        if interp.implementation == "pypy":
            version = f"pypy{version}-v{interp.pypy_version}"
        host.log(f"Successfully set up {interp.describe()}")
        host.set_output("python-version", version + ("t" if interp.freethreaded else ""))
        host.set_output("python-path", str(bin_dir / "python"))
        if not update_environment:
            return
        prefix = interp.prefix
        host.export_env("pythonLocation", prefix)
        host.export_env("PKG_CONFIG_PATH", f"{prefix}/lib/pkgconfig")
        host.export_env("Python_ROOT_DIR", prefix)
        host.export_env(f"Python{interp.version[0]}_ROOT_DIR", prefix)
        lib = f"{prefix}/lib"
        current = host.env.get("LD_LIBRARY_PATH", "")
        if lib not in current.split(":"):
            host.export_env("LD_LIBRARY_PATH", f"{lib}:{current}" if current else lib)
        host.add_path(str(bin_dir))

    def _pip(self, host: StepHost, python: str, inputs: dict[str, str]) -> None:
        pip_version = inputs.get("pip-version", "").strip()
        if pip_version:
            requirement = (
                pip_version if re.match(r"[<>=!~]", pip_version) else f"pip=={pip_version}"
            )
            if host.run_process([python, "-m", "pip", "install", "--upgrade", requirement]) != 0:
                raise ActionError(f"installing {requirement} failed")
        packages = inputs.get("pip-install", "").strip()
        if (
            packages
            and host.run_process([python, "-m", "pip", "install", *shlex.split(packages)]) != 0
        ):
            raise ActionError(f"pip install {packages} failed")

    # -- the pip cache ---------------------------------------------------------------

    def _cache(
        self, host: StepHost, interp: Interpreter, python: str, manager: str, dep_paths: list[str]
    ) -> None:
        if manager != "pip":
            raise ActionError(
                f"Caching for '{manager}' is not supported by Shipyard's setup-python; "
                "use cache: pip, or actions/cache with the tool's cache directory"
            )
        patterns = dep_paths or _PIP_PATTERNS
        digest = hash_files(host.workspace, patterns)
        if not digest:
            raise ActionError(
                f"No file in {host.workspace} matched to [{' or '.join(patterns)}], "
                "make sure you have checked out the target repository"
            )
        cache_dir = self._pip_cache_dir(host, python)
        home = home_dir(host).rstrip("/")
        # Written relative to the home when it is there, so jobs with different homes
        # share the cache version.
        path_line = "~" + cache_dir[len(home) :] if cache_dir.startswith(home + "/") else cache_dir
        key = f"setup-python-Linux-{interp.arch}-python-{interp.version_string}-pip-{digest}"
        matched = restore_cache(host, key, [], [path_line])
        host.set_output("cache-hit", "true" if matched == key else "false")

        def post(h: StepHost) -> None:
            if h.job_status() != Conclusion.SUCCESS:
                return
            if matched == key:
                h.log(f"Cache hit occurred on the primary key {key}, not saving cache.")
                return
            if not Path(cache_dir).is_dir():
                h.log(
                    f"Cache folder path is retrieved for pip but doesn't exist on disk: {cache_dir}"
                )
                return
            save_cache(h, key, [path_line])

        host.add_post_step("Post Setup Python", post)

    @staticmethod
    def _pip_cache_dir(host: StepHost, python: str) -> str:
        env = {**host.env, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
        proc = subprocess.run(
            [python, "-m", "pip", "cache", "dir"],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        out = proc.stdout.strip().splitlines()
        if proc.returncode == 0 and out:
            return out[-1]
        xdg = host.env.get("XDG_CACHE_HOME") or os.path.join(home_dir(host), ".cache")
        return os.path.join(xdg, "pip")
