"""Resources and providers: types, properties against the schema, count, for_each,
lifecycle and depends_on."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from shipyard.errors import ValidationError
from shipyard.infra._model import Lifecycle
from shipyard.infra._registry import Registry
from shipyard.infra._stack import load_stack
from shipyard.infra.provider import Context, Created, Observed, Property, Provider, ResourceType
from shipyard.workflow.expressions import Template
from tests.infra.stacks import load, stack_errors, write_stack


def errors_of(tmp_path: Path, text: str) -> list[str]:
    return stack_errors(tmp_path, {"main.yaml": text})


class TestTypes:
    def test_an_unknown_type_names_the_closest_and_all_known_types(self, tmp_path: Path) -> None:
        assert errors_of(
            tmp_path,
            """
            resources:
              a: {type: disk_fil}
              b: {type: s3_bucket}
            """,
        ) == [
            "main.yaml:3:13: unknown resource type 'disk_fil' (did you mean 'disk_file'?);"
            " known types: disk_dir, disk_file, kv",
            "main.yaml:4:13: unknown resource type 's3_bucket'; known types: disk_dir, disk_file, kv",
        ]

    def test_type_is_required_and_literal(self, tmp_path: Path) -> None:
        assert errors_of(
            tmp_path,
            """
            resources:
              a: {properties: {}}
              b: {type: "${{ var.t }}"}
            """,
        ) == [
            "main.yaml:3:3: 'type' is required",
            "main.yaml:4:13: expressions are not allowed in 'type'",
        ]

    def test_a_plain_null_type_is_the_null_type_and_empty_types_are_errors(
        self, tmp_path: Path
    ) -> None:
        """YAML reads `type: null` as nothing; a stack means the `null` type by it."""

        class Nothing(ResourceType):
            name = "null"
            description = "A value kept in the state only."
            properties: ClassVar = {"input": Property("any")}

            def create(self, ctx: Context, properties: Mapping[str, Any]) -> Created:
                return Created(uuid.uuid4().hex, {"output": properties.get("input")})

            def read(
                self,
                ctx: Context,
                id: str,
                properties: Mapping[str, Any],
                attributes: Mapping[str, Any],
            ) -> Observed:
                return Observed(dict(properties), dict(attributes))

            def delete(
                self,
                ctx: Context,
                id: str,
                properties: Mapping[str, Any],
                attributes: Mapping[str, Any],
            ) -> None:
                return None

        class NothingProvider(Provider):
            name = "null"
            resource_types = (Nothing,)

        write_stack(
            tmp_path,
            {
                "main.yaml": """
                    resources:
                      a: {type: null, properties: {input: 1}}
                      b: {type: "null"}
                      c: {type: }
                      d: {type: ~}
                      e: {type: ""}
                      f: {type: 3}
                """
            },
        )
        try:
            load_stack(tmp_path, Registry(providers=[NothingProvider]))
        except ValidationError as err:
            assert [str(e).removeprefix(f"{tmp_path}/") for e in err.errors] == [
                "main.yaml:5:13: 'type' cannot be empty",
                "main.yaml:6:13: 'type' cannot be empty",
                "main.yaml:7:13: 'type' cannot be empty",
                "main.yaml:8:13: unknown resource type '3'; known types: null",
            ]
        else:
            raise AssertionError("loaded")
        (tmp_path / "main.yaml").write_text(
            "resources:\n  a: {type: null, properties: {input: 1}}\n"
        )
        stack = load_stack(tmp_path, Registry(providers=[NothingProvider]))
        assert stack.resources["a"].type == "null"


class TestProperties:
    def test_properties_become_value_trees_with_locations(self, tmp_path: Path) -> None:
        stack = load(
            tmp_path,
            {
                "main.yaml": """
                    resources:
                      f:
                        type: disk_file
                        properties:
                          path: "out/${{ var.name }}.txt"
                          mode: 0o600
                          tags: {port: 8080, on: true, v: 1.20}
                          lines: [a, "${{ var.name }}", 3]
                    variables:
                      name: {default: x}
                """
            },
        )
        decl = stack.resources["f"]
        props = decl.properties
        assert props["path"] == Template("out/${{ var.name }}.txt")
        assert props["mode"] == 0o600
        # Where a string is expected, plain scalars keep the text they are written as.
        assert props["tags"] == {"port": "8080", "on": "true", "v": "1.20"}
        assert props["lines"] == ["a", Template("${{ var.name }}"), "3"]
        assert str(decl.locations[("properties", "tags", "v")]).endswith("main.yaml:8:39")
        assert str(decl.locations[("properties", "lines", 1)]).endswith("main.yaml:9:18")
        assert decl.locations[()].line == 3
        assert decl.location == decl.locations[()]

    def test_unknown_properties_suggest_the_closest_or_list_them(self, tmp_path: Path) -> None:
        assert errors_of(
            tmp_path,
            """
            resources:
              f:
                type: disk_file
                properties: {path: a, contnet: b, colour: red}
              d: {type: disk_dir, properties: {path: a, size: 3}}
            """,
        ) == [
            "main.yaml:5:27: unknown property 'contnet' for type 'disk_file' (did you mean"
            " 'content'?)",
            "main.yaml:5:39: unknown property 'colour' for type 'disk_file' (type 'disk_file'"
            " has: path, content, mode, tags, lines)",
            "main.yaml:6:45: unknown property 'size' for type 'disk_dir' (type 'disk_dir' has:"
            " path)",
        ]

    def test_required_properties_must_be_set_and_not_null(self, tmp_path: Path) -> None:
        assert errors_of(
            tmp_path,
            """
            resources:
              a: {type: disk_file}
              b: {type: disk_file, properties: {}}
              c: {type: disk_file, properties: {path: null}}
              d: {type: disk_file, properties: null}
              e: {type: kv, properties: {value: 1}}
            """,
        ) == [
            "main.yaml:3:3: type 'disk_file' is missing required property 'path'",
            "main.yaml:4:24: type 'disk_file' is missing required property 'path'",
            "main.yaml:5:43: property 'path' is required and cannot be null",
            "main.yaml:6:24: type 'disk_file' is missing required property 'path'",
            "main.yaml:7:17: type 'kv' is missing required property 'key'",
        ]

    def test_literals_of_the_wrong_type_are_located_at_the_value(self, tmp_path: Path) -> None:
        assert errors_of(
            tmp_path,
            """
            resources:
              a:
                type: disk_file
                properties:
                  path: [a]
                  mode: "644"
                  tags: {a: [1]}
                  lines: [a, {b: c}, null]
              b:
                type: kv
                properties:
                  key: k
                  ttl: true
                  enabled: "yes"
                  ports:
                    - {host: 1}
                    - 80
            """,
        ) == [
            "main.yaml:6:13: property path: expected string, got list",
            "main.yaml:7:13: property mode: expected integer, got string",
            "main.yaml:8:17: property tags.a: expected string, got list",
            "main.yaml:9:18: property lines[1]: expected string, got map",
            "main.yaml:9:26: property lines[2]: expected string, got null",
            "main.yaml:14:12: property ttl: expected number, got boolean",
            "main.yaml:15:16: property enabled: expected boolean, got string",
            "main.yaml:18:11: property ports[1]: expected map(any), got number",
        ]

    def test_expressions_take_any_type_unless_text_surrounds_them(self, tmp_path: Path) -> None:
        assert errors_of(
            tmp_path,
            """
            variables:
              m: {type: integer, default: 1}
            resources:
              ok: {type: disk_file, properties: {path: a, mode: "${{ var.m }}"}}
              bad: {type: disk_file, properties: {path: b, mode: "0${{ var.m }}"}}
            """,
        ) == ["main.yaml:6:54: property mode: expected integer, got string"]

    def test_derived_properties_cannot_be_set(self, tmp_path: Path) -> None:
        assert errors_of(
            tmp_path,
            "resources:\n  f: {type: disk_file, properties: {path: a, digest: abc}}\n",
        ) == ["main.yaml:2:46: property 'digest' of type 'disk_file' is computed and cannot be set"]

    def test_expressions_are_not_allowed_in_keys(self, tmp_path: Path) -> None:
        assert errors_of(
            tmp_path,
            "resources:\n  f: {type: disk_file, properties: {path: a, tags: {'${{ var.x }}': b}}}\n",
        ) == ["main.yaml:2:53: property tags: expressions are not allowed in keys"]


class TestCountAndForEach:
    def test_count_and_for_each_values(self, tmp_path: Path) -> None:
        stack = load(
            tmp_path,
            {
                "main.yaml": """
                    variables:
                      n: {type: integer, default: 2}
                    resources:
                      a: {type: disk_dir, count: 3, properties: {path: "d${{ count.index }}"}}
                      b: {type: disk_dir, count: "${{ var.n }}", properties: {path: b}}
                      c: {type: disk_dir, count: 0, properties: {path: c}}
                      d: {type: disk_dir, for_each: [x, 2, "${{ var.n }}"], properties: {path: "${{ each.key }}"}}
                      e:
                        type: kv
                        for_each: {x: {port: 1}, y: {port: 2}}
                        properties: {key: "${{ each.key }}", value: "${{ each.value.port }}"}
                """
            },
        )
        r = stack.resources
        assert (r["a"].count, r["a"].for_each) == (3, None)
        assert r["b"].count == Template("${{ var.n }}")
        assert r["c"].count == 0
        assert r["d"].for_each == ["x", "2", Template("${{ var.n }}")]
        assert r["e"].for_each == {"x": {"port": 1}, "y": {"port": 2}}

    def test_count_must_be_a_non_negative_whole_number_or_one_expression(
        self, tmp_path: Path
    ) -> None:
        assert errors_of(
            tmp_path,
            """
            resources:
              a: {type: disk_dir, count: -1, properties: {path: a}}
              b: {type: disk_dir, count: 1.5, properties: {path: a}}
              c: {type: disk_dir, count: "3", properties: {path: a}}
              d: {type: disk_dir, count: true, properties: {path: a}}
              e: {type: disk_dir, count: [1], properties: {path: a}}
              f: {type: disk_dir, count: "n${{ 1 }}", properties: {path: a}}
              g: {type: disk_dir, count: null, properties: {path: a}}
            """,
        ) == [
            "main.yaml:3:30: count must be a non-negative whole number, got -1",
            "main.yaml:4:30: count must be a non-negative whole number or one ${{ }} expression,"
            " got number 1.5",
            "main.yaml:5:30: count must be a non-negative whole number or one ${{ }} expression,"
            " got string '3'",
            "main.yaml:6:30: count must be a non-negative whole number or one ${{ }} expression,"
            " got boolean",
            "main.yaml:7:30: count must be a non-negative whole number or one ${{ }} expression,"
            " got list",
            "main.yaml:8:30: count is a whole number or one ${{ }} expression, not text",
            "main.yaml:9:30: count must be a non-negative whole number or one ${{ }} expression,"
            " got null",
        ]

    def test_count_and_for_each_together_is_an_error(self, tmp_path: Path) -> None:
        assert errors_of(
            tmp_path,
            "resources:\n  a: {type: disk_dir, count: 2, for_each: [x], properties: {path: a}}\n",
        ) == ["main.yaml:2:33: count and for_each cannot both be set: use one"]

    def test_for_each_takes_unique_keys_a_mapping_or_one_expression(self, tmp_path: Path) -> None:
        assert errors_of(
            tmp_path,
            """
            resources:
              a: {type: disk_dir, for_each: [x, y, x], properties: {path: a}}
              b: {type: disk_dir, for_each: [x, [y], null], properties: {path: a}}
              c: {type: disk_dir, for_each: x, properties: {path: a}}
              d: {type: disk_dir, for_each: "a ${{ 1 }}", properties: {path: a}}
              e: {type: disk_dir, for_each: 3, properties: {path: a}}
            """,
        ) == [
            "main.yaml:3:40: duplicate for_each key 'x'",
            "main.yaml:4:37: for_each[1]: expected string, got list",
            "main.yaml:4:42: for_each[2]: expected string, got null",
            "main.yaml:5:33: for_each must be a list of keys, a mapping or one ${{ }} expression,"
            " got string",
            "main.yaml:6:33: for_each is a list, a mapping or one ${{ }} expression, not text",
            "main.yaml:7:33: for_each must be a list of keys, a mapping or one ${{ }} expression,"
            " got number",
        ]


class TestLifecycle:
    def test_lifecycle_is_read(self, tmp_path: Path) -> None:
        stack = load(
            tmp_path,
            {
                "main.yaml": """
                    resources:
                      a:
                        type: disk_file
                        properties: {path: a}
                        lifecycle: {prevent_destroy: true, ignore_changes: [content, mode, content]}
                      b:
                        type: disk_file
                        properties: {path: b}
                        lifecycle: {create_before_destroy: true, ignore_changes: ["*"]}
                      c: {type: disk_file, properties: {path: c}, lifecycle: null}
                """
            },
        )
        r = stack.resources
        assert r["a"].lifecycle == Lifecycle(True, False, ("content", "mode"))
        assert r["b"].lifecycle == Lifecycle(False, True, ("*",))
        assert r["c"].lifecycle == Lifecycle()

    def test_lifecycle_keys_types_and_ignored_properties_are_checked(self, tmp_path: Path) -> None:
        assert errors_of(
            tmp_path,
            """
            resources:
              a:
                type: disk_file
                properties: {path: a}
                lifecycle:
                  prevent_destroy: "yes"
                  create_before_destory: true
                  ignore_changes: [contents, size]
            """,
        ) == [
            "main.yaml:7:24: expected a boolean, got a string",
            "main.yaml:8:7: unknown key 'create_before_destory' in lifecycle (did you mean"
            " 'create_before_destroy'?)",
            "main.yaml:9:24: ignore_changes: type 'disk_file' has no property 'contents'"
            " (did you mean 'content'?)",
            "main.yaml:9:34: ignore_changes: type 'disk_file' has no property 'size'",
        ]


class TestDependsOn:
    def test_depends_on_names_resources_and_modules(self, tmp_path: Path) -> None:
        stack = load(
            tmp_path,
            {
                "main.yaml": """
                    resources:
                      a: {type: disk_dir, properties: {path: a}}
                      b: {type: disk_dir, properties: {path: b}, depends_on: [a, modules.m, a]}
                      c: {type: disk_dir, properties: {path: c}, depends_on: b}
                    modules:
                      m: {source: ./m}
                """,
                "m/main.yaml": "{}",
            },
        )
        assert [n for n, _ in stack.resources["b"].depends_on] == ["a", "modules.m"]
        assert [n for n, _ in stack.resources["c"].depends_on] == ["b"]
        assert stack.resources["b"].depends_on[0][1].col == 59

    def test_depends_on_naming_nothing_is_an_error(self, tmp_path: Path) -> None:
        assert stack_errors(
            tmp_path,
            {
                "main.yaml": """
                    resources:
                      web: {type: disk_dir, properties: {path: a}}
                      a:
                        type: disk_dir
                        properties: {path: b}
                        depends_on: [wbe, modules.nope, m, "web[0]", resources.web, "${{ x }}", 3]
                    modules:
                      m: {source: ./m}
                """,
                "m/main.yaml": "{}",
            },
        ) == [
            "main.yaml:7:18: depends_on names no resource: 'wbe' is not declared"
            " (did you mean 'web'?)",
            "main.yaml:7:23: depends_on names no module: 'nope' is not declared",
            "main.yaml:7:37: depends_on names no resource: 'm' is not declared"
            " (for the module, write 'modules.m')",
            "main.yaml:7:40: depends_on names a whole resource ('web') or module ('modules.api'),"
            " got 'web[0]'",
            "main.yaml:7:50: depends_on names a whole resource ('web') or module ('modules.api'),"
            " got 'resources.web'",
            "main.yaml:7:65: expressions are not allowed in depends_on: name a resource or module",
            "main.yaml:7:77: depends_on names no resource: '3' is not declared",
        ]


class TestProviders:
    def test_provider_configuration_is_read(self, tmp_path: Path) -> None:
        stack = load(
            tmp_path,
            {
                "main.yaml": """
                    variables:
                      store: {default: kv.json}
                    providers:
                      kv: {store: "${{ var.store }}", indent: 2}
                      disk:
                """
            },
        )
        assert stack.providers == {
            "kv": {"store": Template("${{ var.store }}"), "indent": 2},
            "disk": {},
        }
        assert stack.provider_locations["kv"].line == 5

    def test_provider_blocks_are_checked_against_the_provider(self, tmp_path: Path) -> None:
        assert errors_of(
            tmp_path,
            """
            providers:
              dsk: {}
              kv: {indnet: 2, indent: two}
              disk: {root: "${{ resources.a.id }}"}
            resources:
              a: {type: disk_dir, properties: {path: a}}
            """,
        ) == [
            "main.yaml:3:3: unknown provider 'dsk' (did you mean 'disk'?); known providers: disk, kv",
            "main.yaml:4:3: provider 'kv' is missing required config 'store'",
            "main.yaml:4:8: unknown config 'indnet' for provider 'kv' (did you mean 'indent'?)",
            "main.yaml:4:27: config indent: expected integer, got string",
            "main.yaml:5:21: 'resources' is not available in provider 'disk' (only var)",
        ]
