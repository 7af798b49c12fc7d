"""The template provider: files rendered with ${{ vars.X }}, written like `file`."""

from __future__ import annotations

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
from shipyard.infra.provider import REQUIRED, Context
from shipyard.infra.providers.template import TemplateFile, TemplateProvider, render

TEMPLATE = TemplateFile()
NOBODY = pwd.getpwnam("nobody").pw_uid


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    stack = tmp_path / "stack"
    stack.mkdir()
    return Context(config={}, stack_dir=stack, data_dir=tmp_path / "data")


def props(**values: Any) -> dict[str, Any]:
    """Every property, as the engine passes them: defaults filled in."""
    full = {k: p.default for k, p in TEMPLATE.properties.items() if p.default is not REQUIRED}
    full.update(values)
    return full


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class TestSchema:
    def test_registered_under_its_type_name(self) -> None:
        """`template` resolves through the registry to this type."""
        assert isinstance(Registry.default().resource_type("template"), TemplateFile)
        assert TemplateProvider.resource_types == (TemplateFile,)

    def test_schema(self) -> None:
        """Types parse; the rendered digest is derived; rendered is an attribute."""
        for prop in TEMPLATE.properties.values():
            parse_type(prop.type)
        assert TEMPLATE.properties["content_sha256"].derived
        assert TEMPLATE.properties["path"].replace
        assert set(TEMPLATE.attributes) == {"sha256", "size", "absolute_path", "rendered"}


class TestRender:
    def test_vars_and_functions(self) -> None:
        """Expressions see vars and the language's functions; text around is kept."""
        text = "listen ${{ vars.port }}\nservers ${{ join(vars.backends, ' ') }}\n${{ vars.on }}"
        out = render(text, {"port": 8080, "backends": ["a:1", "b:2"], "on": True}, "t")
        assert out == "listen 8080\nservers a:1 b:2\ntrue"

    def test_var_names_are_case_insensitive_like_the_language(self) -> None:
        """vars.PORT finds port, as context members do everywhere else."""
        assert render("${{ vars.PORT }}", {"port": 1}, "t") == "1"

    def test_syntax_error_names_file_line_and_column(self) -> None:
        """A bad expression is reported at its line and column in the template."""
        with pytest.raises(ProviderError, match=r"^site\.conf:3:22: invalid number"):
            render("a\nb\nlisten ${{ vars.port + }}\n", {"port": 1}, "site.conf")

    def test_unclosed_expression(self) -> None:
        """An unclosed ${{ is reported where it opens."""
        with pytest.raises(ProviderError, match=r"^t:2:3: '\$\{\{' is not closed"):
            render("x\n  ${{ vars.port\n", {"port": 1}, "t")

    def test_unknown_context_is_an_error(self) -> None:
        """`var.port` (a stack context) is not silently empty: only vars exists here."""
        with pytest.raises(ProviderError, match=r"^t:1:12: unknown context 'var'"):
            render("listen ${{ var.port }}", {"port": 1}, "t")

    def test_missing_var_is_an_error(self) -> None:
        """A var that is not set is an error listing those that are."""
        with pytest.raises(
            ProviderError, match=r"^t:2:17: vars\.prot is not set \(vars has: host, port\)"
        ):
            render("x\nlisten ${{ vars.prot }}", {"port": 1, "host": "h"}, "t")

    def test_evaluation_error_is_located(self) -> None:
        """A failing function call is reported at its line."""
        with pytest.raises(ProviderError, match=r"^t:2:5: fromJSON"):
            render("ok\n${{ fromJSON(vars.s) }}", {"s": "{"}, "t")


class TestLifecycle:
    def test_source_file_rendered_and_written(self, ctx: Context) -> None:
        """A template file renders into path with the mode and owner; rendered is kept."""
        (ctx.stack_dir / "app.conf.tpl").write_text("port=${{ vars.port }}\n")
        values = props(
            path="out/app.conf",
            source="app.conf.tpl",
            vars={"port": 80},
            mode="0640",
            owner="nobody",
        )
        prepared = TEMPLATE.prepare(ctx, values)
        assert prepared["content_sha256"] == sha("port=80\n")
        created = TEMPLATE.create(ctx, prepared)
        target = ctx.stack_dir / "out" / "app.conf"
        assert target.read_text() == "port=80\n"
        st = target.stat()
        assert (stat.S_IMODE(st.st_mode), st.st_uid) == (0o640, NOBODY)
        assert created.attributes["rendered"] == "port=80\n"
        assert created.attributes["sha256"] == sha("port=80\n")
        assert created.id == str(target)

    def test_inline_template(self, ctx: Context) -> None:
        """template holds the text itself."""
        prepared = TEMPLATE.prepare(
            ctx, props(path="f", template="${{ vars.a }}-${{ vars.b }}", vars={"a": 1, "b": "x"})
        )
        TEMPLATE.create(ctx, prepared)
        assert (ctx.stack_dir / "f").read_text() == "1-x"

    def test_editing_the_template_file_changes_the_plan(self, ctx: Context) -> None:
        """The derived digest follows the template file, so an edit shows in the plan."""
        source = ctx.stack_dir / "t.tpl"
        source.write_text("a=${{ vars.a }}")
        before = TEMPLATE.prepare(ctx, props(path="f", source="t.tpl", vars={"a": 1}))
        source.write_text("a = ${{ vars.a }}")
        after = TEMPLATE.prepare(ctx, props(path="f", source="t.tpl", vars={"a": 1}))
        assert before["content_sha256"] != after["content_sha256"] == sha("a = 1")

    def test_template_error_at_plan_names_the_file(self, ctx: Context) -> None:
        """prepare reports a template mistake with the template's path and line."""
        (ctx.stack_dir / "bad.tpl").write_text("ok\n${{ vars.a == }}\n")
        with pytest.raises(ProviderError, match=r"bad\.tpl:2:"):
            TEMPLATE.prepare(ctx, props(path="f", source="bad.tpl", vars={"a": 1}))

    def test_missing_or_binary_template_file(self, ctx: Context) -> None:
        """A missing template file, or one that is not UTF-8, is named in the error."""
        with pytest.raises(ProviderError, match=r"template .*nope\.tpl does not exist"):
            TEMPLATE.prepare(ctx, props(path="f", source="nope.tpl"))
        (ctx.stack_dir / "bin.tpl").write_bytes(b"\xff\xfe")
        with pytest.raises(ProviderError, match=r"bin\.tpl is not UTF-8"):
            TEMPLATE.prepare(ctx, props(path="f", source="bin.tpl"))

    def test_drift_update_and_delete(self, ctx: Context) -> None:
        """A hand edit shows as a new digest; update re-renders in place; delete removes it."""
        state = TEMPLATE.prepare(ctx, props(path="f", template="v=${{ vars.v }}", vars={"v": 1}))
        created = TEMPLATE.create(ctx, state)
        target = ctx.stack_dir / "f"
        observed = TEMPLATE.read(ctx, created.id, state, created.attributes)
        assert observed is not None and observed.properties == state and observed.notes == ()
        target.write_text("v=2")
        observed = TEMPLATE.read(ctx, created.id, state, created.attributes)
        assert observed is not None
        assert observed.properties["content_sha256"] == sha("v=2")
        assert observed.properties["template"] == "v=${{ vars.v }}"
        desired = TEMPLATE.prepare(ctx, {**state, "vars": {"v": 3}})
        attributes = TEMPLATE.update(ctx, created.id, state, desired, created.attributes)
        assert target.read_text() == "v=3"
        assert attributes["rendered"] == "v=3"
        TEMPLATE.delete(ctx, created.id, desired, attributes)
        assert not target.exists()
        TEMPLATE.delete(ctx, created.id, desired, attributes)
        assert TEMPLATE.read(ctx, created.id, desired, attributes) is None

    def test_chmod_and_chown_drift(self, ctx: Context) -> None:
        """Mode and owner changes by hand are reported like for `file`."""
        state = TEMPLATE.prepare(ctx, props(path="f", template="x", owner="nobody"))
        created = TEMPLATE.create(ctx, state)
        os.chmod(ctx.stack_dir / "f", 0o600)
        os.chown(ctx.stack_dir / "f", 0, 0)
        observed = TEMPLATE.read(ctx, created.id, state, created.attributes)
        assert observed is not None
        assert (observed.properties["mode"], observed.properties["owner"]) == ("0600", "root")

    def test_import(self, ctx: Context) -> None:
        """Import by path adopts the file; rendered is its current text."""
        (ctx.stack_dir / "f").write_text("hello")
        observed = TEMPLATE.import_(ctx, "f")
        assert observed.properties == {"path": "f", "mode": "0644", "content_sha256": sha("hello")}
        assert observed.attributes["rendered"] == "hello"
        with pytest.raises(ProviderError, match="there is no file"):
            TEMPLATE.import_(ctx, "missing")


class TestValidate:
    @pytest.mark.parametrize(
        ("values", "expected"),
        [
            (props(path="f", template="x ${{ vars.a }}", vars={"a": 1}), []),
            (props(path="f", source="t.tpl"), []),
            (props(path="f"), [("source", "set one of source (a file) and template (the text)")]),
            (
                props(path="f", source="t", template="x"),
                [("template", "set only one of source and template")],
            ),
            (props(path="f", source=""), [("source", "must name a file")]),
            (
                props(path="f", template="a\n ${{ vars.a + }}", vars={"a": 1}),
                [("template", "line 2, column 13: invalid number '+'")],
            ),
            (
                props(path="f", template="${{ env.HOME }}"),
                [
                    (
                        "template",
                        "line 1, column 5: unknown context 'env': a template sees only `vars`",
                    )
                ],
            ),
            (
                props(path="f", template="${{ vars.b }}", vars={"a": 1}),
                [("template", "line 1, column 10: vars.b is not set (vars has: a)")],
            ),
            (
                props(path="f", template="x", mode="9"),
                [("mode", "must be 3 or 4 octal digits such as \"0644\", not '9'")],
            ),
        ],
    )
    def test_problems_are_located(
        self, values: dict[str, Any], expected: list[tuple[str, str]]
    ) -> None:
        """Each problem names the property at fault, with the line inside an inline template."""
        assert TEMPLATE.validate(values) == expected

    def test_unknown_vars_skip_the_var_check(self) -> None:
        """With vars not known yet, only the contexts are checked."""
        assert TEMPLATE.validate({"path": "f", "template": "${{ vars.b }}"}) == []


def test_an_inline_template_in_a_stack_file_is_taken_verbatim(tmp_path: Path) -> None:
    """`template:` text keeps its ${{ vars.x }}: the stack loader does not read it as its own."""
    from shipyard.infra._stack import load_stack

    (tmp_path / "stack.yaml").write_text(
        "resources:\n"
        "  conf:\n"
        "    type: template\n"
        "    properties:\n"
        "      path: out.conf\n"
        "      template: 'listen ${{ vars.port }}'\n"
        "      vars: {port: 8080}\n"
    )
    stack = load_stack(tmp_path, Registry(providers=[TemplateProvider]))
    assert stack.resources["conf"].properties["template"] == "listen ${{ vars.port }}"
    assert render("listen ${{ vars.port }}", {"port": 8080}, "inline") == "listen 8080"
