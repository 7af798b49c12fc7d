"""A stack is a folder of YAML files: merged, and every mistake in them located."""

from __future__ import annotations

from pathlib import Path

from shipyard.errors import LocatedError, ValidationError
from shipyard.infra._model import Stack
from shipyard.infra._stack import load_stack, stack_files
from shipyard.workflow.expressions import Template
from tests.infra.stacks import REGISTRY, load, stack_errors

FILE = """
resources:
  f:
    type: disk_file
    properties: {path: f.txt}
"""


class TestFolder:
    def test_sections_of_all_files_are_merged_in_name_order(self, tmp_path: Path) -> None:
        stack = load(
            tmp_path,
            {
                "b.yaml": """
                    resources:
                      two: {type: disk_file, properties: {path: "${{ var.name }}"}}
                    outputs:
                      out: {value: "${{ resources.one.id }}"}
                """,
                "a.yml": """
                    variables:
                      name: {type: string, default: x}
                    resources:
                      one: {type: disk_dir, properties: {path: d}}
                """,
                "notes.txt": "not: [a stack file",
                ".hidden.yaml": "{{{ not even yaml",
            },
        )
        assert isinstance(stack, Stack)
        assert [p.name for p in stack.files] == ["a.yml", "b.yaml"]
        assert list(stack.resources) == ["one", "two"]
        assert stack.variables["name"].default == "x"
        assert isinstance(stack.resources["two"].properties["path"], Template)
        assert stack.outputs["out"].references[0].name == "one"
        assert tuple(stack_files(tmp_path)) == stack.files

    def test_empty_files_and_empty_sections_declare_nothing(self, tmp_path: Path) -> None:
        stack = load(tmp_path, {"a.yaml": "", "b.yaml": "# nothing\n", "c.yaml": "resources:\n"})
        assert stack.resources == {} and stack.variables == {} and stack.moved == ()

    def test_a_missing_folder_or_one_without_stack_files_is_an_error(self, tmp_path: Path) -> None:
        for path, message in [
            (tmp_path / "nope", f"stack folder '{tmp_path / 'nope'}' does not exist"),
            (tmp_path / "f.yaml", f"stack folder '{tmp_path / 'f.yaml'}' is not a folder"),
            (tmp_path / "empty", f"no stack files (*.yaml, *.yml) in '{tmp_path / 'empty'}'"),
        ]:
            (tmp_path / "f.yaml").write_text("")
            (tmp_path / "empty").mkdir(exist_ok=True)
            try:
                load_stack(path, REGISTRY)
            except ValidationError as err:
                assert [str(e) for e in err.errors] == [message]
            else:
                raise AssertionError("loaded")

    def test_files_that_are_not_utf8_are_located(self, tmp_path: Path) -> None:
        (tmp_path / "a.yaml").write_bytes(b"resources:\n  x: \xff\n")
        assert stack_errors(tmp_path) == ["a.yaml:2:6: file is not valid UTF-8 (byte 0xff)"]


class TestShapes:
    def test_yaml_syntax_errors_are_located(self, tmp_path: Path) -> None:
        assert stack_errors(
            tmp_path,
            {
                "a.yaml": "resources:\n  web: [unclosed\n",
                "b.yaml": "variables:\n\tport: 1\n",
                "c.yaml": "resources: {}\nresources: {}\n",
            },
        ) == [
            "a.yaml:3:1: did not find expected ',' or ']' in a flow sequence",
            "b.yaml:2:1: tabs cannot be used for indentation",
            "c.yaml:2:1: duplicate key 'resources'",
        ]

    def test_unknown_keys_are_named_with_the_closest_known_one(self, tmp_path: Path) -> None:
        assert stack_errors(
            tmp_path,
            {
                "main.yaml": """
                    resource: {}
                    variables:
                      port: {tpye: integer}
                    resources:
                      web: {type: disk_file, propertes: {path: x}}
                    modules:
                      m: {source: ./m, varables: {}}
                    outputs:
                      o: {value: 1, sensitiv: true}
                    moved:
                      - {from: a, too: b}
                    zzz: 1
                """,
                "m/main.yaml": "{}",
            },
        ) == [
            "main.yaml:2:1: unknown key 'resource' at the top of a stack file"
            " (did you mean 'resources'?)",
            "main.yaml:4:10: unknown key 'tpye' in variable 'port' (did you mean 'type'?)",
            "main.yaml:6:3: type 'disk_file' is missing required property 'path'",
            "main.yaml:6:26: unknown key 'propertes' in resource 'web' (did you mean 'properties'?)",
            "main.yaml:8:20: unknown key 'varables' in module 'm' (did you mean 'variables'?)",
            "main.yaml:10:17: unknown key 'sensitiv' in output 'o' (did you mean 'sensitive'?)",
            "main.yaml:12:5: 'to' is required",
            "main.yaml:12:15: unknown key 'too' in a moved entry (did you mean 'to'?)",
            "main.yaml:13:1: unknown key 'zzz' at the top of a stack file",
        ]

    def test_wrong_shapes_say_what_was_expected(self, tmp_path: Path) -> None:
        assert stack_errors(
            tmp_path,
            {
                "a.yaml": "- just\n- a list\n",
                "b.yaml": """
                    resources: [web]
                    variables: 3
                    outputs:
                      o: hello
                    moved: {from: a, to: b}
                """,
                "c.yaml": """
                    resources:
                      web: [disk_file]
                      f:
                        type: [disk_file]
                        properties: [path]
                        depends_on: {a: b}
                        lifecycle: [prevent_destroy]
                """,
            },
        ) == [
            "a.yaml:1:1: expected a mapping, got a list",
            "b.yaml:2:12: expected a mapping, got a list",
            "b.yaml:3:12: expected a mapping, got a number",
            "b.yaml:5:6: expected a mapping, got a string",
            "b.yaml:6:8: expected a list, got a mapping",
            "c.yaml:3:8: expected a mapping, got a list",
            "c.yaml:5:11: expected a string, got a list",
            "c.yaml:6:17: expected a mapping, got a list",
            "c.yaml:7:17: depends_on must be a string or a list of strings, got a mapping",
            "c.yaml:8:16: expected a mapping, got a list",
        ]

    def test_invalid_and_reserved_names_are_refused(self, tmp_path: Path) -> None:
        assert stack_errors(
            tmp_path,
            {
                "main.yaml": """
                    resources:
                      "my web": {type: disk_dir, properties: {path: a}}
                      modules: {type: disk_dir, properties: {path: b}}
                    variables:
                      1port: {}
                """
            },
        ) == [
            "main.yaml:3:3: invalid resource name 'my web': use letters, digits, '_' and '-',"
            " starting with a letter or '_'",
            "main.yaml:4:3: 'modules' cannot name a resource: addresses use it for modules",
            "main.yaml:6:3: invalid variable name '1port': use letters, digits, '_' and '-',"
            " starting with a letter or '_'",
        ]


class TestDuplicates:
    def test_a_name_declared_in_two_files_is_an_error_at_the_second(self, tmp_path: Path) -> None:
        assert stack_errors(
            tmp_path,
            {
                "a.yaml": FILE + "variables:\n  v: {}\noutputs:\n  o: {value: 1}\n",
                "b.yaml": FILE + "variables:\n  v: {}\noutputs:\n  o: {value: 2}\n",
                "c.yaml": "providers:\n  disk: {}\n",
                "d.yaml": "providers:\n  disk: {}\n",
            },
        ) == [
            f"b.yaml:3:3: resource 'f' is already declared at {tmp_path}/a.yaml:3:3",
            f"b.yaml:7:3: variable 'v' is already declared at {tmp_path}/a.yaml:7:3",
            f"b.yaml:9:3: output 'o' is already declared at {tmp_path}/a.yaml:9:3",
            f"d.yaml:2:3: provider 'disk' is already declared at {tmp_path}/c.yaml:2:3",
        ]

    def test_a_name_declared_twice_in_one_file_is_a_duplicate_key(self, tmp_path: Path) -> None:
        assert stack_errors(tmp_path, {"a.yaml": FILE + "  f:\n    type: disk_dir\n"}) == [
            "a.yaml:6:3: duplicate key 'f'",
        ]

    def test_resources_and_modules_have_separate_names(self, tmp_path: Path) -> None:
        stack = load(
            tmp_path,
            {"a.yaml": FILE + "modules:\n  f: {source: ./m}\n", "m/main.yaml": FILE},
        )
        assert "f" in stack.resources and "f" in stack.modules


def test_many_mistakes_in_many_files_are_all_reported_in_file_order(tmp_path: Path) -> None:
    errors = stack_errors(
        tmp_path,
        {
            "b.yaml": """
                resources:
                  one: {type: disk_fle, properties: {path: a}}
                  two: {type: disk_file, properties: {path: 1, mode: "x"}}
            """,
            "a.yaml": """
                variables:
                  p: {type: strng}
                outputs:
                  o: {value: "${{ var.nope }}"}
            """,
            "c.yaml": "resources:\n  three: {type: disk_dir}\n  four: {type: disk_dir",
        },
    )
    assert errors == [
        "a.yaml:3:13: unknown type 'strng' (did you mean 'string'?); types are string, number,"
        " integer, boolean, any, list(T) and map(T)",
        "a.yaml:5:23: unknown variable 'nope'",
        "b.yaml:3:15: unknown resource type 'disk_fle' (did you mean 'disk_file'?); known types:"
        " disk_dir, disk_file, kv",
        "b.yaml:4:54: property mode: expected integer, got string",
        "c.yaml:4:1: did not find expected ',' or '}' in a flow mapping",
    ]


def test_errors_are_located_errors_with_file_line_and_column(tmp_path: Path) -> None:
    (tmp_path / "main.yaml").write_text("resources:\n  web: {type: nope}\n")
    try:
        load_stack(tmp_path, REGISTRY)
    except ValidationError as err:
        (error,) = err.errors
        assert isinstance(error, LocatedError)
        assert error.location is not None
        assert (error.location.file, error.location.line, error.location.col) == (
            str(tmp_path / "main.yaml"),
            2,
            15,
        )
    else:
        raise AssertionError("loaded")
