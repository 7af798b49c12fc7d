"""What the ``file`` and ``template`` types share: a local file with a mode and an owner.

:class:`LocalFile` implements the five operations for a file whose bytes a subclass
computes (copied text, a copied source file, a rendered template). Writes are atomic: the
bytes go to a temporary file in the same folder, which gets its owner and mode and is
flushed to disk before it is renamed over the target, so a reader never sees a half
written file or one with the wrong permissions.

Drift is found by hashing the file on every read: the derived ``content_sha256``
property holds the digest of what the file should contain (computed by ``prepare`` from
the inputs, so an edited source or template shows in the plan), and ``read`` reports the
digest of what it does contain. ``mode`` and ``owner`` are compared the same way.
"""

from __future__ import annotations

import contextlib
import grp
import hashlib
import os
import pwd
import re
import stat
import tempfile
from abc import abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from shipyard.infra.provider import (
    REQUIRED,
    Attribute,
    Context,
    Created,
    Observed,
    Property,
    ProviderError,
    ResourceType,
)

__all__ = [
    "FILE_ATTRIBUTES",
    "FILE_PROPERTIES",
    "TEXT_LIMIT",
    "LocalFile",
    "Owner",
    "parse_mode",
    "parse_owner",
    "resolve",
    "sha256",
]

# Files up to this size are read whole, so that a changed text can be shown in a diff.
TEXT_LIMIT: Final = 1 << 20

_MODE = re.compile(r"[0-7]{3,4}")

FILE_PROPERTIES: Final[dict[str, Property]] = {
    "path": Property(
        type="string",
        default=REQUIRED,
        replace=True,
        description="Where the file is, relative to the stack's folder (or absolute); "
        "missing parent folders are created.",
    ),
    "mode": Property(
        type="string",
        default="0644",
        description='Permissions as octal digits, e.g. "0644", "0600", "0755".',
    ),
    "owner": Property(
        type="string",
        description='"user", "user:group" or ":group", by name or number; unset: new '
        "files belong to the user applying the stack and updates keep the owner.",
    ),
    "content_sha256": Property(
        type="string",
        derived=True,
        description="The sha256 of the bytes the file should hold (computed).",
    ),
}

FILE_ATTRIBUTES: Final[dict[str, Attribute]] = {
    "sha256": Attribute(description="The sha256 (hex) of the file's bytes."),
    "size": Attribute(type="integer", description="The size of the file in bytes."),
    "absolute_path": Attribute(description="The absolute path of the file.", stable=True),
}


def resolve(ctx: Context, path: str) -> Path:
    """``path`` made absolute against the stack's folder (a no-op for absolute paths)."""
    return Path(os.path.abspath(ctx.stack_dir / path))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def parse_mode(text: str) -> int:
    """The permission bits of ``"0644"``; ValueError with a message when it is not one."""
    if not _MODE.fullmatch(text):
        raise ValueError(f'must be 3 or 4 octal digits such as "0644", not {text!r}')
    return int(text, 8)


def _format_mode(bits: int) -> str:
    return f"{bits:04o}"


@dataclass(frozen=True, slots=True)
class Owner:
    """A parsed ``owner``: the ids to set, None for a part left alone.

    ``names`` records whether the user and the group were written as names, so that an
    observed owner can be reported in the same spelling.
    """

    uid: int | None
    gid: int | None
    names: tuple[bool, bool] = (True, True)


def _lookup(kind: str, name: str) -> int:
    if name.isdigit():
        return int(name)
    try:
        return pwd.getpwnam(name).pw_uid if kind == "user" else grp.getgrnam(name).gr_gid
    except KeyError:
        raise ValueError(f"there is no {kind} named {name!r} on this machine") from None


def parse_owner(text: str) -> Owner:
    """Resolve ``"user"``, ``"user:group"`` or ``":group"``; ValueError when impossible."""
    user, sep, group = text.partition(":")
    if (not user and not group) or (sep and not group):
        raise ValueError(f'must be "user", "user:group" or ":group", not {text!r}')
    uid = _lookup("user", user) if user else None
    gid = _lookup("group", group) if group else None
    return Owner(uid, gid, (not user.isdigit(), not group.isdigit()))


def _name(kind: str, number: int, by_name: bool) -> str:
    if by_name:
        try:
            if kind == "user":
                return pwd.getpwuid(number).pw_name
            return grp.getgrgid(number).gr_name
        except KeyError:
            pass  # an id with no name on this machine: the number it is
    return str(number)


def _format_owner(owner: Owner, uid: int, gid: int) -> str:
    """The actual owner, spelled like the desired one (names or numbers, group or not)."""
    user = _name("user", uid, owner.names[0]) if owner.uid is not None else ""
    if owner.gid is None:
        return user
    return f"{user}:{_name('group', gid, owner.names[1])}"


def _owner_matches(owner: Owner, st: os.stat_result) -> bool:
    return (owner.uid is None or owner.uid == st.st_uid) and (
        owner.gid is None or owner.gid == st.st_gid
    )


def _ids(owner: str | None) -> Owner | None:
    if owner is None:
        return None
    try:
        return parse_owner(owner)
    except ValueError as error:
        raise ProviderError(f"owner {error}") from None


def _mode(properties: Mapping[str, Any]) -> int:
    try:
        return parse_mode(str(properties.get("mode") or "0644"))
    except ValueError as error:
        raise ProviderError(f"mode {error}") from None


def _write(target: Path, data: bytes, mode: int, owner: Owner | None) -> None:
    """Replace ``target`` atomically by a file holding ``data`` with this mode and owner.

    Without an owner, an existing file's owner is kept (when we are allowed to).
    """
    parent = target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=parent)
    except OSError as error:
        raise ProviderError(f"cannot write {target}: {error.strerror or error}") from None
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            uid, gid = -1, -1
            if owner is not None:
                uid = -1 if owner.uid is None else owner.uid
                gid = -1 if owner.gid is None else owner.gid
            else:
                try:
                    st = os.lstat(target)
                    uid, gid = st.st_uid, st.st_gid
                except OSError:
                    pass
            if (uid, gid) != (-1, -1):
                try:
                    os.fchown(out.fileno(), uid, gid)
                except PermissionError:
                    if owner is not None:
                        raise
            # After the chown, which clears set-id bits.
            os.fchmod(out.fileno(), mode)
            os.fsync(out.fileno())
        os.replace(temp, target)
    except OSError as error:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        reason = error.strerror or str(error)
        if isinstance(error, IsADirectoryError):
            reason = "it is a folder"
        raise ProviderError(f"cannot write {target}: {reason}") from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


@dataclass(frozen=True, slots=True)
class _Seen:
    """What is at a path: its lstat, and for a regular file its digest and small bytes.

    ``problem`` says what is wrong when something other than a regular file is there.
    """

    st: os.stat_result
    digest: str | None
    data: bytes | None
    problem: str | None = None


def _kind(st: os.stat_result) -> str:
    if stat.S_ISDIR(st.st_mode):
        return "a folder"
    if stat.S_ISLNK(st.st_mode):
        return "a symbolic link"
    return "not a regular file"


def _look(target: Path) -> _Seen | None:
    """What is at ``target``, None if nothing; ProviderError if it cannot be read."""
    try:
        fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as error:
        try:
            st = os.lstat(target)
        except OSError:
            st = None
        if st is not None and not stat.S_ISREG(st.st_mode):
            return _Seen(st, None, None, f"{target} is {_kind(st)}")
        raise ProviderError(f"cannot read {target}: {error.strerror or error}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        return _Seen(st, None, None, f"{target} is {_kind(st)}")
    with os.fdopen(fd, "rb") as file:
        try:
            if st.st_size <= TEXT_LIMIT:
                data = file.read()
                return _Seen(st, sha256(data), data)
            return _Seen(st, hashlib.file_digest(file, "sha256").hexdigest(), None)
        except OSError as error:
            raise ProviderError(f"cannot read {target}: {error.strerror or error}") from None


class LocalFile(ResourceType):
    """A file on this machine whose bytes :meth:`content` computes from the properties.

    The id is the file's absolute path (an imported id may be relative: it is resolved
    against the stack's folder like ``path``).
    """

    @abstractmethod
    def content(self, ctx: Context, properties: Mapping[str, Any]) -> bytes:
        """The bytes the file should hold; ProviderError when they cannot be made."""

    def observe_content(
        self, properties: Mapping[str, Any], data: bytes | None, changed: bool
    ) -> dict[str, Any]:
        """Properties a subclass can observe from the file's bytes (None when large)."""
        return {}

    def extra_attributes(
        self, ctx: Context, properties: Mapping[str, Any], data: bytes
    ) -> dict[str, Any]:
        """Attributes beyond sha256, size and absolute_path."""
        return {}

    def validate_file(self, properties: Mapping[str, Any]) -> list[tuple[str, str]]:
        """Problems with ``path``, ``mode`` and ``owner``."""
        problems: list[tuple[str, str]] = []
        path = properties.get("path")
        if isinstance(path, str) and (not path or path.endswith("/")):
            problems.append(("path", "must name a file"))
        mode = properties.get("mode")
        if isinstance(mode, str):
            try:
                parse_mode(mode)
            except ValueError as error:
                problems.append(("mode", str(error)))
        owner = properties.get("owner")
        if isinstance(owner, str):
            try:
                parse_owner(owner)
            except ValueError as error:
                problems.append(("owner", str(error)))
        return problems

    def validate(self, properties: Mapping[str, Any]) -> list[tuple[str, str]]:
        return self.validate_file(properties)

    def prepare(self, ctx: Context, properties: Mapping[str, Any]) -> dict[str, Any]:
        prepared = dict(properties)
        prepared["content_sha256"] = sha256(self.content(ctx, properties))
        mode = properties.get("mode")
        if isinstance(mode, str) and _MODE.fullmatch(mode):
            prepared["mode"] = _format_mode(int(mode, 8))  # "644" and "0644" are one mode
        return prepared

    def _attributes(
        self, ctx: Context, properties: Mapping[str, Any], target: Path, data: bytes
    ) -> dict[str, Any]:
        attributes: dict[str, Any] = {
            "sha256": sha256(data),
            "size": len(data),
            "absolute_path": str(target),
        }
        attributes.update(self.extra_attributes(ctx, properties, data))
        return attributes

    def create(self, ctx: Context, properties: Mapping[str, Any]) -> Created:
        target = resolve(ctx, str(properties["path"]))
        data = self.content(ctx, properties)
        _write(target, data, _mode(properties), _ids(properties.get("owner")))
        return Created(str(target), self._attributes(ctx, properties, target, data))

    def read(
        self,
        ctx: Context,
        id: str,
        properties: Mapping[str, Any],
        attributes: Mapping[str, Any],
    ) -> Observed | None:
        target = resolve(ctx, id)
        seen = _look(target)
        if seen is None:
            return None
        observed = dict(properties)
        current: dict[str, Any] = dict(attributes)
        if seen.problem is not None:
            observed["content_sha256"] = None
            observed.update(self.observe_content(properties, None, True))
            note = f"{seen.problem}, not the file this resource wrote"
            return Observed(observed, current, (note,))
        notes: list[str] = []
        # Before prepare ever ran (an input was unknown at plan time) the state has no
        # content_sha256; the digest recorded at the last write stands in for it.
        expected = properties.get("content_sha256") or attributes.get("sha256")
        changed = seen.digest != expected
        if changed:
            observed["content_sha256"] = seen.digest
            notes.append(f"{target} was changed outside the stack (now sha256 {seen.digest})")
        observed.update(self.observe_content(properties, seen.data, changed))
        bits = stat.S_IMODE(seen.st.st_mode)
        mode = properties.get("mode")
        if not (isinstance(mode, str) and _MODE.fullmatch(mode) and int(mode, 8) == bits):
            observed["mode"] = _format_mode(bits)
            notes.append(f"{target} has mode {_format_mode(bits)}, not {mode}")
        spec = properties.get("owner")
        try:
            owner = parse_owner(spec) if isinstance(spec, str) else None
        except ValueError:
            owner = None  # a user deleted since: nothing to compare with
        if owner is not None and not _owner_matches(owner, seen.st):
            actual = _format_owner(owner, seen.st.st_uid, seen.st.st_gid)
            observed["owner"] = actual
            notes.append(f"{target} is owned by {actual}, not {spec}")
        current.update(sha256=seen.digest, size=seen.st.st_size, absolute_path=str(target))
        return Observed(observed, current, tuple(notes))

    def update(
        self,
        ctx: Context,
        id: str,
        prior: Mapping[str, Any],
        properties: Mapping[str, Any],
        attributes: Mapping[str, Any],
    ) -> dict[str, Any]:
        target = resolve(ctx, id)
        data = self.content(ctx, properties)
        mode = _mode(properties)
        owner = _ids(properties.get("owner"))
        seen = _look(target)
        if seen is None or seen.digest != sha256(data):
            _write(target, data, mode, owner)
        else:
            # Same bytes: fix the owner and the mode in place rather than rewriting.
            try:
                if owner is not None and not _owner_matches(owner, seen.st):
                    os.chown(
                        target,
                        -1 if owner.uid is None else owner.uid,
                        -1 if owner.gid is None else owner.gid,
                        follow_symlinks=False,
                    )
                if stat.S_IMODE(os.stat(target).st_mode) != mode:
                    os.chmod(target, mode)
            except OSError as error:
                raise ProviderError(f"cannot change {target}: {error.strerror or error}") from None
        return self._attributes(ctx, properties, target, data)

    def delete(
        self,
        ctx: Context,
        id: str,
        properties: Mapping[str, Any],
        attributes: Mapping[str, Any],
    ) -> None:
        target = resolve(ctx, id)
        try:
            os.unlink(target)
        except FileNotFoundError:
            return
        except IsADirectoryError:
            raise ProviderError(
                f"{target} is now a folder, not the file this resource wrote; "
                "remove it by hand or `state rm` the resource"
            ) from None
        except OSError as error:
            raise ProviderError(f"cannot remove {target}: {error.strerror or error}") from None

    def import_(self, ctx: Context, id: str) -> Observed:
        target = resolve(ctx, id)
        seen = _look(target)
        if seen is None:
            raise ProviderError(f"cannot import {id!r}: there is no file {target}")
        if seen.problem is not None or seen.digest is None:
            raise ProviderError(f"cannot import {id!r}: {seen.problem}")
        # The owner is left out: the stack's owner (or none) is taken as it is, and the
        # next refresh compares it with the file.
        properties: dict[str, Any] = {
            "path": id,
            "mode": _format_mode(stat.S_IMODE(seen.st.st_mode)),
            "content_sha256": seen.digest,
        }
        attributes: dict[str, Any] = {
            "sha256": seen.digest,
            "size": seen.st.st_size,
            "absolute_path": str(target),
        }
        if seen.data is not None:
            attributes.update(self.extra_attributes(ctx, properties, seen.data))
        return Observed(properties, attributes)
