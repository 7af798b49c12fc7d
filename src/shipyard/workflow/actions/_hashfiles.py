"""GitHub's ``hashFiles()`` expression function."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from shipyard.workflow.actions._globs import glob

__all__ = ["hash_files", "sha256_file"]

_CHUNK = 1 << 20


def sha256_file(path: Path | str) -> str:
    """The sha256 hex digest of a file's contents."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def hash_files(workspace: Path, patterns: list[str]) -> str:
    """``hashFiles(patterns...)``: one hash over every matching file in the workspace.

    Each pattern may hold several lines (GitHub joins the arguments with newlines). Files
    are taken in the order GitHub's walk finds them (depth-first, siblings in byte order);
    directories and files outside the workspace are skipped and symbolic links are not
    followed while walking. The result is the sha256 of the concatenated binary sha256
    digests of the files, or ``''`` when nothing matches.
    """
    lines = [line for p in patterns for line in p.splitlines()]
    root = os.path.realpath(workspace)
    total = hashlib.sha256()
    found = False
    for path in glob(lines, Path(root), follow_symlinks=False).matches:
        if not str(path).startswith(root + os.sep):
            continue
        if not path.exists() or path.is_dir():  # a symlink to a directory, or a broken one
            continue
        total.update(bytes.fromhex(sha256_file(path)))
        found = True
    return total.hexdigest() if found else ""
