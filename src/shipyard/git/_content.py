"""Reading a repository's content: refs, commits, trees, blobs, file sets, changed paths.

ci calls these on every push, so each answer costs a fixed, small number of git
processes whatever the number of files: a tree is one ``ls-tree``, a file set one
``ls-tree -r`` plus one ``cat-file --batch`` for all the contents. Revisions are
checked (:func:`~shipyard.git._names.check_rev`) and resolved with
``rev-parse --verify --end-of-options``, so a request can never pass git an option.
"""

from __future__ import annotations

import base64
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from shipyard.errors import InvalidRequestError, NotFoundError
from shipyard.git._gitexec import GIT, GitCommandError, git_env, run_git
from shipyard.git._names import ZERO_SHA, check_path, check_prefix, check_rev

__all__ = [
    "MAX_FILES",
    "MAX_FILES_BYTES",
    "CommitInfo",
    "FileSet",
    "ObjectInfo",
    "Person",
    "TreeEntry",
    "blob_at",
    "changed_paths",
    "commit_info",
    "file_set",
    "object_at",
    "read_refs",
    "resolve_commit",
    "stream_blob",
    "tree_entries",
]

#: Limits of one ``/files`` answer.
MAX_FILES = 1000
MAX_FILES_BYTES = 8 << 20

_CHUNK = 1 << 16
_PERSON = re.compile(r"^(.*?) ?<(.*)> (-?\d+)(?: ([+-]\d{4}))?$")


@dataclass(frozen=True, slots=True)
class Person:
    """An author or committer line."""

    name: str
    email: str
    date: float


@dataclass(frozen=True, slots=True)
class CommitInfo:
    sha: str
    tree: str
    parents: list[str]
    message: str
    author: Person
    committer: Person


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    sha: str
    type: str
    size: int


@dataclass(frozen=True, slots=True)
class TreeEntry:
    path: str
    type: str
    mode: str
    sha: str
    size: int | None


@dataclass(slots=True)
class FileSet:
    """The files under some prefixes at one commit, contents base64-encoded."""

    sha: str
    files: dict[str, str] = field(default_factory=dict)


def read_refs(git_dir: Path) -> tuple[dict[str, str], str | None]:
    """Every ref and its sha, and what ``HEAD`` points at (``None`` when detached)."""
    out = run_git(git_dir, "for-each-ref", "--format=%(objectname) %(refname)")
    found: dict[str, str] = {}
    for line in out.decode("utf-8", errors="replace").splitlines():
        sha, _, ref = line.partition(" ")
        if ref:
            found[ref] = sha
    try:
        head_text = (git_dir / "HEAD").read_text(encoding="utf-8").strip()
    except OSError:
        head_text = ""
    head = head_text[len("ref: "):] if head_text.startswith("ref: ") else None
    return found, head


def resolve_commit(git_dir: Path, rev: str) -> str:
    """The commit sha ``rev`` names; :class:`NotFoundError` when it names none."""
    check_rev(rev)
    try:
        out = run_git(git_dir, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}")
    except GitCommandError:
        raise NotFoundError(f"unknown revision {rev!r}") from None
    return out.decode().strip()


def _parse_person(value: str) -> Person:
    match = _PERSON.match(value)
    if match is None:
        return Person(name=value, email="", date=0.0)
    return Person(name=match.group(1), email=match.group(2), date=float(match.group(3)))


def commit_info(git_dir: Path, rev: str) -> CommitInfo:
    """The commit ``rev`` names, parsed."""
    sha = resolve_commit(git_dir, rev)
    raw = run_git(git_dir, "cat-file", "commit", sha)
    head, _, body = raw.partition(b"\n\n")
    headers: list[tuple[str, str]] = []
    encoding = "utf-8"
    for line in head.decode("utf-8", errors="replace").split("\n"):
        if line.startswith(" ") and headers:  # continuation (a signature)
            continue
        key, _, value = line.partition(" ")
        headers.append((key, value))
        if key == "encoding":
            encoding = value
    try:
        message = body.decode(encoding, errors="replace")
    except LookupError:
        message = body.decode("utf-8", errors="replace")
    values = dict(headers)
    return CommitInfo(
        sha=sha,
        tree=values.get("tree", ""),
        parents=[v for k, v in headers if k == "parent"],
        message=message,
        author=_parse_person(values.get("author", "")),
        committer=_parse_person(values.get("committer", "")),
    )


def object_at(git_dir: Path, commit: str, path: str) -> ObjectInfo:
    """The object at ``path`` in ``commit`` (the root tree for ``""``); 404 when absent."""
    spec = f"{commit}^{{tree}}" if not path else f"{commit}:{path}"
    out = run_git(git_dir, "cat-file", "--batch-check", input=spec.encode() + b"\n").decode()
    parts = out.split()
    if len(parts) != 3 or parts[-1] == "missing":
        raise NotFoundError(f"no path {path!r} at {commit}")
    return ObjectInfo(sha=parts[0], type=parts[1], size=int(parts[2]))


def _ls_tree(git_dir: Path, *args: str) -> Iterator[TreeEntry]:
    out = run_git(git_dir, "ls-tree", "-z", "-l", *args)
    for record in out.split(b"\0"):
        if not record:
            continue
        meta, _, raw_path = record.partition(b"\t")
        mode, type_, sha, size = meta.decode().split(maxsplit=3)
        yield TreeEntry(
            path=raw_path.decode("utf-8", errors="replace"),
            type=type_,
            mode=mode,
            sha=sha,
            size=None if size.strip() == "-" else int(size),
        )


def tree_entries(git_dir: Path, rev: str, path: str, recursive: bool) -> tuple[str, str, list[TreeEntry]]:
    """(commit, tree sha, entries) of the directory ``path`` at ``rev``.

    Entry paths are from the repository's root. ``recursive`` lists the whole subtree,
    directories included.
    """
    commit = resolve_commit(git_dir, rev)
    path = check_path(path)
    obj = object_at(git_dir, commit, path)
    if obj.type != "tree":
        raise NotFoundError(f"{path!r} is not a directory at {commit}")
    args = ["-r", "-t", obj.sha] if recursive else [obj.sha]
    base = f"{path}/" if path else ""
    entries = [
        TreeEntry(base + e.path, e.type, e.mode, e.sha, e.size) for e in _ls_tree(git_dir, *args)
    ]
    return commit, obj.sha, entries


def blob_at(git_dir: Path, rev: str, path: str) -> ObjectInfo:
    """The file at ``path`` in ``rev``; 404 when it is not a file there."""
    commit = resolve_commit(git_dir, rev)
    path = check_path(path)
    if not path:
        raise NotFoundError("the root of a commit is not a file")
    obj = object_at(git_dir, commit, path)
    if obj.type != "blob":
        raise NotFoundError(f"{path!r} is not a file at {commit}")
    return obj


def stream_blob(git_dir: Path, sha: str) -> Iterator[bytes]:
    """The bytes of blob ``sha``, read from git in chunks (a large file is never held whole)."""
    proc = subprocess.Popen(
        [GIT, f"--git-dir={git_dir}", "cat-file", "blob", sha],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=git_env(),
    )
    assert proc.stdout is not None
    try:
        while chunk := proc.stdout.read(_CHUNK):
            yield chunk
    finally:
        proc.stdout.close()
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def file_set(
    git_dir: Path,
    rev: str,
    prefixes: list[str],
    *,
    max_files: int = MAX_FILES,
    max_bytes: int = MAX_FILES_BYTES,
) -> FileSet:
    """Every file whose path starts with one of ``prefixes`` (all files when none) at ``rev``."""
    commit = resolve_commit(git_dir, rev)
    wanted = sorted({check_prefix(p) for p in prefixes}) if prefixes else [""]
    # Narrow git's listing to the folders holding the prefixes; the exact string prefix
    # match ("src" also matches "src2/x") is done here.
    folders = sorted({p.rpartition("/")[0] for p in wanted})
    pathspecs = [] if "" in folders else ["--", *folders]
    chosen = [
        e for e in _ls_tree(git_dir, "-r", commit, *pathspecs)
        if e.type == "blob" and any(e.path.startswith(p) for p in wanted)
    ]
    if len(chosen) > max_files:
        raise InvalidRequestError(
            f"{len(chosen)} files under the prefixes, more than the limit of {max_files}"
        )
    total = sum(e.size or 0 for e in chosen)
    if total > max_bytes:
        raise InvalidRequestError(
            f"the files under the prefixes hold {total} bytes, more than the limit of {max_bytes}"
        )
    result = FileSet(sha=commit)
    if not chosen:
        return result
    out = run_git(git_dir, "cat-file", "--batch", input="".join(f"{e.sha}\n" for e in chosen).encode())
    pos = 0
    for entry in chosen:
        header_end = out.index(b"\n", pos)
        _sha, _type, size_text = out[pos:header_end].decode().split()
        start = header_end + 1
        end = start + int(size_text)
        result.files[entry.path] = base64.b64encode(out[start:end]).decode()
        pos = end + 1  # the newline after each object
    return result


def changed_paths(git_dir: Path, base: str, head: str) -> tuple[str, str, list[str]]:
    """(base sha, head sha, paths that differ); a zero ``base`` means every path of head."""
    head_sha = resolve_commit(git_dir, head)
    if base == ZERO_SHA:
        out = run_git(git_dir, "ls-tree", "-r", "-z", "--name-only", head_sha)
        base_sha = ZERO_SHA
    else:
        base_sha = resolve_commit(git_dir, base)
        out = run_git(git_dir, "diff-tree", "-r", "-z", "--name-only", "--no-renames", base_sha, head_sha)
    paths = [p.decode("utf-8", errors="replace") for p in out.split(b"\0") if p]
    return base_sha, head_sha, paths
