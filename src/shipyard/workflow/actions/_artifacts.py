"""``actions/upload-artifact`` and ``actions/download-artifact`` with v4 semantics."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Mapping
from pathlib import Path

from shipyard.errors import ActionError
from shipyard.workflow._runtime import Annotation, StepHost
from shipyard.workflow.actions._base import (
    ActionInputDef,
    RunServices,
    bool_input,
    github_context,
    home_dir,
    int_input,
    resolve_path,
)
from shipyard.workflow.actions._globs import glob, split_lines
from shipyard.workflow.actions._stores import StoreError

__all__ = ["DownloadArtifact", "UploadArtifact", "artifact_root"]

_MAX_RETENTION_DAYS = 90


def _services(host: StepHost) -> RunServices:
    services = host.services
    if not isinstance(services, RunServices):
        raise ActionError("this runner has no artifact store")
    return services


def artifact_root(files: list[Path], search_paths: list[Path]) -> Path:
    """The directory the artifact's paths are relative to, as upload-artifact picks it.

    Several search paths: their least common ancestor. One search path that is itself
    the only file found: that file's directory. Otherwise the one search path.
    """
    if len(search_paths) > 1:
        return Path(os.path.commonpath([str(p) for p in search_paths]))
    if len(files) == 1 and files[0] == search_paths[0]:
        return files[0].parent
    return search_paths[0]


def _d(description: str, default: str | None = None) -> ActionInputDef:
    return ActionInputDef(default=default, description=description)


class UploadArtifact:
    """``actions/upload-artifact``."""

    name: str = "actions/upload-artifact"
    inputs: Mapping[str, ActionInputDef] = {
        "name": _d("name of the artifact", "artifact"),
        "path": ActionInputDef(
            required=True,
            description="files to upload: paths and wildcard patterns, one per line; ! excludes",
        ),
        "if-no-files-found": _d("warn, error or ignore when no files match", "warn"),
        "retention-days": _d("days to keep the artifact (1-90); empty or 0 for the default", "0"),
        "compression-level": _d("zip compression level, 0 (none) to 9 (best)", "6"),
        "overwrite": _d("replace an artifact of the same name instead of failing", "false"),
        "include-hidden-files": _d(
            "include files and directories whose name starts with '.'", "false"
        ),
    }
    outputs: tuple[str, ...] = ("artifact-id", "artifact-url", "artifact-digest")

    def run(self, host: StepHost, inputs: dict[str, str]) -> None:
        """Find the files, zip them into the run's artifact store, set the outputs."""
        name = inputs.get("name", "").strip() or "artifact"
        lines = split_lines(inputs.get("path", ""))
        if not lines:
            raise ActionError("Input required and not supplied: path")
        if_none = inputs.get("if-no-files-found", "warn").strip() or "warn"
        if if_none not in ("warn", "error", "ignore"):
            raise ActionError(
                f"Unrecognized if-no-files-found input. Provided: {if_none}. "
                "Available options: warn, error, ignore"
            )
        retention = int_input(inputs, "retention-days", 0)
        if not 0 <= retention <= _MAX_RETENTION_DAYS:
            raise ActionError(
                f"retention-days must be between 1 and {_MAX_RETENTION_DAYS}, got {retention}"
            )
        level = int_input(inputs, "compression-level", 6)
        if not 0 <= level <= 9:
            raise ActionError(f"Invalid compression-level: {level}. Valid values are 0-9")
        result = glob(
            lines, host.workspace, exclude_hidden=not bool_input(inputs, "include-hidden-files"),
            match_directories=False, home=home_dir(host),
        )  # fmt: skip
        files = result.matches
        if not files:
            message = f"No files were found with the provided path: {inputs['path'].strip()}. No artifacts will be uploaded."
            if if_none == "error":
                raise ActionError(message)
            if if_none == "warn":
                host.annotate(Annotation("warning", message))
            else:
                host.log(message)
            return
        root = artifact_root(files, result.search_paths)
        members = [(p.relative_to(root).as_posix(), p) for p in files]
        host.log(f"With the provided path, there will be {len(files)} file(s) uploaded")
        try:
            artifact = _services(host).artifacts.upload(
                host.request.run_id, name, members, overwrite=bool_input(inputs, "overwrite"),
                retention_days=retention or None, compression_level=level,
            )  # fmt: skip
        except StoreError as e:
            raise ActionError(str(e)) from None
        gh = github_context(host)
        server = str(gh.get("server_url", "")).rstrip("/")
        repo = str(gh.get("repository", ""))
        url = (
            f"{server}/{repo}/actions/runs/{host.request.run_id}/artifacts/{artifact.id}"
            if server and repo
            else ""
        )
        host.log(
            f"Artifact {name} has been successfully uploaded! Final size is {artifact.size} bytes. "
            f"Artifact ID is {artifact.id}"
        )
        host.log(f"Artifact {name} digest: sha256:{artifact.digest}")
        host.set_output("artifact-id", str(artifact.id))
        host.set_output("artifact-url", url)
        host.set_output("artifact-digest", artifact.digest)


class DownloadArtifact:
    """``actions/download-artifact``."""

    name: str = "actions/download-artifact"
    inputs: Mapping[str, ActionInputDef] = {
        "name": _d("name of the artifact; all the run's artifacts when empty", ""),
        "path": _d("destination directory; the workspace when empty", ""),
        "pattern": _d("glob over artifact names to download, when name is empty", ""),
        "merge-multiple": _d("extract several artifacts into the same directory", "false"),
        "github-token": _d("token for downloading from another run", ""),
        "repository": _d("repository the artifacts belong to; this one when empty", ""),
        "run-id": _d("run the artifacts belong to; this run when empty", ""),
    }
    outputs: tuple[str, ...] = ("download-path",)

    def run(self, host: StepHost, inputs: dict[str, str]) -> None:
        """Download one artifact into ``path``, or many each into ``path/<name>``."""
        gh = github_context(host)
        repository = inputs.get("repository", "").strip()
        current = str(gh.get("repository", ""))
        if repository and repository.lower() != current.lower():
            raise ActionError(
                f"repository {repository!r} is not available: artifacts can be downloaded only "
                "from runs of this repository"
            )
        run_id = inputs.get("run-id", "").strip() or host.request.run_id
        path = inputs.get("path", "").strip()
        dest = resolve_path(host, path) if path else host.workspace
        store = _services(host).artifacts
        name = inputs.get("name", "").strip()
        pattern = inputs.get("pattern", "").strip()
        try:
            if name:
                if pattern:
                    host.log("pattern is ignored because name is set")
                store.download(run_id, name, dest)
                host.log(f"Artifact '{name}' downloaded to {dest}")
            else:
                merge = bool_input(inputs, "merge-multiple")
                artifacts = [
                    a
                    for a in store.list(run_id)
                    if not pattern or fnmatch.fnmatchcase(a.name, pattern)
                ]
                if not artifacts:
                    host.log("No artifacts found to download")
                for artifact in artifacts:
                    store.download(run_id, artifact.name, dest if merge else dest / artifact.name)
                host.log(f"Total of {len(artifacts)} artifact(s) downloaded to {dest}")
        except StoreError as e:
            raise ActionError(f"Unable to download artifact(s): {e}") from None
        host.set_output("download-path", str(dest))
