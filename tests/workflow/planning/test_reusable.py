"""RunPlan runs reusable workflows (jobs.<id>.uses) as nested jobs, the way GitHub does."""

from __future__ import annotations

import textwrap

from shipyard.errors import LocatedError, Location, ValidationError
from shipyard.workflow._model import Workflow
from shipyard.workflow._parser import load_workflow
from shipyard.workflow._plan import RunPlan
from shipyard.workflow._runtime import Conclusion, JobRequest, JobResult

GITHUB = {"event_name": "push", "ref": "refs/heads/main", "sha": "0" * 40}
CALLER = ".github/workflows/ci.yml"


class Files:
    """Called workflows by path, parsed by the real parser when a call loads them."""

    def __init__(self, files: dict[str, str]) -> None:
        self.files = {path: textwrap.dedent(text) for path, text in files.items()}
        self.loaded: list[str] = []

    def __call__(self, uses: str) -> Workflow:
        path = uses.removeprefix("./")
        self.loaded.append(path)
        if path not in self.files:
            raise ValidationError([LocatedError("cannot read file: no such file",
                                                Location(path, 1, 1))])
        return load_workflow(path, self.files[path], display_path=path)


def plan(caller: str, called: dict[str, str], *, secrets: dict[str, str] | None = None,
         **kw) -> RunPlan:
    wf = load_workflow(CALLER, textwrap.dedent(caller))
    contexts = {"github": GITHUB, "inputs": {}, "vars": {"V": "var"},
                "secrets": secrets if secrets is not None else {"GITHUB_TOKEN": "tok"}}
    kw.setdefault("load_workflow", Files(called))
    return RunPlan(wf, contexts, **kw)


def result(req: JobRequest, conclusion: Conclusion = Conclusion.SUCCESS,
           **outputs: str) -> JobResult:
    return JobResult(key=req.key, job_id=req.job.id, name=req.name, conclusion=conclusion,
                     outputs=dict(outputs))


def keys(reqs: list[JobRequest]) -> list[str]:
    return [r.key for r in reqs]


def run_all(p: RunPlan, outcomes: dict[str, tuple[Conclusion, dict[str, str]]] | None = None
            ) -> list[JobRequest]:
    """Drive the plan to the end; each instance ends as ``outcomes`` says (else success)."""
    started: list[JobRequest] = []
    while True:
        batch = p.ready()
        if not batch:
            break
        for req in batch:
            started.append(req)
            conclusion, outputs = (outcomes or {}).get(req.key, (Conclusion.SUCCESS, {}))
            p.finish(req.key, result(req, conclusion, **outputs))
    assert p.done
    return started


BUILD = """\
on:
  workflow_call:
    inputs:
      target: {type: string, required: true}
    outputs:
      artifact:
        value: ${{ jobs.package.outputs.file }}
      tested:
        value: ${{ jobs.test.result }}
jobs:
  test:
    runs-on: x
    steps: [{run: 'true'}]
  package:
    needs: test
    runs-on: x
    outputs:
      file: ${{ steps.p.outputs.file }}
    steps: [{id: p, run: 'true'}]
"""

CALLS_BUILD = """\
on: push
jobs:
  build:
    uses: ./.github/workflows/build.yml
    with:
      target: linux
  deploy:
    needs: build
    runs-on: x
    steps: [{run: 'true'}]
"""


class TestNesting:
    def test_called_jobs_are_keyed_and_named_after_their_caller(self):
        """A called job's key and name are "<caller> / <job>", run in the called graph's order."""
        p = plan(CALLS_BUILD, {".github/workflows/build.yml": BUILD})
        first = p.ready()
        assert keys(first) == ["build / test"]
        assert first[0].name == "build / test"
        assert first[0].job.id == "test"
        assert first[0].workflow.path == ".github/workflows/build.yml"
        p.finish("build / test", result(first[0]))
        assert keys(p.ready()) == ["build / package"]

    def test_a_caller_name_prefixes_its_called_jobs(self):
        """The caller's own ``name:`` is what its called jobs are shown under."""
        p = plan(CALLS_BUILD.replace("  build:\n", "  build:\n    name: Build it\n"),
                 {".github/workflows/build.yml": BUILD})
        assert keys(p.ready()) == ["Build it / test"]

    def test_outputs_of_the_called_workflow_reach_jobs_needing_the_caller(self):
        """``workflow_call.outputs`` over ``jobs.<id>`` become ``needs.<caller>.outputs``."""
        p = plan(CALLS_BUILD, {".github/workflows/build.yml": BUILD})
        started = run_all(p, {"build / package": (Conclusion.SUCCESS, {"file": "app.tar"})})
        deploy = started[-1]
        assert deploy.key == "deploy"
        assert deploy.contexts["needs"]["build"] == {
            "result": "success", "outputs": {"artifact": "app.tar", "tested": "success"},
        }
        assert p.job_results()["build"].outputs == {"artifact": "app.tar", "tested": "success"}
        assert p.conclusion() is Conclusion.SUCCESS

    def test_instance_results_list_called_jobs_in_place_of_the_caller(self):
        """The run summary shows every called job, where the caller stands in the graph."""
        p = plan(CALLS_BUILD, {".github/workflows/build.yml": BUILD})
        run_all(p)
        assert [r.key for r in p.instance_results()] == [
            "build / test", "build / package", "deploy",
        ]
        assert set(p.job_results()) == {"build", "deploy"}

    def test_called_jobs_see_the_callers_github_and_vars_and_their_own_env(self):
        """``github``/``vars`` are the caller's; ``env`` is the called workflow's ``env:``."""
        p = plan("""\
            on: push
            env: {CALLER_ONLY: yes}
            jobs:
              call:
                uses: ./.github/workflows/env.yml
                with: {name: world}
            """, {".github/workflows/env.yml": """\
            on:
              workflow_call:
                inputs:
                  name: {type: string}
            env:
              GREETING: hello ${{ inputs.name }} on ${{ github.ref }}
            jobs:
              show: {runs-on: x, steps: [{run: 'true'}]}
            """})
        [req] = p.ready()
        assert req.contexts["env"] == {"GREETING": "hello world on refs/heads/main"}
        assert req.contexts["github"] == GITHUB
        assert req.contexts["vars"] == {"V": "var"}

    def test_calls_nest_two_levels_with_outputs_bubbling_up(self):
        """A called workflow may call another; keys chain, outputs pass up each level."""
        p = plan("""\
            on: push
            jobs:
              outer:
                uses: ./.github/workflows/middle.yml
                with: {word: hi}
              report:
                needs: outer
                runs-on: x
                steps: [{run: 'true'}]
            """, {
            ".github/workflows/middle.yml": """\
            on:
              workflow_call:
                inputs:
                  word: {type: string, required: true}
                outputs:
                  said: {value: "${{ jobs.inner.outputs.echoed }}"}
            jobs:
              inner:
                uses: ./.github/workflows/leaf.yml
                with:
                  text: ${{ inputs.word }}!
            """,
            ".github/workflows/leaf.yml": """\
            on:
              workflow_call:
                inputs:
                  text: {type: string, required: true}
                outputs:
                  echoed: {value: "${{ jobs.echo.outputs.out }}"}
            jobs:
              echo:
                runs-on: x
                outputs: {out: "${{ steps.e.outputs.out }}"}
                steps: [{id: e, run: 'true'}]
            """,
        })
        [leaf] = p.ready()
        assert leaf.key == "outer / inner / echo"
        assert leaf.contexts["inputs"] == {"text": "hi!"}
        p.finish(leaf.key, result(leaf, out="hi! back"))
        [report] = p.ready()
        assert report.contexts["needs"]["outer"]["outputs"] == {"said": "hi! back"}


class TestInputs:
    CALLED = {".github/workflows/typed.yml": """\
        on:
          workflow_call:
            inputs:
              name: {type: string, required: true}
              count: {type: number, default: 3}
              debug: {type: boolean, default: false}
              label: {type: string}
              size: {type: number}
              fast: {type: boolean}
              ref: {type: string, default: "${{ github.ref }}"}
        jobs:
          show: {runs-on: x, steps: [{run: 'true'}]}
        """}

    def call(self, with_: str) -> RunPlan:
        return plan(f"""\
            on: push
            jobs:
              call:
                uses: ./.github/workflows/typed.yml
                with: {with_}
            """, self.CALLED)

    def test_inputs_are_typed_and_defaulted(self):
        """Literals take the input's type; absent ones get their default or GitHub's empty value."""
        [req] = self.call("{name: app, count: '7', debug: true}").ready()
        assert req.contexts["inputs"] == {
            "name": "app", "count": 7, "debug": True, "label": "", "size": 0,
            "fast": False, "ref": "refs/heads/main",
        }

    def test_defaults_apply_when_an_input_is_not_given(self):
        """A literal default keeps its type; an expression default is evaluated."""
        [req] = self.call("{name: app}").ready()
        assert req.contexts["inputs"]["count"] == 3
        assert req.contexts["inputs"]["debug"] is False

    def test_unknown_input_fails_the_caller_with_where_and_what_exists(self):
        p = self.call("{name: app, nmae: x}")
        assert p.ready() == []
        error = p.job_results()["call"].error or ""
        assert error.startswith(f"{CALLER}:5:29: input 'nmae' is not defined by")
        assert "(did you mean 'name'?)" in error
        assert p.conclusion() is Conclusion.FAILURE

    def test_missing_required_input_fails_the_caller(self):
        p = self.call("{count: 1}")
        assert p.ready() == []
        assert p.job_results()["call"].error == (
            f"{CALLER}:3:3: input 'name' is required by .github/workflows/typed.yml"
            " but not given in 'with:'"
        )

    def test_a_value_of_the_wrong_type_fails_the_caller(self):
        p = self.call("{name: app, debug: 'maybe'}")
        p.ready()
        error = p.job_results()["call"].error or ""
        assert "input 'debug' is a boolean: expected true or false, got 'maybe'" in error

    def test_with_is_evaluated_per_matrix_leg_and_against_needs(self):
        """A caller's matrix makes one call per leg, each with its own ``with:`` values."""
        p = plan("""\
            on: push
            jobs:
              prepare:
                runs-on: x
                outputs: {tag: "${{ steps.t.outputs.tag }}"}
                steps: [{id: t, run: 'true'}]
              call:
                needs: prepare
                strategy:
                  matrix:
                    count: [1, 2]
                uses: ./.github/workflows/typed.yml
                with:
                  name: ${{ needs.prepare.outputs.tag }}-${{ matrix.count }}
                  count: ${{ matrix.count }}
            """, self.CALLED)
        [prepare] = p.ready()
        p.finish("prepare", result(prepare, tag="v1"))
        legs = p.ready()
        assert keys(legs) == ["call (1) / show", "call (2) / show"]
        assert [(r.contexts["inputs"]["name"], r.contexts["inputs"]["count"]) for r in legs] == [
            ("v1-1", 1), ("v1-2", 2),
        ]


class TestSecrets:
    CALLED = {".github/workflows/deploy.yml": """\
        on:
          workflow_call:
            secrets:
              token: {required: true}
              extra:
        jobs:
          go: {runs-on: x, steps: [{run: 'true'}]}
        """}
    SECRETS = {"GITHUB_TOKEN": "gh", "DEPLOY_TOKEN": "d3pl0y", "OTHER": "o"}

    def call(self, secrets_yaml: str) -> RunPlan:
        return plan(f"""\
            on: push
            jobs:
              call:
                uses: ./.github/workflows/deploy.yml
                secrets: {secrets_yaml}
            """, self.CALLED, secrets=self.SECRETS)

    def test_inherit_still_needs_the_required_secrets(self):
        p = self.call("inherit")
        p.ready()
        assert "secret 'token' is required by .github/workflows/deploy.yml but not given" \
            " in the caller's secrets" in (p.job_results()["call"].error or "")

    def test_inherit_passes_every_secret_of_the_caller(self):
        p = plan("""\
            on: push
            jobs:
              call:
                uses: ./.github/workflows/deploy.yml
                secrets: inherit
            """, self.CALLED, secrets={**self.SECRETS, "token": "t"})
        [req] = p.ready()
        assert req.contexts["secrets"] == {**self.SECRETS, "token": "t"}

    def test_named_secrets_are_the_only_ones_the_called_jobs_see(self):
        """Besides GITHUB_TOKEN, only what ``secrets:`` maps is visible."""
        [req] = self.call("{token: '${{ secrets.DEPLOY_TOKEN }}'}").ready()
        assert req.contexts["secrets"] == {"GITHUB_TOKEN": "gh", "token": "d3pl0y"}

    def test_a_missing_required_secret_fails_the_caller(self):
        p = self.call("{extra: x}")
        p.ready()
        assert "secret 'token' is required by .github/workflows/deploy.yml" in (
            p.job_results()["call"].error or ""
        )

    def test_a_secret_the_called_workflow_does_not_declare_fails_the_caller(self):
        p = self.call("{token: a, tokn: b}")
        p.ready()
        assert "secret 'tokn' is not defined by .github/workflows/deploy.yml" in (
            p.job_results()["call"].error or ""
        )


class TestLoading:
    def test_a_remote_call_fails_the_job_saying_only_local_ones_run(self):
        p = plan("""\
            on: push
            jobs:
              call: {uses: octo/ci/.github/workflows/x.yml@v1}
            """, {})
        assert p.ready() == []
        assert p.job_results()["call"].error == (
            f"{CALLER}:3:3: reusable workflow 'octo/ci/.github/workflows/x.yml@v1' is not"
            " available: only local reusable workflows (uses: ./.github/workflows/…)"
            " can run here"
        )

    def test_a_workflow_without_workflow_call_cannot_be_called(self):
        p = plan("""\
            on: push
            jobs:
              call: {uses: ./.github/workflows/push.yml}
            """, {".github/workflows/push.yml": """\
            on: push
            jobs:
              j: {runs-on: x, steps: [{run: 'true'}]}
            """})
        p.ready()
        assert p.job_results()["call"].error == (
            f"{CALLER}:3:3: .github/workflows/push.yml cannot be called as a reusable"
            " workflow: its 'on:' has no 'workflow_call' trigger"
        )

    def test_errors_of_the_called_file_fail_the_caller_with_their_locations(self):
        p = plan("""\
            on: push
            jobs:
              call: {uses: ./.github/workflows/bad.yml}
            """, {".github/workflows/bad.yml": """\
            on: workflow_call
            jobs:
              j:
                runs-on: x
                stepz: []
            """})
        p.ready()
        error = p.job_results()["call"].error or ""
        assert error.startswith(f"{CALLER}:3:3: reusable workflow './.github/workflows/bad.yml'"
                                " has errors:\n.github/workflows/bad.yml:")
        assert "stepz" in error

    def test_a_missing_file_fails_the_caller(self):
        p = plan("""\
            on: push
            jobs:
              call: {uses: ./.github/workflows/nope.yml}
            """, {})
        p.ready()
        assert ".github/workflows/nope.yml:1:1: cannot read file" in (
            p.job_results()["call"].error or ""
        )

    def test_each_called_file_is_loaded_once_per_run(self):
        files = Files({".github/workflows/build.yml": BUILD})
        p = plan("""\
            on: push
            jobs:
              call:
                strategy: {matrix: {t: [a, b, c]}}
                uses: ./.github/workflows/build.yml
                with: {target: "${{ matrix.t }}"}
            """, {}, load_workflow=files)
        assert len(p.ready()) == 3
        assert files.loaded == [".github/workflows/build.yml"]

    def test_a_skipped_caller_loads_nothing(self):
        files = Files({})
        p = plan("""\
            on: push
            jobs:
              call:
                if: false
                uses: ./.github/workflows/build.yml
            """, {}, load_workflow=files)
        assert p.ready() == []
        assert p.job_results()["call"].conclusion is Conclusion.SKIPPED
        assert files.loaded == []

    def test_a_workflow_calling_itself_is_a_cycle(self):
        p = plan("""\
            on: push
            jobs:
              call: {uses: ./.github/workflows/loop.yml}
            """, {".github/workflows/loop.yml": """\
            on: workflow_call
            jobs:
              again: {uses: ./.github/workflows/loop.yml}
            """})
        assert p.ready() == []
        [inner] = p.instance_results()
        assert inner.key == "call / again"
        assert inner.error == (
            ".github/workflows/loop.yml:3:3: reusable workflow './.github/workflows/loop.yml'"
            " calls itself: .github/workflows/loop.yml -> .github/workflows/loop.yml"
        )
        assert p.job_results()["call"].conclusion is Conclusion.FAILURE

    @staticmethod
    def chain(levels: int) -> dict[str, str]:
        files = {}
        for n in range(1, levels + 1):
            last = n == levels
            job = "j: {runs-on: x, steps: [{run: 'true'}]}" if last else (
                f"c{n + 1}: {{uses: ./.github/workflows/w{n + 1}.yml}}"
            )
            files[f".github/workflows/w{n}.yml"] = f"on: workflow_call\njobs:\n  {job}\n"
        return files

    def test_four_levels_of_workflows_run(self):
        """The top-level workflow and three levels of calls: GitHub's limit, allowed."""
        p = plan("on: push\njobs:\n  c1: {uses: ./.github/workflows/w1.yml}\n", self.chain(3))
        assert keys(p.ready()) == ["c1 / c2 / c3 / j"]

    def test_a_fifth_level_is_too_deep(self):
        p = plan("on: push\njobs:\n  c1: {uses: ./.github/workflows/w1.yml}\n", self.chain(4))
        assert p.ready() == []
        [deepest] = p.instance_results()
        assert deepest.key == "c1 / c2 / c3 / c4"
        assert "reusable workflow './.github/workflows/w4.yml' is nested too deep:" in (
            deepest.error or ""
        )
        assert p.conclusion() is Conclusion.FAILURE

    def test_without_a_loader_a_call_fails_clearly(self):
        p = plan(CALLS_BUILD, {}, load_workflow=None)
        p.ready()
        assert "cannot be loaded here" in (p.job_results()["build"].error or "")


class TestResults:
    FLAKY = {".github/workflows/checks.yml": """\
        on: workflow_call
        jobs:
          unit: {runs-on: x, steps: [{run: 'true'}]}
          e2e:
            needs: unit
            runs-on: x
            steps: [{run: 'true'}]
        """}

    def test_a_failed_called_job_fails_the_caller_and_skips_dependents(self):
        p = plan("""\
            on: push
            jobs:
              checks: {uses: ./.github/workflows/checks.yml}
              ship:
                needs: checks
                runs-on: x
                steps: [{run: 'true'}]
            """, self.FLAKY)
        run_all(p, {"checks / unit": (Conclusion.FAILURE, {})})
        by_key = {r.key: r.conclusion for r in p.instance_results()}
        assert by_key == {
            "checks / unit": Conclusion.FAILURE, "checks / e2e": Conclusion.SKIPPED,
            "ship": Conclusion.SKIPPED,
        }
        assert p.job_results()["checks"].conclusion is Conclusion.FAILURE
        assert p.conclusion() is Conclusion.FAILURE

    def test_continue_on_error_in_a_called_job_keeps_the_caller_green(self):
        p = plan("on: push\njobs:\n  checks: {uses: ./.github/workflows/checks.yml}\n", {
            ".github/workflows/checks.yml": """\
            on: workflow_call
            jobs:
              unit:
                runs-on: x
                continue-on-error: true
                steps: [{run: 'true'}]
            """})
        run_all(p, {"checks / unit": (Conclusion.FAILURE, {})})
        assert p.job_results()["checks"].conclusion is Conclusion.SUCCESS
        assert p.conclusion() is Conclusion.SUCCESS

    def test_a_caller_whose_called_jobs_all_skip_is_skipped(self):
        p = plan("""\
            on: push
            jobs:
              call: {uses: ./.github/workflows/off.yml}
              after: {needs: call, runs-on: x, steps: [{run: 'true'}]}
            """, {".github/workflows/off.yml": """\
            on: workflow_call
            jobs:
              j: {if: false, runs-on: x, steps: [{run: 'true'}]}
            """})
        assert p.ready() == []
        assert p.job_results()["call"].conclusion is Conclusion.SKIPPED
        assert p.job_results()["after"].conclusion is Conclusion.SKIPPED

    MATRIX_CALL = """\
        on: push
        jobs:
          call:
            strategy:
              fail-fast: {fail_fast}
              matrix: {{n: [1, 2]}}
            uses: ./.github/workflows/checks.yml
        """

    def test_fail_fast_cancels_the_callers_other_calls(self):
        p = plan(self.MATRIX_CALL.format(fail_fast="true"), self.FLAKY)
        one, two = p.ready()
        assert (one.key, two.key) == ("call (1) / unit", "call (2) / unit")
        assert p.finish(one.key, result(one, Conclusion.FAILURE)) == [two.key]
        p.finish(two.key, result(two, Conclusion.CANCELLED))
        assert p.ready() == []
        by_key = {r.key: r.conclusion for r in p.instance_results()}
        assert by_key == {
            "call (1) / unit": Conclusion.FAILURE, "call (1) / e2e": Conclusion.SKIPPED,
            "call (2) / unit": Conclusion.CANCELLED, "call (2) / e2e": Conclusion.CANCELLED,
        }
        assert p.job_results()["call"].conclusion is Conclusion.FAILURE

    def test_without_fail_fast_the_other_calls_go_on(self):
        p = plan(self.MATRIX_CALL.format(fail_fast="false"), self.FLAKY)
        one, two = p.ready()
        assert p.finish(one.key, result(one, Conclusion.FAILURE)) == []
        p.finish(two.key, result(two))
        assert keys(p.ready()) == ["call (2) / e2e"]

    def test_max_parallel_limits_how_many_calls_run_at_once(self):
        p = plan("""\
            on: push
            jobs:
              call:
                strategy: {max-parallel: 1, matrix: {n: [1, 2]}}
                uses: ./.github/workflows/checks.yml
            """, self.FLAKY)
        [unit] = p.ready()
        p.finish(unit.key, result(unit))
        [e2e] = p.ready()
        assert e2e.key == "call (1) / e2e"
        p.finish(e2e.key, result(e2e))
        assert keys(p.ready()) == ["call (2) / unit"]

    def test_cancel_reaches_the_called_jobs(self):
        p = plan(CALLS_BUILD, {".github/workflows/build.yml": BUILD})
        [test] = p.ready()
        assert p.cancel() == ["build / test"]
        p.finish(test.key, result(test, Conclusion.CANCELLED))
        assert p.done
        by_key = {r.key: r.conclusion for r in p.instance_results()}
        assert by_key == {
            "build / test": Conclusion.CANCELLED, "build / package": Conclusion.CANCELLED,
            "deploy": Conclusion.CANCELLED,
        }
        assert p.conclusion() is Conclusion.CANCELLED

    def test_keys_stay_unique_across_the_run(self):
        """A top-level job named like a called one gets a distinct key."""
        p = plan("""\
            on: push
            jobs:
              build:
                uses: ./.github/workflows/build.yml
                with: {target: x}
              other:
                name: build / test
                runs-on: x
                steps: [{run: 'true'}]
            """, {".github/workflows/build.yml": BUILD})
        assert keys(p.ready()) == ["build / test #2", "build / test"]
