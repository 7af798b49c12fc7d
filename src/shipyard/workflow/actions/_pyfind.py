"""Finding the Python interpreters installed on a runner and matching version specs.

``actions/setup-python`` downloads nothing here: it picks the highest installed version
that matches, searching PATH, ``/usr/bin``, ``/usr/local/bin``, pyenv and the runner's
tool cache. Specs follow setup-python: ``3.11``, ``3.x``, ``3.12.1``, ranges such as
``>=3.10 <3.13`` or ``^3.10``, ``3.13t`` (free-threaded), ``3.14-dev`` and ``pypy3.10``.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import threading
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from shipyard.errors import ActionError

__all__ = ["Interpreter", "PythonFinder", "VersionSpec", "host_arch"]

_PROBE = r"""
import json, platform, struct, sys, sysconfig
pypy = getattr(sys, "pypy_version_info", None)
print(json.dumps({
    "version": list(sys.version_info[:3]),
    "level": sys.version_info[3], "serial": sys.version_info[4],
    "impl": platform.python_implementation().lower(),
    "pypy": ".".join(str(p) for p in pypy[:3]) if pypy else "",
    "machine": platform.machine(), "bits": struct.calcsize("P") * 8,
    "ft": bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
    "prefix": sys.prefix, "base_prefix": getattr(sys, "base_prefix", sys.prefix),
    "executable": sys.executable,
}))
"""

_EXE_NAME = re.compile(r"^(python3(\.\d+)?t?|pypy3(\.\d+)?)$")
_PRE = {"alpha": "a", "beta": "b", "candidate": "rc"}
_INF = (1 << 30, 0, 0)


def _arch(machine: str, bits: int) -> str:
    m = machine.lower()
    if m in ("x86_64", "amd64"):
        return "x64" if bits == 64 else "x86"
    if m in ("aarch64", "arm64"):
        return "arm64"
    if m in ("i386", "i686", "x86"):
        return "x86"
    return m


def host_arch() -> str:
    """This machine's architecture in setup-python's words (x64, arm64, x86)."""
    return _arch(platform.machine(), 64 if platform.architecture()[0] == "64bit" else 32)


@dataclass(frozen=True)
class Interpreter:
    """One installed Python, as it describes itself."""

    executable: str
    version: tuple[int, int, int]
    prerelease: str  # "" for a final release, else e.g. "rc2"
    implementation: str  # "cpython" | "pypy" | ...
    pypy_version: str
    arch: str
    freethreaded: bool
    prefix: str
    in_tool_cache: bool
    is_venv: bool = False

    @property
    def version_string(self) -> str:
        """``3.12.1``, ``3.13.0rc2``."""
        return ".".join(map(str, self.version)) + self.prerelease

    def describe(self) -> str:
        """``3.12.1 (/path/bin/python)``, as listed in errors."""
        name = self.version_string
        if self.implementation == "pypy":
            name = f"pypy{name}-v{self.pypy_version}"
        if self.freethreaded:
            name += "t"
        return f"{name} ({self.executable})"


class VersionSpec:
    """One ``python-version`` value: an implementation and a set of version intervals."""

    def __init__(self, text: str, allow_prereleases: bool = False) -> None:
        self.text = text
        spec = text.strip().lower()
        self.implementation = "cpython"
        self.pypy_spec: VersionSpec | None = None
        self.freethreaded = False
        self.prereleases = allow_prereleases
        if spec.startswith("pypy"):
            self.implementation = "pypy"
            spec = spec[4:].lstrip("-")
            spec, _, pypy = spec.partition("-v")
            if pypy and pypy not in ("x", "nightly"):
                self.pypy_spec = VersionSpec(pypy)
            spec = spec.removesuffix("-nightly") or "3"
        elif spec.startswith("graalpy"):
            raise ActionError(f"python-version {text!r}: GraalPy is not supported by Shipyard")
        if spec.endswith("-dev"):
            spec = spec[: -len("-dev")]
            self.prereleases = True
        if re.fullmatch(r"[\d.x*]+t", spec):
            self.freethreaded = True
            spec = spec[:-1]
        self.alternatives = [self._parse_set(part, text) for part in spec.split("||")]

    # Each comparator set is a list of [lo, hi) intervals that must all hold.
    def _parse_set(self, text: str, original: str) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
        text = re.sub(r"(>=|<=|>|<|=|\^|~)\s+", r"\1", text.strip())
        hyphen = re.fullmatch(r"(\S+)\s+-\s+(\S+)", text)
        if hyphen:
            return [
                self._interval(">=", hyphen[1], original),
                self._interval("<=", hyphen[2], original),
            ]
        return [self._interval(*self._split_op(tok), original) for tok in text.split() or ["*"]]

    @staticmethod
    def _split_op(token: str) -> tuple[str, str]:
        m = re.match(r"(>=|<=|>|<|=|\^|~=|~)?(.*)", token)
        assert m is not None
        return m[1] or "", m[2]

    def _interval(
        self, op: str, version: str, original: str
    ) -> tuple[tuple[int, ...], tuple[int, ...]]:
        m = re.fullmatch(
            r"v?(\d+|[x*])(?:\.(\d+|[x*]))?(?:\.(\d+|[x*]))?(?:[-.]?(a|b|rc|alpha|beta)\.?\d*)?",
            version,
        )
        if version in ("", "*", "x"):
            return (0, 0, 0), _INF
        if m is None:
            raise ActionError(f"invalid python-version {original!r}")
        if m[4]:
            self.prereleases = True
        parts: list[int] = []
        for p in m.groups()[:3]:
            if p is None or p in ("x", "*"):
                break  # an "x" ends the precision, whatever follows
            parts.append(int(p))
        lo = tuple(parts + [0] * (3 - len(parts)))
        nxt = self._bump(parts)  # first version past everything ``parts`` covers
        if op in ("", "="):
            return lo, nxt
        if op == ">=":
            return lo, _INF
        if op == ">":
            return nxt, _INF
        if op == "<":
            return (0, 0, 0), lo
        if op == "<=":
            return (0, 0, 0), nxt
        if op in ("~", "~="):
            keep = parts[:2] if op == "~" else parts[: max(1, len(parts) - 1)]
            return lo, self._bump(keep if len(parts) > 1 else parts)
        # "^": up to the next change of the first non-zero part
        first = next((i for i, p in enumerate(parts) if p != 0), len(parts) - 1)
        return lo, self._bump(parts[: first + 1])

    @staticmethod
    def _bump(parts: list[int]) -> tuple[int, ...]:
        if not parts:
            return _INF
        bumped = [*parts[:-1], parts[-1] + 1]
        return tuple(bumped + [0] * (3 - len(bumped)))

    def matches(self, interp: Interpreter) -> bool:
        """Whether ``interp`` satisfies this spec."""
        if interp.implementation != self.implementation or interp.freethreaded != self.freethreaded:
            return False
        if interp.prerelease and not self.prereleases:
            return False
        if self.pypy_spec is not None:
            pypy = tuple(int(p) for p in interp.pypy_version.split(".") if p.isdigit())
            if not any(
                all(lo <= pypy < hi for lo, hi in alt) for alt in self.pypy_spec.alternatives
            ):
                return False
        v = interp.version
        return any(all(lo <= v < hi for lo, hi in alt) for alt in self.alternatives)


def _candidates(env: Mapping[str, str], tool_caches: Iterable[Path]) -> list[tuple[Path, bool]]:
    """Executables to probe, tool caches first so that they win ties (as on GitHub)."""
    found: list[tuple[Path, bool]] = []
    for cache in tool_caches:
        for kind in ("Python", "PyPy"):
            found.extend((p, True) for p in sorted(cache.glob(f"{kind}/*/*/bin/python")))
    dirs = [d for d in env.get("PATH", "").split(os.pathsep) if d]
    for d in [*dirs, "/usr/bin", "/usr/local/bin"]:
        if Path(d).name == "shims":
            continue  # pyenv's and asdf's dispatch scripts; their targets are found below
        try:
            names = sorted(os.listdir(d))
        except OSError:
            continue
        found.extend((Path(d) / n, False) for n in names if _EXE_NAME.match(n))
    roots = [env.get("PYENV_ROOT"), os.environ.get("PYENV_ROOT")]
    roots += [str(Path(h) / ".pyenv") for h in (env.get("HOME"), str(Path.home())) if h]
    for root in dict.fromkeys(r for r in roots if r):
        found.extend((p, False) for p in sorted(Path(root).glob("versions/*/bin/python")))
    unique = dict.fromkeys(found)
    return [(p, t) for p, t in unique if p.is_file() and os.access(p, os.X_OK)]


class PythonFinder:
    """Discovers installed interpreters, probing each executable once per process."""

    def __init__(self) -> None:
        self._probed: dict[tuple[str, float], Interpreter | None] = {}
        self._lock = threading.Lock()

    def _probe(self, path: Path, in_tool_cache: bool) -> Interpreter | None:
        key = (str(path), path.stat().st_mtime)
        with self._lock:
            if key in self._probed:
                return self._probed[key]
        result: Interpreter | None = None
        try:
            proc = subprocess.run(
                [str(path), "-c", _PROBE], capture_output=True, text=True, timeout=20, check=False,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/")},
            )  # fmt: skip
            info = json.loads(proc.stdout) if proc.returncode == 0 else None
        except (OSError, subprocess.TimeoutExpired, ValueError):
            info = None
        is_venv = info is not None and info["prefix"] != info["base_prefix"]
        # A virtual environment on PATH (Shipyard's own, say) is not an installation to
        # set up; one placed in the tool cache was put there on purpose.
        if info is not None and (in_tool_cache or not is_venv):
            level = info["level"]
            result = Interpreter(
                executable=str(path) if in_tool_cache else info["executable"] or str(path),
                version=(info["version"][0], info["version"][1], info["version"][2]),
                prerelease="" if level == "final" else f"{_PRE.get(level, level)}{info['serial']}",
                implementation=info["impl"],
                pypy_version=info["pypy"],
                arch=_arch(info["machine"], info["bits"]),
                freethreaded=info["ft"],
                prefix=info["prefix"],
                in_tool_cache=in_tool_cache,
                is_venv=is_venv,
            )
        with self._lock:
            self._probed[key] = result
        return result

    def find_all(self, env: Mapping[str, str], tool_caches: Iterable[Path]) -> list[Interpreter]:
        """Every distinct interpreter found, in search order."""
        candidates = _candidates(env, tool_caches)
        with ThreadPoolExecutor(max_workers=8) as pool:
            probed = list(pool.map(lambda c: self._probe(*c), candidates))
        seen: set[tuple[str, str]] = set()
        result: list[Interpreter] = []
        for interp in probed:
            if interp is None:
                continue
            key = (os.path.realpath(interp.executable), interp.prefix)
            if key not in seen:
                seen.add(key)
                result.append(interp)
        return result

    @staticmethod
    def best(found: list[Interpreter], spec: VersionSpec, arch: str) -> Interpreter | None:
        """The highest version in ``found`` matching ``spec`` and ``arch``; earlier wins ties."""
        best: Interpreter | None = None
        for interp in found:
            if (
                interp.arch == arch
                and spec.matches(interp)
                and (best is None or interp.version > best.version)
            ):
                best = interp
        return best
