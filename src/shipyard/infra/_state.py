"""The local state backend: numbered version snapshots, a journal, and a lease.

A state folder (``<stack>/.shipyard/state`` unless the engine is told otherwise) holds::

    versions/00000041.json   one complete snapshot per committed version (last 100 kept)
    versions/00000042.json   the highest number is the current version
    journal                  changes made since the current version (absent when none)
    lease.json               who holds the lease; lease.lock is the flock guarding it

A :class:`LocalSession` records each change as a journal record made durable before
``put`` returns, so a change costs one small write and one ``fdatasync`` (shared by
threads that record at the same time) whatever the size of the state. ``commit`` writes
the whole state as the next numbered version (temporary file, fsync, link into place,
fsync of the folder) and then drops the journal. Reading loads the current version and
replays the journal over it. A session that finds a journal left by an operation that
died replays it and commits it at once as a version of its own ("apply (recovered)").
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path

from shipyard.errors import LockedError, StateError
from shipyard.infra._crypto import Keyring
from shipyard.infra._lock import LeaseFile, LockInfo, default_owner
from shipyard.infra._state_codec import (
    Corrupt,
    decode_outputs,
    decode_resource,
    decode_snapshot,
    encode_snapshot,
    read_header,
)
from shipyard.infra._state_journal import JournalContents, fsync_dir, parse_journal
from shipyard.infra._state_model import (
    Backend,
    OutputState,
    ResourceState,
    Session,
    State,
    Version,
)
from shipyard.infra._state_session import LocalSession

__all__ = [
    "KEEP_VERSIONS",
    "Backend",
    "LocalBackend",
    "LocalSession",
    "LockInfo",
    "LockedError",
    "OutputState",
    "ResourceState",
    "Session",
    "State",
    "StateError",
    "Version",
    "default_owner",
]

KEEP_VERSIONS = 100
VERSIONS = "versions"
JOURNAL = "journal"
_VERSION_NAME = re.compile(r"^(\d{8,})\.json$")
_RETRIES = 8  # re-reads when a commit races a reader


class _JournalDamaged(StateError):
    """The journal cannot be replayed; a session keeps it aside and may restore."""


def _now() -> str:
    return datetime.now(UTC).isoformat()


class LocalBackend(Backend):
    """States in a folder on this machine; see the module docstring for the layout.

    ``key``/``key_file`` give the key of the sensitive values (``SHIPYARD_INFRA_KEY``
    wins over both); ``lease_ttl`` is how long a lease lives without being renewed;
    ``keep_versions`` how many versions are kept (the oldest are deleted on commit).
    """

    def __init__(
        self,
        dir: Path,
        *,
        key: bytes | None = None,
        key_file: Path | None = None,
        lease_ttl: float = 30.0,
        keep_versions: int = KEEP_VERSIONS,
    ) -> None:
        if keep_versions < 1:
            raise ValueError("keep_versions must be at least 1")
        self.dir = Path(dir)
        self.keep_versions = keep_versions
        self.keyring = Keyring(key=key, key_file=key_file)
        self.lease = LeaseFile(self.dir, lease_ttl)
        self.versions_dir = self.dir / VERSIONS
        self.journal_path = self.dir / JOURNAL

    # ------------------------------------------------------------ reading

    def serials(self) -> list[int]:
        """The numbers of the stored versions, ascending."""
        try:
            names = os.listdir(self.versions_dir)
        except FileNotFoundError:
            return []
        return sorted(int(m.group(1)) for n in names if (m := _VERSION_NAME.match(n)))

    def version_path(self, serial: int) -> Path:
        return self.versions_dir / f"{serial:08d}.json"

    def _restore_hint(self, before: int) -> str:
        earlier = [s for s in self.serials() if s < before]
        which = f" (the previous one is {earlier[-1]})" if earlier else ""
        return (
            "Restore an earlier version: `shipyard infra state versions` lists them and "
            f"`shipyard infra state restore N` makes one current{which}"
        )

    def _load_version(self, serial: int) -> State:
        """Version ``serial``; FileNotFoundError if it is gone, StateError if damaged."""
        path = self.version_path(serial)
        data = path.read_bytes()
        try:
            _, state = decode_snapshot(data, self.keyring.cipher, str(path))
        except Corrupt as e:
            raise StateError(
                f"the state version file {path} is damaged: {e}. {self._restore_hint(serial)}"
            ) from None
        if state.serial != serial:
            raise StateError(
                f"the state version file {path} says it is version {state.serial}. "
                f"{self._restore_hint(serial)}"
            )
        return state

    def _journal_damaged(self, detail: str, base: int) -> _JournalDamaged:
        if base:
            how = (
                f"To go on from version {base}, run `shipyard infra state restore {base}`: "
                "the damaged journal is then kept beside it as journal.damaged-<time>, and "
                f"resources created or changed since version {base} must be brought back "
                "with `shipyard infra import`"
            )
        else:
            how = (
                f"Move {self.journal_path} aside to start from an empty state, then bring "
                "the resources back with `shipyard infra import`"
            )
        return _JournalDamaged(
            f"the state journal {self.journal_path} is damaged: {detail}; the changes "
            f"recorded since version {base} cannot be replayed. {how}"
        )

    def _read_journal(self, latest: int) -> JournalContents | None:
        try:
            data = self.journal_path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            return parse_journal(data)
        except Corrupt as e:
            raise self._journal_damaged(str(e), latest) from None

    def load(self) -> tuple[State, JournalContents | None, str]:
        """The current state, the journal replayed, and what the journal was.

        The status is ``absent``, ``stale`` (already in a version), ``empty`` (no
        changes) or ``replayed``. A commit racing this read is detected by listing the
        versions again, and the read is retried.
        """
        for attempt in range(_RETRIES):
            serials = self.serials()
            latest = serials[-1] if serials else 0
            try:
                state = self._load_version(latest) if latest else State()
            except FileNotFoundError:
                continue
            journal = self._read_journal(latest)
            now = self.serials()
            if (now[-1] if now else 0) != latest:
                continue
            if journal is None:
                return state, None, "absent"
            base = journal.begin["base"]
            if base < latest:
                return state, journal, "stale"
            if base > latest:
                if attempt < _RETRIES - 1:
                    continue
                raise StateError(
                    f"the state journal {self.journal_path} continues version {base}, which "
                    f"is missing from {self.versions_dir}. {self._restore_hint(base)}"
                )
            lineage = journal.begin["lineage"]
            if lineage and state.lineage and lineage != state.lineage:
                raise self._journal_damaged("it belongs to another state (lineage)", latest)
            if not journal.records:
                return state, journal, "empty"
            self._replay(state, journal, latest)
            if not state.lineage:
                state.lineage = lineage
            return state, journal, "replayed"
        raise StateError(f"the state in {self.dir} kept changing while being read; try again")

    def _replay(self, state: State, journal: JournalContents, base: int) -> None:
        where = str(self.journal_path)
        cipher = self.keyring.cipher
        for rec in journal.records:
            op = rec["op"]
            try:
                if op == "put":
                    rs = decode_resource(rec.get("r"), cipher, where)
                    state.resources[rs.address] = rs
                elif op == "rm":
                    address = rec.get("a")
                    if not isinstance(address, str):
                        raise Corrupt("an rm record has no address")
                    state.resources.pop(address, None)
                elif op == "outputs":
                    state.outputs = decode_outputs(rec.get("o"), cipher, where)
                elif op == "restore":
                    serial = rec.get("serial")
                    if not isinstance(serial, int):
                        raise Corrupt("a restore record has no serial")
                    try:
                        version = self._load_version(serial)
                    except FileNotFoundError:
                        raise Corrupt(f"it restores version {serial}, which is gone") from None
                    state.resources, state.outputs = version.resources, version.outputs
                else:
                    raise Corrupt(f"it has a record of unknown kind {op!r}")
            except Corrupt as e:
                raise self._journal_damaged(str(e), base) from None

    def read(self) -> State:
        return self.load()[0]

    def versions(self) -> list[Version]:
        out: list[Version] = []
        for serial in self.serials():
            path = self.version_path(serial)
            try:
                with open(path, "rb") as f:
                    head = f.read(4096)
                    if head.count(b"\n") < 2:
                        head += f.read()
                    stat = os.fstat(f.fileno())
            except FileNotFoundError:
                continue
            try:
                h = read_header(head)
                out.append(
                    Version(
                        serial=serial,
                        time=datetime.fromisoformat(h["time"]),
                        operation=h["operation"],
                        resources=int(h.get("resources", 0)),
                        size=stat.st_size,
                        owner=str(h.get("owner", "")),
                    )
                )
            except (Corrupt, ValueError, TypeError) as e:
                out.append(
                    Version(
                        serial=serial,
                        time=datetime.fromtimestamp(stat.st_mtime, UTC),
                        operation=f"(damaged: {e})",
                        resources=0,
                        size=stat.st_size,
                    )
                )
        return out

    def read_version(self, serial: int) -> State:
        try:
            return self._load_version(serial)
        except FileNotFoundError:
            serials = self.serials()
            kept = f"versions {serials[0]} to {serials[-1]} are" if serials else "no version is"
            raise StateError(
                f"version {serial} of the state is not stored ({kept} kept in {self.versions_dir})"
            ) from None

    def lock_info(self) -> LockInfo | None:
        return self.lease.info()

    def force_unlock(self) -> LockInfo | None:
        return self.lease.force_unlock()

    # ------------------------------------------------------------ writing

    def session(
        self,
        owner: str,
        operation: str,
        *,
        wait: float = 0.0,
        force_unlock: bool = False,
    ) -> LocalSession:
        lease = self.lease.acquire(owner, operation, wait=wait, force=force_unlock)
        try:
            return LocalSession(self, lease, operation)
        except BaseException:
            lease.release()
            raise

    def write_version(self, state: State, operation: str, owner: str) -> None:
        """Store ``state`` as the next version; sets its serial (and a new lineage)."""
        self.versions_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        serials = self.serials()
        serial = max(serials[-1] if serials else 0, state.serial) + 1
        lineage = state.lineage or os.urandom(16).hex()
        header = {
            "serial": serial,
            "lineage": lineage,
            "time": _now(),
            "operation": operation,
            "owner": owner,
        }
        data = encode_snapshot(state, header, self.keyring.cipher)
        path = self.version_path(serial)
        tmp = self.versions_dir / f".{serial:08d}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            # link, not rename: it fails rather than replace a version someone else wrote.
            os.link(tmp, path)
            fsync_dir(self.versions_dir)
        except FileExistsError:
            raise StateError(
                f"{path} appeared while this operation held the lease: another process "
                "wrote the state; nothing was overwritten"
            ) from None
        except OSError as e:
            raise StateError(f"cannot write the state version {path}: {e}") from e
        finally:
            tmp.unlink(missing_ok=True)
        state.serial, state.lineage = serial, lineage
        for old in [*serials, serial][: -self.keep_versions]:
            self.version_path(old).unlink(missing_ok=True)

    def retire_journal(self, *, keep_aside: bool) -> None:
        """Drop the journal once a version holds its changes (or keep a damaged one)."""
        try:
            if keep_aside:
                os.replace(self.journal_path, self.damaged_journal_path())
            else:
                self.journal_path.unlink()
        except FileNotFoundError:
            pass

    def damaged_journal_path(self) -> Path:
        """Where a journal that could not be replayed is kept for inspection."""
        return self.dir / f"journal.damaged-{datetime.now(UTC):%Y%m%dT%H%M%S.%f}"

    def remove_temporaries(self) -> None:
        """Delete temporary files a killed writer left (only while holding the lease)."""
        for folder in (self.dir, self.versions_dir):
            try:
                names = os.listdir(folder)
            except FileNotFoundError:
                continue
            for name in names:
                if name.startswith(".") and name.endswith(".tmp") and "lease" not in name:
                    (folder / name).unlink(missing_ok=True)
