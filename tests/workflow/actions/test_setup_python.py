"""actions/setup-python with the interpreters really installed on this machine."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from shipyard.errors import ActionError
from shipyard.workflow.actions._pyfind import Interpreter, PythonFinder, VersionSpec
from shipyard.workflow.actions._setup_python import SetupPython, read_version_file
from tests.workflow.actions._host import Host

FINDER = PythonFinder()
INSTALLED = FINDER.find_all(os.environ, [])


def have(version: str) -> Interpreter:
    matches = [i for i in INSTALLED if i.implementation == "cpython" and i.version_string.startswith(version + ".")]
    if not matches:
        pytest.fail(f"no Python {version} installed here; found {[i.version_string for i in INSTALLED]}")
    return max(matches, key=lambda i: i.version)


def run_python(host: Host, *args: str) -> str:
    """Run 'python' as a later step would: through the job's PATH."""
    proc = subprocess.run(["python", *args], env=host.env, capture_output=True, text=True, check=True)
    return proc.stdout.strip()


def fake(version: tuple[int, int, int], pre: str = "", impl: str = "cpython", ft: bool = False) -> Interpreter:
    return Interpreter("/x", version, pre, impl, "7.3.17" if impl == "pypy" else "", "x64", ft, "/x", False)


class TestVersionSpec:
    @pytest.mark.parametrize(
        ("spec", "version", "ok"),
        [
            ("3.12", (3, 12, 1), True),
            ("3.12", (3, 13, 0), False),
            ("3.x", (3, 13, 0), True),
            ("3", (3, 8, 18), True),
            ("3.12.1", (3, 12, 1), True),
            ("3.12.1", (3, 12, 2), False),
            (">=3.10 <3.13", (3, 12, 9), True),
            (">=3.10 <3.13", (3, 13, 0), False),
            (">= 3.10", (3, 10, 0), True),
            ("^3.10", (3, 13, 0), True),
            ("~3.10", (3, 11, 0), False),
            ("3.8 - 3.10", (3, 10, 13), True),
            ("3.8 - 3.10", (3, 11, 0), False),
            ("3.9 || 3.11", (3, 11, 7), True),
            ("3.9 || 3.11", (3, 10, 1), False),
            (">3.11", (3, 11, 9), False),
            ("<=3.11", (3, 11, 9), True),
        ],
    )
    def test_ranges(self, spec: str, version: tuple[int, int, int], ok: bool) -> None:
        """Version specs follow setup-python's semver ranges over major.minor.patch."""
        assert VersionSpec(spec).matches(fake(version)) is ok

    def test_prereleases_need_permission(self) -> None:
        """An installed release candidate matches only with allow-prereleases or -dev."""
        rc = fake((3, 14, 0), pre="rc1")
        assert not VersionSpec("3.14").matches(rc)
        assert VersionSpec("3.14", allow_prereleases=True).matches(rc)
        assert VersionSpec("3.14-dev").matches(rc)

    def test_pypy_and_freethreaded_are_separate(self) -> None:
        """pypy3.10 matches only PyPy; 3.13t only free-threaded builds."""
        assert VersionSpec("pypy3.10").matches(fake((3, 10, 14), impl="pypy"))
        assert not VersionSpec("3.10").matches(fake((3, 10, 14), impl="pypy"))
        assert VersionSpec("pypy-3.10-v7.3.x").matches(fake((3, 10, 14), impl="pypy"))
        assert VersionSpec("3.13t").matches(fake((3, 13, 0), ft=True))
        assert not VersionSpec("3.13").matches(fake((3, 13, 0), ft=True))

    def test_garbage_is_an_error(self) -> None:
        """An unreadable spec fails with the spec in the message."""
        with pytest.raises(ActionError, match="invalid python-version 'three'"):
            VersionSpec("three")


class TestVersionFiles:
    def test_python_version_file(self, tmp_path: Path) -> None:
        """.python-version: one version per line, comments skipped."""
        f = tmp_path / ".python-version"
        f.write_text("# pinned\n3.12\n")
        assert read_version_file(f) == ["3.12"]

    def test_pyproject_requires_python(self, tmp_path: Path) -> None:
        """pyproject.toml: requires-python becomes a range."""
        f = tmp_path / "pyproject.toml"
        f.write_text('[project]\nname = "x"\nrequires-python = ">=3.10, <3.13, !=3.11.1"\n')
        assert read_version_file(f) == [">=3.10 <3.13"]

    def test_tool_versions(self, tmp_path: Path) -> None:
        """.tool-versions: the python line."""
        f = tmp_path / ".tool-versions"
        f.write_text("nodejs 20.1.0\npython 3.11.7\n")
        assert read_version_file(f) == ["3.11.7"]


class TestSetupPython:
    def test_picks_the_requested_minor_version_and_puts_it_on_path(self, make_host: Callable[..., Host]) -> None:
        """'3.12' selects the newest 3.12.x; python, python3, pip resolve to it on PATH."""
        want = have("3.12")
        host = make_host()
        host.uses("actions/setup-python", python_version="3.12")
        assert host.outputs["python-version"] == want.version_string
        assert run_python(host, "-c", "import sys; print(sys.version_info[:2])") == "(3, 12)"
        bin_dir = Path(host.paths[0])
        for name in ("python", "python3", "python3.12", "pip", "pip3"):
            assert (bin_dir / name).exists(), name
        assert host.exported["pythonLocation"] == want.prefix
        assert host.exported["Python_ROOT_DIR"] == host.exported["Python3_ROOT_DIR"] == want.prefix
        assert host.exported["PKG_CONFIG_PATH"] == f"{want.prefix}/lib/pkgconfig"
        assert host.outputs["python-path"] == str(bin_dir / "python")

    def test_3_x_is_the_highest_installed(self, make_host: Callable[..., Host]) -> None:
        """'3.x' selects the highest installed CPython 3."""
        final = [i for i in INSTALLED if i.implementation == "cpython" and i.version[0] == 3 and not i.prerelease]
        assert final, "no CPython 3 found on this machine"
        host = make_host()
        host.uses("actions/setup-python", python_version="3.x")
        assert host.outputs["python-version"] == max(final, key=lambda i: i.version).version_string

    def test_a_range_and_an_exact_version(self, make_host: Callable[..., Host]) -> None:
        """'>=3.10 <3.12' picks 3.11.x; an exact patch version picks that one."""
        want = have("3.11")
        host = make_host()
        host.uses("actions/setup-python", python_version=">=3.10 <3.12")
        assert host.outputs["python-version"] == want.version_string
        host.uses("actions/setup-python", python_version=want.version_string)
        assert host.outputs["python-version"] == want.version_string

    def test_no_match_lists_what_is_installed(self, make_host: Callable[..., Host]) -> None:
        """'3.99' fails, naming every installed version and its path."""
        with pytest.raises(ActionError) as info:
            make_host().uses("actions/setup-python", python_version="3.99")
        message = str(info.value)
        assert message.startswith("no installed Python matches '3.99'; installed: ")
        for interp in INSTALLED:
            assert f"{interp.version_string} ({interp.executable})" in message

    def test_several_versions_the_last_is_the_default(self, make_host: Callable[..., Host]) -> None:
        """Multi-line python-version sets up each; the last one is first on PATH."""
        have("3.11")
        have("3.12")
        host = make_host()
        host.uses("actions/setup-python", python_version="3.11\n3.12")
        assert run_python(host, "-c", "import sys; print(sys.version_info[1])") == "12"
        assert subprocess.run(["python3.11", "-V"], env=host.env, capture_output=True, check=False).returncode == 0

    def test_version_file_input(self, make_host: Callable[..., Host]) -> None:
        """python-version-file reads the version from a file in the workspace."""
        want = have("3.11")
        host = make_host()
        (host.workspace / ".python-version").write_text("3.11\n")
        host.uses("actions/setup-python", python_version_file=".python-version")
        assert host.outputs["python-version"] == want.version_string
        with pytest.raises(ActionError, match="doesn't exist"):
            host.uses("actions/setup-python", python_version_file="missing.txt")

    def test_update_environment_false_only_sets_outputs(self, make_host: Callable[..., Host]) -> None:
        """update-environment: false leaves PATH and the environment alone."""
        have("3.12")
        host = make_host()
        host.uses("actions/setup-python", python_version="3.12", update_environment="false")
        assert host.paths == [] and host.exported == {}
        assert Path(host.outputs["python-path"]).exists()

    def test_tool_cache_install_wins_and_gets_pip_shims(self, make_host: Callable[..., Host]) -> None:
        """An interpreter in the tool cache is preferred; without pip in its bin, shims provide it."""
        base = have("3.12")
        host = make_host()
        venv = host.tool_cache / "Python" / base.version_string / "x64"
        subprocess.run([base.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
        host.uses("actions/setup-python", python_version="3.12")
        assert host.exported["pythonLocation"] == str(venv)
        shim = Path(host.paths[0])
        assert shim != venv / "bin"
        assert run_python(host, "-c", "import sys; print(sys.prefix)") == str(venv)
        pip = subprocess.run(["pip", "--version"], env=host.env, capture_output=True, text=True, check=False)
        assert "No module named pip" in pip.stderr  # the shim runs this interpreter's pip

    @pytest.mark.slow
    def test_pip_install_runs_in_the_chosen_interpreter(self, make_host: Callable[..., Host], tmp_path: Path) -> None:
        """pip-install installs into the interpreter that was set up."""
        base = have("3.12")
        host = make_host()
        venv = host.tool_cache / "Python" / base.version_string / "x64"
        subprocess.run([base.executable, "-m", "venv", str(venv)], check=True)
        wheel = tmp_path / "tinypkg-1.0-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as zf:
            zf.writestr("tinypkg/__init__.py", "VALUE = 42\n")
            zf.writestr("tinypkg-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: tinypkg\nVersion: 1.0\n")
            zf.writestr("tinypkg-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
            zf.writestr("tinypkg-1.0.dist-info/RECORD", "")
        host.uses("actions/setup-python", python_version="3.12", pip_install=f"--no-index {wheel}")
        assert run_python(host, "-c", "import tinypkg; print(tinypkg.VALUE)") == "42"

    def test_pip_cache_round_trip(self, make_host: Callable[..., Host]) -> None:
        """cache: pip misses, saves pip's cache dir at job end, and hits in the next job."""
        have("3.12")
        first = make_host()
        (first.workspace / "requirements.txt").write_text("requests\n")
        first.uses("actions/setup-python", python_version="3.12", cache="pip")
        assert first.outputs["cache-hit"] == "false"
        cache_dir = Path(first.env["HOME"]) / ".cache" / "pip"
        (cache_dir / "http").mkdir(parents=True)
        (cache_dir / "http" / "blob").write_text("cached download")
        first.run_posts()

        second = make_host()
        (second.workspace / "requirements.txt").write_text("requests\n")
        second.uses("actions/setup-python", python_version="3.12", cache="pip")
        assert second.outputs["cache-hit"] == "true"
        assert (Path(second.env["HOME"]) / ".cache/pip/http/blob").read_text() == "cached download"

    def test_pip_cache_needs_dependency_files(self, make_host: Callable[..., Host]) -> None:
        """cache: pip with no requirements.txt or pyproject.toml fails as on GitHub."""
        have("3.12")
        with pytest.raises(ActionError, match=r"matched to \[\*\*/requirements.txt or \*\*/pyproject.toml\]"):
            make_host().uses("actions/setup-python", python_version="3.12", cache="pip")

    def test_other_package_managers_are_refused(self, make_host: Callable[..., Host]) -> None:
        """cache: poetry is a clear error, not a silent no-op."""
        have("3.12")
        with pytest.raises(ActionError, match="Caching for 'poetry' is not supported"):
            make_host().uses("actions/setup-python", python_version="3.12", cache="poetry")

    def test_discovery_is_cached_per_process(self) -> None:
        """A second search probes no interpreter again."""
        finder = SetupPython().finder
        finder.find_all(os.environ, [])
        probed = dict(finder._probed)
        finder.find_all(os.environ, [])
        assert finder._probed == probed
        assert sys.executable  # the search itself ran real interpreters
