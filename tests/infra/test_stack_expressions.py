"""``${{ }}`` in stack files: parse errors and bad references located inside the string,
and the references the engine needs extracted with their places."""

from __future__ import annotations

from pathlib import Path

from shipyard.infra._model import Reference
from tests.infra.stacks import load, stack_errors

DECLS = """\
variables:
  port: {type: integer, default: 8080}
  names: {type: list(string), default: [a]}
resources:
  one: {type: disk_file, properties: {path: a}}
  many: {type: disk_file, count: 2, properties: {path: "m${{ count.index }}"}}
  keyed: {type: disk_file, for_each: [a], properties: {path: "${{ each.key }}"}}
modules:
  m: {source: ./m}
"""
MODULE = "outputs:\n  x: {value: 1}\n"


def t_errors(tmp_path: Path, properties: str) -> list[str]:
    """Errors of a stack with DECLS and, in t.yaml, kv resource ``t`` with ``properties``
    (its lines start at line 5)."""
    t = "resources:\n  t:\n    type: kv\n    properties:\n" + properties
    return stack_errors(tmp_path, {"main.yaml": DECLS, "t.yaml": t, "m/main.yaml": MODULE})


class TestParseErrors:
    def test_parse_errors_are_located_inside_plain_quoted_and_block_strings(
        self, tmp_path: Path
    ) -> None:
        assert t_errors(
            tmp_path,
            "      key: ${{ var.port + 1 }}\n"
            "      value: 'a ${{ fromJSON(''x'' }}'\n"
            "      ports:\n"
            "        - a: |\n"
            "            first line\n"
            "            then ${{ var.port == }}\n"
            '        - b: "${{ var.port"\n'
            '        - c: "${{ nope(1) }}"\n',
        ) == [
            "t.yaml:5:25: invalid number '+'",
            "t.yaml:6:35: expected ')' to close '(' at offset 8",
            "t.yaml:10:33: unexpected end of expression",
            "t.yaml:11:15: '${{' is not closed by '}}'",
            "t.yaml:12:19: unknown function 'nope'",
        ]


class TestReferenceErrors:
    def test_unknown_contexts_variables_resources_and_attributes(self, tmp_path: Path) -> None:
        assert t_errors(
            tmp_path,
            "      key: k\n"
            "      value: |\n"
            "        line one ${{ github.sha }}\n"
            "        two ${{ var.prot }} ${{ resources.on.id }}\n"
            '      ttl: "${{ resources.one.sizee }}"\n',
        ) == [
            "t.yaml:7:22: unknown context 'github'; available in resource 't': modules,"
            " resources, var",
            "t.yaml:8:21: unknown variable 'prot' (did you mean 'port'?)",
            "t.yaml:8:43: unknown resource 'on' (did you mean 'one'?)",
            "t.yaml:9:31: resource 'one' (disk_file) has no attribute 'sizee' (did you mean"
            " 'size'?)",
        ]

    def test_count_index_and_each_only_where_count_or_for_each_is_set(self, tmp_path: Path) -> None:
        assert t_errors(
            tmp_path,
            '      key: "${{ count.index }} ${{ each.key }} ${{ each.value.x }}"\n'
            '      value: "${{ count.foo }} ${{ each.nope }} ${{ count }}"\n',
        ) == [
            "t.yaml:5:17: count.index is not available in resource 't': only where count is set",
            "t.yaml:5:36: each.key is not available in resource 't': only where for_each is set",
            "t.yaml:5:52: each.value is not available in resource 't': only where for_each is set",
            "t.yaml:6:25: 'count.foo' does not exist: count has only count.index",
            "t.yaml:6:41: 'each.nope' does not exist: use each.key or each.value",
            "t.yaml:6:53: 'count' does not exist: count has only count.index",
        ]

    def test_instances_are_picked_the_way_the_resource_is_expanded(self, tmp_path: Path) -> None:
        assert t_errors(
            tmp_path,
            "      key: k\n"
            "      ports:\n"
            '        - a: "${{ resources.many.id }} ${{ resources.one[0].id }}"\n'
            "        - b: \"${{ resources.many['x'].id }} ${{ resources.keyed[0].id }}\"\n"
            '        - c: "${{ resources.keyed.id }}"\n',
        ) == [
            "t.yaml:7:34: resource 'many' (disk_file) uses count: pick one instance"
            " (resources.many[...]) or all of them (resources.many.*)",
            "t.yaml:7:58: resource 'one' (disk_file) has no count or for_each: it has one"
            " instance, resources.one",
            "t.yaml:8:34: resource 'many' (disk_file) uses count: pick an instance by number,"
            " resources.many[0]",
            "t.yaml:8:65: resource 'keyed' (disk_file) uses for_each: pick an instance by key,"
            " resources.keyed['key']",
            "t.yaml:9:35: resource 'keyed' (disk_file) uses for_each: pick one instance"
            " (resources.keyed[...]) or all of them (resources.keyed.*)",
        ]

    def test_valid_instance_references_pass(self, tmp_path: Path) -> None:
        stack = load(
            tmp_path,
            {
                "main.yaml": DECLS,
                "m/main.yaml": MODULE,
                "t.yaml": """\
                    resources:
                      t:
                        type: kv
                        count: 2
                        properties:
                          key: "${{ resources.many[1].id }}${{ resources.many[count.index].path }}"
                          value: "${{ resources.many.*.id }} ${{ resources.keyed['a'].size }}"
                          ports: "${{ resources.many }}"
                          ttl: "${{ resources.one['size'] }}"
                """,
            },
        )
        assert len(stack.resources["t"].references) == 6

    def test_modules_are_read_through_their_declared_outputs(self, tmp_path: Path) -> None:
        assert t_errors(
            tmp_path,
            '      key: "${{ modules.nope.outputs.x }} ${{ modules.m.outputs.y }}"\n'
            '      value: "${{ modules.m.foo }} ${{ modules.m.outputs.x }}"\n',
        ) == [
            "t.yaml:5:25: unknown module 'nope'",
            "t.yaml:5:65: module 'm' has no output 'y'",
            "t.yaml:6:29: a module is read through its outputs: modules.m.outputs.NAME",
        ]

    def test_whole_contexts_and_workflow_functions_are_refused(self, tmp_path: Path) -> None:
        assert t_errors(
            tmp_path,
            '      key: "${{ var }} ${{ resources[0] }} ${{ toJSON(modules) }}"\n'
            "      value: \"${{ hashFiles('x') }} ${{ success() }}\"\n",
        ) == [
            "t.yaml:5:17: a variable is read by its name: var.NAME",
            "t.yaml:5:28: a resource is read by its name: resources.NAME",
            "t.yaml:5:55: a module is read by its name: modules.NAME",
            "t.yaml:6:19: function 'hashFiles' cannot be used in stack files",
            "t.yaml:6:41: function 'success' cannot be used in stack files",
        ]

    def test_count_and_for_each_expressions_cannot_use_their_own_instance(
        self, tmp_path: Path
    ) -> None:
        assert stack_errors(
            tmp_path,
            {
                "main.yaml": """\
                    resources:
                      a: {type: disk_dir, count: "${{ count.index }}", properties: {path: a}}
                      b: {type: disk_dir, for_each: "${{ each.value }}", properties: {path: b}}
                """
            },
        ) == [
            "main.yaml:2:35: count.index is not available in the count of resource 'a': only"
            " where count is set",
            "main.yaml:3:38: each.value is not available in the for_each of resource 'b': only"
            " where for_each is set",
        ]


class TestReferences:
    def test_references_name_kind_name_attribute_and_place(self, tmp_path: Path) -> None:
        stack = load(
            tmp_path,
            {
                "main.yaml": DECLS,
                "m/main.yaml": MODULE,
                "t.yaml": """\
                    resources:
                      t:
                        type: kv
                        for_each: "${{ var.names }}"
                        properties:
                          key: "${{ each.key }}-${{ resources.one.checksum }}"
                          value:
                            - "${{ resources.keyed[var.names[0]].path }}"
                            - "${{ modules.m.outputs.x }} ${{ resources.many.*.id }}"
                            - "${{ VAR.Port }}"
                """,
            },
        )
        t = stack.resources["t"]
        file = str(tmp_path / "t.yaml")
        shown = [
            (r.kind, r.name, r.attribute, r.location.line, r.location.col) for r in t.references
        ]
        assert shown == [
            ("var", "names", None, 4, 20),
            ("resource", "one", "checksum", 6, 33),
            ("resource", "keyed", "path", 8, 16),
            ("var", "names", None, 8, 32),
            ("module", "m", "x", 9, 16),
            ("resource", "many", "id", 9, 43),
            ("var", "port", None, 10, 16),
        ]
        assert all(isinstance(r, Reference) and r.location.file == file for r in t.references)

    def test_outputs_and_module_variables_keep_their_references(self, tmp_path: Path) -> None:
        stack = load(
            tmp_path,
            {
                "main.yaml": """\
                    resources:
                      a: {type: disk_dir, properties: {path: a}}
                    modules:
                      m:
                        source: ./m
                        variables: {v: "${{ resources.a.path }}"}
                    outputs:
                      o: {value: {x: ["${{ modules.m.outputs.x }}"]}}
                """,
                "m/main.yaml": "variables:\n  v: {}\noutputs:\n  x: {value: '${{ var.v }}'}\n",
            },
        )
        (ref,) = stack.modules["m"].references
        assert (ref.kind, ref.name, ref.attribute) == ("resource", "a", "path")
        (ref,) = stack.outputs["o"].references
        assert (ref.kind, ref.name, ref.attribute) == ("module", "m", "x")
        assert stack.outputs["o"].locations[("value", "x", 0)].line == 8
        inner = stack.modules["m"].stack.outputs["x"].references[0]
        assert (inner.kind, inner.name, inner.location.file) == (
            "var",
            "v",
            str(tmp_path / "m" / "main.yaml"),
        )
