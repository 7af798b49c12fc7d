"""The ``file`` provider: a local file with given content, mode and owner.

The content is one of ``content`` (text), ``sensitive_content`` (text masked in plans and
encrypted in the state) or ``source`` (a local file copied byte for byte; its digest is
the derived ``content_sha256``, so editing the source shows in the next plan). Writes are
atomic; a file edited, re-moded or re-owned by hand is reported as drift and put back by
the next apply. See :mod:`shipyard.infra.providers._files` for what ``template`` shares.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shipyard.infra.provider import Context, Property, Provider, ProviderError

from ._files import FILE_ATTRIBUTES, FILE_PROPERTIES, LocalFile, resolve

__all__ = ["File", "FileProvider"]

_SOURCES = ("content", "sensitive_content", "source")


class File(LocalFile):
    """``file``: a file holding text or a copy of another file."""

    name = "file"
    description = (
        "A local file: `content`, `sensitive_content` or a copy of `source`, with a mode "
        "and an owner. Import with its path."
    )
    properties = {
        "path": FILE_PROPERTIES["path"],
        "content": Property(type="string", description="The text of the file (UTF-8)."),
        "sensitive_content": Property(
            type="string",
            sensitive=True,
            description="The text of the file, masked in plans and encrypted in the state.",
        ),
        "source": Property(
            type="string",
            description="A local file to copy, relative to the stack's folder (or absolute).",
        ),
        "mode": FILE_PROPERTIES["mode"],
        "owner": FILE_PROPERTIES["owner"],
        "content_sha256": FILE_PROPERTIES["content_sha256"],
    }
    attributes = dict(FILE_ATTRIBUTES)

    def validate(self, properties: Mapping[str, Any]) -> list[tuple[str, str]]:
        problems = self.validate_file(properties)
        given = [key for key in _SOURCES if properties.get(key) is not None]
        unknown = [key for key in _SOURCES if key not in properties]
        if len(given) > 1:
            problems.append(
                (
                    given[1],
                    f"set only one of content, sensitive_content, source "
                    f"(both {given[0]} and {given[1]} are set)",
                )
            )
        elif not given and not unknown:
            problems.append(("content", "set one of content, sensitive_content, source"))
        source = properties.get("source")
        if source == "":
            problems.append(("source", "must name a file"))
        return problems

    def content(self, ctx: Context, properties: Mapping[str, Any]) -> bytes:
        for key in ("content", "sensitive_content"):
            text = properties.get(key)
            if text is not None:
                return str(text).encode("utf-8")
        source = properties.get("source")
        if source is None:
            raise ProviderError("set one of content, sensitive_content, source")
        path = resolve(ctx, str(source))
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise ProviderError(f"source {path} does not exist") from None
        except OSError as error:
            raise ProviderError(f"cannot read source {path}: {error.strerror or error}") from None

    def observe_content(
        self, properties: Mapping[str, Any], data: bytes | None, changed: bool
    ) -> dict[str, Any]:
        # A changed text is reported as it now is, so the diff shows the edit (masked for
        # sensitive_content). A large or binary file shows as its digest only.
        if not changed:
            return {}
        for key in ("content", "sensitive_content"):
            if properties.get(key) is None:
                continue
            if data is None:
                return {}
            try:
                return {key: data.decode("utf-8")}
            except UnicodeDecodeError:
                return {}
        return {}


class FileProvider(Provider):
    """Local files."""

    name = "file"
    description = "Files on this machine: content, copies of other files, modes and owners."
    resource_types = (File,)
