"""The file provider, against real files, modes and owners (the tests run as root)."""

from __future__ import annotations

import grp
import hashlib
import os
import pwd
import stat
from pathlib import Path
from typing import Any

import pytest

from shipyard.errors import ProviderError
from shipyard.infra._registry import Registry
from shipyard.infra._types import parse_type
from shipyard.infra.provider import REQUIRED, Context, Created, Observed
from shipyard.infra.providers.file import File, FileProvider

FILE = File()
NOBODY = pwd.getpwnam("nobody").pw_uid
NOGROUP = grp.getgrnam("nogroup").gr_gid


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    stack = tmp_path / "stack"
    stack.mkdir()
    return Context(config={}, stack_dir=stack, data_dir=tmp_path / "data")


def props(**values: Any) -> dict[str, Any]:
    """Every property, as the engine passes them: defaults filled in."""
    full = {k: p.default for k, p in FILE.properties.items() if p.default is not REQUIRED}
    full.update(values)
    return full


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def apply(ctx: Context, values: dict[str, Any]) -> tuple[Created, dict[str, Any]]:
    """Prepare then create, as the engine does; the properties the state would record."""
    prepared = FILE.prepare(ctx, values)
    return FILE.create(ctx, prepared), prepared


def refresh(ctx: Context, created: Created, state: dict[str, Any]) -> Observed | None:
    return FILE.read(ctx, created.id, state, created.attributes)


def leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


class TestSchema:
    def test_registered_under_its_type_name(self) -> None:
        """`file` resolves through the registry to this type."""
        assert isinstance(Registry.default().resource_type("file"), File)
        assert FileProvider.resource_types == (File,)

    def test_schema(self) -> None:
        """Types parse; path replaces; sensitive_content is sensitive; the digest is derived."""
        for prop in FILE.properties.values():
            parse_type(prop.type)
        assert FILE.properties["path"].replace
        assert FILE.properties["path"].required
        assert FILE.properties["sensitive_content"].sensitive
        assert FILE.properties["content_sha256"].derived
        assert FILE.attributes["absolute_path"].stable


class TestCreate:
    def test_writes_content_with_default_mode(self, ctx: Context) -> None:
        """content is written as UTF-8 in missing parent folders with mode 0644."""
        created, state = apply(ctx, props(path="conf/app.ini", content="port = 80\nname = é\n"))
        target = ctx.stack_dir / "conf" / "app.ini"
        data = "port = 80\nname = é\n".encode()
        assert target.read_bytes() == data
        assert stat.S_IMODE(target.stat().st_mode) == 0o644
        assert created.id == str(target)
        assert created.attributes == {
            "sha256": sha(data),
            "size": len(data),
            "absolute_path": str(target),
        }
        assert state["content_sha256"] == sha(data)
        assert leftovers(target.parent) == []

    def test_mode_and_owner_by_name(self, ctx: Context) -> None:
        """mode and a user:group owner given by name are applied."""
        apply(ctx, props(path="secret", content="s", mode="0600", owner="nobody:nogroup"))
        st = (ctx.stack_dir / "secret").stat()
        assert stat.S_IMODE(st.st_mode) == 0o600
        assert (st.st_uid, st.st_gid) == (NOBODY, NOGROUP)

    def test_owner_by_number_sets_only_the_user(self, ctx: Context) -> None:
        """A lone numeric user changes the user and leaves the group."""
        apply(ctx, props(path="f", content="", owner=str(NOBODY)))
        st = (ctx.stack_dir / "f").stat()
        assert (st.st_uid, st.st_gid) == (NOBODY, os.getgid())
        assert st.st_size == 0

    def test_group_only_owner(self, ctx: Context) -> None:
        """`:group` changes the group only."""
        apply(ctx, props(path="f", content="x", owner=":nogroup"))
        st = (ctx.stack_dir / "f").stat()
        assert (st.st_uid, st.st_gid) == (os.getuid(), NOGROUP)

    def test_setuid_mode_survives_the_chown(self, ctx: Context) -> None:
        """The mode is set after the owner, which would otherwise clear set-id bits."""
        apply(ctx, props(path="tool", content="#!/bin/sh\n", mode="4755", owner="nobody"))
        assert stat.S_IMODE((ctx.stack_dir / "tool").stat().st_mode) == 0o4755

    def test_source_is_copied_byte_for_byte(self, ctx: Context) -> None:
        """source copies a file, binary included; its digest is the derived property."""
        data = bytes(range(256)) * 10
        (ctx.stack_dir / "blob.bin").write_bytes(data)
        created, state = apply(ctx, props(path="out/copy.bin", source="blob.bin"))
        assert (ctx.stack_dir / "out" / "copy.bin").read_bytes() == data
        assert state["content_sha256"] == sha(data) == created.attributes["sha256"]

    def test_absolute_path(self, ctx: Context, tmp_path: Path) -> None:
        """An absolute path is used as it is."""
        target = tmp_path / "elsewhere" / "abs.txt"
        created, _ = apply(ctx, props(path=str(target), content="a"))
        assert created.id == str(target)
        assert target.read_text() == "a"

    def test_sensitive_content(self, ctx: Context) -> None:
        """sensitive_content is written like content."""
        apply(ctx, props(path="token", sensitive_content="s3cret", mode="0400"))
        assert (ctx.stack_dir / "token").read_text() == "s3cret"

    def test_overwrites_an_existing_file(self, ctx: Context) -> None:
        """A file already at the path is replaced, as Terraform's local_file does."""
        (ctx.stack_dir / "f").write_text("old")
        apply(ctx, props(path="f", content="new"))
        assert (ctx.stack_dir / "f").read_text() == "new"

    def test_missing_source_is_an_error(self, ctx: Context) -> None:
        """prepare (plan time) names the missing source file."""
        with pytest.raises(ProviderError, match=r"source .*nope\.txt does not exist"):
            FILE.prepare(ctx, props(path="f", source="nope.txt"))

    def test_a_folder_in_the_way_is_an_error(self, ctx: Context) -> None:
        """Writing where a folder is fails with a message, leaving no temporary file."""
        (ctx.stack_dir / "d").mkdir()
        with pytest.raises(ProviderError, match=r"cannot write .*/d: it is a folder"):
            apply(ctx, props(path="d", content="x"))
        assert leftovers(ctx.stack_dir) == []

    def test_a_file_as_parent_folder_is_an_error(self, ctx: Context) -> None:
        """A parent that is a file cannot hold the file."""
        (ctx.stack_dir / "p").write_text("")
        with pytest.raises(ProviderError, match="cannot write"):
            apply(ctx, props(path="p/f", content="x"))


class TestPrepare:
    def test_source_edit_changes_the_digest(self, ctx: Context) -> None:
        """Editing the source changes content_sha256, so the plan shows a change."""
        source = ctx.stack_dir / "src.txt"
        source.write_text("one")
        first = FILE.prepare(ctx, props(path="f", source="src.txt"))["content_sha256"]
        source.write_text("two")
        second = FILE.prepare(ctx, props(path="f", source="src.txt"))["content_sha256"]
        assert first == sha(b"one") and second == sha(b"two")

    def test_mode_is_written_in_four_digits(self, ctx: Context) -> None:
        """ "644" and "0644" are the same mode, so both prepare to "0644"."""
        assert FILE.prepare(ctx, props(path="f", content="", mode="644"))["mode"] == "0644"


class TestRead:
    def test_unchanged_file_reports_the_state(self, ctx: Context) -> None:
        """An untouched file: the observed properties are the state's, with no notes."""
        created, state = apply(
            ctx, props(path="f", content="x", mode="0640", owner="nobody:nogroup")
        )
        observed = refresh(ctx, created, state)
        assert observed is not None
        assert observed.properties == state
        assert observed.attributes == created.attributes
        assert observed.notes == ()

    def test_edited_file_shows_its_new_text(self, ctx: Context) -> None:
        """An edit by hand is reported as the new content and digest, with a note."""
        created, state = apply(ctx, props(path="f", content="port = 80\n"))
        (ctx.stack_dir / "f").write_text("port = 81\n")
        observed = refresh(ctx, created, state)
        assert observed is not None
        assert observed.properties["content"] == "port = 81\n"
        assert observed.properties["content_sha256"] == sha(b"port = 81\n")
        assert observed.attributes["sha256"] == sha(b"port = 81\n")
        assert observed.attributes["size"] == 10
        assert "changed outside the stack" in observed.notes[0]

    def test_edited_sensitive_content_is_reported_under_its_name(self, ctx: Context) -> None:
        """The new text is reported as sensitive_content, which the engine masks."""
        created, state = apply(ctx, props(path="f", sensitive_content="a"))
        (ctx.stack_dir / "f").write_text("b")
        observed = refresh(ctx, created, state)
        assert observed is not None
        assert observed.properties["sensitive_content"] == "b"
        assert observed.properties["content"] is None

    def test_edited_copy_shows_as_digest(self, ctx: Context) -> None:
        """A copied source cannot be shown as text: the digest tells the change."""
        (ctx.stack_dir / "src").write_text("one")
        created, state = apply(ctx, props(path="f", source="src"))
        (ctx.stack_dir / "f").write_text("two")
        observed = refresh(ctx, created, state)
        assert observed is not None
        assert observed.properties["source"] == "src"
        assert observed.properties["content_sha256"] == sha(b"two")

    def test_large_or_binary_edits_show_as_digest_only(self, ctx: Context) -> None:
        """Over 1 MiB, or not UTF-8, the content is left out and the digest differs."""
        created, state = apply(ctx, props(path="f", content="small"))
        big = b"x" * ((1 << 20) + 1)
        (ctx.stack_dir / "f").write_bytes(big)
        observed = refresh(ctx, created, state)
        assert observed is not None
        assert observed.properties["content"] == "small"
        assert observed.properties["content_sha256"] == sha(big)
        (ctx.stack_dir / "f").write_bytes(b"\xff\xfe")
        observed = refresh(ctx, created, state)
        assert observed is not None
        assert observed.properties["content"] == "small"
        assert observed.properties["content_sha256"] == sha(b"\xff\xfe")

    def test_changed_mode_is_reported(self, ctx: Context) -> None:
        """chmod by hand shows as the new mode in four digits."""
        created, state = apply(ctx, props(path="f", content="x"))
        os.chmod(ctx.stack_dir / "f", 0o600)
        observed = refresh(ctx, created, state)
        assert observed is not None
        assert observed.properties["mode"] == "0600"
        assert observed.properties["content_sha256"] == state["content_sha256"]
        assert any("mode 0600" in note for note in observed.notes)

    def test_changed_owner_is_reported_in_the_same_spelling(self, ctx: Context) -> None:
        """chown by hand shows as names when the stack used names, numbers otherwise."""
        created, state = apply(ctx, props(path="f", content="x", owner="nobody:nogroup"))
        os.chown(ctx.stack_dir / "f", 0, 0)
        observed = refresh(ctx, created, state)
        assert observed is not None
        assert observed.properties["owner"] == "root:root"
        created, state = apply(ctx, props(path="g", content="x", owner=str(NOBODY)))
        os.chown(ctx.stack_dir / "g", 0, NOGROUP)
        observed = refresh(ctx, created, state)
        assert observed is not None
        assert observed.properties["owner"] == "0"

    def test_unmanaged_owner_is_never_drift(self, ctx: Context) -> None:
        """Without owner, a chown is not reported."""
        created, state = apply(ctx, props(path="f", content="x"))
        os.chown(ctx.stack_dir / "f", NOBODY, NOGROUP)
        observed = refresh(ctx, created, state)
        assert observed is not None
        assert observed.properties == state

    def test_group_change_is_not_drift_when_only_the_user_is_managed(self, ctx: Context) -> None:
        """owner "nobody" manages the user only."""
        created, state = apply(ctx, props(path="f", content="x", owner="nobody"))
        os.chown(ctx.stack_dir / "f", NOBODY, NOGROUP)
        observed = refresh(ctx, created, state)
        assert observed is not None
        assert observed.properties == state

    def test_deleted_file_is_gone(self, ctx: Context) -> None:
        """A file removed by hand reads as None."""
        created, state = apply(ctx, props(path="f", content="x"))
        (ctx.stack_dir / "f").unlink()
        assert refresh(ctx, created, state) is None

    def test_folder_in_its_place_is_drift(self, ctx: Context) -> None:
        """A folder where the file was is reported (not an error) with a note."""
        created, state = apply(ctx, props(path="f", content="x"))
        (ctx.stack_dir / "f").unlink()
        (ctx.stack_dir / "f").mkdir()
        observed = refresh(ctx, created, state)
        assert observed is not None
        assert observed.properties["content_sha256"] is None
        assert "is a folder" in observed.notes[0]

    def test_symlink_in_its_place_is_drift(self, ctx: Context) -> None:
        """A symbolic link is not followed: it is reported as not the file."""
        created, state = apply(ctx, props(path="f", content="x"))
        (ctx.stack_dir / "other").write_text("x")
        (ctx.stack_dir / "f").unlink()
        (ctx.stack_dir / "f").symlink_to("other")
        observed = refresh(ctx, created, state)
        assert observed is not None
        assert "symbolic link" in observed.notes[0]

    def test_state_without_digest_compares_with_the_recorded_sha(self, ctx: Context) -> None:
        """If prepare never ran (an input was unknown at plan time), no false drift."""
        values = props(path="f", content="x")
        created = FILE.create(ctx, values)
        observed = refresh(ctx, created, values)
        assert observed is not None
        assert observed.properties == values


class TestUpdate:
    def test_content_change_rewrites_atomically(self, ctx: Context) -> None:
        """New content replaces the file by rename (a new inode), with no temporary left."""
        created, state = apply(ctx, props(path="f", content="one"))
        inode = (ctx.stack_dir / "f").stat().st_ino
        desired = FILE.prepare(ctx, props(path="f", content="two"))
        attributes = FILE.update(ctx, created.id, state, desired, created.attributes)
        assert (ctx.stack_dir / "f").read_text() == "two"
        assert (ctx.stack_dir / "f").stat().st_ino != inode
        assert attributes["sha256"] == sha(b"two")
        assert leftovers(ctx.stack_dir) == []

    def test_mode_and_owner_change_in_place(self, ctx: Context) -> None:
        """Same bytes: chmod and chown the file rather than rewriting it."""
        created, state = apply(ctx, props(path="f", content="x"))
        inode = (ctx.stack_dir / "f").stat().st_ino
        desired = FILE.prepare(
            ctx, props(path="f", content="x", mode="0600", owner="nobody:nogroup")
        )
        FILE.update(ctx, created.id, state, desired, created.attributes)
        st = (ctx.stack_dir / "f").stat()
        assert st.st_ino == inode
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o600, NOBODY, NOGROUP)

    def test_drift_is_put_back(self, ctx: Context) -> None:
        """Updating to the state's own properties undoes an edit, a chmod and a chown."""
        created, state = apply(ctx, props(path="f", content="x", owner="root:root"))
        target = ctx.stack_dir / "f"
        target.write_text("edited")
        os.chmod(target, 0o777)
        os.chown(target, NOBODY, NOGROUP)
        FILE.update(ctx, created.id, state, state, created.attributes)
        st = target.stat()
        assert target.read_text() == "x"
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o644, 0, 0)
        observed = refresh(ctx, created, state)
        assert observed is not None and observed.notes == ()

    def test_unmanaged_owner_is_kept_on_rewrite(self, ctx: Context) -> None:
        """Without owner, rewriting keeps whoever owns the file now."""
        created, state = apply(ctx, props(path="f", content="one"))
        os.chown(ctx.stack_dir / "f", NOBODY, NOGROUP)
        desired = FILE.prepare(ctx, props(path="f", content="two"))
        FILE.update(ctx, created.id, state, desired, created.attributes)
        st = (ctx.stack_dir / "f").stat()
        assert (st.st_uid, st.st_gid) == (NOBODY, NOGROUP)

    def test_recreates_a_deleted_file(self, ctx: Context) -> None:
        """An update of a file removed by hand writes it again."""
        created, state = apply(ctx, props(path="f", content="one"))
        (ctx.stack_dir / "f").unlink()
        FILE.update(ctx, created.id, state, state, created.attributes)
        assert (ctx.stack_dir / "f").read_text() == "one"

    def test_unknown_owner_is_an_error(self, ctx: Context) -> None:
        """An owner that no longer exists fails with its name."""
        created, state = apply(ctx, props(path="f", content="x"))
        with pytest.raises(ProviderError, match="no user named 'no-such-user'"):
            FILE.update(
                ctx, created.id, state, {**state, "owner": "no-such-user"}, created.attributes
            )


class TestDelete:
    def test_removes_the_file(self, ctx: Context) -> None:
        """delete removes the file and leaves its folder."""
        created, state = apply(ctx, props(path="d/f", content="x"))
        FILE.delete(ctx, created.id, state, created.attributes)
        assert not (ctx.stack_dir / "d" / "f").exists()
        assert (ctx.stack_dir / "d").is_dir()

    def test_already_gone_is_fine(self, ctx: Context) -> None:
        """Deleting a file that is already gone succeeds."""
        created, state = apply(ctx, props(path="f", content="x"))
        (ctx.stack_dir / "f").unlink()
        FILE.delete(ctx, created.id, state, created.attributes)

    def test_a_folder_is_not_removed(self, ctx: Context) -> None:
        """A folder that took the file's place is left alone, with an error saying so."""
        created, state = apply(ctx, props(path="f", content="x"))
        (ctx.stack_dir / "f").unlink()
        (ctx.stack_dir / "f").mkdir()
        with pytest.raises(ProviderError, match="is now a folder"):
            FILE.delete(ctx, created.id, state, created.attributes)
        assert (ctx.stack_dir / "f").is_dir()


class TestImport:
    def test_by_relative_path(self, ctx: Context) -> None:
        """A path relative to the stack is adopted with its mode and digest."""
        (ctx.stack_dir / "etc").mkdir()
        (ctx.stack_dir / "etc" / "hosts").write_text("127.0.0.1 localhost\n")
        os.chmod(ctx.stack_dir / "etc" / "hosts", 0o640)
        observed = FILE.import_(ctx, "etc/hosts")
        data = b"127.0.0.1 localhost\n"
        assert observed.properties == {
            "path": "etc/hosts",
            "mode": "0640",
            "content_sha256": sha(data),
        }
        assert observed.attributes == {
            "sha256": sha(data),
            "size": len(data),
            "absolute_path": str(ctx.stack_dir / "etc" / "hosts"),
        }

    def test_imported_file_reads_and_deletes_by_its_id(self, ctx: Context) -> None:
        """The id as imported (relative) works for read and delete."""
        (ctx.stack_dir / "f").write_text("x")
        observed = FILE.import_(ctx, "f")
        state = {**props(path="f", content="x"), **observed.properties}
        again = FILE.read(ctx, "f", state, observed.attributes)
        assert again is not None and again.notes == ()
        FILE.delete(ctx, "f", state, observed.attributes)
        assert not (ctx.stack_dir / "f").exists()

    def test_missing_file_is_an_error(self, ctx: Context) -> None:
        """Import of nothing is refused."""
        with pytest.raises(ProviderError, match="there is no file"):
            FILE.import_(ctx, "missing")

    def test_folder_is_an_error(self, ctx: Context) -> None:
        """Import of a folder is refused."""
        (ctx.stack_dir / "d").mkdir()
        with pytest.raises(ProviderError, match="is a folder"):
            FILE.import_(ctx, "d")


class TestValidate:
    @pytest.mark.parametrize(
        ("values", "expected"),
        [
            (props(path="f", content="x"), []),
            (props(path="f", content=""), []),
            (props(path="f"), [("content", "set one of content, sensitive_content, source")]),
            (
                props(path="f", content="x", source="s"),
                [
                    (
                        "source",
                        "set only one of content, sensitive_content, source (both content and source are set)",
                    )
                ],
            ),
            (props(path="", content="x"), [("path", "must name a file")]),
            (props(path="dir/", content="x"), [("path", "must name a file")]),
            (
                props(path="f", content="x", mode="rw-r--r--"),
                [("mode", "must be 3 or 4 octal digits such as \"0644\", not 'rw-r--r--'")],
            ),
            (
                props(path="f", content="x", mode="0888"),
                [("mode", "must be 3 or 4 octal digits such as \"0644\", not '0888'")],
            ),
            (
                props(path="f", content="x", owner="nosuchuser"),
                [("owner", "there is no user named 'nosuchuser' on this machine")],
            ),
            (
                props(path="f", content="x", owner="root:nosuchgroup"),
                [("owner", "there is no group named 'nosuchgroup' on this machine")],
            ),
            (
                props(path="f", content="x", owner="root:"),
                [("owner", 'must be "user", "user:group" or ":group", not \'root:\'')],
            ),
            (props(path="f", source=""), [("source", "must name a file")]),
        ],
    )
    def test_problems_are_located(
        self, values: dict[str, Any], expected: list[tuple[str, str]]
    ) -> None:
        """Each problem names the property at fault."""
        assert FILE.validate(values) == expected

    def test_unknown_values_are_not_judged(self) -> None:
        """With content not known yet, a missing content/source is no error."""
        values = props(path="f")
        del values["content"]
        assert FILE.validate(values) == []
