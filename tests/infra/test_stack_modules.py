"""Modules (local folders loaded recursively), outputs, ``moved`` entries and cycles."""

from __future__ import annotations

from pathlib import Path

from shipyard.infra._model import MovedDecl
from shipyard.workflow.expressions import Template
from tests.infra.stacks import load, stack_errors

SERVICE = """\
variables:
  port: {type: integer}
  name: {type: string, default: svc}
resources:
  conf:
    type: disk_file
    properties: {path: "${{ var.name }}.conf", content: "port=${{ var.port }}"}
outputs:
  path: {value: "${{ resources.conf.path }}", description: the config file}
  secret: {value: "${{ resources.conf.checksum }}", sensitive: true}
"""


class TestModules:
    def test_modules_are_loaded_recursively_and_shared(self, tmp_path: Path) -> None:
        stack = load(
            tmp_path,
            {
                "main.yaml": """\
                    modules:
                      api:
                        source: ./modules/service
                        count: 2
                        variables: {port: "${{ 8080 }}"}
                      web:
                        source: modules/service/
                        for_each: [a, b]
                        variables: {port: 80, name: "${{ each.key }}"}
                      outer: {source: ./outer}
                """,
                "modules/service/main.yaml": SERVICE,
                "outer/main.yaml": "modules:\n  inner: {source: ../modules/service, variables: {port: 1}}\n",
            },
        )
        api, web = stack.modules["api"], stack.modules["web"]
        assert api.source == "./modules/service" and web.source == "modules/service/"
        assert api.stack is web.stack  # one folder, loaded once
        assert api.stack.dir == tmp_path / "modules" / "service"
        assert list(api.stack.resources) == ["conf"]
        assert api.stack.outputs["secret"].sensitive
        assert api.stack.outputs["path"].description == "the config file"
        assert (api.count, api.for_each) == (2, None)
        assert api.variables == {"port": Template("${{ 8080 }}")}
        assert web.variables == {"port": 80, "name": Template("${{ each.key }}")}
        assert web.for_each == ["a", "b"]
        assert stack.modules["outer"].stack.modules["inner"].stack is api.stack
        assert api.locations[("variables", "port")].line == 5

    def test_module_errors_are_reported_in_the_module_file(self, tmp_path: Path) -> None:
        assert stack_errors(
            tmp_path,
            {
                "main.yaml": "modules:\n  api: {source: ./m, variables: {port: 1}}\n",
                "m/main.yaml": "variables:\n  port: {}\nresources:\n  x: {type: disk_file}\n",
                "m/other.yaml": "outputs:\n  o: {value: '${{ resources.y.id }}'}\n",
            },
        ) == [
            "m/main.yaml:4:3: type 'disk_file' is missing required property 'path'",
            "m/other.yaml:2:29: unknown resource 'y'",
        ]

    def test_source_must_be_an_existing_relative_folder_with_stack_files(
        self, tmp_path: Path
    ) -> None:
        (tmp_path / "empty").mkdir()
        assert stack_errors(
            tmp_path,
            {
                "main.yaml": """\
                    modules:
                      a: {source: ./nope}
                      b: {source: ./file.txt}
                      c: {source: /etc}
                      d: {source: ./empty}
                      e: {source: ""}
                      f: {variables: {}}
                      g: {source: [x]}
                """,
                "file.txt": "x",
            },
        ) == [
            f"main.yaml:2:15: module folder '{tmp_path}/nope' does not exist",
            f"main.yaml:3:15: module folder '{tmp_path}/file.txt' is not a folder",
            "main.yaml:4:15: source '/etc' must be relative to this stack's folder, e.g."
            " ./modules/api",
            f"main.yaml:5:15: module folder '{tmp_path}/empty' has no stack files (*.yaml, *.yml)",
            "main.yaml:6:15: source cannot be empty: give the module's folder, e.g. ./modules/api",
            "main.yaml:7:3: 'source' is required",
            "main.yaml:8:15: expected a string, got a list",
        ]

    def test_module_variables_are_checked_against_the_module(self, tmp_path: Path) -> None:
        assert stack_errors(
            tmp_path,
            {
                "main.yaml": """\
                    modules:
                      a: {source: ./svc, variables: {prot: 1, name: [x]}}
                      b: {source: ./svc}
                      c: {source: ./svc, variables: {port: "80"}}
                """,
                "svc/main.yaml": SERVICE,
            },
        ) == [
            "main.yaml:2:22: module 'a' is missing required variable 'port'",
            "main.yaml:2:34: module 'a' has no variable 'prot' (did you mean 'port'?)",
            "main.yaml:2:49: variable name: expected string, got list",
            "main.yaml:3:3: module 'b' is missing required variable 'port'",
            "main.yaml:4:40: variable port: expected integer, got string",
        ]

    def test_a_module_including_itself_is_an_error_naming_the_chain(self, tmp_path: Path) -> None:
        assert stack_errors(
            tmp_path,
            {
                "main.yaml": "modules:\n  a: {source: ./a}\n  self: {source: .}\n",
                "a/main.yaml": "modules:\n  b: {source: ../b}\n",
                "b/main.yaml": "modules:\n  again: {source: ../a}\n",
            },
        ) == [
            f"main.yaml:3:18: module 'self' includes itself: {tmp_path} → {tmp_path}",
            f"b/main.yaml:2:19: module 'again' includes itself: {tmp_path}/a → {tmp_path}/b →"
            f" {tmp_path}/a",
        ]


class TestOutputs:
    def test_outputs_hold_value_trees(self, tmp_path: Path) -> None:
        stack = load(
            tmp_path,
            {
                "main.yaml": """\
                    variables:
                      v: {default: 1}
                    outputs:
                      plain: {value: 3}
                      tree: {value: {a: ["${{ var.v }}", x]}, description: d, sensitive: true}
                """
            },
        )
        o = stack.outputs
        assert o["plain"].value == 3 and not o["plain"].sensitive
        assert o["tree"].value == {"a": [Template("${{ var.v }}"), "x"]}
        assert (o["tree"].description, o["tree"].sensitive) == ("d", True)

    def test_outputs_need_a_value_and_declared_references(self, tmp_path: Path) -> None:
        assert stack_errors(
            tmp_path,
            {
                "main.yaml": """\
                    outputs:
                      a: {description: x}
                      b: {value: "${{ each.key }}", sensitive: 1}
                """
            },
        ) == [
            "main.yaml:2:3: 'value' is required",
            "main.yaml:3:19: each.key is not available in output 'b': only where for_each is set",
            "main.yaml:3:44: expected a boolean, got a number",
        ]


class TestMoved:
    def test_moved_entries_are_read_as_canonical_addresses(self, tmp_path: Path) -> None:
        stack = load(
            tmp_path,
            {
                "main.yaml": """\
                    resources:
                      web: {type: disk_dir, count: 2, properties: {path: w}}
                    modules:
                      api: {source: ./m}
                    moved:
                      - {from: old, to: "web[0]"}
                      - {from: "modules.api.old['a']", to: "modules.api.x"}
                      - {from: modules.legacy, to: modules.api}
                      - {from: a, to: b}
                      - {from: b, to: web}
                """,
                "m/main.yaml": "resources:\n  x: {type: disk_dir, properties: {path: x}}\n",
            },
        )
        assert [(m.source, m.target) for m in stack.moved] == [
            ("old", "web[0]"),
            ('modules.api.old["a"]', "modules.api.x"),
            ("modules.legacy", "modules.api"),
            ("a", "b"),
            ("b", "web"),
        ]
        assert isinstance(stack.moved[0], MovedDecl) and stack.moved[0].location.line == 6

    def test_bad_moved_entries_are_errors(self, tmp_path: Path) -> None:
        assert stack_errors(
            tmp_path,
            {
                "main.yaml": """\
                    resources:
                      web: {type: disk_dir, properties: {path: w}}
                    moved:
                      - {from: "web[", to: web}
                      - {from: web, to: web}
                      - {from: modules.a, to: web}
                      - {from: old, to: web}
                      - {from: old, to: web2}
                      - {from: older, to: web}
                      - {from: x, to: nothing}
                      - {from: y, to: modules.nope.web}
                      - just-a-string
                """
            },
        ) == [
            "main.yaml:4:12: invalid address 'web[': expected a number or a \"key\" inside [ ]"
            " at column 5",
            "main.yaml:5:5: moved from and to are the same address 'web'",
            "main.yaml:6:5: cannot move a module ('modules.a') to a resource ('web')",
            f"main.yaml:8:12: 'old' is already moved by the entry at {tmp_path}/main.yaml:7:12",
            f"main.yaml:9:23: 'web' is already the target of the entry at {tmp_path}/main.yaml:7:21",
            "main.yaml:10:19: moved to 'nothing', which this stack does not declare",
            "main.yaml:11:19: moved to 'modules.nope.web', which this stack does not declare",
            "main.yaml:12:5: expected a mapping, got a string",
        ]


class TestCycles:
    def test_a_cycle_is_one_error_naming_every_member_in_order(self, tmp_path: Path) -> None:
        assert stack_errors(
            tmp_path,
            {
                "main.yaml": """\
                    resources:
                      ok: {type: disk_dir, properties: {path: ok}}
                      a: {type: disk_file, properties: {path: "${{ resources.b.path }}"}}
                      b: {type: disk_file, properties: {path: b}, depends_on: [c, ok]}
                      c: {type: disk_file, count: "${{ resources.a.size }}", properties: {path: c}}
                      self: {type: disk_file, properties: {path: s, content: "${{ resources.self.id }}"}}
                """
            },
        ) == [
            "main.yaml:3:3: cycle: a → b → c → a",
            "main.yaml:6:3: cycle: self → self",
        ]

    def test_cycles_through_modules_and_depends_on_name_the_module(self, tmp_path: Path) -> None:
        assert stack_errors(
            tmp_path,
            {
                "b.yaml": """\
                    resources:
                      db: {type: disk_file, properties: {path: "${{ modules.api.outputs.path }}"}}
                """,
                "a.yaml": """\
                    modules:
                      api:
                        source: ./svc
                        variables: {port: 1}
                        depends_on: [db]
                      other: {source: ./svc, variables: {port: 1}, depends_on: [modules.other]}
                """,
                "svc/main.yaml": SERVICE,
            },
        ) == [
            "a.yaml:2:3: cycle: modules.api → db → modules.api",
            "a.yaml:6:3: cycle: modules.other → modules.other",
        ]

    def test_the_shortest_way_round_is_named_when_paths_branch(self, tmp_path: Path) -> None:
        assert stack_errors(
            tmp_path,
            {
                "main.yaml": """\
                    resources:
                      a: {type: disk_dir, properties: {path: a}, depends_on: [b, c]}
                      b: {type: disk_dir, properties: {path: b}, depends_on: [d]}
                      c: {type: disk_dir, properties: {path: c}, depends_on: [a]}
                      d: {type: disk_dir, properties: {path: d}, depends_on: [c]}
                """
            },
        ) == ["main.yaml:2:3: cycle: a → c → a"]
