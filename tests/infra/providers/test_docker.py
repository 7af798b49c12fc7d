"""docker_image and docker_network against the real Docker engine."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest

from shipyard.errors import ProviderError
from shipyard.infra._types import parse_type
from shipyard.infra.provider import REQUIRED, Context
from shipyard.infra.providers._docker_engine import context_digest, duration_ns
from shipyard.infra.providers.docker import (
    DIGEST_LABEL,
    DockerImage,
    DockerNetwork,
    DockerProvider,
)
from tests.helpers.docker_images import ensure_busybox_image
from tests.infra.providers._helpers import defaults, unique

IMAGE = DockerImage()
NETWORK = DockerNetwork()


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    return Context(config={}, stack_dir=tmp_path, data_dir=tmp_path / "data", log=lambda _: None)


def write_context(root: Path, page: str = "v1") -> Path:
    """A build context: a page baked into an image FROM the local busybox image."""
    root.mkdir(parents=True, exist_ok=True)
    base = ensure_busybox_image()
    (root / "Dockerfile").write_text(
        f'FROM {base}\nCOPY page.txt /page.txt\nCMD ["cat", "/page.txt"]\n'
    )
    (root / "page.txt").write_text(page)
    (root / ".dockerignore").write_text("# scratch files\nnotes/\n*.log\n")
    (root / "notes").mkdir(exist_ok=True)
    (root / "notes" / "todo.md").write_text("ignored")
    return root


def run_output(api: Any, image: str) -> str:
    container = api.create_container(image)
    try:
        api.start(container)
        api.wait(container, timeout=30)
        return str(api.logs(container).decode())
    finally:
        api.remove_container(container, force=True)


class TestSchema:
    def test_types_and_defaults_are_well_formed(self) -> None:
        for rtype in DockerProvider.resource_types:
            assert rtype.name.startswith("docker_")
            for name, prop in rtype.properties.items():
                spec = parse_type(prop.type)
                if prop.default is not REQUIRED and prop.default is not None:
                    assert spec.check(prop.default) is None, (rtype.name, name)
            for attr in rtype.attributes.values():
                parse_type(attr.type)
        assert IMAGE.properties["context_digest"].derived

    def test_durations(self) -> None:
        assert duration_ns(2) == 2 * 10**9
        assert duration_ns("1m30s") == 90 * 10**9
        assert duration_ns("250ms") == 250 * 10**6
        for bad in ("10", "5 s", "s", True, -1):
            with pytest.raises(ValueError):
                duration_ns(bad)

    def test_unreachable_engine_is_a_provider_error(self, tmp_path: Path) -> None:
        bad = Context(
            config={"host": f"unix://{tmp_path}/no.sock"}, stack_dir=tmp_path, data_dir=tmp_path
        )
        with pytest.raises(ProviderError, match="no Docker engine is reachable"):
            NETWORK.read(bad, "x", {}, {})


class TestContextDigest:
    def test_content_and_permissions_count_ignored_files_and_mtimes_do_not(
        self, tmp_path: Path
    ) -> None:
        """The digest follows what a build sends: .dockerignore'd files are left out."""
        root = write_context(tmp_path / "app")
        first = context_digest(root, "Dockerfile")
        (root / "notes" / "todo.md").write_text("changed, but ignored")
        (root / "build.log").write_text("ignored too")
        os.utime(root / "page.txt", (1, 1))
        assert context_digest(root, "Dockerfile") == first
        (root / "page.txt").write_text("v2")
        second = context_digest(root, "Dockerfile")
        assert second != first
        (root / "page.txt").chmod(0o755)
        assert context_digest(root, "Dockerfile") != second

    def test_dockerfile_outside_the_context_counts(self, tmp_path: Path) -> None:
        root = write_context(tmp_path / "app")
        outside = tmp_path / "build.Dockerfile"
        outside.write_text("FROM scratch\n")
        first = context_digest(root, str(outside))
        outside.write_text("FROM scratch\nLABEL x=1\n")
        assert context_digest(root, str(outside)) != first


@pytest.mark.docker
class TestImage:
    def test_build_read_and_rebuild_when_a_file_changes(
        self, api: Any, ctx: Context, made: dict[str, list[str]]
    ) -> None:
        """A changed context file gives a new desired digest; the rebuilt image has it."""
        write_context(ctx.stack_dir / "app", page="one")
        name = unique("img")
        made["images"].append(f"{name}:v1")
        props = IMAGE.prepare(ctx, defaults(IMAGE, name=name, tag="v1", context="app"))
        created = IMAGE.create(ctx, props)
        assert created.id.startswith("sha256:")
        assert created.attributes == {"image_id": created.id, "ref": f"{name}:v1"}
        observed = IMAGE.read(ctx, created.id, props, created.attributes)
        assert observed is not None
        assert observed.properties["context_digest"] == props["context_digest"]
        assert run_output(api, f"{name}:v1") == "one"

        (ctx.stack_dir / "app" / "page.txt").write_text("two")
        changed = IMAGE.prepare(ctx, props)
        assert changed["context_digest"] != observed.properties["context_digest"]
        IMAGE.delete(ctx, created.id, props, created.attributes)
        rebuilt = IMAGE.create(ctx, changed)
        assert rebuilt.id != created.id
        assert run_output(api, f"{name}:v1") == "two"
        assert IMAGE.read(ctx, created.id, props, created.attributes) is None

    def test_build_args_labels_and_failure(
        self, api: Any, ctx: Context, made: dict[str, list[str]]
    ) -> None:
        root = write_context(ctx.stack_dir)
        (root / "Dockerfile").write_text(
            f'FROM {ensure_busybox_image()}\nARG FLAVOUR\nRUN test "$FLAVOUR" = mint\n'
        )
        name = unique("img")
        made["images"].append(f"{name}:latest")
        props = IMAGE.prepare(
            ctx, defaults(IMAGE, name=name, build_args={"FLAVOUR": "mint"}, labels={"team": "a"})
        )
        created = IMAGE.create(ctx, props)
        labels = api.inspect_image(created.id)["Config"]["Labels"]
        assert labels["team"] == "a"
        assert labels[DIGEST_LABEL] == props["context_digest"]
        with pytest.raises(ProviderError, match=f"building {name}:latest failed"):
            IMAGE.create(ctx, {**props, "build_args": {"FLAVOUR": "lemon"}})

    def test_removed_by_hand_reads_as_gone_and_delete_is_quiet(
        self, api: Any, ctx: Context, made: dict[str, list[str]]
    ) -> None:
        write_context(ctx.stack_dir)
        name = unique("img")
        made["images"].append(f"{name}:latest")
        props = IMAGE.prepare(ctx, defaults(IMAGE, name=name))
        created = IMAGE.create(ctx, props)
        api.remove_image(created.id, force=True)
        assert IMAGE.read(ctx, created.id, props, created.attributes) is None
        IMAGE.delete(ctx, created.id, props, created.attributes)

    def test_delete_keeps_an_image_a_container_uses(
        self, api: Any, ctx: Context, made: dict[str, list[str]]
    ) -> None:
        """Delete leaves an image in use (and says so); once unused, it removes it."""
        write_context(ctx.stack_dir)
        name = unique("img")
        made["images"].append(f"{name}:latest")
        props = IMAGE.prepare(ctx, defaults(IMAGE, name=name))
        created = IMAGE.create(ctx, props)
        container = api.create_container(created.id, name=unique("user"))
        made["containers"].append(container["Id"])
        said: list[str] = []
        logging = Context(ctx.config, ctx.stack_dir, ctx.data_dir, log=said.append)
        IMAGE.delete(logging, created.id, props, created.attributes)
        assert api.inspect_image(created.id)["Id"] == created.id
        assert said and "kept" in said[0]
        api.remove_container(container["Id"], force=True)
        IMAGE.delete(logging, created.id, props, created.attributes)
        with pytest.raises(docker.errors.ImageNotFound):
            api.inspect_image(created.id)

    def test_keep_locally_leaves_it(
        self, api: Any, ctx: Context, made: dict[str, list[str]]
    ) -> None:
        write_context(ctx.stack_dir)
        name = unique("img")
        made["images"].append(f"{name}:latest")
        props = IMAGE.prepare(ctx, defaults(IMAGE, name=name, keep_locally=True))
        created = IMAGE.create(ctx, props)
        IMAGE.delete(ctx, created.id, props, created.attributes)
        assert api.inspect_image(f"{name}:latest")["Id"] == created.id

    def test_tag_moved_by_hand_reads_as_gone(
        self, api: Any, ctx: Context, made: dict[str, list[str]]
    ) -> None:
        write_context(ctx.stack_dir)
        name = unique("img")
        made["images"].append(f"{name}:latest")
        props = IMAGE.prepare(ctx, defaults(IMAGE, name=name))
        created = IMAGE.create(ctx, props)
        api.tag(ensure_busybox_image(), name, "latest", force=True)
        assert IMAGE.read(ctx, created.id, props, created.attributes) is None
        made["images"].append(created.id)

    def test_import_by_name(self, ctx: Context, made: dict[str, list[str]]) -> None:
        write_context(ctx.stack_dir)
        name = unique("img")
        made["images"].append(f"{name}:v3")
        props = IMAGE.prepare(ctx, defaults(IMAGE, name=name, tag="v3", labels={"a": "b"}))
        created = IMAGE.create(ctx, props)
        observed = IMAGE.import_(ctx, f"{name}:v3")
        assert observed.properties == {
            "name": name,
            "tag": "v3",
            "labels": {"a": "b"},
            "context_digest": props["context_digest"],
        }
        assert observed.attributes["image_id"] == created.id
        with pytest.raises(ProviderError, match="no image"):
            IMAGE.import_(ctx, unique("missing"))

    def test_prepare_and_validate_problems(self, ctx: Context) -> None:
        with pytest.raises(ProviderError, match="not a folder"):
            IMAGE.prepare(ctx, defaults(IMAGE, name="x", context="nowhere"))
        with pytest.raises(ProviderError, match="no Dockerfile"):
            IMAGE.prepare(ctx, defaults(IMAGE, name="x"))
        problems = IMAGE.validate(defaults(IMAGE, name="Bad Name", tag="-x"))
        assert {path for path, _ in problems} == {"name", "tag"}


@pytest.mark.docker
class TestNetwork:
    def test_create_read_import_and_delete(
        self, api: Any, ctx: Context, made: dict[str, list[str]]
    ) -> None:
        name = unique("net")
        made["networks"].append(name)
        props = defaults(NETWORK, name=name, internal=True, labels={"tier": "db"})
        created = NETWORK.create(ctx, props)
        assert created.attributes == {"id": created.id}
        observed = NETWORK.read(ctx, created.id, props, created.attributes)
        assert observed is not None and observed.properties == props
        imported = NETWORK.import_(ctx, name)
        assert imported.properties == props and imported.attributes["id"] == created.id
        NETWORK.delete(ctx, created.id, props, created.attributes)
        assert NETWORK.read(ctx, created.id, props, created.attributes) is None
        NETWORK.delete(ctx, created.id, props, created.attributes)  # already gone: quiet
        with pytest.raises(ProviderError, match="no network"):
            NETWORK.import_(ctx, name)

    def test_removed_by_hand_reads_as_gone(
        self, api: Any, ctx: Context, made: dict[str, list[str]]
    ) -> None:
        name = unique("net")
        made["networks"].append(name)
        props = defaults(NETWORK, name=name)
        created = NETWORK.create(ctx, props)
        api.remove_network(name)
        assert NETWORK.read(ctx, created.id, props, created.attributes) is None

    def test_validate(self) -> None:
        assert NETWORK.validate(defaults(NETWORK, name="no spaces")) != []
        assert NETWORK.validate(defaults(NETWORK, name="ok-name_1")) == []
