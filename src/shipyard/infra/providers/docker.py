"""The ``docker`` provider: images built from a local context, networks and containers.

There is no registry involved: images are built on the engine from a folder next to the
stack. A ``docker_image`` carries a digest of its build context (the files a build sends,
``.dockerignore`` honoured) as a derived property, so editing a file shows in the plan
and rebuilds. Containers are immutable: most of their properties replace them.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import docker.errors
from docker.utils.build import match_tag

from shipyard.errors import ProviderError
from shipyard.infra.provider import (
    REQUIRED,
    Attribute,
    Context,
    Created,
    Observed,
    Property,
    Provider,
    ResourceType,
)
from shipyard.infra.providers._docker_container import DockerContainer
from shipyard.infra.providers._docker_engine import (
    NAME,
    context_digest,
    engine,
    explain,
    inspect,
    is_conflict,
)

__all__ = ["DockerContainer", "DockerImage", "DockerNetwork", "DockerProvider"]

# The image label recording the context digest it was built from.
DIGEST_LABEL = "io.shipyard.infra.context-digest"
_TAG = re.compile("[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


class DockerImage(ResourceType):
    """An image built on the engine from a context folder."""

    name = "docker_image"
    description = "A Docker image built from a local context folder"
    properties: ClassVar[Mapping[str, Property]] = {
        "name": Property(default=REQUIRED, replace=True, description="Repository (myapp)."),
        "tag": Property(default="latest", replace=True, description="Tag."),
        "context": Property(
            default=".", replace=True, description="Build context folder, relative to the stack."
        ),
        "dockerfile": Property(
            default="Dockerfile", replace=True, description="Dockerfile, relative to the context."
        ),
        "build_args": Property(
            type="map(string)", default={}, replace=True, description="Build arguments."
        ),
        "target": Property(replace=True, description="Stage of a multi-stage build to build."),
        "labels": Property(type="map(string)", default={}, replace=True, description="Labels."),
        "keep_locally": Property(
            type="boolean", default=False, description="Leave the image on the engine on delete."
        ),
        "context_digest": Property(
            derived=True,
            replace=True,
            description="Digest of the build context (paths, permissions, contents).",
        ),
    }
    attributes: ClassVar[Mapping[str, Attribute]] = {
        "image_id": Attribute(stable=True, description="The image's id (sha256:...)."),
        "ref": Attribute(stable=True, description="name:tag, to run it by name."),
    }

    def validate(self, properties: Mapping[str, Any]) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        name = properties.get("name")
        if isinstance(name, str) and not match_tag(name):
            problems.append(("name", f"'{name}' is not a valid image name (lowercase, a-z0-9._-/)"))
        tag = properties.get("tag")
        if isinstance(tag, str) and not _TAG.fullmatch(tag):
            problems.append(("tag", f"'{tag}' is not a valid tag"))
        return problems

    def _context(self, ctx: Context, properties: Mapping[str, Any]) -> Path:
        context = (ctx.stack_dir / (properties.get("context") or ".")).resolve()
        if not context.is_dir():
            raise ProviderError(f"docker_image: the build context {context} is not a folder")
        dockerfile = properties.get("dockerfile") or "Dockerfile"
        if not (context / dockerfile).is_file():
            raise ProviderError(f"docker_image: there is no Dockerfile at {context / dockerfile}")
        return context

    def prepare(self, ctx: Context, properties: Mapping[str, Any]) -> dict[str, Any]:
        props = dict(properties)
        context = self._context(ctx, props)
        props["context_digest"] = context_digest(context, props.get("dockerfile") or "Dockerfile")
        return props

    def create(self, ctx: Context, properties: Mapping[str, Any]) -> Created:
        context = self._context(ctx, properties)
        dockerfile = properties.get("dockerfile") or "Dockerfile"
        ref = f"{properties['name']}:{properties.get('tag') or 'latest'}"
        # The label holds the digest of what is built now: if files changed since the
        # plan, the next plan sees the difference.
        labels = {
            **(properties.get("labels") or {}),
            DIGEST_LABEL: context_digest(context, dockerfile),
        }
        output: list[str] = []
        with engine(ctx.config) as api:
            chunks = api.build(
                path=str(context),
                dockerfile=dockerfile,
                tag=ref,
                buildargs=dict(properties.get("build_args") or {}),
                labels=labels,
                target=properties.get("target") or None,
                rm=True,
                forcerm=True,
                decode=True,
            )
            for chunk in chunks:
                if "error" in chunk:
                    tail = "".join(output[-15:]).rstrip()
                    raise ProviderError(
                        f"docker: building {ref} failed: {str(chunk['error']).strip()}"
                        + (f"\n{tail}" if tail else "")
                    )
                if "stream" in chunk:
                    output.append(str(chunk["stream"]))
            info = api.inspect_image(ref)
        return Created(id=info["Id"], attributes={"image_id": info["Id"], "ref": ref})

    def read(
        self,
        ctx: Context,
        id: str,
        properties: Mapping[str, Any],
        attributes: Mapping[str, Any],
    ) -> Observed | None:
        ref = f"{properties['name']}:{properties.get('tag') or 'latest'}"
        with engine(ctx.config) as api:
            info = inspect(api.inspect_image, attributes.get("image_id") or id)
        # Removed, or the tag now names another image: either way a build is due.
        if info is None or ref not in (info.get("RepoTags") or []):
            return None
        labels = dict((info.get("Config") or {}).get("Labels") or {})
        observed = {
            "name": properties["name"],
            "tag": properties.get("tag") or "latest",
            "context_digest": labels.get(DIGEST_LABEL),
        }
        return Observed(properties=observed, attributes={"image_id": info["Id"], "ref": ref})

    def update(
        self,
        ctx: Context,
        id: str,
        prior: Mapping[str, Any],
        properties: Mapping[str, Any],
        attributes: Mapping[str, Any],
    ) -> dict[str, Any]:
        return dict(attributes)  # only keep_locally changes in place: nothing to do

    def delete(
        self,
        ctx: Context,
        id: str,
        properties: Mapping[str, Any],
        attributes: Mapping[str, Any],
    ) -> None:
        if properties.get("keep_locally"):
            return
        ref = f"{properties['name']}:{properties.get('tag') or 'latest'}"
        with engine(ctx.config) as api:
            info = inspect(api.inspect_image, attributes.get("image_id") or id)
            if info is None:
                return
            tags = list(info.get("RepoTags") or [])
            if tags and ref not in tags:
                return  # the tag moved and others name this image: not ours to remove
            try:
                # Removing the tag removes the image too unless another tag names it.
                api.remove_image(ref if ref in tags else info["Id"])
            except docker.errors.APIError as err:
                if not is_conflict(err):
                    raise
                ctx.log(f"image {ref} kept: {explain(err)}")

    def find(self, ctx: Context, properties: Mapping[str, Any]) -> Created | None:
        """The image an interrupted create built: its tag, from the same context."""
        ref = f"{properties['name']}:{properties.get('tag') or 'latest'}"
        with engine(ctx.config) as api:
            info = inspect(api.inspect_image, ref)
        labels = ((info or {}).get("Config") or {}).get("Labels") or {}
        if info is None or labels.get(DIGEST_LABEL) != properties.get("context_digest"):
            return None
        return Created(id=info["Id"], attributes={"image_id": info["Id"], "ref": ref})

    def import_(self, ctx: Context, id: str) -> Observed:
        with engine(ctx.config) as api:
            info = inspect(api.inspect_image, id)
        if info is None:
            raise ProviderError(f"docker: there is no image '{id}' on the engine")
        tags = list(info.get("RepoTags") or [])
        ref = id if id in tags else (f"{id}:latest" if f"{id}:latest" in tags else None)
        ref = ref or (tags[0] if tags else None)
        if ref is None:
            raise ProviderError(f"docker: image '{id}' has no name:tag to manage it by")
        name, _, tag = ref.rpartition(":")
        labels = dict((info.get("Config") or {}).get("Labels") or {})
        digest = labels.pop(DIGEST_LABEL, None)
        return Observed(
            properties={"name": name, "tag": tag, "labels": labels, "context_digest": digest},
            attributes={"image_id": info["Id"], "ref": ref},
        )


class DockerNetwork(ResourceType):
    """A network containers join; immutable, so every change replaces it."""

    name = "docker_network"
    description = "A Docker network"
    updatable = False
    properties: ClassVar[Mapping[str, Property]] = {
        "name": Property(default=REQUIRED, replace=True, description="Network name."),
        "driver": Property(default="bridge", replace=True, description="Network driver."),
        "internal": Property(
            type="boolean", default=False, replace=True, description="No access to outside."
        ),
        "labels": Property(type="map(string)", default={}, replace=True, description="Labels."),
    }
    attributes: ClassVar[Mapping[str, Attribute]] = {
        "id": Attribute(stable=True, description="The network's id."),
    }

    def validate(self, properties: Mapping[str, Any]) -> list[tuple[str, str]]:
        name = properties.get("name")
        if isinstance(name, str) and not NAME.match(name):
            return [("name", f"'{name}' is not a valid network name ([a-zA-Z0-9][a-zA-Z0-9_.-]*)")]
        return []

    def create(self, ctx: Context, properties: Mapping[str, Any]) -> Created:
        with engine(ctx.config) as api:
            made = api.create_network(
                properties["name"],
                driver=properties.get("driver") or "bridge",
                internal=bool(properties.get("internal")),
                labels=dict(properties.get("labels") or {}),
                check_duplicate=True,
            )
        return Created(id=made["Id"], attributes={"id": made["Id"]})

    def _observe(self, info: Mapping[str, Any]) -> Observed:
        props = {
            "name": info["Name"],
            "driver": info.get("Driver"),
            "internal": bool(info.get("Internal")),
            "labels": dict(info.get("Labels") or {}),
        }
        return Observed(properties=props, attributes={"id": info["Id"]})

    def read(
        self,
        ctx: Context,
        id: str,
        properties: Mapping[str, Any],
        attributes: Mapping[str, Any],
    ) -> Observed | None:
        with engine(ctx.config) as api:
            info = inspect(api.inspect_network, attributes.get("id") or id)
        return None if info is None else self._observe(info)

    def delete(
        self,
        ctx: Context,
        id: str,
        properties: Mapping[str, Any],
        attributes: Mapping[str, Any],
    ) -> None:
        with engine(ctx.config) as api, contextlib.suppress(docker.errors.NotFound):
            api.remove_network(attributes.get("id") or id)

    def find(self, ctx: Context, properties: Mapping[str, Any]) -> Created | None:
        """The network an interrupted create made, by its name."""
        with engine(ctx.config) as api:
            info = inspect(api.inspect_network, properties["name"])
        if info is None or info.get("Name") != properties["name"]:
            return None
        return Created(id=info["Id"], attributes={"id": info["Id"]})

    def import_(self, ctx: Context, id: str) -> Observed:
        with engine(ctx.config) as api:
            info = inspect(api.inspect_network, id)
        if info is None:
            raise ProviderError(f"docker: there is no network '{id}' on the engine")
        return self._observe(info)


class DockerProvider(Provider):
    """Images, networks and containers on one Docker engine."""

    name = "docker"
    description = "Docker images (built locally), networks and containers"
    config: ClassVar[Mapping[str, Property]] = {
        "host": Property(
            description="Engine URL (unix:///var/run/docker.sock, tcp://host:2376); "
            "unset: DOCKER_HOST (with DOCKER_TLS_VERIFY/DOCKER_CERT_PATH), else the local socket."
        ),
    }
    resource_types = (DockerImage, DockerNetwork, DockerContainer)
