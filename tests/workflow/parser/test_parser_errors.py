"""Each kind of mistake in a workflow is reported as an exact ``file:line:col: message``."""

from __future__ import annotations

import textwrap

import pytest

from shipyard.errors import ValidationError
from shipyard.workflow._parser import check_workflow, load_workflow

JOB = "on: push\njobs:\n  a:\n    runs-on: x\n"


def errors_of(text: str) -> list[str]:
    _, errors = check_workflow("wf.yml", textwrap.dedent(text))
    return [str(e) for e in errors]


CASES: list[tuple[str, str, list[str]]] = [
    # -- the file as a whole --------------------------------------------------------
    ("empty file", "", ["wf.yml:1:1: the workflow file is empty"]),
    ("only comments", "# nothing here\n", ["wf.yml:1:1: the workflow file is empty"]),
    ("top-level string", "just text\n", ["wf.yml:1:1: expected a mapping, got a string"]),
    ("top-level list", "- a\n", ["wf.yml:1:1: expected a mapping, got a list"]),
    (
        "missing on and jobs",
        "name: x\n",
        ["wf.yml:1:1: 'on' is required", "wf.yml:1:1: 'jobs' is required"],
    ),
    (
        "unknown top-level key",
        "on: push\njbos: {}\njobs:\n  a:\n    runs-on: x\n    steps: [{run: x}]\n",
        ["wf.yml:2:1: unknown key 'jbos' (did you mean 'jobs'?)"],
    ),
    ("no jobs", "on: push\njobs: {}\n", ["wf.yml:2:7: 'jobs' must contain at least one job"]),
    (
        "syntax error",
        "on: push\njobs:\n  a: b: c\n",
        ["wf.yml:3:7: mapping values are not allowed here"],
    ),
    (
        "tab indentation",
        "on: push\njobs:\n\ta: 1\n",
        ["wf.yml:3:1: tabs cannot be used for indentation"],
    ),
    (
        "merge key and duplicate key",
        "on: push\njobs:\n  a:\n    runs-on: x\n    <<: {}\n    runs-on: y\n    steps: [{run: x}]\n",
        [
            "wf.yml:5:5: merge keys ('<<') are not supported",
            "wf.yml:6:5: duplicate key 'runs-on'",
        ],
    ),
    # -- jobs -----------------------------------------------------------------------
    (
        "invalid job id",
        "on: push\njobs:\n  1build:\n    runs-on: x\n    steps: [{run: x}]\n",
        [
            "wf.yml:3:3: invalid job id '1build': use letters, digits, '-' and '_',"
            " starting with a letter or '_'"
        ],
    ),
    (
        "unknown job key",
        "on: push\njobs:\n  build:\n    runs-on: x\n    step:\n      - run: make\n",
        [
            "wf.yml:3:3: 'steps' is required",
            "wf.yml:5:5: unknown key 'step' in job 'build' (did you mean 'steps'?)",
        ],
    ),
    (
        "runs-on missing",
        "on: push\njobs:\n  build:\n    steps:\n      - run: make\n",
        ["wf.yml:3:3: 'runs-on' is required"],
    ),
    (
        "needs a missing job",
        "on: push\njobs:\n  build:\n    runs-on: x\n    steps: [{run: x}]\n"
        "  deploy:\n    needs: [build, biuld]\n    runs-on: x\n    steps: [{run: x}]\n",
        ["wf.yml:7:20: job 'deploy' needs 'biuld', which does not exist"],
    ),
    (
        "dependency cycle",
        "on: push\njobs:\n"
        "  a:\n    needs: c\n    runs-on: x\n    steps: [{run: x}]\n"
        "  b:\n    needs: a\n    runs-on: x\n    steps: [{run: x}]\n"
        "  c:\n    needs: [b]\n    runs-on: x\n    steps: [{run: x}]\n",
        ["wf.yml:3:3: dependency cycle: a -> c -> b -> a"],
    ),
    (
        "job needing itself",
        "on: push\njobs:\n  a:\n    needs: a\n    runs-on: x\n    steps: [{run: x}]\n",
        ["wf.yml:3:3: dependency cycle: a -> a"],
    ),
    (
        "bad timeout and continue-on-error",
        JOB + "    timeout-minutes: -1\n    continue-on-error: maybe\n    steps: [{run: x}]\n",
        [
            "wf.yml:5:22: expected a positive number, got -1",
            "wf.yml:6:24: expected a boolean or an expression, got a string",
        ],
    ),
    (
        "steps in a reusable-workflow call",
        "on: push\njobs:\n  a:\n    uses: ./.github/workflows/b.yml\n    runs-on: x\n"
        "    steps:\n      - run: y\n",
        [
            "wf.yml:5:5: 'runs-on' cannot be used in a job that calls a reusable workflow ('uses')",
            "wf.yml:6:5: 'steps' cannot be used in a job that calls a reusable workflow ('uses')",
        ],
    ),
    (
        "with on a job that runs steps",
        JOB + "    with: {a: 1}\n    secrets: inherit\n    steps: [{run: x}]\n",
        [
            "wf.yml:5:5: 'with' is only valid in a job that calls a reusable workflow ('uses')",
            "wf.yml:6:5: 'secrets' is only valid in a job that calls a reusable workflow ('uses')",
        ],
    ),
    (
        "bad reusable workflow reference",
        "on: push\njobs:\n  a:\n    uses: octo/repo/workflow.yml\n    secrets: all\n",
        [
            "wf.yml:4:11: invalid reusable workflow reference 'octo/repo/workflow.yml':"
            " expected './.github/workflows/<file>.yml' or"
            " '<owner>/<repo>/.github/workflows/<file>.yml@<ref>'",
            "wf.yml:5:14: 'secrets' must be 'inherit' or a mapping",
        ],
    ),
    (
        "permissions",
        "on: push\npermissions:\n  contents: admin\n  contnets: read\n  id-token: read\n"
        "jobs:\n  a:\n    runs-on: x\n    permissions: everything\n    steps: [{run: x}]\n",
        [
            "wf.yml:3:13: permission 'contents' must be 'read', 'write' or 'none'",
            "wf.yml:4:3: unknown permission scope 'contnets' (did you mean 'contents'?)",
            "wf.yml:5:13: permission 'id-token' must be 'write' or 'none'",
            "wf.yml:9:18: permissions must be 'read-all', 'write-all' or a mapping of scopes",
        ],
    ),
    (
        "container and services",
        JOB
        + "    container:\n      env: {A: 1}\n    services:\n      db:\n        image: postgres\n"
        "        ports: 5432\n      cache: redis\n    steps: [{run: x}]\n",
        [
            "wf.yml:6:7: 'image' is required",
            "wf.yml:10:16: expected a list, got a number",
            "wf.yml:11:14: expected a mapping, got a string",
        ],
    ),
    (
        "environment and concurrency mappings",
        JOB
        + "    environment:\n      url: https://x\n    concurrency:\n      cancel-in-progress: 1\n"
        "    steps: [{run: x}]\n",
        ["wf.yml:6:7: 'name' is required", "wf.yml:8:7: 'group' is required"],
    ),
    (
        "runs-on shapes",
        "on: push\njobs:\n  a:\n    runs-on: []\n    steps: [{run: x}]\n"
        "  b:\n    runs-on: {grp: x}\n    steps: [{run: x}]\n",
        [
            "wf.yml:4:14: 'runs-on' must list at least one label",
            "wf.yml:7:14: 'runs-on' needs 'group' or 'labels'",
            "wf.yml:7:15: unknown key 'grp' in 'runs-on' (did you mean 'group'?)",
        ],
    ),
    # -- steps ----------------------------------------------------------------------
    (
        "step with uses and run",
        JOB + "    steps:\n      - uses: actions/checkout@v4\n        run: make\n",
        ["wf.yml:7:9: a step cannot have both 'uses' and 'run'"],
    ),
    (
        "step with neither uses nor run",
        JOB + "    steps:\n      - name: nothing\n",
        ["wf.yml:6:9: step 1 of job 'a' must have 'uses' or 'run'"],
    ),
    (
        "unknown step key",
        JOB + "    steps:\n      - run: y\n        nmae: x\n",
        ["wf.yml:7:9: unknown key 'nmae' in step 1 of job 'a' (did you mean 'name'?)"],
    ),
    (
        "step ids",
        JOB + "    steps:\n      - id: 1st\n        run: y\n      - id: build\n        run: y\n"
        "      - id: build\n        run: y\n",
        [
            "wf.yml:6:13: invalid step id '1st': use letters, digits, '-' and '_',"
            " starting with a letter or '_'",
            "wf.yml:10:13: step id 'build' is already used in job 'a' (line 8)",
        ],
    ),
    (
        "keys that belong to the other kind of step",
        JOB + "    steps:\n      - run: y\n        with: {a: 1}\n      - uses: a/b@v1\n"
        "        shell: bash\n        working-directory: src\n",
        [
            "wf.yml:7:9: 'with' is only valid with 'uses'",
            "wf.yml:9:9: 'shell' is only valid with 'run'",
            "wf.yml:10:9: 'working-directory' is only valid with 'run'",
        ],
    ),
    (
        "action reference forms",
        JOB + "    steps:\n      - uses: docker://\n      - uses: checkout@v4\n      - uses: ./\n"
        "      - uses: a/b@${{ x }}\n      - uses: actions/checkout\n",
        [
            "wf.yml:6:15: invalid action reference 'docker://': missing image",
            "wf.yml:7:15: invalid action reference 'checkout@v4': expected"
            " '<owner>/<repo>[/<path>]@<ref>', './<path>' or 'docker://<image>'",
            "wf.yml:8:15: invalid action reference './': missing path",
            "wf.yml:9:15: expressions are not allowed in 'uses'",
            "wf.yml:10:15: invalid action reference 'actions/checkout': missing '@<ref>' (e.g. '@v4')",
        ],
    ),
    (
        "unknown shell",
        JOB + "    steps:\n      - run: y\n        shell: zsh\n",
        [
            "wf.yml:7:16: unknown shell 'zsh' (did you mean 'sh'?); a custom shell must contain '{0}'"
        ],
    ),
    (
        "with and env values must be scalars",
        "on: push\nenv:\n  LIST: [1]\njobs:\n  a:\n    runs-on: x\n    steps:\n"
        "      - uses: a/b@v1\n        with:\n          obj: {x: 1}\n",
        [
            "wf.yml:3:9: expected a string, number or boolean, got a list",
            "wf.yml:10:16: input 'obj' must be a string, number or boolean, got a mapping",
        ],
    ),
    (
        "empty steps",
        JOB + "    steps: []\n",
        ["wf.yml:5:12: 'steps' must contain at least one step"],
    ),
    # -- matrix ---------------------------------------------------------------------
    (
        "matrix include of scalars",
        JOB + "    strategy:\n      matrix:\n        include: [1, 2]\n    steps: [{run: x}]\n",
        ["wf.yml:7:18: matrix 'include' must be a list of mappings"],
    ),
    (
        "empty matrix",
        JOB + "    strategy:\n      matrix: {}\n    steps: [{run: x}]\n",
        ["wf.yml:6:15: matrix must define at least one axis or 'include'"],
    ),
    (
        "matrix axis shapes and exclude keys",
        JOB + "    strategy:\n      fail-fast: sometimes\n      max-parallel: 1.5\n      matrix:\n"
        "        os: ubuntu\n        py: []\n        node: [1]\n        exclude:\n          - arch: x64\n"
        "    steps: [{run: x}]\n",
        [
            "wf.yml:6:18: expected a boolean or an expression, got a string",
            "wf.yml:7:21: expected a whole number, got 1.5",
            "wf.yml:9:13: matrix axis 'os' must be a list, got a string",
            "wf.yml:10:13: matrix axis 'py' is empty",
            "wf.yml:13:13: matrix exclude names 'arch', which is not an axis",
        ],
    ),
    (
        "unknown strategy key",
        JOB + "    strategy:\n      matrx: {a: [1]}\n    steps: [{run: x}]\n",
        ["wf.yml:6:7: unknown key 'matrx' in 'strategy' of job 'a' (did you mean 'matrix'?)"],
    ),
    # -- triggers -------------------------------------------------------------------
    (
        "unknown event in a list",
        "on: [push, pul_request]\njobs:\n  a:\n    runs-on: x\n    steps: [{run: x}]\n",
        ["wf.yml:1:12: unknown event 'pul_request' (did you mean 'pull_request'?)"],
    ),
    (
        "unknown event as a string",
        "on: pushh\njobs:\n  a:\n    runs-on: x\n    steps: [{run: x}]\n",
        ["wf.yml:1:5: unknown event 'pushh' (did you mean 'push'?)"],
    ),
    (
        "filters that cannot be combined",
        "on:\n  push:\n    branches: [main]\n    branches-ignore: [dev]\n    tags: [v1]\n"
        "    tags-ignore: [v2]\n    paths: [a]\n    paths-ignore: [b]\n    types: [opened]\n"
        "  pull_request:\n    types: [opend]\n"
        "jobs:\n  a:\n    runs-on: x\n    steps: [{run: x}]\n",
        [
            "wf.yml:4:5: 'branches' and 'branches-ignore' cannot be used together for 'push'",
            "wf.yml:6:5: 'tags' and 'tags-ignore' cannot be used together for 'push'",
            "wf.yml:8:5: 'paths' and 'paths-ignore' cannot be used together for 'push'",
            "wf.yml:9:5: unknown key 'types' in 'on.push'",
            "wf.yml:11:13: unknown activity type 'opend' for 'pull_request' (did you mean 'opened'?)",
        ],
    ),
    (
        "invalid glob patterns",
        "on:\n  push:\n    branches: ['release/[0-9', 'x[z-a]', 'a\\']\n    paths: ['+x', '']\n"
        "jobs:\n  a:\n    runs-on: x\n    steps: [{run: x}]\n",
        [
            "wf.yml:3:16: invalid pattern 'release/[0-9' in 'branches': unbalanced '['",
            "wf.yml:3:32: invalid pattern 'x[z-a]' in 'branches': invalid range 'z-a'",
            "wf.yml:3:42: invalid pattern 'a\\' in 'branches': pattern ends with an escape"
            " character '\\'",
            "wf.yml:4:13: invalid pattern '+x' in 'paths': '+' must follow a character",
            "wf.yml:4:19: invalid pattern '' in 'paths': empty pattern",
        ],
    ),
    (
        "cron expressions",
        "on:\n  schedule:\n    - cron: '61 * * * *'\n    - cron: '* * *'\n    - cron: '0 24 * * *'\n"
        "    - cron: '0 0 0 * *'\n    - cron: '0 0 * 13 *'\n    - cron: '0 0 * * 8'\n"
        "    - cron: '*/0 * * * *'\n    - cron: '5-1 * * * *'\n    - cron: '@daily'\n"
        "    - cron: '0 0 * * MON#2'\n"
        "jobs:\n  a:\n    runs-on: x\n    steps: [{run: x}]\n",
        [
            "wf.yml:3:13: invalid cron expression '61 * * * *': minute must be 0-59",
            "wf.yml:4:13: invalid cron expression '* * *': expected 5 fields, got 3",
            "wf.yml:5:13: invalid cron expression '0 24 * * *': hour must be 0-23",
            "wf.yml:6:13: invalid cron expression '0 0 0 * *': day of month must be 1-31",
            "wf.yml:7:13: invalid cron expression '0 0 * 13 *': month must be 1-12 or JAN-DEC",
            "wf.yml:8:13: invalid cron expression '0 0 * * 8': day of week must be 0-6 or SUN-SAT",
            "wf.yml:9:13: invalid cron expression '*/0 * * * *': invalid step '0' in minute",
            "wf.yml:10:13: invalid cron expression '5-1 * * * *': invalid range '5-1' in minute",
            "wf.yml:11:13: invalid cron expression '@daily': expected 5 fields, got 1",
            "wf.yml:12:13: invalid cron expression '0 0 * * MON#2': day of week must be 0-6"
            " or SUN-SAT",
        ],
    ),
    (
        "schedule without a list",
        "on:\n  schedule:\n    cron: '0 0 * * *'\njobs:\n  a:\n    runs-on: x\n    steps: [{run: x}]\n",
        ["wf.yml:3:5: 'schedule' needs a list of '- cron: ...' entries"],
    ),
    (
        "dispatch inputs",
        "on:\n  workflow_dispatch:\n    inputs:\n      a:\n        type: choice\n"
        "      b:\n        type: str\n      c:\n        type: number\n        default: lots\n"
        "      d:\n        type: string\n        options: [x]\n      bad name:\n        type: string\n"
        "      env:\n        type: choice\n        options: [dev, prod]\n        default: staging\n"
        "      flag:\n        type: boolean\n        default: 'yes'\n"
        "jobs:\n  a:\n    runs-on: x\n    steps: [{run: x}]\n",
        [
            "wf.yml:4:7: input 'a' of type choice needs 'options'",
            "wf.yml:7:15: unknown input type 'str' (expected string, boolean, number, choice"
            " or environment)",
            "wf.yml:10:18: default of number input 'c' must be a number",
            "wf.yml:13:9: 'options' is only valid for inputs of type choice",
            "wf.yml:14:7: invalid input name 'bad name': use letters, digits, '-' and '_',"
            " starting with a letter or '_'",
            "wf.yml:19:18: default 'staging' of input 'env' is not one of its options",
            "wf.yml:22:18: default of boolean input 'flag' must be true or false",
        ],
    ),
    (
        "workflow_call inputs, outputs and secrets",
        "on:\n  workflow_call:\n    inputs:\n      a:\n        default: x\n      b:\n"
        "        type: choice\n    outputs:\n      o:\n        description: no value\n"
        "    secrets:\n      s:\n        required: sometimes\n"
        "jobs:\n  a:\n    runs-on: x\n    steps: [{run: x}]\n",
        [
            "wf.yml:4:7: 'type' is required for input 'a'",
            "wf.yml:7:15: unknown input type 'choice' (expected string, boolean or number)",
            "wf.yml:9:7: 'value' is required",
            "wf.yml:13:19: expected a boolean, got a string",
        ],
    ),
    # -- expressions and contexts ---------------------------------------------------
    (
        "contexts not available where used",
        "on: push\nenv:\n  A: ${{ matrix.x }}\njobs:\n  a:\n    runs-on: ${{ steps.x.outputs.y }}\n"
        "    if: ${{ steps.x.outputs.y == 'a' }}\n    steps:\n      - run: echo ${{ githb.ref }}\n",
        [
            "wf.yml:3:10: context 'matrix' is not available in env",
            "wf.yml:6:18: context 'steps' is not available in jobs.<id>.runs-on",
            "wf.yml:7:13: context 'steps' is not available in jobs.<id>.if",
            "wf.yml:9:23: unknown context 'githb' (did you mean 'github'?)",
        ],
    ),
    (
        "special functions outside their keys",
        JOB + "    if: success() && hashFiles('x') != ''\n    env:\n      A: ${{ always() }}\n"
        "    steps:\n      - run: echo ${{ hashFiles('a') }}\n        if: ${{ job.status && always() }}\n",
        [
            "wf.yml:5:22: function 'hashFiles' is not available in jobs.<id>.if",
            "wf.yml:7:14: function 'always' is not available in jobs.<id>.env",
        ],
    ),
    (
        "expression syntax errors",
        JOB + "    steps:\n      - run: echo ${{ 1 + }}\n      - run: echo ${{ github.sha\n"
        "      - name: ${{ foo() }}\n        run: x\n",
        [
            "wf.yml:6:25: invalid number '+'",
            "wf.yml:7:19: '${{' is not closed by '}}'",
            "wf.yml:8:19: unknown function 'foo'",
        ],
    ),
    (
        "reusable workflow outputs use the jobs context",
        "on:\n  workflow_call:\n    outputs:\n      o:\n        value: ${{ steps.x.outputs.y }}\n"
        "jobs:\n  a:\n    runs-on: x\n    steps: [{run: x}]\n",
        [
            "wf.yml:5:20: context 'steps' is not available in on.workflow_call.outputs.<output_id>.value"
        ],
    ),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_error_is_reported_exactly(text: str, expected: list[str]) -> None:
    assert errors_of(text) == expected


def test_all_errors_of_a_file_are_reported_in_position_order() -> None:
    text = (
        "on:\n  push:\n    branches: ['[x']\n"
        "jobs:\n"
        "  build:\n    runs-on: x\n    steps:\n      - run: echo ${{ githb }}\n"
        "  deploy:\n    needs: buld\n    runs-on: x\n    steps:\n      - nmae: x\n        run: y\n"
    )
    with pytest.raises(ValidationError) as info:
        load_workflow("ci.yml", text)
    assert str(info.value).splitlines() == [
        "ci.yml:3:16: invalid pattern '[x' in 'branches': unbalanced '['",
        "ci.yml:8:23: unknown context 'githb' (did you mean 'github'?)",
        "ci.yml:10:12: job 'deploy' needs 'buld', which does not exist",
        "ci.yml:13:9: unknown key 'nmae' in step 1 of job 'deploy' (did you mean 'name'?)",
    ]
    assert [e.location.line for e in info.value.errors if e.location] == [3, 8, 10, 13]


def test_display_path_names_the_file_in_messages() -> None:
    _, errors = check_workflow("/abs/x.yml", "on: push\n", display_path=".github/workflows/x.yml")
    assert [str(e) for e in errors] == [".github/workflows/x.yml:1:1: 'jobs' is required"]


def test_unreadable_file_is_a_located_error(tmp_path: object) -> None:
    _, errors = check_workflow("/nonexistent/dir/wf.yml")
    assert len(errors) == 1
    assert str(errors[0]).startswith("/nonexistent/dir/wf.yml:1:1: cannot read file:")


def test_expressions_allowed_where_github_allows_them() -> None:
    text = JOB + (
        "    timeout-minutes: ${{ inputs.t }}\n"
        "    continue-on-error: ${{ matrix.experimental }}\n"
        "    strategy:\n      fail-fast: ${{ inputs.ff }}\n      max-parallel: ${{ inputs.n }}\n"
        "      matrix:\n        os: ${{ fromJSON(inputs.oses) }}\n        include: ${{ fromJSON(inputs.inc) }}\n"
        "    steps:\n      - run: x\n        timeout-minutes: ${{ env.T }}\n"
        "        continue-on-error: ${{ steps.a.outcome == 'failure' }}\n"
    )
    assert errors_of(text) == []


class TestBuiltinActionInputs:
    def test_unknown_input_suggests_the_right_one(self) -> None:
        text = (
            JOB
            + "    steps:\n      - uses: actions/checkout@v4\n        with:\n          fetch_depth: 0\n"
        )
        assert errors_of(text) == [
            "wf.yml:8:11: 'actions/checkout' has no input 'fetch_depth' (did you mean 'fetch-depth'?)"
        ]

    def test_missing_required_input(self) -> None:
        text = (
            JOB + "    steps:\n      - uses: actions/cache@v4\n        with:\n          path: x\n"
        )
        assert errors_of(text) == ["wf.yml:6:15: 'actions/cache' requires input 'key'"]

    def test_actions_outside_the_builtin_set_are_not_checked(self) -> None:
        text = (
            JOB + "    steps:\n      - uses: acme/deploy@v1\n        with:\n          anything: 1\n"
        )
        assert errors_of(text) == []


def test_control_characters_in_messages_are_escaped() -> None:
    text = 'on: push\njobs:\n  a:\n    uses: "x\\ny"\n'
    assert errors_of(text) == [
        "wf.yml:4:11: invalid reusable workflow reference 'x\\ny': expected"
        " './.github/workflows/<file>.yml' or '<owner>/<repo>/.github/workflows/<file>.yml@<ref>'"
    ]


def test_non_utf8_bytes_are_a_located_error() -> None:
    _, errors = check_workflow("wf.yml", b"on: push\nname: \xff\n")
    assert [str(e) for e in errors] == ["wf.yml:2:7: file is not valid UTF-8 (byte 0xff)"]
