"""actions/upload-artifact and actions/download-artifact (v4 semantics)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from shipyard.errors import ActionError
from shipyard.workflow.actions import RunServices
from tests.workflow.actions._host import Host


def write(root: Path, rel: str, content: str = "x") -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)


def files_under(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


class TestUploadArtifact:
    def test_directory_path_is_the_artifact_root(self, make_host: Callable[..., Host], services: RunServices) -> None:
        """path: dist/ stores the files relative to dist."""
        host = make_host()
        write(host.workspace, "dist/pkg-1.0.whl")
        write(host.workspace, "dist/sub/readme.txt")
        host.uses("actions/upload-artifact", name="dist", path="dist/")
        artifact = services.artifacts.get("1", "dist")
        assert artifact is not None
        assert sorted(artifact.files) == ["pkg-1.0.whl", "sub/readme.txt"]
        assert host.outputs["artifact-id"] == str(artifact.id)
        assert host.outputs["artifact-digest"] == artifact.digest

    def test_single_file_is_stored_without_its_directories(self, make_host: Callable[..., Host], services: RunServices) -> None:
        """path: a/b/report.xml stores just report.xml."""
        host = make_host()
        write(host.workspace, "a/b/report.xml")
        host.uses("actions/upload-artifact", name="r", path="a/b/report.xml")
        artifact = services.artifacts.get("1", "r")
        assert artifact is not None and artifact.files == ("report.xml",)

    def test_several_paths_share_their_least_common_ancestor(self, make_host: Callable[..., Host], services: RunServices) -> None:
        """Two search paths: files are relative to the deepest common directory."""
        host = make_host()
        write(host.workspace, "out/logs/a.log")
        write(host.workspace, "out/reports/r.xml")
        write(host.workspace, "out/reports/skip.tmp")
        host.uses("actions/upload-artifact", name="mixed", path="out/logs/*.log\nout/reports/\n!**/*.tmp")
        artifact = services.artifacts.get("1", "mixed")
        assert artifact is not None
        assert sorted(artifact.files) == ["logs/a.log", "reports/r.xml"]

    def test_hidden_files_are_left_out_unless_asked_for(self, make_host: Callable[..., Host], services: RunServices) -> None:
        """Dot files and dot directories are excluded by default (upload-artifact 4.4+)."""
        host = make_host()
        write(host.workspace, "cov/.coverage")
        write(host.workspace, "cov/.cache/x")
        write(host.workspace, "cov/index.html")
        host.uses("actions/upload-artifact", name="a", path="cov")
        host.uses("actions/upload-artifact", name="b", path="cov", include_hidden_files="true")
        a, b = services.artifacts.get("1", "a"), services.artifacts.get("1", "b")
        assert a is not None and b is not None
        assert a.files == ("index.html",)
        assert sorted(b.files) == [".cache/x", ".coverage", "index.html"]

    def test_if_no_files_found(self, make_host: Callable[..., Host], services: RunServices) -> None:
        """warn annotates, ignore only logs, error fails; nothing is uploaded."""
        host = make_host()
        host.uses("actions/upload-artifact", path="nothing/*")
        assert any("No files were found" in w for w in host.warnings())
        host.annotations.clear()
        host.uses("actions/upload-artifact", path="nothing/*", if_no_files_found="ignore")
        assert host.warnings() == []
        with pytest.raises(ActionError, match="No files were found"):
            host.uses("actions/upload-artifact", path="nothing/*", if_no_files_found="error")
        assert services.artifacts.list("1") == []

    def test_existing_name_fails_unless_overwrite(self, make_host: Callable[..., Host], services: RunServices) -> None:
        """Uploading a name twice fails; overwrite: true replaces it."""
        host = make_host()
        write(host.workspace, "f.txt", "one")
        host.uses("actions/upload-artifact", path="f.txt")
        with pytest.raises(ActionError, match="already exists"):
            host.uses("actions/upload-artifact", path="f.txt")
        write(host.workspace, "f.txt", "two")
        host.uses("actions/upload-artifact", path="f.txt", overwrite="true")
        out = make_host()
        out.uses("actions/download-artifact", name="artifact", path="got")
        assert (out.workspace / "got/f.txt").read_text() == "two"

    def test_invalid_inputs_fail(self, make_host: Callable[..., Host]) -> None:
        """Out-of-range compression and retention, and bad names, fail the step."""
        host = make_host()
        write(host.workspace, "f.txt")
        with pytest.raises(ActionError, match="compression-level"):
            host.uses("actions/upload-artifact", path="f.txt", compression_level="12")
        with pytest.raises(ActionError, match="retention-days"):
            host.uses("actions/upload-artifact", path="f.txt", retention_days="91")
        with pytest.raises(ActionError, match="invalid artifact name"):
            host.uses("actions/upload-artifact", path="f.txt", name="a/b")

    def test_uncompressed_upload(self, make_host: Callable[..., Host], services: RunServices) -> None:
        """compression-level 0 stores files as they are."""
        host = make_host()
        write(host.workspace, "big.txt", "a" * 100_000)
        host.uses("actions/upload-artifact", path="big.txt", compression_level="0")
        artifact = services.artifacts.get("1", "artifact")
        assert artifact is not None and artifact.size > 100_000

    def test_threads_upload_different_artifacts_at_once(self, make_host: Callable[..., Host], services: RunServices) -> None:
        """Matrix jobs uploading at the same time each get their artifact."""
        hosts = [make_host() for _ in range(6)]
        for i, host in enumerate(hosts):
            write(host.workspace, "report.xml", f"report {i}")

        def upload(i: int) -> None:
            hosts[i].uses("actions/upload-artifact", name=f"report-{i}", path="report.xml")

        with ThreadPoolExecutor(6) as pool:
            list(pool.map(upload, range(6)))
        assert sorted(a.name for a in services.artifacts.list("1")) == sorted(f"report-{i}" for i in range(6))


class TestDownloadArtifact:
    def upload_two(self, make_host: Callable[..., Host]) -> None:
        host = make_host()
        write(host.workspace, "dist/pkg.whl", "wheel")
        write(host.workspace, "reports/junit.xml", "junit")
        host.uses("actions/upload-artifact", name="dist", path="dist")
        host.uses("actions/upload-artifact", name="report-3.12", path="reports/junit.xml")

    def test_by_name_into_path(self, make_host: Callable[..., Host]) -> None:
        """name: downloads into path directly and reports the absolute download path."""
        self.upload_two(make_host)
        host = make_host()
        host.uses("actions/download-artifact", name="dist", path="out")
        assert (host.workspace / "out/pkg.whl").read_text() == "wheel"
        assert host.outputs["download-path"] == str(host.workspace / "out")

    def test_all_artifacts_each_into_its_own_folder(self, make_host: Callable[..., Host]) -> None:
        """No name: every artifact of the run into path/<name>."""
        self.upload_two(make_host)
        host = make_host()
        host.uses("actions/download-artifact", path="all")
        assert files_under(host.workspace / "all") == ["dist/pkg.whl", "report-3.12/junit.xml"]

    def test_pattern_and_merge_multiple(self, make_host: Callable[..., Host]) -> None:
        """pattern filters artifact names; merge-multiple extracts them together."""
        self.upload_two(make_host)
        host = make_host()
        host.uses("actions/download-artifact", pattern="report-*", path="r", merge_multiple="true")
        assert files_under(host.workspace / "r") == ["junit.xml"]

    def test_missing_name_fails(self, make_host: Callable[..., Host]) -> None:
        """Asking for an artifact that does not exist fails the step."""
        with pytest.raises(ActionError, match="Artifact not found for name: nope"):
            make_host().uses("actions/download-artifact", name="nope")

    def test_another_run_by_run_id(self, make_host: Callable[..., Host]) -> None:
        """run-id downloads an artifact of an earlier run from the same store."""
        old = make_host(run_id="41")
        write(old.workspace, "f.txt", "from 41")
        old.uses("actions/upload-artifact", name="old", path="f.txt")
        host = make_host(run_id="42")
        host.uses("actions/download-artifact", name="old", run_id="41", path="o")
        assert (host.workspace / "o/f.txt").read_text() == "from 41"
        with pytest.raises(ActionError, match="not available"):
            host.uses("actions/download-artifact", name="old", repository="other/repo")

    def test_digest_matches_what_was_downloaded(self, make_host: Callable[..., Host], services: RunServices, tmp_path: Path) -> None:
        """The artifact-digest output is the sha256 of the stored zip."""
        host = make_host()
        write(host.workspace, "f.txt")
        host.uses("actions/upload-artifact", path="f.txt")
        artifact = services.artifacts.get("1", "artifact")
        assert artifact is not None
        blob = tmp_path / "store/artifacts/blobs" / f"{artifact.id}.zip"
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == host.outputs["artifact-digest"]
