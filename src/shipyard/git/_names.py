"""Checks on what a request names: repositories, revisions and paths inside a tree.

Every name that reaches a ``git`` command line or the file system passes through here
first, so option injection (a revision starting with ``-``) and path tricks (``..``)
are refused before any process starts.
"""

from __future__ import annotations

import re

from shipyard.errors import InvalidRequestError

__all__ = [
    "RESERVED_SUFFIXES",
    "ZERO_SHA",
    "check_path",
    "check_prefix",
    "check_repo_name",
    "check_rev",
]

#: The sha a ``ref.updated`` event gives for "no object": a created or deleted ref.
ZERO_SHA = "0" * 40

#: Words that follow a repository's name in ``/repos/{name}/...`` URLs. The last part of
#: an ``owner/name`` repository may not be one of them, so every URL has one reading.
RESERVED_SUFFIXES = ("blob", "commits", "compare", "files", "refs", "tree")

_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_MAX_REV = 1024
_MAX_PATH = 4096


def check_repo_name(name: str) -> str:
    """``name`` when it is ``[owner/]name`` with valid parts; :class:`InvalidRequestError` otherwise."""
    parts = name.split("/")
    if not 1 <= len(parts) <= 2:
        raise InvalidRequestError(
            f"invalid repository name {name!r}: use 'name' or 'owner/name'"
        )
    for part in parts:
        if not _PART.fullmatch(part):
            raise InvalidRequestError(
                f"invalid repository name {name!r}: each part is 1 to 100 of A-Z a-z 0-9 . _ -"
                " and starts with a letter or digit"
            )
        if part.lower().endswith(".git"):
            raise InvalidRequestError(f"invalid repository name {name!r}: a part may not end in .git")
    if len(parts) == 2 and parts[1] in RESERVED_SUFFIXES:
        raise InvalidRequestError(
            f"invalid repository name {name!r}: the name part may not be one of "
            + ", ".join(RESERVED_SUFFIXES)
        )
    return name


def check_rev(rev: str) -> str:
    """``rev`` when it is safe to hand to git as a revision (never an option)."""
    if not rev:
        raise InvalidRequestError("empty revision")
    if len(rev) > _MAX_REV:
        raise InvalidRequestError(f"revision longer than {_MAX_REV} characters")
    if rev.startswith("-"):
        raise InvalidRequestError(f"invalid revision {rev!r}: it may not start with '-'")
    if any(ord(c) < 0x20 or c == "\x7f" for c in rev):
        raise InvalidRequestError("invalid revision: control characters are not allowed")
    return rev


def check_path(path: str) -> str:
    """A path inside a tree, normalised (no leading or trailing ``/``); ``""`` is the root."""
    if len(path) > _MAX_PATH:
        raise InvalidRequestError(f"path longer than {_MAX_PATH} characters")
    if any(ord(c) < 0x20 for c in path):
        raise InvalidRequestError("invalid path: control characters are not allowed")
    stripped = path.strip("/")
    if not stripped:
        return ""
    for part in stripped.split("/"):
        if part in ("", ".", ".."):
            raise InvalidRequestError(f"invalid path {path!r}: empty, '.' and '..' parts are not allowed")
    return stripped


def check_prefix(prefix: str) -> str:
    """A path prefix for ``/files``: like a path, but a trailing ``/`` is kept."""
    if not prefix.strip("/"):
        return ""
    normal = check_path(prefix)
    return normal + "/" if prefix.endswith("/") else normal
